"""Text outputs: summary.csv, jobs.csv, comparisons.csv, summary.md, summary.tex and the terminal table.

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
    FEW_RUNS,
    METRIC_WORDS,
    SENTENCE_METRICS,
    SIGNIFICANCE,
    Baseline,
    Comparison,
    answer_parts,
    comparison_sentence,
    format_difference,
    format_interval,
    format_p,
    headline_metric,
    pair_names,
    power_sentence,
)
from regsweep.aggregate.latex import latex_table
from regsweep.aggregate.load import (
    MISSING,
    MODEL_SIZE_KEY,
    Group,
    Job,
    Sweep,
    is_number,
    job_order,
    job_seed,
    record_metrics,
)
from regsweep.aggregate.output import write_text
from regsweep.aggregate.stats import ALPHA, BOOTSTRAP_RESAMPLES, Description
from regsweep.aggregate.summary import Descriptions, has_data
from regsweep.console import count, fmt
from regsweep.metrics import SPARSITY_RELATIVE, SPARSITY_THRESHOLD, SPARSITY_TINY, metric
from regsweep.provenance import environment_text
from regsweep.records import (
    EPOCHS_FILE,
    FAILED,
    INTERRUPTED,
    OK,
    PREDICTIONS_FILE,
    PRUNED,
    RESULT_FILE,
    WEIGHTS_FILE,
    ResultRecord,
)

MAX_ERROR_CHARS = 300
# What a job loses when one of its files cannot be read (its record, and so its metrics, still count).
LEFT_OUT = {
    EPOCHS_FILE: "left out of the learning curves and TensorBoard runs",
    WEIGHTS_FILE: "left out of the weight histograms",
    PREDICTIONS_FILE: "no prediction plot; left out of the per-group prediction panels",
}
LR_KEY = "optimizer.lr"
SUMMARY_FILE = "summary.md"  # the sweep's report: printed path, docs/results.md sections
LATEX_FILE = "summary.tex"
HTML_FILE = "report.html"  # the summary as one self-contained page (report_html.py); a search's report too
JOBS_FILE = "jobs.csv"  # one row per job
ENVIRONMENTS_CAUTION = ("The jobs ran in {n} environments: other devices and library versions round differently (the "
                        "last digits, more after many epochs), so a difference between groups that ran apart may be "
                        "partly the environment's.")


@dataclass(frozen=True)
class Column:
    """A table column: mean ± SE of one metric, scaled (x100 for percent).

    ``decimals`` fixes the decimals (percentages); by default the mean gets the significant digits its
    SE supports and the SE two, so a loss of 1.2e-5 never prints as 0.0000.
    """

    header: str
    metric: str
    scale: float = 1.0
    decimals: int | None = None


RESULT_COLUMNS = (
    Column("test acc (%)", "test/acc", 100, 2),
    Column("val acc (%)", "best/val/acc", 100, 2),
    Column("test loss", "test/loss"),
    Column("val loss", "best/val/loss"),
    Column("val error (%)", "best/val/error", 100, 2),
    Column("gen gap acc (pp)", "final/gen_gap/acc", 100, 2),
    Column("gen gap loss", "final/gen_gap/loss"),
    Column("epochs", "epochs", 1, 1),
)
# The kept epoch's weights (best/), the ones weights.npz holds and the histograms show.
SPARSITY_COLUMNS = (
    Column(f"sparsity < {SPARSITY_THRESHOLD:g} (%)", "best/weights/sparsity", 100, 2),
    Column(f"sparsity < {SPARSITY_TINY:g} (%)", "best/weights/sparsity_1e-5", 100, 2),
    Column(f"sparsity < {SPARSITY_RELATIVE:.0%} of layer RMS (%)", "best/weights/sparsity_rel", 100, 2),
)
# The short table, one a terminal or a paper's page holds: printed at a multirun's end, and summary.tex.
SHORT_METRICS = {"test/acc", "best/val/acc", "test/loss", "best/val/loss", "final/gen_gap/loss"}
SHORT_COLUMNS = tuple(c for c in RESULT_COLUMNS if c.metric in SHORT_METRICS)
# The interquartile mean beside the mean: of the test metrics, else (test=false) the kept epoch's val metrics.
ROBUST_METRICS = (("test/acc", "test/loss"), ("best/val/acc", "best/val/loss"))


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


JOB_STATUSES = (OK, FAILED, INTERRUPTED, PRUNED, MISSING)  # every status a job can have, in report order
TABLE_STATUSES = (OK, FAILED, MISSING)  # always counted in the results tables; the others when some job has them


def job_counts(group: Group, statuses: tuple[str, ...] = JOB_STATUSES) -> list[int]:
    return [len(group.with_status(status)) for status in statuses]


def summary_csv(sweep: Sweep, descriptions: Descriptions) -> str:
    """One row per group and metric, every statistic a column."""
    statistics = [f.name for f in fields(Description)]
    rows = [
        [group.label, metric, *job_counts(group), *(getattr(d, name) for name in statistics)]
        for group in sweep.groups
        for metric, d in descriptions[group.label].items()
    ]
    return csv_text(["group", "metric", *(f"n_{status}" for status in JOB_STATUSES), *statistics], rows)


def group_members(group: Group) -> list[tuple[Job, bool]]:
    """The group's jobs with whether each counts in its statistics: an ok job, not a seed's repeat."""
    return [(job, job.ok) for job in group.jobs] + [(job, False) for job, _ in group.repeats]


def jobs_csv(sweep: Sweep, metrics: list[str]) -> str:
    """One row per job, the values the group statistics are made of, for analyses of one's own
    (``pandas.read_csv``): where it ran, its group and swept values, seed, status, model size, each of
    ``metrics`` its record holds (pruned and interrupted jobs too; ``counted`` says which enter the statistics)."""
    keys = sweep.varying_keys
    rows = []
    for group in sweep.groups:
        for job, counted in group_members(group):
            record = job.record
            values = record_metrics(record) if record is not None else {}
            size = record.model.get("parameters", "") if record is not None else ""
            rows.append([job.dir.relative_to(sweep.sweep_dir).as_posix(), group.label, job_seed(job), job.status,
                         counted, *(group.varying.get(key, "") for key in keys), size,
                         *(values.get(name, "") for name in metrics), one_line(job.error or "")])
    return csv_text(["job", "group", "seed", "status", "counted", *keys, MODEL_SIZE_KEY, *metrics, "error"], rows)


def comparisons_csv(comparisons: list[Comparison]) -> str:
    """One row per comparison, numbers only in the numeric columns: ``better`` is empty for a metric without a
    direction, ``note`` says why a comparison has no test (too few runs, no spread)."""
    header = [
        "metric", "group", "reference", "n_group", "n_reference", "mean_group", "mean_reference", "difference",
        "ci95_low", "ci95_high",
        "welch_t", "welch_df", "welch_p", "welch_p_holm", "mannwhitney_u", "mannwhitney_p",
        "mannwhitney_p_holm", "hedges_g", "p_improvement", "better", "note",
        "iqm_difference", "iqm_ci95_low", "iqm_ci95_high",
        "power_detectable", "power_seeds_observed", "power_target", "power_seeds_target",
    ]  # fmt: skip
    rows = [
        [
            c.metric, c.group, c.reference, c.n_group, c.n_reference, c.mean_group, c.mean_reference,
            c.welch.difference, c.welch.ci95_low,
            c.welch.ci95_high, c.welch.t, c.welch.df, c.welch.p, c.welch_p_holm, c.mannwhitney_u,
            c.mannwhitney_p, c.mannwhitney_p_holm, c.hedges_g, c.p_improvement, c.better or "", c.note,
            c.iqm_difference, *c.iqm_ci95, *power_cells(c),
        ]  # fmt: skip
        for c in comparisons
    ]
    return csv_text(header, rows)


def power_cells(comparison: Comparison) -> list[object]:
    """comparisons.csv's power columns: empty where there was no power analysis, or no number of seeds is enough."""
    power = comparison.power
    if power is None:
        return ["", "", "", ""]
    seeds = ["" if n is None else n for n in (power.seeds_observed, power.seeds_target)]
    return [power.detectable, seeds[0], power.target, seeds[1]]


