"""What a finished run prints: its metrics, where its outputs are, and the next command to type."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from regsweep.records import ResultRecord

METRIC_COLUMNS = ("loss", "acc")
WIDE = 160  # columns when stdout is not a terminal (a log file): never wrap paths or cut names


def console() -> Console:
    return Console(width=None if sys.stdout.isatty() else WIDE)


def cli_description(docstring: str | None) -> str:
    """A command's ``--help`` text: its module docstring's first line, without reST's double backticks."""
    return docstring.splitlines()[0].replace("``", "") if docstring else ""


def count(n: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``: what every message says of a number of things."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def fmt(value: float | None) -> str:
    """Four significant digits, so a loss of 1.2e-5 does not print as 0.0000."""
    return "-" if value is None else f"{value:.4g}"


def run_table(record: ResultRecord) -> Table:
    """Final train/val, kept-epoch val and test metrics of one job."""
    final, best, test = (record.metrics.get(k, {}) for k in ("final", "best", "test"))
    table = Table(title=f"{record.job.name}: {count(record.epochs, 'epoch')}, {record.wall_time_s:.1f} s")
    table.add_column("split")
    for name in METRIC_COLUMNS:
        table.add_column(name, justify="right")
    rows = [
        ("train (last epoch, running mean)", final, "train"),
        ("train (last epoch, eval mode)", final, "train_eval"),
        ("val (last epoch)", final, "val"),
        (f"val (kept epoch {int(best.get('epoch', 0))})", best, "val"),
        ("test (kept epoch)", test, "test"),
    ]
    for label, metrics, stage in rows:
        values = [metrics.get(f"{stage}/{name}") for name in METRIC_COLUMNS]
        if any(value is not None for value in values):  # an evaluation of a checkpoint has test rows only
            table.add_row(label, *map(fmt, values))
    return table


def print_run_summary(record: ResultRecord) -> None:
    out = console()
    out.print(run_table(record))
    if record.stop_reason:
        out.print(f"stopped: {record.stop_reason}")
    out.print(f"outputs: {record.job.dir}")
    if any(Path(record.job.dir).glob("events.out.tfevents.*")):
        out.print(f"next: tensorboard --logdir {record.job.dir}")
