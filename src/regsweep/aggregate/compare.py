"""Pairwise comparisons of groups: the baseline, which pairs, tests, effect sizes, Holm correction, sentences."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from regsweep.aggregate import stats
from regsweep.aggregate.load import AggregateError, Group, GroupValues, Sweep, group_label, is_number
from regsweep.metrics import HIGHER, TASKS, is_percent, objective
from regsweep.metrics import metric as declared_metric  # `metric` names a parameter here

# Config keys whose value 0 means "this kind of regularization is off"; augmentation probabilities too.
STRENGTH_KEYS = ("regularizer.l1", "regularizer.l2", "regularizer.grad_noise_std", "model.dropout",
                 "optimizer.weight_decay")  # fmt: skip
AUGMENT_PREFIX, PROBABILITY_SUFFIX = "augment.", "_p"
MAX_ALL_PAIRS_GROUPS = 6  # up to 15 pairs by default; more groups are compared with the baseline only
SIGNIFICANCE = 0.05  # Holm-corrected p below this: the answer names the better group
# Why a comparison has no test (comparisons.csv's note, summary.md's sentences): too few runs, or no spread at all.
FEW_RUNS = "fewer than 2 runs on a side: no test"
IDENTICAL = "identical in every seed"
EXACT = "constant in each group: the difference is exact, no test needed"
# The metrics that get a sentence in summary.md, with the words used in it.
SENTENCE_METRICS = {
    "test/acc": "test accuracy",
    "test/loss": "test loss",
    "best/val/acc": "val accuracy (best epoch)",
    "best/val/loss": "val loss (best epoch)",
}
# The words for every metric a sentence or an answer can be about (a study's answer_on may choose any).
METRIC_WORDS = {
    **SENTENCE_METRICS,
    "final/val/loss": "val loss (last epoch)",
    "final/val/acc": "val accuracy (last epoch)",
    "final/gen_gap/loss": "generalization gap, val - train loss (last epoch)",
    "final/gen_gap/acc": "generalization gap, train - val accuracy (last epoch)",
    "final/train/loss": "train loss (last epoch)",
    "test/total_loss": "test loss with the penalty",
}
POINTS = "pp"  # --detect's suffix for a difference in percentage points (accuracy-like metrics)


@dataclass(frozen=True)
class Baseline:
    """The reference group of the comparisons, and why it was chosen (summary.md says both)."""

    label: str | None  # None: a single group, nothing to compare
    reason: str


@dataclass(frozen=True)
class Detect:
    """A difference the power lines ask about (``--detect``): ``0.2pp`` in percentage points of an accuracy-like
    metric, ``0.01`` in the metric's own units (a loss; an accuracy as a fraction)."""

    value: float
    points: bool

    @classmethod
    def parse(cls, text: str) -> "Detect":
        """``"0.2pp"`` -> 0.2 points, ``"0.01"`` -> 0.01; a ValueError saying what is expected otherwise."""
        match = re.fullmatch(rf"\s*([0-9.eE+-]+)\s*({POINTS})?\s*", text)
        try:
            value = float(match.group(1)) if match else math.nan
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{text!r}: expected a positive difference, e.g. 0.2{POINTS} (percentage points of "
                             "accuracy) or 0.01 (in the metric's units)")
        return cls(value, bool(match.group(2)))

    def in_units(self, metric: str) -> float:
        """The difference in ``metric``'s units; an AggregateError for points of a metric that has none."""
        if not self.points:
            return self.value
        if not is_percent(metric):
            raise AggregateError(f"--detect {self}: percentage points are for accuracy-like metrics; the comparisons' "
                                 f"headline metric {metric} takes a plain number in its units")
        return self.value / 100

    def __str__(self) -> str:
        return f"{self.value:g}{POINTS if self.points else ''}"


def is_strength_key(key: str) -> bool:
    return key in STRENGTH_KEYS or (key.startswith(AUGMENT_PREFIX) and key.endswith(PROBABILITY_SUFFIX))


def swept_strengths(groups: list[Group]) -> list[str]:
    """Regularization strengths that differ between groups: what the sweep studies (a fixed dropout is not)."""
    keys = {k for g in groups for k in [*g.overrides, *(g.record.params if g.record else [])] if is_strength_key(k)}
    swept = []
    for key in sorted(keys):
        values = [g.setting(key) for g in groups]
        if all(is_number(v) for v in values) and len(set(values)) > 1:
            swept.append(key)
    return swept


