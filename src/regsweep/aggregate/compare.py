"""Pairwise comparisons of groups: tests, effect sizes, Holm correction and one plain sentence each."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from regsweep.aggregate import stats
from regsweep.metrics import higher_is_better, is_percent
from regsweep.aggregate.load import AggregateError, GroupValues, Sweep

DEFAULT_BASELINE_OVERRIDE = ("regularizer", "none")
# The metrics that get a sentence in summary.md, with the words used in it.
SENTENCE_METRICS = {
    "test/acc": "test accuracy",
    "test/loss": "test loss",
    "best/val/acc": "val accuracy (best epoch)",
    "best/val/loss": "val loss (best epoch)",
}


def resolve_baseline(sweep: Sweep, baseline: str | None) -> str | None:
    """The given label (checked), else the group with ``regularizer=none`` if there is one."""
    labels = [group.label for group in sweep.groups]
    if baseline is not None:
        if baseline not in labels:
            raise AggregateError(f"Unknown baseline group {baseline!r}; groups are: {', '.join(labels)}")
        return baseline
    key, value = DEFAULT_BASELINE_OVERRIDE
    return next((g.label for g in sweep.groups if g.overrides.get(key) == value), None)


def comparison_pairs(labels: list[str], baseline: str | None, all_pairs: bool) -> list[tuple[str, str]]:
    """(group, reference) pairs: every group against the baseline, then (if asked) every other pair."""
    pairs = [(label, baseline) for label in labels if baseline is not None and label != baseline]
    if all_pairs:
        pairs += [(b, a) for a, b in itertools.combinations(labels, 2) if baseline not in (a, b)]
    return pairs


@dataclass(frozen=True)
class Comparison:
    """``group`` against ``reference`` on one metric; differences are group minus reference."""

    metric: str
    group: str
    reference: str
    n_group: int
    n_reference: int
    welch: stats.WelchResult
    welch_p_holm: float
    mannwhitney_u: float
    mannwhitney_p: float
    mannwhitney_p_holm: float
    hedges_g: float
    p_improvement: float  # P(a run of group beats a run of reference) + 0.5 P(tie)
    higher_is_better: bool


def compare_pair(metric: str, group: str, reference: str, values: GroupValues) -> Comparison:
    x, y = values[group][metric], values[reference][metric]
    u, u_p = stats.mann_whitney(x, y)
    return Comparison(
        metric=metric,
        group=group,
        reference=reference,
        n_group=stats.finite(x).size,
        n_reference=stats.finite(y).size,
        welch=stats.welch_t_test(x, y),
        welch_p_holm=math.nan,
        mannwhitney_u=u,
        mannwhitney_p=u_p,
        mannwhitney_p_holm=math.nan,
        hedges_g=stats.hedges_g(x, y),
        p_improvement=stats.probability_of_improvement(x, y, higher_is_better(metric)),
        higher_is_better=higher_is_better(metric),
    )


def compare_metric(metric: str, pairs: list[tuple[str, str]], values: GroupValues) -> list[Comparison]:
    """All pairs on one metric, p-values Holm-corrected over those pairs (one family per metric)."""
    raw = [compare_pair(metric, group, reference, values) for group, reference in pairs]
    welch_holm = stats.holm([c.welch.p for c in raw])
    mannwhitney_holm = stats.holm([c.mannwhitney_p for c in raw])
    return [
        replace(c, welch_p_holm=float(w), mannwhitney_p_holm=float(m))
        for c, w, m in zip(raw, welch_holm, mannwhitney_holm)
    ]


def compare_groups(values: GroupValues, metrics: list[str], pairs: list[tuple[str, str]]) -> list[Comparison]:
    return [c for metric in metrics for c in compare_metric(metric, pairs, values)]


def format_difference(metric: str, value: float, signed: bool = True) -> str:
    """Accuracy-like differences in percentage points (2 decimals), others to 3 significant digits."""
    sign = "+" if signed else ""
    return f"{100 * value:{sign}.2f}" if is_percent(metric) else f"{value:{sign}.3g}"


def format_interval(metric: str, low: float, high: float) -> str:
    if not math.isfinite(low):
        return "n/a"
    return f"[{format_difference(metric, low, signed=False)}, {format_difference(metric, high, signed=False)}]"


def format_p(p: float) -> str:
    if not math.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def comparison_sentence(comparison: Comparison) -> str:
    """E.g. ``l1 vs none: +0.31 pp test accuracy, 95% CI [0.05, 0.57], p = 0.03 (Holm), n = 10/10``."""
    c = comparison
    unit = " pp" if is_percent(c.metric) else ""
    words = SENTENCE_METRICS.get(c.metric, c.metric)
    return (
        f"{c.group} vs {c.reference}: {format_difference(c.metric, c.welch.difference)}{unit} {words}, "
        f"95% CI {format_interval(c.metric, c.welch.ci95_low, c.welch.ci95_high)}, "
        f"{format_p(c.welch_p_holm)} (Holm), n = {c.n_group}/{c.n_reference}"
    )
