"""The statistics against scipy and against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from regsweep.aggregate import stats

VALUES = [1.0, 2.0, 3.0, 4.0, 10.0]  # mean 4, sample variance 12.5


def test_mean_std_and_standard_error_by_hand() -> None:
    assert stats.mean(VALUES) == 4.0
    assert stats.std(VALUES) == pytest.approx(math.sqrt(12.5))
    assert stats.standard_error(VALUES) == pytest.approx(math.sqrt(12.5 / 5))
    assert stats.standard_error(VALUES) == pytest.approx(sps.sem(VALUES))


def test_t_interval_matches_scipy() -> None:
    expected = sps.t.interval(0.95, df=4, loc=4.0, scale=sps.sem(VALUES))
    assert stats.t_interval(VALUES) == pytest.approx(expected)


def test_non_finite_values_are_dropped_and_counted() -> None:
    description = stats.describe([*VALUES, math.nan, math.inf])
    assert (description.n, description.n_nonfinite) == (5, 2)
    assert description.mean == 4.0
    assert (description.min, description.max, description.median) == (1.0, 10.0, 3.0)
    assert (description.q1, description.q3, description.iqr) == (2.0, 4.0, 2.0)


def test_single_value_gives_nan_spread_instead_of_crashing() -> None:
    description = stats.describe([0.9])
    assert description.n == 1 and description.mean == 0.9 and description.median == 0.9
    spreads = [description.std, description.se, description.ci95_low, description.ci95_high, description.boot95_low]
    assert all(math.isnan(value) for value in spreads)


def test_no_values_gives_nan_everywhere() -> None:
    description = stats.describe([])
    assert description.n == 0 and math.isnan(description.mean) and math.isnan(description.max)


def test_bootstrap_interval_is_repeatable_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(5.0, 1.0, size=10)
    first, second = stats.bootstrap_interval(values), stats.bootstrap_interval(values)
    assert first == second
    assert first[0] < values.mean() < first[1]
    assert values.min() < first[0] and first[1] < values.max()


def test_welch_t_test_matches_scipy_and_the_welch_satterthwaite_formula() -> None:
    x, y = np.array([0.93, 0.94, 0.92, 0.95]), np.array([0.90, 0.91, 0.92, 0.89, 0.905])
    result = stats.welch_t_test(x, y)
    reference = sps.ttest_ind(x, y, equal_var=False)
    assert result.p == pytest.approx(reference.pvalue)
    assert result.t == pytest.approx(reference.statistic)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half_width = sps.t.ppf(0.975, df) * math.sqrt(vx + vy)
    assert result.df == pytest.approx(df)
    assert result.difference == pytest.approx(x.mean() - y.mean())
    difference = x.mean() - y.mean()
    assert (result.ci95_low, result.ci95_high) == pytest.approx((difference - half_width, difference + half_width))


def test_welch_t_test_with_one_run_has_a_difference_but_no_test() -> None:
    result = stats.welch_t_test([0.9], [0.8, 0.85])
    assert result.difference == pytest.approx(0.075)
    assert math.isnan(result.p) and math.isnan(result.ci95_low)


@pytest.mark.parametrize("x,y", [([0.95] * 3, [0.9] * 4), ([0.95] * 3, [0.95] * 4), ([0.1 + 0.2] * 2, [0.3] * 2)])
def test_groups_without_spread_have_an_exact_difference_and_no_test_or_effect_size(x: list[float],
                                                                                   y: list[float]) -> None:
    """Not scipy's answer: t = inf and p = 0 for any difference, even one of rounding (0.1 + 0.2 vs 0.3) or of
    the means alone ([0.95] * 3 has mean 0.9499...), and a Hedges' g of 1e14 from the rounding error of a constant's
    variance."""
    assert stats.constant(x) and stats.constant(y) and not stats.constant([0.95]) and not stats.constant([1.0, 2.0])
    result = stats.welch_t_test(x, y)
    assert result.ci95_low == result.ci95_high == result.difference == x[0] - y[0]  # 0 for 0.95 (mean 0.9499...)
    assert math.isnan(result.t) and math.isnan(result.df) and math.isnan(result.p)
    assert math.isnan(stats.hedges_g(x, y))


def test_mann_whitney_matches_scipy() -> None:
    x, y = [1.0, 2.5, 3.0, 7.0], [2.0, 4.0, 5.0, 6.0, 8.0]
    reference = sps.mannwhitneyu(x, y, alternative="two-sided")
    assert stats.mann_whitney(x, y) == pytest.approx((reference.statistic, reference.pvalue))


def test_hedges_g_by_hand() -> None:
    # means 2 and 3.5, variances 1 and 5/3: pooled variance (2*1 + 3*5/3) / 5 = 1.4; J = 1 - 3/19
    expected = (2.0 - 3.5) / math.sqrt(1.4) * (1 - 3 / 19)
    assert stats.hedges_g([1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0]) == pytest.approx(expected)
    assert math.isnan(stats.hedges_g([1.0], [2.0, 3.0]))


def test_probability_of_improvement_counts_ties_half_and_respects_direction() -> None:
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0]  # x beats y twice, ties once, loses once
    assert stats.probability_of_improvement(x, y, higher_is_better=True) == pytest.approx(2.5 / 4)
    assert stats.probability_of_improvement(x, y, higher_is_better=False) == pytest.approx(1.5 / 4)


@pytest.mark.parametrize(
    ("p_values", "expected"),
    [
        ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),
        ([0.01, math.nan, 0.04], [0.02, math.nan, 0.04]),
        ([0.5, 0.6], [1.0, 1.0]),
        ([0.001, 0.2, 0.01, 0.03], [0.004, 0.2, 0.03, 0.06]),
    ],
)
def test_holm_by_hand(p_values: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(stats.holm(p_values), expected, equal_nan=True)


# --- interquartile mean and its stratified bootstrap -------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half_by_hand() -> None:
    # 10 values: int(10 / 4) = 2 dropped at each end, the mean of 3..8 is 5.5; the outlier 100 moves the mean to 14.5
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0]
    assert stats.iqm(values) == 5.5 and stats.mean(values) == 14.5
    assert stats.iqm([*values[:-1], 1e6]) == 5.5  # however far the outlier
    assert stats.iqm([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]) == 4.5  # 2 dropped at each end: mean of 3, 4, 5, 6
    assert stats.iqm([2.0, 4.0, 9.0]) == 5.0  # int(3 / 4) = 0: nothing dropped, the mean
    assert stats.iqm(values) == sps.trim_mean(values, 0.25)  # rliable's definition
    resamples = np.random.default_rng(0).normal(size=(50, 7))  # the bootstrap's vectorized call
    np.testing.assert_allclose(stats.iqm(resamples, axis=-1), sps.trim_mean(resamples, 0.25, axis=-1), rtol=1e-15)
    assert stats.iqm([math.nan, 1.0, 3.0]) == 2.0 and math.isnan(stats.iqm([]))


def test_the_iqm_interval_is_repeatable_holds_the_iqm_and_resists_an_outlier() -> None:
    values = np.random.default_rng(1).normal(0.9, 0.01, size=10)
    low, high = stats.iqm_interval(values)
    assert (low, high) == stats.iqm_interval(values)  # a fixed random seed
    assert low < stats.iqm(values) < high
    with_outlier = [*values[:-1], 0.1]  # a diverged seed: the mean drops by 0.08, the IQM by less than 0.005
    assert stats.mean(values) - stats.mean(with_outlier) > 0.07
    assert abs(stats.iqm(with_outlier) - stats.iqm(values)) < 0.005
    iqm_width = np.diff(stats.iqm_interval(with_outlier))[0]  # wide only when a resample draws it 3 times or more
    assert iqm_width < np.diff(stats.bootstrap_interval(with_outlier))[0]
    assert all(math.isnan(v) for v in stats.iqm_interval([0.9]))


def test_the_difference_interval_resamples_each_group_within_itself() -> None:
    """Stratified: a resample never mixes the groups, so two constant groups give the exact difference; resampling
    the pooled runs would put 0s and 1s on both sides and give an interval around less than 1."""
    assert stats.iqm_difference_interval([1.0] * 5, [0.0] * 4) == (1.0, 1.0)
    x = np.random.default_rng(2).normal(1.0, 0.1, size=10)
    low, high = stats.iqm_difference_interval(x, x - 0.5)
    assert low < 0.5 < high and (low, high) == stats.iqm_difference_interval(x, x - 0.5)


def test_describe_reports_the_iqm_and_its_interval() -> None:
    description = stats.describe([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0])
    assert description.iqm == 5.5
    assert description.iqm95_low <= 5.5 <= description.iqm95_high


# --- power: seeds per group for a difference ---------------------------------------------------------------
# Published values for the two-sided two-sample t-test at alpha 0.05 and 80% power, equal SDs (Cohen 1988, Table
# 2.4.1; G*Power 3, "t tests - means: difference between two independent means"): n = 64 per group for d = 0.5,
# 26 for d = 0.8, 17 for d = 1.0 (the normal approximation 2 (z_.975 + z_.8)^2 / d^2 says 16, the exact t 17);
# G*Power's "actual power" 0.8014596 at n = 64, d = 0.5, and 0.8074866 at n = 26, d = 0.8. One SD of 0: a one-sample
# t-test, n = 34 for d = 0.5 (G*Power).


@pytest.mark.parametrize(("d", "n"), [(0.5, 64), (0.8, 26), (1.0, 17), (2.0, 6)])
def test_seeds_for_power_match_the_published_sample_sizes(d: float, n: int) -> None:
    assert stats.seeds_for_power(d, 1.0, 1.0) == n
    assert stats.welch_power(d, 1.0, 1.0, n, n) >= 0.8 > stats.welch_power(d, 1.0, 1.0, n - 1, n - 1)
    assert stats.seeds_for_power(d * 0.01, 0.01, 0.01) == n  # in any units: 0.5 pp with SDs of 1 pp


def test_welch_power_matches_g_power() -> None:
    assert stats.welch_power(0.5, 1.0, 1.0, 64, 64) == pytest.approx(0.8014596, abs=1e-6)
    assert stats.welch_power(0.8, 1.0, 1.0, 26, 26) == pytest.approx(0.8074866, abs=1e-6)
    assert stats.welch_power(-0.5, 1.0, 1.0, 64, 64) == stats.welch_power(0.5, 1.0, 1.0, 64, 64)  # two-sided
    assert stats.welch_power(0.0, 1.0, 1.0, 10, 10) == pytest.approx(0.05)  # no difference: the test's level


def test_the_power_is_a_number_where_scipys_far_tail_is_not() -> None:
    """2 seeds a side (df 2): scipy's noncentral t gives NaN for the tail on the wrong side at noncentrality 8."""
    sd_x, sd_y = 0.009131199023582214, 0.009189867436709378  # a sweep's val losses that made the solver fail
    assert stats.welch_power(0.0733, sd_x, sd_y, 2, 2) == pytest.approx(0.958, abs=1e-3)
    assert stats.detectable_difference(sd_x, sd_y, 2, 2) == pytest.approx(0.0518, abs=1e-4)