def significant_digits(mean: float, se: float) -> int:
    """Digits of the mean down to the SE's second significant digit (2 to 6): no more than the seeds support."""
    if not (math.isfinite(se) and se > 0 and mean != 0):
        return 3
    return min(6, max(2, math.floor(math.log10(abs(mean))) - math.floor(math.log10(se)) + 2))


def mean_se_text(mean: float, se: float, decimals: int | None = None) -> str:
    """``mean ± SE``, or the mean alone when the SE is undefined (one seed)."""
    if decimals is not None:
        return f"{mean:.{decimals}f}" + (f" ± {se:.{decimals}f}" if math.isfinite(se) else "")
    text = significant(mean, significant_digits(mean, se))
    return text + (f" ± {significant(se, 2)}" if math.isfinite(se) else "")


def significant(value: float, digits: int) -> str:
    """``digits`` significant digits, trailing zeros kept (0.00060, not 0.0006), no bare trailing point."""
    text = f"{value:#.{digits}g}"
    mantissa, e, exponent = text.partition("e")
    return mantissa.rstrip(".") + e + exponent


def mean_se_cell(description: Description | None, column: Column) -> str:
    if description is None or description.n == 0:
        return "–"
    return mean_se_text(description.mean * column.scale, description.se * column.scale, column.decimals)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def present_columns(sweep: Sweep, descriptions: Descriptions, columns: tuple[Column, ...]) -> list[Column]:
    return [c for c in columns if has_data(descriptions, [g.label for g in sweep.groups], c.metric)]