def default_baseline(groups: list[Group]) -> Baseline:
    """The group with every swept regularization strength at 0 (no penalty, no dropout), else the first group."""
    if len(groups) < 2:
        return Baseline(None, "a single group: nothing to compare")
    keys = swept_strengths(groups)
    if not keys:
        return Baseline(groups[0].label, "no regularization strength differs between the groups: the first group")
    named = ", ".join(keys)
    unregularized = [g for g in groups if all(g.setting(key) == 0 for key in keys)]
    if not unregularized:
        return Baseline(groups[0].label, f"no group has every swept strength ({named}) at 0: the first group")
    if len(unregularized) == 1:
        return Baseline(unregularized[0].label, f"the group with every swept strength ({named}) at 0")
    return Baseline(unregularized[0].label,
                    f"the first of {len(unregularized)} groups with every swept strength ({named}) at 0")


def resolve_baseline(sweep: Sweep, baseline: str | None) -> Baseline:
    """The given label (checked), else :func:`default_baseline`."""
    labels = [group.label for group in sweep.groups]
    if baseline is None:
        return default_baseline(sweep.groups)
    if baseline not in labels:
        raise AggregateError(f"Unknown baseline group {baseline!r}; groups are: {', '.join(labels)}")
    return Baseline(baseline, "chosen with --baseline")


def comparison_pairs(labels: list[str], baseline: str | None, all_pairs: bool | None = None) -> list[tuple[str, str]]:
    """(group, reference) pairs: every group against the baseline, then every other pair.

    ``all_pairs`` None (the default) compares all pairs when there are at most MAX_ALL_PAIRS_GROUPS
    groups: with few groups every pair is a question worth a test, with many the Holm correction
    over all pairs would leave no power.
    """
    if baseline is None:
        return []
    if all_pairs is None:
        all_pairs = len(labels) <= MAX_ALL_PAIRS_GROUPS
    pairs = [(label, baseline) for label in labels if label != baseline]
    if all_pairs:
        pairs += [(b, a) for a, b in itertools.combinations(labels, 2) if baseline not in (a, b)]
    return pairs


def headline_metric(task: str | None, has_data: Callable[[str], bool]) -> str | None:
    """The metric of the study's question: the test version of what a sweep selects on by default
    (accuracy for classification, loss for regression), else its kept-epoch val version."""
    tasks = [task] if task in TASKS else list(TASKS)
    names = [objective("auto", t).partition("/")[2] for t in tasks]
    return next((m for name in names for m in (f"test/{name}", f"best/val/{name}") if has_data(m)), None)


@dataclass(frozen=True)
class Comparison:
    """``group`` against ``reference`` on one metric; differences are group minus reference."""

    metric: str
    group: str
    reference: str
    n_group: int
    n_reference: int
    mean_group: float
    mean_reference: float
    welch: stats.WelchResult
    welch_p_holm: float
    mannwhitney_u: float
    mannwhitney_p: float
    mannwhitney_p_holm: float
    hedges_g: float
    p_improvement: float  # P(a run of group beats a run of reference) + 0.5 P(tie); NaN without a direction
    better: str | None  # HIGHER or LOWER as the metric's declaration says; None: neither (weight norms, wall time)
    constant: bool  # every run of each group gave one value: the difference is exact, nothing to test
    # IQM(group) - IQM(reference) and its stratified bootstrap interval, and the power analysis: for the metrics
    # with sentences (SENTENCE_METRICS; NaN and None for the others, whose bootstraps would slow every summary)
    iqm_difference: float = math.nan
    iqm_ci95: tuple[float, float] = (math.nan, math.nan)
    power: stats.PowerResult | None = None

    @property
    def note(self) -> str:
        """Why the comparison has no test, "" when it has one."""
        if min(self.n_group, self.n_reference) < 2:
            return FEW_RUNS  # a difference but no spread to test it against
        if self.constant:
            return IDENTICAL if self.welch.difference == 0 else EXACT
        return ""

    @property
    def testable(self) -> bool:
        """Tested: two runs on each side at least, and some spread."""
        return not self.note


