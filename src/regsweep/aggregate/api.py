"""``aggregate_sweep``: everything a finished (or partial) sweep dir gets, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from regsweep.aggregate.compare import (
    Baseline,
    Comparison,
    Detect,
    comparison_pairs,
    compare_groups,
    resolve_baseline,
)
from regsweep.aggregate.curves import group_curves
from regsweep.aggregate.load import MISSING, Sweep, group_metric_values, load_sweep, metric_names
from regsweep.aggregate.plots import PlotFiles, write_plots
from regsweep.aggregate.report_html import write_sweep_page
from regsweep.aggregate.tables import console_table, summary_markdown, sweep_headlines, write_reports
from regsweep.aggregate.summary import Descriptions, describe_groups
from regsweep.aggregate.tensorboard_runs import write_tensorboard_runs
from regsweep.records import FAILED, ResultRecord


@dataclass
class SweepAggregate:
    """The aggregated sweep: its groups, their statistics, the comparisons and the files written."""

    sweep: Sweep
    baseline: str | None
    baseline_reason: str
    descriptions: Descriptions  # group label -> metric -> statistics over the group's ok jobs
    comparisons: list[Comparison]
    outputs: list[Path]

    @property
    def records(self) -> list[ResultRecord]:
        """The records of every job that wrote one (ok, failed, pruned or interrupted), in sweep order."""
        return [job.record for job in self.sweep.jobs if job.record is not None]

    @property
    def groups(self) -> dict[str, list[ResultRecord]]:
        """Label -> the records (ok and failed) of the group's jobs; missing jobs have none."""
        return {g.label: [job.record for job in g.jobs if job.record is not None] for g in self.sweep.groups}

    @property
    def n_ok(self) -> int:
        return sum(job.ok for job in self.sweep.jobs)

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(job.name, job.error or "") for job in self.sweep.jobs if job.status == FAILED]

    @property
    def missing(self) -> list[str]:
        return [job.name for job in self.sweep.jobs if job.status == MISSING]

    @property
    def file_problems(self) -> list[tuple[str, str, str]]:
        """(job, file, why) for every job file the aggregation could not read (also listed in summary.md)."""
        return [(job.name, name, why) for job in self.sweep.jobs for name, why in job.file_problems.items()]

    def console_summary(self) -> str:
        return console_table(self.sweep, self.descriptions, self.baseline)


def aggregate_sweep(
    sweep_dir: Path, baseline: str | None = None, all_pairs: bool | None = None, plots: bool = True,
    vector_formats: Sequence[str] = (), detect: Detect | None = None,
) -> SweepAggregate:
    """Group the jobs of ``sweep_dir`` by configuration, summarize and compare them, write the outputs.

    Writes summary.csv, jobs.csv, comparisons.csv, summary.md, summary.tex, report.html, aggregate_tb/ and (with
    ``plots``) plots/*.png, each figure also in every one of ``vector_formats`` (pdf, svg), into ``sweep_dir``, and
    prediction.png into every ok regression job's dir. The baseline is ``baseline`` or else the group with
    every swept regularization strength at 0; ``all_pairs`` None compares every pair of up to 6 groups,
    True always, False only against the baseline. ``detect``: a difference of the headline metric (test accuracy,
    or test loss for regression) whose seeds per group the power lines also give.
    Unreadable job files are reported in summary.md, never fatal. Raises ``AggregateError`` for a
    missing dir, a dir without jobs, an unknown ``baseline`` label or a ``detect`` in points of a loss.
    """
    sweep = load_sweep(Path(sweep_dir))
    chosen: Baseline = resolve_baseline(sweep, baseline)
    metrics = metric_names(sweep)
    values = group_metric_values(sweep, metrics)
    descriptions = describe_groups(values)
    headlines = sweep_headlines(sweep, descriptions)
    targets = {headlines[0]: detect.in_units(headlines[0])} if detect is not None and headlines else {}
    pairs = comparison_pairs([g.label for g in sweep.groups], chosen.label, all_pairs)
    comparisons = compare_groups(values, metrics, pairs, targets, headlines)
    curves = {group.label: group_curves(group) for group in sweep.groups}
    plot_files = write_plots(sweep, values, descriptions, curves, vector_formats) if plots else PlotFiles([], [])
    markdown = summary_markdown(sweep, descriptions, comparisons, chosen, plot_files.summary, plot_files.jobs)
    outputs = [
        *write_reports(sweep, metrics, descriptions, comparisons, markdown),
        write_sweep_page(sweep, descriptions, comparisons, chosen, plot_files.summary, plot_files.page),
        *plot_files.summary,
        *plot_files.vector,
        *plot_files.jobs,
        *write_tensorboard_runs(sweep.sweep_dir, curves),
    ]
    return SweepAggregate(sweep, chosen.label, chosen.reason, descriptions, comparisons, outputs)