def results_cells(
    sweep: Sweep, descriptions: Descriptions, columns: tuple[Column, ...], statuses: tuple[str, ...]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: mean ± SE per group for the columns the sweep has data for, then its job counts of
    ``statuses`` (one column, ``ok/failed/...``; none without statuses)."""
    present = present_columns(sweep, descriptions, columns)
    counts = ["/".join(statuses)] if statuses else []
    rows = [
        [
            group.label,
            *(mean_se_cell(descriptions[group.label].get(c.metric), c) for c in present),
            *(["/".join(map(str, job_counts(group, statuses)))] if statuses else []),
        ]
        for group in sweep.groups
    ]
    return ["group", *(c.header for c in present), *counts], rows


def results_table(sweep: Sweep, descriptions: Descriptions, columns: tuple[Column, ...], counts: bool = True) -> str:
    """``results_cells`` as markdown, counting (with ``counts``) every status some job has."""
    return markdown_table(*results_cells(sweep, descriptions, columns, counted_statuses(sweep) if counts else ()))


def latex_summary(sweep: Sweep, descriptions: Descriptions) -> str:
    """summary.tex: the short results table and (when measured) the sparsity table as LaTeX tables, for a paper."""
    header, rows = results_cells(sweep, descriptions, SHORT_COLUMNS, (OK,))
    header[-1] = "n"  # the seeds each mean is over
    caption = (f"Mean ± standard error over the n seeds of each group (sweep {sweep.sweep_dir.name}). Validation "
               "metrics are those of the kept epoch, test metrics those of its weights.")
    tables = [latex_table(header, rows, caption)]
    if present_columns(sweep, descriptions, SPARSITY_COLUMNS):
        caption = "Share of the kept epoch's weight-matrix entries below each threshold, mean ± standard error."
        tables.append(latex_table(*results_cells(sweep, descriptions, SPARSITY_COLUMNS, ()), caption))
    preamble = ("% regsweep's seed summary as LaTeX (every column: summary.md, summary.csv); "
                "needs \\usepackage{booktabs}.")
    return "\n".join([preamble, "\n\n".join(tables), ""])


def counted_statuses(sweep: Sweep) -> tuple[str, ...]:
    """TABLE_STATUSES, and any other status some job of the sweep has: every job counted somewhere."""
    return tuple(s for s in JOB_STATUSES if s in TABLE_STATUSES or any(g.with_status(s) for g in sweep.groups))


def job_totals_line(sweep: Sweep) -> str:
    statuses = counted_statuses(sweep)
    totals = zip(statuses, (sum(column) for column in zip(*(job_counts(g, statuses) for g in sweep.groups))))
    groups = count(len(sweep.groups), "group")
    counts = ", ".join(f"{n} {status}" for status, n in totals)
    repeats = f"; {len(sweep.repeats)} more left out (their seed ran twice)" if sweep.repeats else ""
    return f"{count(len(sweep.jobs), 'job')} in {groups}: {counts}{repeats}"


def console_table(sweep: Sweep, descriptions: Descriptions, baseline: str | None) -> str:
    """The short table printed at the end of a multirun."""
    lines = [f"Sweep {sweep.sweep_dir}: {job_totals_line(sweep)} (mean ± SE over seeds)"]
    lines.append(results_table(sweep, descriptions, SHORT_COLUMNS))
    if baseline:
        lines.append(f"baseline: {baseline}")
    return "\n".join(lines)


JOB_METRICS = (("best", "val/loss"), ("best", "val/acc"), ("test", "test/acc"))  # (record section, metric)
PAGE_JOB_METRICS = (*JOB_METRICS, ("test", "test/loss"))


def job_cells(job: Job, metrics: tuple[tuple[str, str], ...] = JOB_METRICS) -> list[str]:
    """A job's row: status, epochs, the kept epoch's val ``metrics`` and its test ones, error."""
    recorded = job.record.metrics if job.record is not None else {}
    values = [fmt(recorded.get(section, {}).get(name)) for section, name in metrics]
    return [job.status, str(job.record.epochs if job.record else "-"), *values, one_line(job.error or "")]


def job_header(metrics: tuple[tuple[str, str], ...] = JOB_METRICS) -> list[str]:
    return ["status", "epochs", *(name for _, name in metrics), "error"]


def jobs_markdown(sweep: Sweep) -> str:
    """One row per job, in job order: status, epochs, kept-epoch val metrics, test accuracy, error."""
    rows = [[job.name, *job_cells(job)] for job in sorted(sweep.jobs, key=job_order)]
    table = markdown_table(["job", *job_header()], rows)
    return "\n".join([f"Sweep {sweep.sweep_dir}: {job_totals_line(sweep)}", table])


def comparison_detail_cells(comparisons: list[Comparison]) -> tuple[list[str], list[list[str]]]:
    """Both tests, effect size, probability of improvement and the IQM's difference with its interval."""
    header = ["comparison", "metric", "difference (pp for acc)", "Welch (Holm)", "Mann-Whitney (Holm)"]
    header += ["Hedges' g", "P(improvement)", "IQM difference [95% CI]"]
    rows = [
        [
            f"{c.group} vs {c.reference}",
            c.metric,
            format_difference(c.metric, c.welch.difference),
            format_p(c.welch_p_holm),
            format_p(c.mannwhitney_p_holm),
            format_optional(c.hedges_g, "+.2f"),
            format_optional(c.p_improvement, ".2f"),
            iqm_difference_text(c),
        ]
        for c in comparisons
    ]
    return header, rows


def iqm_difference_text(comparison: Comparison) -> str:
    c = comparison
    if not math.isfinite(c.iqm_difference):
        return "n/a"
    return f"{format_difference(c.metric, c.iqm_difference)} {format_interval(c.metric, *c.iqm_ci95)}"


COMPARISONS_NOTE = (
    "Differences are group minus reference; 95% CI of the difference of means (per comparison, not corrected) "
    "and p from Welch's t-test, Holm-corrected over the comparisons of each metric. P(improvement) is the chance "
    "that a run of the group beats a run of the reference (lower is better for losses and gaps). The IQM "
    "difference's interval is a stratified bootstrap (each group's seeds resampled within the group). All "
    "metrics: comparisons.csv."
)


@dataclass(frozen=True)
class ComparisonsView:
    """What the comparisons section shows: sentences of the main metrics, the tested ones' details, and how many
    pairs had fewer than 2 ok runs on a side (Optuna trials: one each), which are only counted."""

    sentences: list[str]
    tested: list[Comparison]
    untested: int


def comparisons_view(comparisons: list[Comparison]) -> ComparisonsView | None:
    main = [c for c in comparisons if c.metric in SENTENCE_METRICS]
    if not main:
        return None
    shown = [c for c in main if c.note != FEW_RUNS]
    return ComparisonsView([comparison_sentence(c) for c in shown], [c for c in main if c.testable],
                           len(main) - len(shown))


def comparisons_section(comparisons: list[Comparison]) -> list[str]:
    """Sentences for the main metrics, and the tests' details; a pair with one run on a side (Optuna trials) has no
    test to report and is only counted, a pair without spread says so in its sentence (identical in every seed, or
    an exact difference)."""
    view = comparisons_view(comparisons)
    if view is None:
        return []
    lines = ["## Comparisons", "", COMPARISONS_NOTE, "", *(f"- {sentence}" for sentence in view.sentences), ""]
    if view.tested:
        lines += [markdown_table(*comparison_detail_cells(view.tested)), ""]
    if view.untested:
        lines += [untested_note(view.untested), ""]
    return lines


def untested_note(untested: int) -> str:
    return f"{untested} comparisons with fewer than 2 ok runs on a side: see comparisons.csv."


def one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_ERROR_CHARS]


