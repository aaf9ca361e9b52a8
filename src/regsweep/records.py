"""Per-job result records: the files a job leaves behind and that aggregation reads, and how to find them.

Every job writes, in its own output dir (whether it trained alone or in a pack):
- ``result.json``: status, error, overrides, seed, final/best/test metrics, epochs, wall time;
- ``metrics.csv``: one row per epoch (``epoch`` then ``stage/metric`` columns);
- ``weights.npz``: the kept epoch's weight matrices (float32), for weight-distribution plots;
- ``model.pt``: the kept epoch's ``state_dict()`` of the job's own network (the user's class, or the
  ``nn.Sequential`` of a built-in model), for ``net.load_state_dict(torch.load(job_dir / "model.pt"))``;
- ``predictions.npz`` (regression): the test grid, its targets and the kept epoch's predictions.

Files are written atomically (:mod:`regsweep.atomic`), so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from regsweep.atomic import atomic_write_bytes, atomic_write_text

RESULT_FILE = "result.json"
OVERRIDES_FILE = ".hydra/overrides.yaml"  # Hydra's record of a job's command-line overrides
EPOCHS_FILE = "metrics.csv"
WEIGHTS_FILE = "weights.npz"
MODEL_FILE = "model.pt"  # the kept epoch's state_dict() of the job's own network: net.load_state_dict(torch.load(it))
PREDICTIONS_FILE = "predictions.npz"  # regression: x [N, 2] test points, y_true [N], y_pred [N] of the kept epoch
SCHEMA_VERSION = 5  # 3: environment; 4: model (its size); 5: job.sweep_id
# The statuses of a job: pruned = stopped early by an Optuna pruner; interrupted = stopped by a signal
# (resumable from its last checkpoint).
OK, FAILED, PRUNED, INTERRUPTED = "ok", "failed", "pruned", "interrupted"
MISSING = "missing"  # no record: a planned job that never started, or one killed or crashed


def _json_safe(value: Any) -> Any:
    """NaN and inf are not JSON: store them as strings so the file stays standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _from_json_safe(value: Any) -> Any:
    if isinstance(value, str) and value in {"nan", "inf", "-inf"}:
        return float(value)
    if isinstance(value, dict):
        return {k: _from_json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_safe(v) for v in value]
    return value


@dataclass
class JobInfo:
    """Where a job ran and what made it different from its siblings."""

    name: str  # the job dir's name, e.g. "3_regularizer=l1l2,seed=3"
    dir: str
    num: int | None = None  # index of the job in its multirun; None for a single run
    overrides: list[str] = field(default_factory=list)  # the job's command-line overrides
    sweep_dir: str | None = None  # the multirun dir; None for a single run
    pack: str | None = None  # the pack that trained it (a name in the sweep dir); None when it trained alone
    sweep_id: str | None = None  # the sweep's plan (sweep_plan.json's id): a resumed sweep keeps only its own records


@dataclass
class ResultRecord:
    """The outcome of one job. ``metrics`` has three sections, each keyed ``stage/metric``:

    - ``final``: the last epoch's train/val metrics;
    - ``best``: the metrics of the kept epoch (the checkpoint monitor's best; plus ``epoch``);
    - ``test``: test metrics of the kept epoch's weights.
    """

    status: str  # OK | FAILED | PRUNED | INTERRUPTED
    job: JobInfo
    seed: int | None
    error: str | None = None
    epochs: int = 0
    steps: int = 0  # optimizer steps (minibatches) trained
    stop_reason: str | None = None  # why training ended before trainer.max_epochs (early stopping, pruning)
    wall_time_s: float = 0.0
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # flattened config, e.g. {"regularizer.l1": 1e-4}
    data: dict[str, Any] = field(default_factory=dict)  # n_train, n_val, n_test, batch_size (effective), task
    penalty: dict[str, float] = field(default_factory=dict)  # nominal and applied l1/l2 (applied = / n_train)
    model: dict[str, int] = field(default_factory=dict)  # one model's size: parameters, penalized_weights
    tags: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase of the job (or of its pack)
    threads: int | None = None  # torch's intra-op threads (the cores divided among parallel workers)
    environment: dict[str, Any] = field(default_factory=dict)  # code, library versions, device (provenance.py)
    started_at: str | None = None
    finished_at: str | None = None
    schema: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_json(self) -> str:
        return json.dumps(_json_safe(asdict(self)), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "ResultRecord":
        raw = _from_json_safe(json.loads(text))
        raw["job"] = JobInfo(**raw["job"])
        return cls(**raw)

    @property
    def complete(self) -> bool:
        """A record a resumed sweep keeps: the job ran to its end (ok, or pruned by the search)."""
        return self.status in (OK, PRUNED)


def write_result(job_dir: Path, record: ResultRecord) -> Path:
    path = Path(job_dir) / RESULT_FILE
    atomic_write_text(path, record.to_json())
    return path


def read_result(job_dir: Path) -> ResultRecord:
    return ResultRecord.from_json((Path(job_dir) / RESULT_FILE).read_text(encoding="utf-8"))


def write_epochs_csv(path: Path, rows: list[dict[str, float]]) -> None:
    """Write per-epoch rows; columns are ``epoch`` (an integer, from 0) then every metric name seen, sorted."""
    names = sorted({key for row in rows for key in row} - {"epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["epoch", *names], restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({**row, "epoch": int(row["epoch"])} for row in rows)
    atomic_write_text(Path(path), buffer.getvalue())


def read_epochs_csv(path: Path) -> list[dict[str, float]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            {key: float(value) for key, value in row.items() if value != ""}
            for row in csv.DictReader(handle)
        ]


def write_weights(path: Path, weights: Mapping[str, np.ndarray]) -> None:
    buffer = io.BytesIO()  # not compressed: that saved 6 % of trained float32 weights' size at 25x the time
    np.savez(buffer, **{name: np.asarray(w, dtype=np.float32) for name, w in weights.items()})
    atomic_write_bytes(Path(path), buffer.getvalue())


def is_job_dir(path: Path) -> bool:
    """A dir Hydra made for a job (``.hydra/overrides.yaml``, whether the job ran or not) or one that holds a record."""
    return (path / OVERRIDES_FILE).is_file() or (path / RESULT_FILE).is_file()


def find_job_dirs(sweep_dir: Path) -> Iterator[Path]:
    """The job dirs at or under a sweep dir, in path order.

    The search stops at a job dir: what lies inside one (``regsweep-eval``'s ``eval/``, a copy of a run) is that
    job's, never another job of the sweep. Dot-dirs (.packs/, .submitit/) hold the harness's own files, not jobs.
    """
    found: list[Path] = []
    for parent, subdirs, _ in os.walk(sweep_dir):  # symlinked dirs are not entered
        if is_job_dir(Path(parent)):
            found.append(Path(parent))
            subdirs.clear()
        else:
            subdirs[:] = [name for name in subdirs if not name.startswith(".")]
    yield from sorted(found)
