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

from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from regsweep.errors import ConfigError, RegsweepError
from regsweep.records import FAILED, RESULT_FILE, ResultRecord, find_job_dirs, read_result
from regsweep.report import sweep_table

log = logging.getLogger(__name__)

INTEGER_ITEMS = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")  # 0-9 or 0-4,7,10-12; quoted values never match


class SweepFailedError(RegsweepError):
    """Some jobs of a multirun failed; the others ran and kept their results."""


def path_safe(text: str) -> str:
    """A job-dir name from overrides: a value such as ``val/acc`` must not nest directories."""
    return text.replace("/", "_")


def register_resolvers() -> None:
    """Resolvers the Hydra config uses (``${path_safe:...}`` in conf/hydra/default.yaml)."""
    if not OmegaConf.has_resolver("path_safe"):
        OmegaConf.register_new_resolver("path_safe", path_safe)


def _expand_item(key: str, item: str) -> list[int]:
    first, _, last = item.partition("-")
    if not last:
        return [int(first)]
    if int(first) > int(last):
        raise ConfigError(key, item, f"an integer range a-b needs a <= b, e.g. {last}-{first}")
    return list(range(int(first), int(last) + 1))


def expand_integer_ranges(arguments: Sequence[str]) -> list[str]:
    """Rewrite ``key=a-b`` (unquoted, integers a <= b) into Hydra's ``key=range(a,b+1)``.

    Lists that mix ranges and integers (``key=0-4,7``) become explicit choices (``key=0,1,2,3,4,7``).
    """
    expanded = []
    for argument in arguments:
        key, _, value = argument.partition("=")
        if "-" not in value or not INTEGER_ITEMS.match(value):
            expanded.append(argument)
            continue
        items = value.split(",")
        values = [v for item in items for v in _expand_item(key.lstrip("+~"), item)]
        if len(items) == 1:
            expanded.append(f"{key}=range({values[0]},{values[-1] + 1})")
        else:
            expanded.append(f"{key}={','.join(map(str, values))}")
    return expanded


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
    failed = [r for r in records if r.status == FAILED]  # pruned search trials are not failures
    if not failed and not missing:
        return None
    lines = [f"{len(failed) + len(missing)} of {len(records) + len(missing)} jobs failed "
             "(the others completed and kept their results):"]
    lines += [f"  {r.job.name}: {r.error}" for r in failed]
    lines += [f"  {name}: no result record (the job crashed or was killed)" for name in missing]
    return "\n".join(lines)


def summarize_sweep(sweep_dir: Path, aggregate: bool = True) -> str | None:
    """Print the job table (and write the seed aggregation) of a finished sweep.

    Returns the failure message when a job failed or left no record. Aggregation errors are
    reported but never hide the jobs' own results.
    """
    records, missing = collect_records(sweep_dir)
    if not records:
        return failure_message(records, missing)
    console = Console()
    console.print(sweep_table(records))
    if aggregate:
        from regsweep.aggregate import aggregate_sweep  # matplotlib and scipy: only when needed

        try:
            print(aggregate_sweep(sweep_dir).console_summary())  # markdown: plain print keeps it unwrapped
            print(f"seed summary: {sweep_dir / 'summary.md'}")
        except Exception as error:  # the job records stay valid whatever happens here
            log.error("aggregation of %s failed: %s: %s", sweep_dir, type(error).__name__, error)
    return failure_message(records, missing)
