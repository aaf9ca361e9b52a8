"""Read a sweep dir into groups of jobs: one group per configuration, its seeds pooled.

Jobs are grouped by their command-line overrides with the seed (and Hydra's own settings)
removed, so every group holds the repeats of one configuration. Jobs without a record are kept
as "missing" and unreadable records as "failed", so a partial sweep is still reported honestly.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from regsweep.errors import RegsweepError
from regsweep.metrics import DERIVED_ERRORS, base_name
from regsweep.records import (
    EPOCHS_FILE,
    FAILED,
    OK,
    RESULT_FILE,
    ResultRecord,
    find_job_dirs,
    read_epochs_csv,
    read_result,
)

MISSING = "missing"  # a job dir without a result record: the job crashed or was killed

ALL_JOBS_LABEL = "(all)"
SEED_KEY = "seed"
GroupValues = dict[str, dict[str, np.ndarray]]  # group label -> metric -> one value per ok job


class AggregateError(RegsweepError):
    """The sweep cannot be aggregated (no such dir, no jobs, unknown baseline)."""


@dataclass
class Job:
    """One job dir: its record when it finished, why not otherwise."""

    name: str
    dir: Path
    overrides: list[str]
    record: ResultRecord | None
    error: str | None = None  # why the job failed (its own message, or why its record is unreadable)

    @property
    def status(self) -> str:
        if self.record is None:
            return FAILED if self.error else MISSING
        return self.record.status

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass
class Group:
    """The jobs that share one configuration (every override except the seed)."""

    label: str
    overrides: dict[str, str]
    jobs: list[Job] = field(default_factory=list)

    def with_status(self, status: str) -> list[Job]:
        return [job for job in self.jobs if job.status == status]

    @property
    def ok_records(self) -> list[ResultRecord]:
        return [job.record for job in self.with_status(OK) if job.record is not None]


@dataclass
class Sweep:
    """A sweep dir's jobs, grouped; groups in the order their first job ran."""

    sweep_dir: Path
    groups: list[Group]

    @property
    def jobs(self) -> list[Job]:
        return [job for group in self.groups for job in group.jobs]


def split_override(override: str) -> tuple[str, str]:
    """``"+optimizer.lr=0.1"`` -> ``("optimizer.lr", "0.1")``; Hydra's ``+``/``++``/``~`` prefixes dropped."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def is_grouping_override(override: str) -> bool:
    """Seeds are the repeats to pool over; ``hydra.*`` overrides only change how the job ran."""
    key, _ = split_override(override)
    return key != SEED_KEY and not key.startswith("hydra.")


def group_overrides(overrides: list[str]) -> dict[str, str]:
    """The overrides that define a job's configuration, sorted by key so every job agrees on a label."""
    pairs = (split_override(o) for o in overrides if is_grouping_override(o))
    return dict(sorted(pairs))


def group_label(overrides: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in overrides.items()) or ALL_JOBS_LABEL


def shared_overrides(per_job: list[dict[str, str]]) -> set[str]:
    """Keys every job sets to the same value: the sweep's fixed settings, left out of group labels."""
    first, *rest = per_job
    return {k for k, v in first.items() if all(other.get(k) == v for other in rest)}


def safe_name(label: str, max_length: int = 120) -> str:
    """A label as one file-name component; long labels (Optuna trials) keep a hash to stay distinct."""
    name = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", label).strip("._") or "group"
    if len(name) > max_length:
        name = f"{name[:max_length]}-{hashlib.sha1(label.encode()).hexdigest()[:8]}"
    return name


def read_hydra_overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return []
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [str(o) for o in loaded] if isinstance(loaded, list) else []


def load_job(job_dir: Path) -> Job:
    """A job from its dir; a missing record means the job never finished, a corrupt one that it failed."""
    hydra_overrides = read_hydra_overrides(job_dir)
    if not (job_dir / RESULT_FILE).exists():
        return Job(job_dir.name, job_dir, hydra_overrides, record=None)
    try:
        record = read_result(job_dir)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return Job(job_dir.name, job_dir, hydra_overrides, None, f"unreadable {RESULT_FILE}: {exc}")
    overrides = list(record.job.overrides) or hydra_overrides
    error = None if record.ok else (record.error or "failed without an error message")
    return Job(job_dir.name, job_dir, overrides, record, error)


def job_order(job: Job) -> tuple[float, str]:
    """Sweep order: Hydra's job number (from the record or the ``N_`` dir prefix), then the name."""
    if job.record is not None and job.record.job.num is not None:
        return (job.record.job.num, job.name)
    prefix = re.match(r"\d+", job.name)
    return (int(prefix.group()) if prefix else math.inf, job.name)


def load_sweep(sweep_dir: Path) -> Sweep:
    """Every job under ``sweep_dir``, grouped by configuration."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise AggregateError(f"Sweep dir not found: {sweep_dir}")
    jobs = sorted((load_job(d) for d in find_job_dirs(sweep_dir)), key=job_order)
    if not jobs:
        raise AggregateError(f"No jobs in {sweep_dir}: expected sub-dirs with {RESULT_FILE} or .hydra/overrides.yaml")
    per_job = [group_overrides(job.overrides) for job in jobs]
    shared = shared_overrides(per_job)
    groups: dict[str, Group] = {}
    for job, overrides in zip(jobs, per_job):
        label = group_label({k: v for k, v in overrides.items() if k not in shared})
        groups.setdefault(label, Group(label, overrides)).jobs.append(job)
    return Sweep(sweep_dir, list(groups.values()))


def record_metrics(record: ResultRecord) -> dict[str, float]:
    """A record's numeric metrics under one flat name each.

    Test keys keep their name (``test/acc``); final and best keys get their section as prefix
    (``final/val/acc``, ``best/val/acc``). The error rate (1 - accuracy) is derived here so
    that its statistics are computed like every other metric's.
    """
    flat: dict[str, float] = {}
    for section, values in record.metrics.items():
        for key, value in values.items():
            if _is_number(value):
                flat[key if section == "test" else f"{section}/{key}"] = float(value)
    for name in list(flat):
        derived = next((error for error, acc in DERIVED_ERRORS.items() if base_name(name) == acc), None)
        if derived is not None:
            flat[name[: len(name) - len(base_name(name))] + derived] = 1.0 - flat[name]
    flat["epochs"] = float(record.epochs)
    flat["wall_time_s"] = float(record.wall_time_s)
    return flat


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_epoch_rows(job: Job) -> list[dict[str, float]]:
    """A job's per-epoch rows; none when the job left no (readable) ``metrics.csv``."""
    path = job.dir / EPOCHS_FILE
    try:
        return read_epochs_csv(path) if path.exists() else []
    except (OSError, ValueError):
        return []


def metric_order(metric: str) -> tuple[int, str]:
    """Test metrics first, then best-epoch, then final-epoch, then bookkeeping (epochs, wall time)."""
    sections = ("test/", "best/", "final/")
    rank = next((i for i, prefix in enumerate(sections) if metric.startswith(prefix)), len(sections))
    return rank, metric


def metric_names(sweep: Sweep) -> list[str]:
    names = {name for group in sweep.groups for record in group.ok_records for name in record_metrics(record)}
    return sorted(names, key=metric_order)


def group_metric_values(sweep: Sweep, metrics: list[str]) -> GroupValues:
    """Label -> metric -> one value per ok job (NaN where a job lacks the metric)."""
    values: GroupValues = {}
    for group in sweep.groups:
        per_job = [record_metrics(record) for record in group.ok_records]
        values[group.label] = {m: np.array([job.get(m, math.nan) for job in per_job], dtype=float) for m in metrics}
    return values