@dataclass(frozen=True)
class Problem:
    """A job a reader must know about: what is wrong (``failed``, ``missing``, ``unreadable metrics.csv``) and why."""

    job: Job
    name: str  # the job's name; its path in the sweep dir for a repeated seed (a rerun repeats the names too)
    group: str
    kind: str
    reason: str


def problems(sweep: Sweep) -> list[Problem]:
    """Failed, interrupted and missing jobs, seeds run twice, unreadable files of ok jobs: a partial sweep
    must say what it lacks, a merged one what it counted once."""
    found = []
    for group in sweep.groups:
        label = group.label
        found += [Problem(job, job.name, label, FAILED, one_line(job.error or "")) for job in group.with_status(FAILED)]
        for job in group.with_status(INTERRUPTED):
            why = job.record.error if job.record else None  # a signal, and the epoch resuming continues from
            found.append(Problem(job, job.name, label, INTERRUPTED, one_line(why or "")))
        missing = f"no {RESULT_FILE} (killed, crashed or still running)"
        found += [Problem(job, job.name, label, MISSING, missing) for job in group.with_status(MISSING)]
        for job, kept in group.repeats:
            left_out, counted = (j.dir.relative_to(sweep.sweep_dir) for j in (job, kept))
            reason = f"seed {job_seed(job)} again, counted once, from `{counted}`"
            found.append(Problem(job, str(left_out), label, "left out", reason))
        for job in group.jobs:
            for name, reason in job.file_problems.items():
                consequence = LEFT_OUT.get(name, "left out")
                found.append(Problem(job, job.name, label, f"unreadable {name}", f"{one_line(reason)} ({consequence})"))
    return found


