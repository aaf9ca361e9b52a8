"""Per-epoch curves averaged over the seeds of a group, for the learning-curve plots and TensorBoard.

Jobs may stop early at different epochs, so each epoch is averaged over the jobs that reached
it, and that number is kept next to the mean.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from regsweep.aggregate import stats
from regsweep.aggregate.load import Group, read_epoch_rows
from regsweep.records import OK

EpochRows = dict[int, dict[str, float]]  # epoch -> metric -> value, for one job


@dataclass(frozen=True)
class Curve:
    epochs: np.ndarray
    mean: np.ndarray
    se: np.ndarray  # NaN where fewer than two jobs have a value
    n: np.ndarray  # jobs with a finite value at each epoch


@dataclass(frozen=True)
class GroupCurves:
    """A group's averaged curves, keyed by the ``metrics.csv`` column (``val/loss``, ...)."""

    curves: dict[str, Curve]
    jobs_reaching_epoch: dict[int, int]


def rows_by_epoch(rows: list[dict[str, float]]) -> EpochRows:
    """Merge rows that share an epoch (loggers may write train and val metrics on separate rows)."""
    merged: EpochRows = defaultdict(dict)
    for row in rows:
        if "epoch" in row:
            merged[int(row["epoch"])].update({k: v for k, v in row.items() if k != "epoch"})
    return dict(merged)


def average_curve(runs: list[EpochRows], tag: str) -> Curve:
    values_at: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for epoch, row in run.items():
            if tag in row:
                values_at[epoch].append(row[tag])
    epochs = sorted(values_at)
    return Curve(
        epochs=np.array(epochs, dtype=int),
        mean=np.array([stats.mean(values_at[e]) for e in epochs]),
        se=np.array([stats.standard_error(values_at[e]) for e in epochs]),
        n=np.array([stats.finite(values_at[e]).size for e in epochs], dtype=int),
    )


def group_curves(group: Group) -> GroupCurves:
    """Curves over the group's ok jobs (a failed job's partial curve would bias the mean)."""
    runs = [rows_by_epoch(read_epoch_rows(job)) for job in group.with_status(OK)]
    tags = sorted({tag for run in runs for row in run.values() for tag in row})
    reached: dict[int, int] = defaultdict(int)
    for run in runs:
        for epoch in run:
            reached[epoch] += 1
    return GroupCurves({tag: average_curve(runs, tag) for tag in tags}, dict(sorted(reached.items())))