def test_with_one_group_constant_welch_is_the_one_sample_test() -> None:
    assert stats.seeds_for_power(0.5, 1.0, 0.0) == 34
    assert stats.seeds_for_power(0.5, 0.0, 1.0) == 34


def test_the_detectable_difference_is_where_the_power_reaches_80_percent() -> None:
    detectable = stats.detectable_difference(1.0, 1.0, 17, 17)
    assert stats.welch_power(detectable, 1.0, 1.0, 17, 17) == pytest.approx(0.8, abs=1e-9)
    assert detectable < 1.0 < stats.detectable_difference(1.0, 1.0, 16, 16)  # the n = 17 of d = 1.0 above
    normal = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * math.sqrt(2 / 1000)  # the large-n limit: 0.1253
    assert stats.detectable_difference(1.0, 1.0, 1000, 1000) == pytest.approx(normal, rel=1e-3)
    assert math.isnan(stats.detectable_difference(1.0, 1.0, 1, 10))  # no test with one run
    assert math.isnan(stats.detectable_difference(0.0, 0.0, 10, 10))  # no spread: nothing to test against


def test_no_number_of_seeds_detects_nothing_or_a_negligible_difference() -> None:
    assert stats.seeds_for_power(0.0, 1.0, 1.0) is None
    assert stats.seeds_for_power(0.5, 0.0, 0.0) is None
    assert stats.seeds_for_power(math.nan, 1.0, 1.0) is None
    assert stats.seeds_for_power(1e-3, 1.0, 1.0) is None  # about 16 million per group: beyond MAX_SEEDS


def test_power_analysis_takes_the_observed_sds_for_the_true_ones() -> None:
    x, y = [0.93, 0.94, 0.92, 0.95], [0.90, 0.91, 0.92, 0.89]  # SDs equal: 0.0129; difference 0.03, d = 2.32
    result = stats.power_analysis(x, y, target=0.01)
    sd = stats.std(x)
    assert result.detectable == pytest.approx(stats.detectable_difference(sd, sd, 4, 4))
    assert result.seeds_observed == stats.seeds_for_power(0.03, sd, sd) == 5
    assert result.target == 0.01 and result.seeds_target == stats.seeds_for_power(0.01, sd, sd)
    assert math.isnan(stats.power_analysis(x, y).target) and stats.power_analysis(x, y).seeds_target is None