def compare_pair(metric: str, group: str, reference: str, values: GroupValues, target: float = math.nan,
                 robust: bool = False) -> Comparison:
    """Welch and Mann-Whitney tests of ``group`` against ``reference``; none when neither group has any spread.

    Only a metric declared with a direction (regsweep.metrics) gets a probability of improvement; only the
    SENTENCE_METRICS and a study's answer metrics (``robust``) the IQM difference and the power analysis (for the
    observed difference, and ``target``).
    """
    x, y = values[group][metric], values[reference][metric]
    constant = stats.constant(x) and stats.constant(y)
    u, u_p = (math.nan, math.nan) if constant else stats.mann_whitney(x, y)
    declared = declared_metric(metric)
    better = declared.better if declared is not None else None
    analyses = {}
    if robust or metric in SENTENCE_METRICS:
        analyses = {"iqm_difference": stats.iqm(x) - stats.iqm(y), "iqm_ci95": stats.iqm_difference_interval(x, y),
                    "power": stats.power_analysis(x, y, target)}
    return Comparison(
        metric=metric,
        group=group,
        reference=reference,
        n_group=stats.finite(x).size,
        n_reference=stats.finite(y).size,
        mean_group=stats.mean(x),
        mean_reference=stats.mean(y),
        welch=stats.welch_t_test(x, y),
        welch_p_holm=math.nan,
        mannwhitney_u=u,
        mannwhitney_p=u_p,
        mannwhitney_p_holm=math.nan,
        hedges_g=stats.hedges_g(x, y),
        p_improvement=stats.probability_of_improvement(x, y, better == HIGHER) if better else math.nan,
        better=better,
        constant=constant,
        **analyses,
    )


def compare_metric(
    metric: str, pairs: list[tuple[str, str]], values: GroupValues, target: float = math.nan, robust: bool = False
) -> list[Comparison]:
    """All pairs on one metric, p-values Holm-corrected over those pairs (one family per metric)."""
    raw = [compare_pair(metric, group, reference, values, target, robust) for group, reference in pairs]
    welch_holm = stats.holm([c.welch.p for c in raw])
    mannwhitney_holm = stats.holm([c.mannwhitney_p for c in raw])
    return [
        replace(c, welch_p_holm=float(w), mannwhitney_p_holm=float(m))
        for c, w, m in zip(raw, welch_holm, mannwhitney_holm)
    ]


def compare_groups(
    values: GroupValues, metrics: list[str], pairs: list[tuple[str, str]], targets: dict[str, float] | None = None,
    headlines: Sequence[str] = (),
) -> list[Comparison]:
    """Every pair on every metric; ``targets``: metric -> a difference the power analysis is asked about;
    ``headlines``: the metrics the answers are about (their comparisons get the robust and power analyses)."""
    targets = targets or {}
    return [c for metric in metrics
            for c in compare_metric(metric, pairs, values, targets.get(metric, math.nan), metric in headlines)]


def format_difference(metric: str, value: float, signed: bool = True) -> str:
    """Accuracy-like differences in percentage points (2 decimals), others to 3 significant digits."""
    sign = "+" if signed else ""
    return f"{100 * value:{sign}.2f}" if is_percent(metric) else f"{value:{sign}.3g}"


def format_value(metric: str, value: float) -> str:
    """A mean: accuracy-like in percent (2 decimals), others to 3 significant digits (never 0.0000)."""
    if not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f}%" if is_percent(metric) else f"{value:.3g}"


def format_interval(metric: str, low: float, high: float) -> str:
    if not math.isfinite(low):
        return "n/a"
    return f"[{format_difference(metric, low, signed=False)}, {format_difference(metric, high, signed=False)}]"


def format_p(p: float) -> str:
    if not math.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def evidence(comparison: Comparison) -> str:
    """The test's result, ``95% CI [0.05, 0.57], p = 0.03 (Holm)``, or why there is none (IDENTICAL, ...)."""
    c = comparison
    if c.note:
        return c.note
    return f"95% CI {format_interval(c.metric, c.welch.ci95_low, c.welch.ci95_high)}, {format_p(c.welch_p_holm)} (Holm)"


def difference_unit(metric: str) -> str:
    """Accuracy-like differences are in percentage points."""
    return " pp" if is_percent(metric) else ""


def seeds_needed(what: str, metric: str, difference: float, seeds: int | None) -> str:
    """``to detect the observed difference 0.31 pp, about 22 seeds per group``, or why no number of seeds will."""
    size = f"{format_difference(metric, abs(difference), signed=False)}{difference_unit(metric)}"
    if difference == 0:
        return f"{what} is 0: no number of seeds detects it"
    if seeds is None:
        return f"to detect {what} {size}, more than {stats.MAX_SEEDS:,} seeds per group"
    return f"to detect {what} {size}, about {seeds} seeds per group"