def problems_section(sweep: Sweep) -> list[str]:
    lines = [f"- `{p.name}` ({p.group}): {p.kind}: {p.reason}" for p in problems(sweep)]
    title = "## Problems: failed, interrupted and missing jobs, repeated seeds, unreadable files"
    return [title, "", *lines, ""] if lines else []


def sweep_headlines(sweep: Sweep, descriptions: Descriptions) -> list[str]:
    """The metrics the answers are about, among those the sweep has data for: the study's ``answer_on``, else
    :func:`headline_metric`'s."""
    labels = [g.label for g in sweep.groups]
    chosen = [m for m in sweep.answer_on if has_data(descriptions, labels, m)]
    default = headline_metric(sweep.task, lambda m: has_data(descriptions, labels, m))
    return chosen or ([default] if default is not None else [])


@dataclass(frozen=True)
class Answer:
    """One pair on the headline metric: the evidence, the verdict, and what the seeds could detect."""

    evidence: str
    verdict: str
    power: str | None


@dataclass(frozen=True)
class Answers:
    """The study's question and its answers, one per compared pair, pairs named by what differs."""

    metric: str
    intro: str  # what differs, the baseline, what was compared and how
    answers: list[Answer]

    @property
    def title(self) -> str:
        return f"Answers: {METRIC_WORDS.get(self.metric, self.metric)}"


def answers(sweep: Sweep, descriptions: Descriptions, comparisons: list[Comparison],
            baseline: Baseline) -> list[Answers]:
    """The answers on each headline metric; none with nothing compared (one group)."""
    found = (metric_answers(sweep, metric, comparisons, baseline) for metric in sweep_headlines(sweep, descriptions))
    return [answer for answer in found if answer is not None]


def metric_answers(sweep: Sweep, metric: str, comparisons: list[Comparison], baseline: Baseline) -> Answers | None:
    """None when no pair was compared on ``metric``."""
    labels = [g.label for g in sweep.groups]
    pairs = [c for c in comparisons if c.metric == metric]
    if not pairs:
        return None
    groups = {g.label: g for g in sweep.groups}
    all_pairs = len(pairs) == len(labels) * (len(labels) - 1) // 2
    scope = "every pair of groups" if all_pairs else "each group with the baseline"
    correction = (f"p Holm-corrected over the {len(pairs)} comparisons, each 95% CI uncorrected, so a CI can "
                  f"exclude 0 while p > {SIGNIFICANCE:g}") if len(pairs) > 1 else "one comparison, nothing to correct"
    intro = (f"Groups differ in {', '.join(sweep.varying_keys)}. Baseline: {baseline.label} ({baseline.reason}). "
             f"Compared: {scope}; {correction}; a group is called better when p < {SIGNIFICANCE:g}. Power: of the "
             f"two-sided Welch test at the {ALPHA:g} level (exact, noncentral t), the observed SDs taken as the true "
             "ones.")
    found = [Answer(*answer_parts(c, pair_names(groups[c.group], groups[c.reference])), power_sentence(c))
             for c in pairs]
    return Answers(metric, intro, found)


