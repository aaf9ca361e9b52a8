"""Text outputs: summary.csv, comparisons.csv, summary.md and the terminal table.

Everything here is rendered from numbers computed elsewhere, with no timestamps, so re-running
the aggregation on the same records writes byte-identical files.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, fields
from pathlib import Path

from regsweep.aggregate.compare import (
    SENTENCE_METRICS,
    Comparison,
    comparison_sentence,
    format_difference,
    format_p,
)
from regsweep.aggregate.load import MISSING, Group, Sweep, job_order
from regsweep.console import fmt
from regsweep.aggregate.stats import Description
from regsweep.aggregate.summary import Descriptions, has_data
from regsweep.atomic import atomic_write_text
from regsweep.records import FAILED, OK, RESULT_FILE

MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Column:
    """A table column: mean ± SE of one metric, scaled (x100 for percent).

    ``decimals`` fixes the decimals (percentages); by default they follow the SE (two significant digits).
    """

    header: str
    metric: str
    scale: float = 1.0
    decimals: int | None = None


RESULT_COLUMNS = (
    Column("test acc (%)", "test/acc", 100, 2),
    Column("val acc (%)", "best/val/acc", 100, 2),
    Column("test loss", "test/loss"),
    Column("val error (%)", "best/val/error", 100, 2),
    Column("gen gap acc (pp)", "final/gen_gap/acc", 100, 2),
    Column("gen gap loss", "final/gen_gap/loss"),
    Column("sparsity (%)", "final/weights/sparsity", 100, 1),
    Column("epochs", "epochs", 1, 1),
)
CONSOLE_METRICS = {"test/acc", "best/val/acc", "test/loss", "final/gen_gap/loss"}
CONSOLE_COLUMNS = tuple(c for c in RESULT_COLUMNS if c.metric in CONSOLE_METRICS)


def format_optional(value: float, spec: str) -> str:
    return f"{value:{spec}}" if math.isfinite(value) else "n/a"


def format_number(value: float) -> str:
    """Full precision, so the CSV round-trips exactly; NaN as ``nan``."""
    return repr(float(value)) if math.isfinite(value) else str(float(value))


def csv_text(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[format_number(v) if isinstance(v, float) else v for v in row] for row in rows])
    return buffer.getvalue()


def job_counts(group: Group) -> list[int]:
    return [len(group.with_status(status)) for status in (OK, FAILED, MISSING)]


def summary_csv(sweep: Sweep, descriptions: Descriptions) -> str:
    """One row per group and metric, every statistic a column."""
    statistics = [f.name for f in fields(Description)]
    rows = [
        [group.label, metric, *job_counts(group), *(getattr(d, name) for name in statistics)]
        for group in sweep.groups
        for metric, d in descriptions[group.label].items()
    ]
    return csv_text(["group", "metric", "n_ok", "n_failed", "n_missing", *statistics], rows)


def comparisons_csv(comparisons: list[Comparison]) -> str:
    header = [
        "metric", "group", "reference", "n_group", "n_reference", "difference", "ci95_low", "ci95_high",
        "welch_t", "welch_df", "welch_p", "welch_p_holm", "mannwhitney_u", "mannwhitney_p",
        "mannwhitney_p_holm", "hedges_g", "p_improvement", "better",
    ]  # fmt: skip
    rows = [
        [
            c.metric, c.group, c.reference, c.n_group, c.n_reference, c.welch.difference, c.welch.ci95_low,
            c.welch.ci95_high, c.welch.t, c.welch.df, c.welch.p, c.welch_p_holm, c.mannwhitney_u,
            c.mannwhitney_p, c.mannwhitney_p_holm, c.hedges_g, c.p_improvement,
            "higher" if c.higher_is_better else "lower",
        ]  # fmt: skip
        for c in comparisons
    ]
    return csv_text(header, rows)


def decimals_for(se: float) -> int:
    """Enough decimals to show the standard error to two significant digits."""
    return max(0, 1 - math.floor(math.log10(se))) if math.isfinite(se) and se > 0 else 4


def mean_se_cell(description: Description | None, column: Column) -> str:
    if description is None or description.n == 0:
        return "–"
    mean, se = description.mean * column.scale, description.se * column.scale
    decimals = column.decimals if column.decimals is not None else decimals_for(se)
    if not math.isfinite(se):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {se:.{decimals}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(sweep: Sweep, descriptions: Descriptions, columns: tuple[Column, ...]) -> str:
    """Mean ± SE per group for the columns the sweep has data for, then the job counts."""
    present = [c for c in columns if has_data(descriptions, [g.label for g in sweep.groups], c.metric)]
    rows = [
        [
            group.label,
            *(mean_se_cell(descriptions[group.label].get(c.metric), c) for c in present),
            "/".join(map(str, job_counts(group))),
        ]
        for group in sweep.groups
    ]
    return markdown_table(["group", *(c.header for c in present), "ok/failed/missing"], rows)


def job_totals_line(sweep: Sweep) -> str:
    ok, failed, missing = (sum(column) for column in zip(*(job_counts(g) for g in sweep.groups)))
    return f"{len(sweep.jobs)} jobs in {len(sweep.groups)} groups: {ok} ok, {failed} failed, {missing} missing"


def console_table(sweep: Sweep, descriptions: Descriptions, baseline: str | None) -> str:
    """The short table printed at the end of a multirun."""
    lines = [f"Sweep {sweep.sweep_dir}: {job_totals_line(sweep)} (mean ± SE over seeds)"]
    lines.append(results_table(sweep, descriptions, CONSOLE_COLUMNS))
    if baseline:
        lines.append(f"baseline: {baseline}")
    return "\n".join(lines)


def jobs_markdown(sweep: Sweep) -> str:
    """One row per job, in job order: status, epochs, kept-epoch val metrics, test accuracy, error."""
    header = ["job", "status", "epochs", "val/loss", "val/acc", "test/acc", "error"]
    rows = []
    for job in sorted(sweep.jobs, key=job_order):
        metrics = job.record.metrics if job.record is not None else {}
        best, test = metrics.get("best", {}), metrics.get("test", {})
        rows.append([job.name, job.status, str(job.record.epochs if job.record else "-"),
                     *(fmt(section.get(name)) for section, name in ((best, "val/loss"), (best, "val/acc"),
                                                                   (test, "test/acc"))),
                     " ".join((job.error or "").split())[:MAX_ERROR_CHARS]])
    return "\n".join([f"Sweep {sweep.sweep_dir}: {job_totals_line(sweep)}", markdown_table(header, rows)])


def comparison_details(comparisons: list[Comparison]) -> str:
    """Both tests, effect size and probability of improvement, for the comparisons that have sentences."""
    header = ["comparison", "metric", "difference (pp for acc)", "Welch (Holm)", "Mann-Whitney (Holm)"]
    header += ["Hedges' g", "P(improvement)"]
    rows = [
        [
            f"{c.group} vs {c.reference}",
            c.metric,
            format_difference(c.metric, c.welch.difference),
            format_p(c.welch_p_holm),
            format_p(c.mannwhitney_p_holm),
            format_optional(c.hedges_g, "+.2f"),
            format_optional(c.p_improvement, ".2f"),
        ]
        for c in comparisons
    ]
    return markdown_table(header, rows)


def comparisons_section(comparisons: list[Comparison]) -> list[str]:
    """Sentences for the main metrics; a pair with one run on a side (Optuna trials) has no test to report."""
    main = [c for c in comparisons if c.metric in SENTENCE_METRICS]
    testable = [c for c in main if min(c.n_group, c.n_reference) >= 2]
    if not main:
        return []
    lines = [
        "## Comparisons",
        "",
        "Differences are group minus reference; 95% CI of the difference of means and p from Welch's t-test, "
        "Holm-corrected over the comparisons of each metric. P(improvement) is the chance that a run of the "
        "group beats a run of the reference (lower is better for losses and gaps). All metrics: comparisons.csv.",
        "",
        *(f"- {comparison_sentence(c)}" for c in testable),
        "",
    ]
    if testable:
        lines += [comparison_details(testable), ""]
    if len(testable) < len(main):
        untestable = len(main) - len(testable)
        lines += [f"{untestable} comparisons with fewer than 2 ok runs on a side: see comparisons.csv.", ""]
    return lines


def problems_section(sweep: Sweep) -> list[str]:
    """Failed and missing jobs with their errors: a partial sweep must say what it lacks."""
    lines = []
    for group in sweep.groups:
        for job in group.with_status(FAILED):
            error = " ".join((job.error or "").split())[:MAX_ERROR_CHARS]
            lines.append(f"- `{job.name}` ({group.label}): failed: {error}")
        for job in group.with_status(MISSING):
            reason = f"no {RESULT_FILE} (killed, crashed or still running)"
            lines.append(f"- `{job.name}` ({group.label}): missing: {reason}")
    return ["## Failed and missing jobs", "", *lines, ""] if lines else []


def summary_markdown(
    sweep: Sweep, descriptions: Descriptions, comparisons: list[Comparison], baseline: str | None, plots: list[Path]
) -> str:
    lines = [
        f"# Sweep summary: {sweep.sweep_dir.name}",
        "",
        f"{job_totals_line(sweep)}. Baseline: {baseline or 'none (compare with --baseline or --all-pairs)'}.",
        "",
        "## Results (mean ± SE over seeds)",
        "",
        "Val metrics are those of the best epoch (the one the checkpoint kept: lowest val loss by default); gaps and sparsity those of the last epoch.",
        "",
        results_table(sweep, descriptions, RESULT_COLUMNS),
        "",
        *comparisons_section(comparisons),
        *problems_section(sweep),
    ]
    if plots:
        lines += ["## Plots", "", *(f"![{p.stem}]({p.relative_to(sweep.sweep_dir).as_posix()})" for p in plots), ""]
    return "\n".join(lines)


def write_reports(
    sweep: Sweep, descriptions: Descriptions, comparisons: list[Comparison], baseline: str | None, plots: list[Path]
) -> list[Path]:
    texts = {
        "summary.csv": summary_csv(sweep, descriptions),
        "comparisons.csv": comparisons_csv(comparisons),
        "summary.md": summary_markdown(sweep, descriptions, comparisons, baseline, plots),
    }
    for name, text in texts.items():
        atomic_write_text(sweep.sweep_dir / name, text)
    return [sweep.sweep_dir / name for name in texts]
