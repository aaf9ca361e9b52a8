"""Statistics over seeds: one function per statistic, so every table, plot and test uses the same one.

Every function takes the raw values and drops non-finite ones itself (a diverged run's NaN loss
must not turn a whole group's mean into NaN); it returns NaN when there are too few values for
the statistic to mean anything (e.g. a standard error from one seed), rather than raising.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 5000
BOOTSTRAP_SEED = 20261122  # fixed, so re-running the aggregation gives the same intervals
IQM_TRIM = 0.25  # the interquartile mean drops the lowest and highest quarter (rliable's IQM)
ALPHA = 0.05  # the power analysis's two-sided test level, that of the comparisons' tests
POWER = 0.8  # the power a difference must be detected with
MAX_SEEDS = 100_000  # the power analysis looks no further: a difference that needs more is, in practice, none
NAN = math.nan

Values = Sequence[float] | np.ndarray
Statistic = Callable[..., np.ndarray]  # scipy.stats.bootstrap's: samples, then ``axis``


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


def iqm(values: Values, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the values (``int(n / 4)`` dropped at each end, as
    ``scipy.stats.trim_mean(values, 0.25)``, rliable's IQM). Agarwal et al. (NeurIPS 2021) recommend it for the few
    runs a study has: one outlier seed moves it far less than the mean, and it keeps more data than the median.

    With ``axis`` (scipy.stats.bootstrap's vectorized call: resamples along it, all finite) an array of IQMs; by
    sorting rather than trim_mean's partitions, 4 times faster on the bootstrap's 5000 resamples."""
    if axis is None:
        array = finite(values)
        return float(iqm(array, axis=0)) if array.size else NAN
    ordered = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = ordered.shape[axis]
    cut = int(IQM_TRIM * n)
    return np.take(ordered, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def iqm_difference(x: Values, y: Values, axis: int = -1) -> np.ndarray:
    return iqm(x, axis=axis) - iqm(y, axis=axis)


def bootstrap_interval(
    values: Values, confidence: float = CONFIDENCE, statistic: Statistic = np.mean
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (the mean by default); needs no normality, and a fixed seed
    makes it repeatable."""
    return bootstrap((finite(values),), statistic, confidence)


def iqm_interval(values: Values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the IQM, resampling the group's seeds (the stratified bootstrap of Agarwal
    et al. with one task: each resample draws within the group)."""
    return bootstrap_interval(values, confidence, iqm)


def iqm_difference_interval(x: Values, y: Values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Stratified percentile bootstrap interval of IQM(x) - IQM(y): each resample draws the seeds of each group
    from that group alone, as in Agarwal et al. (the groups are the strata)."""
    return bootstrap((finite(x), finite(y)), iqm_difference, confidence)


def bootstrap(samples: tuple[np.ndarray, ...], statistic: Statistic, confidence: float) -> tuple[float, float]:
    """scipy's percentile bootstrap, resampling each sample on its own; NaN when a sample has fewer than 2 values."""
    if min(sample.size for sample in samples) < 2:
        return NAN, NAN
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)  # constant data: the interval is the point
        result = sps.bootstrap(samples, statistic, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=confidence,
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
    iqm: float  # interquartile mean
    iqm95_low: float  # its percentile bootstrap interval over seeds
    iqm95_high: float


def describe(values: Values) -> Description:
    array = np.asarray(values, dtype=float).ravel()
    kept = finite(array)
    ci_low, ci_high = t_interval(kept)
    boot_low, boot_high = bootstrap_interval(kept)
    q1, median, q3 = quartiles(kept)
    iqm_low, iqm_high = iqm_interval(kept)
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
        iqm=iqm(kept),
        iqm95_low=iqm_low,
        iqm95_high=iqm_high,
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


# --- power: how many seeds a difference needs --------------------------------------------------------
# Exact, not the normal approximation: the power of the two-sided Welch t-test at level ALPHA is the chance that a
# noncentral t variable, with the Welch-Satterthwaite df and noncentrality d / sqrt(sd_x^2 / n_x + sd_y^2 / n_y),
# falls beyond the critical t. The observed SDs stand in for the true ones.


def welch_power(difference: float, sd_x: float, sd_y: float, n_x: int, n_y: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided Welch t-test at level ``alpha`` to detect a true ``difference`` of means, for groups
    of ``n_x`` and ``n_y`` runs (each >= 2) with standard deviations ``sd_x`` and ``sd_y`` (not both 0)."""
    var_x, var_y = sd_x**2 / n_x, sd_y**2 / n_y
    df = (var_x + var_y) ** 2 / (var_x**2 / (n_x - 1) + var_y**2 / (n_y - 1))
    noncentrality = abs(difference) / math.sqrt(var_x + var_y)
    critical = sps.t.ppf(1 - alpha / 2, df)
    # The wrong side's tail: negligible once the noncentrality passes 6, where scipy's far tail turns NaN.
    wrong_side = sps.nct.cdf(-critical, df, noncentrality)
    return float(sps.nct.sf(critical, df, noncentrality) + (wrong_side if math.isfinite(wrong_side) else 0.0))


def seeds_for_power(difference: float, sd_x: float, sd_y: float, power: float = POWER,
                    alpha: float = ALPHA) -> int | None:
    """Seeds per group (the same in both) for the Welch test to detect ``difference`` with ``power``: the smallest
    such n, found by doubling then bisecting (power grows with n). None when even MAX_SEEDS would not do, or
    there is nothing to detect (a difference of 0, NaN, no spread)."""
    if not (math.isfinite(difference) and difference != 0 and math.isfinite(sd_x) and math.isfinite(sd_y)
            and sd_x + sd_y > 0):
        return None

    def enough(n: int) -> bool:
        return welch_power(difference, sd_x, sd_y, n, n, alpha) >= power

    high = 2
    while not enough(high):
        if high >= MAX_SEEDS:
            return None
        high = min(2 * high, MAX_SEEDS)
    low = high // 2  # not enough (or 1: below the 2 a test needs)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return max(high, 2)


def detectable_difference(sd_x: float, sd_y: float, n_x: int, n_y: int, power: float = POWER,
                          alpha: float = ALPHA) -> float:
    """The smallest true difference of means the Welch test detects with ``power`` with these groups; NaN for
    fewer than 2 runs on a side or no spread."""
    if min(n_x, n_y) < 2 or not (math.isfinite(sd_x) and math.isfinite(sd_y) and sd_x + sd_y > 0):
        return NAN
    scale = math.sqrt(sd_x**2 / n_x + sd_y**2 / n_y)  # the difference's standard error: the search's unit
    high = scale
    while welch_power(high, sd_x, sd_y, n_x, n_y, alpha) < power:
        high *= 2
    return float(optimize.brentq(lambda d: welch_power(d, sd_x, sd_y, n_x, n_y, alpha) - power, 0.0, high,
                                 xtol=scale * 1e-9))


@dataclass(frozen=True)
class PowerResult:
    """What a comparison of these groups could detect at POWER, and the seeds per group other differences need."""

    detectable: float  # with the runs at hand, at POWER (NaN: no test)
    seeds_observed: int | None  # per group, for the observed difference of means (None: none, or > MAX_SEEDS)
    target: float  # a difference of interest (NaN when none was named)
    seeds_target: int | None  # per group, for ``target``


def power_analysis(x: Values, y: Values, target: float = NAN) -> PowerResult:
    """Power of the Welch test of x against y, the observed SDs taken as the true ones."""
    a, b = finite(x), finite(y)
    sd_x, sd_y = std(a), std(b)
    return PowerResult(
        detectable=detectable_difference(sd_x, sd_y, a.size, b.size),
        seeds_observed=seeds_for_power(mean(a) - mean(b), sd_x, sd_y),
        target=target,
        seeds_target=seeds_for_power(target, sd_x, sd_y) if math.isfinite(target) else None,
    )
