"""Read a sweep dir into groups of jobs: one group per configuration, its seeds pooled.

Jobs are grouped by their command-line overrides with the seed (and Hydra's own settings)
removed, so every group holds the repeats of one configuration. Jobs without a record are kept
as "missing" and unreadable records as "failed", so a partial sweep is still reported honestly.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from regsweep.errors import RegsweepError
from regsweep.metrics import DERIVED_ERRORS, base_name
from regsweep.records import (
    EPOCHS_FILE,
    FAILED,
    MISSING,
    OK,
    OVERRIDES_FILE,
    PREDICTIONS_FILE,
    RESULT_FILE,
    WEIGHTS_FILE,
    ResultRecord,
    find_job_dirs,
    read_epochs_csv,
    read_result,
)
from regsweep.search import REPORT_KEY

ALL_JOBS_LABEL = "(all)"
SEED_KEY = "seed"
# Record sections a key may be read from when its override is not a number (or, for what only the
# record states, such as the model's size, absent): ``data.batch_size=null`` -> record.data["batch_size"].
RECORDED_SECTIONS = ("data", "model")
MODEL_SIZE_KEY = "model.parameters"  # not a config key: a model's trainable parameters, as its jobs recorded
# Overrides that set a model's size: groups that differ in them are also compared against MODEL_SIZE_KEY.
ARCHITECTURE_KEYS = ("model", "model.hidden_sizes", "model.channels", "model.kernel_size", "model.pool")
GroupValues = dict[str, dict[str, np.ndarray]]  # group label -> metric -> one value per ok job


T = TypeVar("T")
# What reading a truncated or garbled file raises (zip archives, compressed members, CSV, arrays).
READ_ERRORS = (OSError, ValueError, KeyError, EOFError, csv.Error, zipfile.BadZipFile, zlib.error)


class AggregateError(RegsweepError):
    """The sweep cannot be aggregated (no such dir, no jobs, unknown baseline)."""


class UnreadableFile(AggregateError):
    """A job file that exists but cannot be used (truncated, garbled, empty, wrong shapes)."""


@dataclass
class Job:
    """One job dir: its record when it finished, why not otherwise."""

    name: str
    dir: Path
    overrides: list[str]
    record: ResultRecord | None
    error: str | None = None  # why the job failed (its own message, or why its record is unreadable)
    # file name -> why it could not be read: an ok job whose curves, weights or predictions are left out
    file_problems: dict[str, str] = field(default_factory=dict)

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
    varying: dict[str, str] = field(default_factory=dict)  # the overrides the label is made of
    # (job left out, the job kept): a seed run twice (two sweeps aggregated together) counts once
    repeats: list[tuple[Job, Job]] = field(default_factory=list)

    @property
    def record(self) -> ResultRecord | None:
        """A record standing for the group's configuration (every job shares all but the seed)."""
        return next(iter(self.ok_records), None) or next((j.record for j in self.jobs if j.record), None)

    def number(self, key: str) -> float | None:
        """The group's override of ``key`` as a number; else what its record states for it, such as a data key
        given as null (``data.batch_size=null``, a full batch: the size it came to) or the model's size
        (MODEL_SIZE_KEY). None when neither is a number."""
        number = numeric_value(self.overrides[key]) if key in self.overrides else None
        section, _, name = key.partition(".")
        if number is None and section in RECORDED_SECTIONS and self.record is not None:
            recorded = getattr(self.record, section).get(name)
            number = float(recorded) if is_number(recorded) else None
        return number

    def setting(self, key: str) -> Any:
        """The group's value of a config key: from the record's flattened config, else from its override."""
        record = self.record
        if record is not None and key in record.params:
            return record.params[key]
        if key not in self.overrides:
            return None
        number = numeric_value(self.overrides[key])
        return self.overrides[key] if number is None else number

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

    @property
    def varying_keys(self) -> list[str]:
        """The override keys that tell groups apart, in label order."""
        return list(dict.fromkeys(key for group in self.groups for key in group.varying))

    @property
    def repeats(self) -> list[tuple[Job, Job]]:
        return [pair for group in self.groups for pair in group.repeats]

    @property
    def sizes_compared(self) -> bool:
        """Whether the groups differ in architecture and so in size: worth a look at metrics per parameter."""
        if not any(key in ARCHITECTURE_KEYS for key in self.varying_keys):
            return False
        sizes = {group.number(MODEL_SIZE_KEY) for group in self.groups} - {None}
        return len(sizes) > 1

    @property
    def task(self) -> str | None:
        """The jobs' task (classification or regression), from the first record that names it."""
        records = (job.record for job in self.jobs if job.record is not None)
        return next((r.data["task"] for r in records if "task" in r.data), None)

    @property
    def answer_on(self) -> list[str]:
        """The metrics the study asks its answers on (``answer_on`` in its jobs' configs); [] for the default."""
        records = (job.record for job in self.jobs if job.record is not None)
        chosen = next((r.params["answer_on"] for r in records if "answer_on" in r.params), "auto")
        return list(chosen) if isinstance(chosen, list) else []