def answers_section(sweep: Sweep, descriptions: Descriptions, comparisons: list[Comparison],
                    baseline: Baseline) -> list[str]:
    """The study's question first: per headline metric, one short line per pair, a power line under each."""
    section = []
    for found in answers(sweep, descriptions, comparisons, baseline):
        lines = []
        for answer in found.answers:
            lines.append(f"- {answer.evidence}: {answer.verdict}")
            lines += [f"  - power: {answer.power}"] if answer.power else []
        section += [f"## {found.title}", "", found.intro, "", *lines, ""]
    return section


def format_setting(value: object) -> str:
    """A count as an integer, a strength to 3 significant digits, a missing value as a dash."""
    if not is_number(value):
        return "–"
    return str(value) if isinstance(value, int) else f"{value:.3g}"


@dataclass(frozen=True)
class NotedTable:
    """A table with the note that says how to read it: summary.md and report.html show both."""

    title: str
    note: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> list[str]:
        return [f"## {self.title}", "", self.note, "", markdown_table(self.header, self.rows), ""]


def penalty_table(sweep: Sweep) -> NotedTable | None:
    """Nominal and applied penalty strengths (and n_train) per group, where a penalty is swept or scaled.

    With ``regularizer.scale_by_n_train``, ``l2_half`` or ``combined_scale`` the penalty applied is not the
    nominal one of the labels (from the command line).
    """
    records = {g.label: g.record for g in sweep.groups if g.record is not None and g.record.penalty}
    penalties = {label: record.penalty for label, record in records.items()}
    if not penalties:
        return None
    names = list(dict.fromkeys(k for p in penalties.values() for k in p))
    terms = [t for t in names if f"{t}_applied" in names and any(p.get(t) for p in penalties.values())]
    swept = any(len({p.get(t) for p in penalties.values()}) > 1 for t in terms)
    scaled = any(p.get(f"{t}_applied") != p.get(t) for p in penalties.values() for t in terms)
    if not terms or not (swept or scaled):
        return None
    header = ["group", *(f"{t} {kind}" for t in terms for kind in ("nominal", "applied")), "n_train"]
    rows = [
        [label, *(format_setting(p.get(key)) for t in terms for key in (t, f"{t}_applied")),
         format_setting(records[label].data.get("n_train"))]
        for label, p in penalties.items()
    ]
    note = ("The penalty applied is l1 * sum|w| + l2 * sum w^2 with the applied strengths: the nominal ones "
            "divided by n_train (regularizer.scale_by_n_train), l2 halved (regularizer.l2_half), both scaled when "
            "combined (regularizer.combined_scale), as each group's settings say; labels and plot axes show the "
            "nominal value." if scaled else "Every group applies its nominal strengths.")
    return NotedTable("Penalty strengths", note, header, rows)


def model_size_table(sweep: Sweep) -> NotedTable | None:
    """Each group's model size, where the groups differ in architecture (as their jobs recorded it)."""
    if not sweep.sizes_compared:
        return None
    sizes = {g.label: g.record.model for g in sweep.groups if g.record is not None and g.record.model}
    rows = [[label, f"{size['parameters']:,}", f"{size['penalized_weights']:,}"] for label, size in sizes.items()]
    note = ("Trainable parameters of one model (weights, biases, norm scales and shifts) and the weight entries "
            "the penalty covers (linear and conv weights).")
    return NotedTable("Model size", note, ["group", "parameters", "penalized weights"], rows)


def sparsity_table(sweep: Sweep, descriptions: Descriptions) -> NotedTable | None:
    if not present_columns(sweep, descriptions, SPARSITY_COLUMNS):
        return None
    header, rows = results_cells(sweep, descriptions, SPARSITY_COLUMNS, ())
    return NotedTable("Sparsity (kept epoch, mean ± SE over seeds)", sparsity_note(sweep), header, rows)


def robust_columns(sweep: Sweep, descriptions: Descriptions) -> list[Column]:
    """The results columns of ROBUST_METRICS' first set the sweep has data for."""
    for metrics in ROBUST_METRICS:
        columns = [c for c in present_columns(sweep, descriptions, RESULT_COLUMNS) if c.metric in metrics]
        if columns:
            return columns
    return []


