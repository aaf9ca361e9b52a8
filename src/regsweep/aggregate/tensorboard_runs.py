"""Seed-aggregated TensorBoard runs, so ``tensorboard --logdir <sweep_dir>`` shows them next to the jobs.

Each group gets three runs, ``mean``, ``mean-se`` and ``mean+se``, under
``<sweep_dir>/aggregate_tb/<group>/``, with the same tags as the jobs' ``metrics.csv`` columns
(step = epoch). ``mean`` also has ``aggregate/n_jobs``: how many jobs reached each epoch.

Event files are serialized in memory and written atomically under a fixed name, with the epoch as
wall time, so a re-run replaces them byte for byte instead of adding a second copy of each curve; the
runs of a group an earlier aggregation had and this one has not (the groups changed) are removed.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from regsweep.aggregate.curves import GroupCurves
from regsweep.aggregate.load import safe_name
from regsweep.aggregate.output import remove, write_bytes

AGGREGATE_TB_DIR = "aggregate_tb"
EVENT_FILE_NAME = "events.out.tfevents.0000000000.regsweep-aggregate"
N_JOBS_TAG = "aggregate/n_jobs"
RUNS = {"mean": 0, "mean-se": -1, "mean+se": 1}  # run name -> sign of the SE added to the mean
Scalar = tuple[int, str, float]  # step, tag, value


def unique_dir_names(labels: list[str]) -> dict[str, str]:
    """Distinct labels that sanitize to the same name get a numeric suffix."""
    names: dict[str, str] = {}
    for label in labels:
        name, suffix = safe_name(label), 1
        while name in names.values():
            suffix += 1
            name = f"{safe_name(label)}-{suffix}"
        names[label] = name
    return names


def event_file_bytes(scalars: list[Scalar]) -> bytes:
    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    writer.write(event_pb2.Event(wall_time=0.0, file_version="brain.Event:2").SerializeToString())
    for step, tag, value in scalars:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        writer.write(event_pb2.Event(wall_time=float(step), step=step, summary=summary).SerializeToString())
    return buffer.getvalue()


def run_scalars(curves: GroupCurves, se_sign: int) -> list[Scalar]:
    """Mean + ``se_sign`` x SE at every epoch, epoch by epoch (TensorBoard expects increasing steps).

    Points where the SE is undefined (one job) are left out of the ±SE runs rather than drawn as NaN.
    """
    scalars: list[Scalar] = []
    for tag, curve in curves.curves.items():
        for epoch, mean, se in zip(curve.epochs, curve.mean, curve.se):
            value = mean + se_sign * se if se_sign else mean
            if math.isfinite(value):
                scalars.append((int(epoch), tag, float(value)))
    if se_sign == 0:
        scalars += [(epoch, N_JOBS_TAG, float(n)) for epoch, n in curves.jobs_reaching_epoch.items()]
    return sorted(scalars, key=lambda s: (s[0], s[1]))


def write_tensorboard_runs(sweep_dir: Path, curves_by_group: dict[str, GroupCurves]) -> list[Path]:
    """Write every group's runs. The event files earlier aggregations wrote that this one does not (a group that is
    gone) are removed, with the dirs that leaves empty: TensorBoard shows exactly the current groups' runs, and
    whatever else is in aggregate_tb/ stays."""
    root = Path(sweep_dir) / AGGREGATE_TB_DIR
    written = [
        write_bytes(root / name / run / EVENT_FILE_NAME, event_file_bytes(run_scalars(curves_by_group[label], sign)))
        for label, name in unique_dir_names(list(curves_by_group)).items()
        for run, sign in RUNS.items()
    ]
    for stale in sorted(set(root.glob(f"*/*/{EVENT_FILE_NAME}")) - set(written)):
        remove(stale, up_to=root)
    return written