def power_sentence(comparison: Comparison) -> str | None:
    """E.g. ``n = 10/10 detects ≥ 0.45 pp at 80% power; to detect the observed difference 0.31 pp, about 22 seeds
    per group``: whether the seeds were enough, and how many would be. None without a power analysis or spread."""
    c, power = comparison, comparison.power
    if power is None or not math.isfinite(power.detectable):
        return None
    detectable = f"{format_difference(c.metric, power.detectable, signed=False)}{difference_unit(c.metric)}"
    parts = [f"n = {c.n_group}/{c.n_reference} detects ≥ {detectable} at {stats.POWER:.0%} power",
             seeds_needed("the observed difference", c.metric, c.welch.difference, power.seeds_observed)]
    if math.isfinite(power.target):
        parts.append(seeds_needed("a difference of", c.metric, power.target, power.seeds_target))
    return "; ".join(parts)


def comparison_sentence(comparison: Comparison) -> str:
    """E.g. ``l1 vs none: +0.31 pp test accuracy, 95% CI [0.05, 0.57], p = 0.03 (Holm), n = 10/10``."""
    c = comparison
    words = METRIC_WORDS.get(c.metric, c.metric)
    difference = f"{format_difference(c.metric, c.welch.difference)}{difference_unit(c.metric)}"
    return f"{c.group} vs {c.reference}: {difference} {words}, {evidence(c)}, n = {c.n_group}/{c.n_reference}"


@dataclass(frozen=True)
class PairNames:
    """A pair named by what differs between its two groups; what they share (of the labels) as context."""

    group: str
    reference: str
    shared: str  # "" when the groups differ in every labelled override


def pair_names(group: Group, reference: Group) -> PairNames:
    """``regularizer.l1=1e-05`` vs ``regularizer.l1=0``, shared ``regularizer.l2=0``: full labels repeat too much."""
    keys = list(dict.fromkeys([*group.varying, *reference.varying]))
    differ = [k for k in keys if group.varying.get(k) != reference.varying.get(k)]
    shared = {k: group.varying[k] for k in keys if k not in differ}

    def side(g: Group) -> str:
        return group_label({k: g.varying.get(k, "unset") for k in differ})

    return PairNames(side(group), side(reference), group_label(shared) if shared else "")


def verdict(comparison: Comparison, names: PairNames) -> str:
    """Which group is better: when the Holm-corrected test says the difference is real, or when every seed says it
    (groups without spread); never for a metric without a direction, whose difference is only a difference."""
    c = comparison
    if c.note == FEW_RUNS:
        return FEW_RUNS
    if c.note == IDENTICAL:
        return "no difference"
    if not (c.note == EXACT or (math.isfinite(c.welch_p_holm) and c.welch_p_holm < SIGNIFICANCE)):
        return "no clear difference"
    if c.better is None:
        return "they differ (this metric has no better direction)"
    group_better = (c.welch.difference > 0) == (c.better == HIGHER)
    return f"{names.group if group_better else names.reference} is better"


def answer_sentence(comparison: Comparison, names: PairNames) -> str:
    """E.g. ``regularizer=l1 vs regularizer=none: test accuracy 92.15% vs 94.93% (-2.78 pp, 95% CI [...],
    p = 0.0057 Holm): regularizer=none is better``: the study's question, answered in one line."""
    return ": ".join(answer_parts(comparison, names))


def answer_parts(comparison: Comparison, names: PairNames) -> tuple[str, str]:
    """:func:`answer_sentence` as the evidence and the verdict (a page sets the verdict apart)."""
    c = comparison
    context = f" (both {names.shared})" if names.shared else ""
    words = METRIC_WORDS.get(c.metric, c.metric)
    detail = f"{format_difference(c.metric, c.welch.difference)}{difference_unit(c.metric)}"
    if c.testable:
        interval = format_interval(c.metric, c.welch.ci95_low, c.welch.ci95_high)
        detail += f", 95% CI {interval}, {format_p(c.welch_p_holm)} Holm"
    elif c.constant:
        detail += f", {c.note}"
    evidence_text = (f"{names.group} vs {names.reference}{context}: {words} {format_value(c.metric, c.mean_group)} "
                     f"vs {format_value(c.metric, c.mean_reference)} ({detail})")
    return evidence_text, verdict(c, names)