def numeric_value(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def split_override(override: str) -> tuple[str, str]:
    """``"+optimizer.lr=0.1"`` -> ``("optimizer.lr", "0.1")``; Hydra's ``+``/``++``/``~`` prefixes dropped."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def is_grouping_override(override: str) -> bool:
    """Seeds are the repeats to pool over; ``hydra.*`` overrides and which seed of a search trial
    reports to its pruner only change how the job ran."""
    key, _ = split_override(override)
    return key not in (SEED_KEY, REPORT_KEY) and not key.startswith("hydra.")


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
    path = job_dir / OVERRIDES_FILE
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


def job_seed(job: Job) -> int | None:
    """The job's seed: from its record, else from its ``seed=`` override; None when neither says."""
    if job.record is not None and job.record.seed is not None:
        return job.record.seed
    seeds = [value for key, value in map(split_override, job.overrides) if key == SEED_KEY]
    return int(seeds[-1]) if seeds and seeds[-1].lstrip("-").isdigit() else None


def set_aside_repeated_seeds(group: Group) -> None:
    """Keep one job per seed, the first ok one (else the first): a rerun of a seed is the same
    sample again, not a new one, and would shrink the standard error it does not earn."""
    kept: dict[int, Job] = {}
    for job in sorted(group.jobs, key=lambda j: not j.ok):  # stable: ok jobs first, each in sweep order
        seed = job_seed(job)
        if seed in kept:
            group.repeats.append((job, kept[seed]))
        elif seed is not None:
            kept[seed] = job
    left_out = {id(job) for job, _ in group.repeats}
    group.jobs = [job for job in group.jobs if id(job) not in left_out]


def load_sweep(sweep_dir: Path) -> Sweep:
    """Every job under ``sweep_dir``, grouped by configuration."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise AggregateError(f"Sweep dir not found: {sweep_dir}")
    jobs = sorted((load_job(d) for d in find_job_dirs(sweep_dir)), key=job_order)
    if not jobs:
        raise AggregateError(f"No jobs in {sweep_dir}: expected sub-dirs with {RESULT_FILE} or {OVERRIDES_FILE}")
    per_job = [group_overrides(job.overrides) for job in jobs]
    shared = shared_overrides(per_job)
    groups: dict[str, Group] = {}
    for job, overrides in zip(jobs, per_job):
        varying = {k: v for k, v in overrides.items() if k not in shared}
        label = group_label(varying)
        groups.setdefault(label, Group(label, overrides, varying=varying)).jobs.append(job)
    for group in groups.values():
        set_aside_repeated_seeds(group)
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
            if is_number(value):
                flat[key if section == "test" else f"{section}/{key}"] = float(value)
    for name in list(flat):
        derived = next((error for error, acc in DERIVED_ERRORS.items() if base_name(name) == acc), None)
        if derived is not None:
            flat[name[: len(name) - len(base_name(name))] + derived] = 1.0 - flat[name]
    flat["epochs"] = float(record.epochs)
    flat["wall_time_s"] = float(record.wall_time_s)
    return flat


def is_number(value: object) -> bool:
    """A real number (bools are ints to Python, not numbers to a table)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_job_file(job: Job, name: str, reader: Callable[[Path], T]) -> T | None:
    """``reader`` of the job's file ``name``: None when absent; None (the reason noted on the job) when unreadable."""
    path = job.dir / name
    if not path.exists():
        return None
    try:
        return reader(path)
    except UnreadableFile as exc:
        job.file_problems[name] = str(exc)
        return None


def unreadable(exc: BaseException) -> UnreadableFile:
    """The reader's exception as the one type aggregation catches, with its class name kept."""
    return UnreadableFile(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def load_epoch_rows(path: Path) -> list[dict[str, float]]:
    """The rows of a ``metrics.csv``; an empty file (a job killed while writing it) is unreadable."""
    try:
        rows = read_epochs_csv(path)
    except READ_ERRORS as exc:
        raise unreadable(exc) from exc
    if not rows:
        raise UnreadableFile("empty file" if path.stat().st_size == 0 else "a header but no epoch rows")
    return rows


def read_epoch_rows(job: Job) -> list[dict[str, float]]:
    """A job's per-epoch rows; none when it left no ``metrics.csv`` or an unreadable one (noted on the job)."""
    return read_job_file(job, EPOCHS_FILE, load_epoch_rows) or []


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """Every array of a ``weights.npz``, read once (each access of an archive member reads it again)."""
    try:
        with np.load(path) as archive:
            return {name: archive[name] for name in archive.files}
    except READ_ERRORS as exc:
        raise unreadable(exc) from exc


def read_weights(job: Job) -> dict[str, np.ndarray]:
    return read_job_file(job, WEIGHTS_FILE, load_weights) or {}


@dataclass(frozen=True)
class Predictions:
    """A regression job's test grid: inputs x [N, 2], targets and the kept epoch's predictions [N]."""

    x: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray

    @property
    def error(self) -> np.ndarray:
        return self.y_pred - self.y_true


def load_predictions(path: Path) -> Predictions:
    """A ``predictions.npz``, checked for the shapes the plots rely on."""
    try:
        with np.load(path) as archive:
            x, y_true, y_pred = (np.asarray(archive[k], dtype=float) for k in ("x", "y_true", "y_pred"))
    except READ_ERRORS as exc:
        raise unreadable(exc) from exc
    if x.ndim != 2 or x.shape[1] != 2 or len(x) < 3 or y_true.shape != (len(x),) or y_pred.shape != y_true.shape:
        raise UnreadableFile(f"unexpected shapes x {x.shape}, y_true {y_true.shape}, y_pred {y_pred.shape}")
    if not all(np.isfinite(a).all() for a in (x, y_true, y_pred)):
        raise UnreadableFile("non-finite values (a surface cannot be drawn through NaN or inf)")
    if not np.all(np.ptp(x, axis=0) > 0):
        raise UnreadableFile("the test points do not span a 2-D region")
    return Predictions(x, y_true, y_pred)


def read_predictions(job: Job) -> Predictions | None:
    return read_job_file(job, PREDICTIONS_FILE, load_predictions)


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
