"""What the regsweep sweeper adds to Hydra's basic sweep: integer ranges, up-front validation, a summary.

- ``seed=0-9`` means the integers 0..9 (Hydra alone reads it as the string "0-9" and runs one job);
  ``seed=0-4,10`` mixes ranges and values; a quoted ``'0-9'`` stays a string.
- Every job's config is validated before the first job starts, so a typo fails in a second.
- After the jobs, every job's result record is collected into one table (and the seed
  aggregation), even when some jobs failed.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override, ValueType
from omegaconf import DictConfig

from regsweep.errors import ConfigError, RegsweepError
from regsweep.records import RESULT_FILE, ResultRecord, find_job_dirs, read_result

log = logging.getLogger(__name__)

INTEGER_RANGE = re.compile(r"^(\d+)-(\d+)$")


class SweepFailedError(RegsweepError):
    """Some jobs of a multirun failed; the others ran and kept their results."""


def _expand_item(key: str, item: Any) -> list[Any]:
    match = INTEGER_RANGE.match(item) if isinstance(item, str) else None
    if match is None:
        return [item]
    first, last = int(match.group(1)), int(match.group(2))
    if first > last:
        raise ConfigError(key, item, f"an integer range a-b needs a <= b, e.g. {last}-{first}")
    return list(range(first, last + 1))


def _expanded(override: Override) -> str | None:
    """The override rewritten with integer ranges spelled out, or None when it has no range."""
    key = override.input_line.split("=", 1)[0]
    if override.value_type == ValueType.ELEMENT:
        items = [override.value()]
    elif override.value_type == ValueType.SIMPLE_CHOICE_SWEEP:
        items = override.value().list  # type: ignore[union-attr]
    else:
        return None
    expanded = [value for item in items for value in _expand_item(key, item)]
    if expanded == items:
        return None
    if len(items) == 1:
        return f"{key}=range({expanded[0]},{expanded[-1] + 1})"
    return f"{key}={','.join(str(v) for v in expanded)}"


def expand_integer_ranges(arguments: Sequence[str]) -> list[str]:
    """Rewrite ``key=a-b`` (unquoted, integers a <= b) into Hydra's ``key=range(a,b+1)``."""
    parser = OverridesParser.create()
    return [_expanded(parser.parse_override(arg)) or arg for arg in arguments]


def validate_jobs(batch: Sequence[Sequence[str]], load: Callable[[list[str]], DictConfig],
                  check: Callable[[DictConfig], Any]) -> None:
    """Compose and check every job's config; one error listing every invalid job."""
    problems = []
    for overrides in batch:
        try:
            check(load(list(overrides)))
        except ConfigError as error:
            problems.append(f"  job [{' '.join(overrides)}]: {error}")
    if problems:
        raise RegsweepError(f"{len(problems)} of {len(batch)} jobs have an invalid config; none was started:\n"
                            + "\n".join(problems))


def collect_records(sweep_dir: Path) -> tuple[list[ResultRecord], list[str]]:
    """The result records of a sweep dir and the names of job dirs that left none (crashed or killed)."""
    records, missing = [], []
    for job_dir in find_job_dirs(sweep_dir):
        if (job_dir / RESULT_FILE).exists():
            records.append(read_result(job_dir))
        else:
            missing.append(job_dir.name)
    return records, missing


def failure_message(records: list[ResultRecord], missing: list[str]) -> str | None:
    failed = [r for r in records if not r.ok]
    if not failed and not missing:
        return None
    lines = [f"{len(failed) + len(missing)} of {len(records) + len(missing)} jobs failed "
             "(the others completed and kept their results):"]
    lines += [f"  {r.job.name}: {r.error}" for r in failed]
    lines += [f"  {name}: no result record (the job crashed or was killed)" for name in missing]
    return "\n".join(lines)
