"""Statistics over seeds: one function per statistic, so every table, plot and test uses the same one.

Every function takes the raw values and drops non-finite ones itself (a diverged run's NaN loss
must not turn a whole group's mean into NaN); it returns NaN when there are too few values for
the statistic to mean anything (e.g. a standard error from one seed), rather than raising.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 5000
BOOTSTRAP_SEED = 20261122  # fixed, so re-running the aggregation gives the same intervals
NAN = math.nan

Values = Sequence[float] | np.ndarray


def finite(values: Values) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def constant(values: Values) -> bool:
    """Two finite values at least, all equal: no spread, so a difference from them is exact, not an estimate."""
    array = finite(values)
    return array.size >= 2 and bool((array == array[0]).all())


def mean(values: Values) -> float:
    array = finite(values)
    return float(array.mean()) if array.size else NAN


def std(values: Values) -> float:
    """Sample standard deviation (ddof=1): the seeds are a sample of all possible seeds."""
    array = finite(values)
    return float(array.std(ddof=1)) if array.size >= 2 else NAN


def standard_error(values: Values) -> float:
    n = finite(values).size
    return std(values) / math.sqrt(n) if n >= 2 else NAN


def t_interval(values: Values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval for the mean: right for the few seeds a sweep has, unlike mean ± 1.96 SE."""
    n = finite(values).size
    if n < 2:
        return NAN, NAN
    half_width = sps.t.ppf(0.5 + confidence / 2, df=n - 1) * standard_error(values)
    return mean(values) - half_width, mean(values) + half_width


def bootstrap_interval(values: Values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean; needs no normality, and a fixed seed makes it repeatable."""
    array = finite(values)
    if array.size < 2:
        return NAN, NAN
    result = sps.bootstrap((array,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=confidence,
                           method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def quartiles(values: Values) -> tuple[float, float, float]:
    """First quartile, median, third quartile."""
    array = finite(values)
    if not array.size:
        return NAN, NAN, NAN
    q1, median, q3 = np.percentile(array, [25, 50, 75])
    return float(q1), float(median), float(q3)


@dataclass(frozen=True)
class Description:
    """Everything summary.csv reports about one metric of one group."""

    n: int  # finite values used
    n_nonfinite: int  # NaN/inf values dropped (e.g. diverged runs)
    mean: float
    std: float
    se: float
    ci95_low: float
    ci95_high: float
    boot95_low: float
    boot95_high: float
    median: float
    q1: float
    q3: float
    iqr: float
    min: float
    max: float


def describe(values: Values) -> Description:
    array = np.asarray(values, dtype=float).ravel()
    kept = finite(array)
    ci_low, ci_high = t_interval(kept)
    boot_low, boot_high = bootstrap_interval(kept)
    q1, median, q3 = quartiles(kept)
    return Description(
        n=int(kept.size),
        n_nonfinite=int(array.size - kept.size),
        mean=mean(kept),
        std=std(kept),
        se=standard_error(kept),
        ci95_low=ci_low,
        ci95_high=ci_high,
        boot95_low=boot_low,
        boot95_high=boot_high,
        median=median,
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
        min=float(kept.min()) if kept.size else NAN,
        max=float(kept.max()) if kept.size else NAN,
    )


@dataclass(frozen=True)
class WelchResult:
    """Welch's t-test of mean(x) - mean(y), with the confidence interval of that difference."""

    difference: float
    ci95_low: float
    ci95_high: float
    t: float
    df: float
    p: float


def welch_t_test(x: Values, y: Values, confidence: float = CONFIDENCE) -> WelchResult:
    """Welch rather than Student: regularizers change the spread across seeds, not only the mean.

    Both sides constant: the difference is exact (that of the two values, not of two means, which can differ by
    rounding when the values do not), so is its interval, and t, df and p are NaN: there is nothing to weigh the
    difference against (scipy's t would be NaN or infinite, its p NaN or 0, whatever the difference).
    """
    a, b = finite(x), finite(y)
    difference = mean(a) - mean(b)
    if a.size < 2 or b.size < 2:
        return WelchResult(difference, NAN, NAN, NAN, NAN, NAN)
    if constant(a) and constant(b):
        exact = float(a[0] - b[0])
        return WelchResult(exact, exact, exact, NAN, NAN, NAN)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # values that differ by rounding only
        result = sps.ttest_ind(a, b, equal_var=False)
        interval = result.confidence_interval(confidence)
    return WelchResult(
        difference=difference,
        ci95_low=float(interval.low),
        ci95_high=float(interval.high),
        t=float(result.statistic),
        df=float(result.df),
        p=float(result.pvalue),
    )


def mann_whitney(x: Values, y: Values) -> tuple[float, float]:
    """Two-sided Mann-Whitney U statistic and p-value: a rank test that one outlier seed cannot sway."""
    a, b = finite(x), finite(y)
    if not a.size or not b.size:
        return NAN, NAN
    result = sps.mannwhitneyu(a, b, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def hedges_g(x: Values, y: Values) -> float:
    """Standardized mean difference (x - y) / pooled SD, bias-corrected for small samples."""
    a, b = finite(x), finite(y)
    if a.size < 2 or b.size < 2 or (constant(a) and constant(b)):  # no spread: NaN, not the rounding error's 1e14
        return NAN
    dof = a.size + b.size - 2
    pooled_sd = math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / dof)
    small_sample_correction = 1 - 3 / (4 * dof - 1)
    return (a.mean() - b.mean()) / pooled_sd * small_sample_correction


def probability_of_improvement(x: Values, y: Values, higher_is_better: bool = True) -> float:
    """P(X better than Y) + 0.5 P(X = Y) over all pairs of runs (common-language effect size)."""
    a, b = finite(x), finite(y)
    if not a.size or not b.size:
        return NAN
    a_minus_b = a[:, None] - b[None, :]
    better = (a_minus_b > 0) if higher_is_better else (a_minus_b < 0)
    return float(better.mean() + 0.5 * (a_minus_b == 0).mean())


def holm(p_values: Values) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error); NaN p-values stay NaN and do not count."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, NAN)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    step_down = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted[order] = np.minimum(step_down, 1.0)
    return adjusted
