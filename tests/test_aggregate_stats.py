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
