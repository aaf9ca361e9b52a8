"""Console tables: the end of a run and the end of a sweep."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from regsweep.records import ResultRecord

METRIC_COLUMNS = ("loss", "acc")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def run_table(record: ResultRecord) -> Table:
    """Final train/val, best-epoch val and test metrics of one job."""
    final, best, test = (record.metrics.get(k, {}) for k in ("final", "best", "test"))
    table = Table(title=f"{record.job.name}: {record.epochs} epochs, {record.wall_time_s:.1f} s")
    table.add_column("split")
    for name in METRIC_COLUMNS:
        table.add_column(name, justify="right")
    rows = [
        ("train (last epoch)", final, "train"),
        ("val (last epoch)", final, "val"),
        (f"val (best, epoch {int(best.get('epoch', 0))})", best, "val"),
        ("test (best checkpoint)", test, "test"),
    ]
    for label, metrics, stage in rows:
        table.add_row(label, *(_fmt(metrics.get(f"{stage}/{name}")) for name in METRIC_COLUMNS))
    return table


def print_run_summary(record: ResultRecord, console: Console | None = None) -> None:
    console = console or Console()
    console.print(run_table(record))
    console.print(f"outputs: {record.job.dir}")


def sweep_table(records: list[ResultRecord]) -> Table:
    """One row per job: status, seed, best val and test metrics, or the error of a failed job."""
    table = Table(title=f"{len(records)} jobs, {sum(r.ok for r in records)} ok")
    for column in ("job", "status", "epochs", "val/loss", "val/acc", "test/acc", "error"):
        table.add_column(column)
    for r in records:
        best, test = r.metrics.get("best", {}), r.metrics.get("test", {})
        table.add_row(r.job.name, r.status, str(r.epochs), _fmt(best.get("val/loss")),
                      _fmt(best.get("val/acc")), _fmt(test.get("test/acc")), r.error or "")
    return table