def iqm_cell(description: Description | None, column: Column) -> str:
    """``93.10 [92.40, 93.80]``: the IQM and its bootstrap interval, as many decimals as the mean gets."""
    if description is None or description.n == 0:
        return "–"
    d, scale = description, column.scale
    digits = significant_digits(d.mean, d.se)

    def number(value: float) -> str:
        if not math.isfinite(value):
            return "n/a"
        return f"{value * scale:.{column.decimals}f}" if column.decimals is not None else significant(value, digits)

    interval = f" [{number(d.iqm95_low)}, {number(d.iqm95_high)}]" if math.isfinite(d.iqm95_low) else ""
    return number(d.iqm) + interval


def robust_table(sweep: Sweep, descriptions: Descriptions) -> NotedTable | None:
    """Mean ± SE beside the interquartile mean and its bootstrap interval, for the headline metrics."""
    columns = robust_columns(sweep, descriptions)
    if not columns:
        return None
    header = ["group", *(f"{c.header} {kind}" for c in columns for kind in ("mean ± SE", "IQM [95% CI]"))]
    rows = [[g.label, *(cell(descriptions[g.label].get(c.metric), c) for c in columns for cell in (mean_se_cell,
                                                                                                   iqm_cell))]
            for g in sweep.groups]
    note = ("The interquartile mean (IQM) is the mean of the middle half of a group's seeds (the lowest and highest "
            "quarter dropped): one outlier seed moves it little, and it keeps more of the data than the median "
            f"(Agarwal et al., NeurIPS 2021). Its 95% interval is a percentile bootstrap ({BOOTSTRAP_RESAMPLES} "
            "resamples of the group's seeds, a fixed random seed). Every metric's: summary.csv (iqm, iqm95_low, "
            "iqm95_high).")
    return NotedTable("Interquartile mean beside the mean", note, header, rows)


def noted_sections(*tables: NotedTable | None) -> list[str]:
    return [line for table in tables if table is not None for line in table.markdown()]


def sparsity_note(sweep: Sweep) -> str:
    """What each sparsity threshold measures, and why the fixed one can mislead."""
    lrs = {g.setting(LR_KEY) for g in sweep.groups} - {None}
    lr = f" at lr = {next(iter(lrs)):g}" if len(lrs) == 1 else ""
    return (
        f"Sparsity is the share of weight-matrix entries of the kept epoch (the weights of weights.npz and the "
        f"histograms) with |w| below {SPARSITY_THRESHOLD:g} (a fixed cut, about one Adam step{lr}: L1 keeps many "
        f"weights jittering around 0 at that size, so this count partly reflects lr and λ rather than weights that "
        f"are truly zero), below {SPARSITY_TINY:g} (weights driven to zero in earnest), and below "
        f"{SPARSITY_RELATIVE:.0%} of their layer's RMS (scale-free). Weights that get no data gradient, such as "
        "those of always-zero input pixels, end near 0 under any penalty with Adam however small λ is: compare "
        "with the unpenalized group before reading sparsity as an effect of λ."
    )


def plots_section(sweep: Sweep, plots: list[Path], job_plots: list[Path]) -> list[str]:
    if not plots and not job_plots:
        return []
    lines = ["## Plots", "", *(f"![{p.stem}]({p.relative_to(sweep.sweep_dir).as_posix()})" for p in plots)]
    if job_plots:
        first = job_plots[0].relative_to(sweep.sweep_dir).as_posix()
        lines += ["", f"Each regression job dir has its own {job_plots[0].name} ({len(job_plots)} jobs), "
                      f"e.g. [{first}](<{first}>)."]
    return [*lines, ""]


@dataclass(frozen=True)
class Environments:
    """The environments the ok jobs ran in: each one's text and the jobs that ran in it."""

    ran: dict[str, list[str]]  # environment_text -> job names
    unrecorded: int  # jobs whose records name none (an older regsweep's)

    @property
    def lines(self) -> list[str]:
        """One sentence for one environment; a caution and a line per environment for several."""
        older = f"{count(self.unrecorded, 'job')} recorded none (an older regsweep's records)."
        if len(self.ran) == 1:
            every = "Every job that recorded one" if self.unrecorded else "Every job"
            return [f"{every}: {next(iter(self.ran))}.", *([older] if self.unrecorded else [])]
        return [ENVIRONMENTS_CAUTION.format(n=len(self.ran)),
                *(f"{text}: {count(len(names), 'job')} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                  for text, names in self.ran.items()), *([older] if self.unrecorded else [])]

    @property
    def title(self) -> str:
        return "Environment" if len(self.ran) == 1 else "Environments"


def environments(jobs: list[tuple[str, ResultRecord]]) -> Environments | None:
    """Where the (name, record) jobs ran; None when no record names its environment."""
    ran: dict[str, list[str]] = {}
    for name, record in jobs:
        if record.environment:
            ran.setdefault(environment_text(record.environment), []).append(name)
    return Environments(ran, sum(not record.environment for _, record in jobs)) if ran else None


def sweep_environments(sweep: Sweep) -> Environments | None:
    """The code, libraries and device the ok jobs ran with."""
    return environments([(job.name, job.record) for group in sweep.groups for job in group.jobs if job.ok])


def environment_section(sweep: Sweep) -> list[str]:
    """Environments as markdown: a caution, then a bullet per environment, when the jobs ran in more than one."""
    found = sweep_environments(sweep)
    if found is None:
        return []
    if len(found.ran) == 1:
        return [f"## {found.title}", "", *(line for text in found.lines for line in (text, ""))]
    caution, *rest = found.lines
    return [f"## {found.title}", "", caution, "", *(f"- {line}" for line in rest), ""]


COLUMNS_INTRO = "`best/` is the kept epoch's value, `final/` the last epoch's, a bare name a test metric."


def column_notes(sweep: Sweep, descriptions: Descriptions) -> list[str]:
    """What each table column measures, as the metric declarations (regsweep.metrics) say."""
    return [f"{c.header}: `{c.metric}`, {declared.doc}"
            for c in present_columns(sweep, descriptions, RESULT_COLUMNS + SPARSITY_COLUMNS)
            if (declared := metric(c.metric)) is not None and declared.doc]


def columns_section(sweep: Sweep, descriptions: Descriptions) -> list[str]:
    lines = [f"- {note}" for note in column_notes(sweep, descriptions)]
    return ["## What the columns measure", "", COLUMNS_INTRO, "", *lines, ""] if lines else []


RESULTS_TITLE = "Results (mean ± SE over seeds)"
RESULTS_NOTE = ("Val metrics are those of the kept epoch (the checkpoint's: lowest val loss by default), test metrics "
                "those of its weights; gaps those of the last epoch (val - train loss, train - val accuracy, both "
                "measured in eval mode: positive when the model fits its training data better).")


def summary_markdown(
    sweep: Sweep,
    descriptions: Descriptions,
    comparisons: list[Comparison],
    baseline: Baseline,
    plots: list[Path],
    job_plots: list[Path],
) -> str:
    lines = [
        f"# Sweep summary: {sweep.sweep_dir.name}",
        "",
        f"{job_totals_line(sweep)}." + (" One group: nothing to compare." if baseline.label is None else "")
        + f" The same as one page, figures inside: [{HTML_FILE}]({HTML_FILE}).",
        "",
        *answers_section(sweep, descriptions, comparisons, baseline),
        f"## {RESULTS_TITLE}",
        "",
        f"{RESULTS_NOTE} Each job's own values: [{JOBS_FILE}]({JOBS_FILE}).",
        "",
        results_table(sweep, descriptions, RESULT_COLUMNS),
        "",
        *noted_sections(robust_table(sweep, descriptions), penalty_table(sweep), model_size_table(sweep),
                        sparsity_table(sweep, descriptions)),
        *comparisons_section(comparisons),
        *problems_section(sweep),
        *plots_section(sweep, plots, job_plots),
        *environment_section(sweep),
        *columns_section(sweep, descriptions),
    ]
    return "\n".join(lines)


def write_reports(
    sweep: Sweep, metrics: list[str], descriptions: Descriptions, comparisons: list[Comparison], markdown: str
) -> list[Path]:
    """Write summary.csv, jobs.csv, comparisons.csv, the ``summary_markdown`` text as summary.md, and summary.tex."""
    texts = {
        "summary.csv": summary_csv(sweep, descriptions),
        JOBS_FILE: jobs_csv(sweep, metrics),
        "comparisons.csv": comparisons_csv(comparisons),
        SUMMARY_FILE: markdown,
        LATEX_FILE: latex_summary(sweep, descriptions),
    }
    return [write_text(sweep.sweep_dir / name, text) for name, text in texts.items()]
