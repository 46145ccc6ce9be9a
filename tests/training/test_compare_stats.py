"""Paired tests: against independent loop implementations and hand computations, guards, seeds, coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from training.compare.stats import (
    diebold_mariano,
    mcnemar,
    paired_bootstrap,
    panel_diebold_mariano,
    replicate_difference,
)


def dm_by_hand(a: list[float], b: list[float], h: int) -> tuple[float, float, float, float]:
    """DM-HLN written out with plain loops: (statistic, p, ci_low, ci_high) at 95%."""
    n = len(a)
    d = [a[i] - b[i] for i in range(n)]
    mean = sum(d) / n
    lrv = 0.0
    for k in range(h):
        gamma = 0.0
        for t in range(k, n):
            gamma += (d[t] - mean) * (d[t - k] - mean)
        gamma /= n
        lrv += gamma if k == 0 else 2 * gamma
    dm = mean / math.sqrt(lrv / n)
    factor = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    stat = dm * factor
    p = 2 * (1 - stats.t.cdf(abs(stat), n - 1))
    half = stats.t.ppf(0.975, n - 1) * math.sqrt(lrv / n) / factor
    return stat, p, mean - half, mean + half


@pytest.mark.parametrize("h", [1, 3])
def test_diebold_mariano_equals_a_loop_implementation(h: int) -> None:
    rng = np.random.default_rng(7)
    a = rng.gamma(2.0, 1.0, 40)
    b = a + rng.normal(0.3, 1.0, 40)
    res = diebold_mariano(a, b, h=h)
    stat, p, low, high = dm_by_hand(a.tolist(), b.tolist(), h)
    assert res.test == "diebold-mariano-hln"
    assert res.n == 40
    assert res.statistic == pytest.approx(stat, abs=1e-9)
    assert res.p_value == pytest.approx(p, abs=1e-9)
    assert (res.ci_low, res.ci_high) == pytest.approx((low, high), abs=1e-9)
    assert res.difference == pytest.approx(float(np.mean(a - b)), abs=1e-12)
    assert res.difference < 0


def test_diebold_mariano_hand_worked_example() -> None:
    # d = (1, -1, 2, 0): mean 0.5, gamma0 = (0.25 + 2.25 + 2.25 + 0.25) / 4 = 1.25, h = 1:
    # DM = 0.5 / sqrt(1.25 / 4) = 0.894427..., HLN factor sqrt(3/4), statistic 0.774597 = sqrt(0.6)
    res = diebold_mariano([1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 0.0], h=1)
    assert res.statistic == pytest.approx(math.sqrt(0.6), abs=1e-12)
    assert res.p_value == pytest.approx(2 * stats.t.sf(math.sqrt(0.6), 3), abs=1e-12)


def test_diebold_mariano_identical_losses_and_fallback() -> None:
    a = np.linspace(0.0, 3.0, 25)
    same = diebold_mariano(a, a.copy(), h=2)
    assert (same.difference, same.p_value, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)
    # alternating d: the lag-1 autocovariance makes the long-run variance negative at h = 2
    d = np.array([1.0, -1.0] * 10) + 0.01
    res = diebold_mariano(d, np.zeros_like(d), h=2)
    assert "lag-0" in str(res.detail["variance"])
    assert res.ci_low < res.difference < res.ci_high
    with pytest.raises(ValueError, match="horizon"):
        diebold_mariano(a, a, h=25)


def test_panel_with_one_unit_per_series_is_dm_hln_h1() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.2, 1.0, 30)
    panel = panel_diebold_mariano(d, np.arange(30))
    dm = diebold_mariano(d, np.zeros(30), h=1)
    assert panel.statistic == pytest.approx(dm.statistic, abs=1e-12)
    assert panel.p_value == pytest.approx(dm.p_value, abs=1e-12)
    assert (panel.ci_low, panel.ci_high) == pytest.approx((dm.ci_low, dm.ci_high), abs=1e-12)


def test_panel_variance_is_clustered_by_series() -> None:
    """Correlated folds within a series widen the CI against treating every unit as independent."""
    rng = np.random.default_rng(5)
    series_effect = np.repeat(rng.normal(0.0, 1.0, 20), 3)
    d = series_effect + rng.normal(0.0, 0.1, 60)
    clustered = panel_diebold_mariano(d, np.repeat(np.arange(20), 3))
    independent = panel_diebold_mariano(d, np.arange(60))
    assert clustered.detail["clusters"] == 20 and clustered.detail["df"] == 19
    assert clustered.ci_high - clustered.ci_low > 1.5 * (independent.ci_high - independent.ci_low)
    # by hand: CR1 variance of the mean
    e = d - d.mean()
    sums = [sum(e[3 * g: 3 * g + 3]) for g in range(20)]
    var = 20 / 19 * sum(s * s for s in sums) / 60**2
    assert clustered.statistic == pytest.approx(d.mean() / math.sqrt(var), abs=1e-9)
    with pytest.raises(ValueError, match="2 series"):
        panel_diebold_mariano(d, np.zeros(60))


def test_mcnemar_equals_a_hand_computation() -> None:
    # table: both hit 10, only A 6, only B 1, neither 3 (n = 20)
    hit_a = [1] * 10 + [1] * 6 + [0] * 1 + [0] * 3
    hit_b = [1] * 10 + [0] * 6 + [1] * 1 + [0] * 3
    res = mcnemar(hit_a, hit_b)
    # exact binomial on 7 discordant pairs, 6 one way: P(X >= 6) + P(X <= 1) = (7 + 1 + 1 + 7) / 128
    assert res.p_value == pytest.approx(16 / 128, abs=1e-12)
    assert res.difference == pytest.approx(0.25, abs=1e-12)
    assert (res.detail["a_only"], res.detail["b_only"]) == (6, 1)
    # Newcombe method 10 by hand: Wilson intervals of 16/20 and 11/20, phi of the paired table
    z = 1.959963984540054

    def wilson(x: int, n: int) -> tuple[float, float]:
        c, half = (x + z * z / 2) / (n + z * z), z / (n + z * z) * math.sqrt(x * (n - x) / n + z * z / 4)
        return c - half, c + half

    (l1, u1), (l2, u2) = wilson(16, 20), wilson(11, 20)
    phi = (10 * 3 - 6 * 1) / math.sqrt(16 * 4 * 11 * 9)
    low = 0.25 - math.sqrt((0.8 - l1) ** 2 - 2 * phi * (0.8 - l1) * (u2 - 0.55) + (u2 - 0.55) ** 2)
    high = 0.25 + math.sqrt((u1 - 0.8) ** 2 - 2 * phi * (u1 - 0.8) * (0.55 - l2) + (0.55 - l2) ** 2)
    assert (res.ci_low, res.ci_high) == pytest.approx((low, high), abs=1e-9)


def test_mcnemar_identical_and_refuses_non_binary() -> None:
    hits = np.random.default_rng(1).integers(0, 2, 200)
    res = mcnemar(hits, hits.copy())
    assert res.difference == 0.0 and res.p_value == 1.0
    assert res.ci_low <= 0.0 <= res.ci_high and res.ci_high - res.ci_low < 0.05
    with pytest.raises(ValueError, match="0/1"):
        mcnemar([0, 2], [1, 0])


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(1.0, 1.0, 150), rng.normal(1.1, 1.0, 150)
    first, again = paired_bootstrap(a, b, seed=4), paired_bootstrap(a, b, seed=4)
    other = paired_bootstrap(a, b, seed=5)
    assert (first.ci_low, first.ci_high, first.p_value) == (again.ci_low, again.ci_high, again.p_value)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.difference == pytest.approx(float(a.mean() - b.mean()), abs=1e-12)
    # a statistic without `axis` takes the loop path and gives the same numbers
    loop = paired_bootstrap(a, b, statistic=lambda x: float(np.mean(x)), seed=4)
    assert (loop.ci_low, loop.ci_high) == pytest.approx((first.ci_low, first.ci_high), abs=1e-12)


def test_bootstrap_identical_and_clear_difference() -> None:
    a = np.random.default_rng(2).exponential(1.0, 300)
    same = paired_bootstrap(a, a.copy())
    assert (same.difference, same.p_value, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)
    better = paired_bootstrap(a, a * 1.3 + 0.05, seed=1)
    assert better.p_value < 0.01 and better.ci_high < 0


def test_replicate_difference() -> None:
    rng = np.random.default_rng(8)
    common = rng.normal(0.4, 0.05, 200)
    same = replicate_difference(common, common.copy())
    assert (same.difference, same.p_value, same.ci_low, same.ci_high) == (0.0, 1.0, 0.0, 0.0)
    a, b = common + rng.normal(0.02, 0.005, 200), common
    res = replicate_difference(a, b, difference=0.021)
    d = a - b
    assert res.difference == 0.021
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])), abs=1e-12)
    assert res.p_value == pytest.approx(2 / 201, abs=1e-15) and res.test == "bootstrap"  # no replicate <= 0
    mixed = replicate_difference(np.array([0.1, -0.2, 0.3, 0.4]), np.zeros(4))
    assert mixed.p_value == pytest.approx(2 * 2 / 5) and mixed.difference == pytest.approx(0.15)


def test_paired_bootstrap_ci_coverage_by_simulation() -> None:
    """95% percentile CI of a mean difference covers the truth in 93-97% of 1,000 seeded repeats."""
    true_diff, covered = 0.3, 0
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        common = rng.normal(0.0, 1.0, 200)
        a = common + rng.normal(true_diff, 1.0, 200)
        b = common + rng.normal(0.0, 1.0, 200)
        res = paired_bootstrap(a, b, n_resamples=500, seed=seed)
        covered += res.ci_low <= true_diff <= res.ci_high
    assert 930 <= covered <= 970


@pytest.mark.parametrize("h", [1, 3])
def test_diebold_mariano_ci_coverage_by_simulation(h: int) -> None:
    """h = 3: d is MA(2) (what 3-step-ahead errors are), so the lag-2 long-run variance is needed."""
    true_diff, covered, n = -0.2, 0, 200
    for seed in range(1000):
        eps = np.random.default_rng(seed).normal(0.0, 1.0, n + 2)
        d = eps[2:] + 0.6 * eps[1:-1] + 0.3 * eps[:-2] if h == 3 else eps[2:]
        res = diebold_mariano(d + true_diff, np.zeros(n), h=h)
        covered += res.ci_low <= true_diff <= res.ci_high
    assert 930 <= covered <= 970


def test_panel_ci_coverage_by_simulation() -> None:
    """30 series x 3 overlapping folds whose d's share a series effect: the clustered CI keeps its 95%."""
    true_diff, covered = 0.1, 0
    series = np.repeat(np.arange(30), 3)
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        shared = rng.normal(0.0, 1.0, (30, 4))
        d = (shared[:, :3] + shared[:, 1:]).ravel() / 2 + rng.normal(0.0, 0.5, (30, 1)).repeat(3) + true_diff
        res = panel_diebold_mariano(d, series)
        covered += res.ci_low <= true_diff <= res.ci_high
    assert 930 <= covered <= 970


def test_panel_weights_by_hand() -> None:
    d = np.array([0.5, 0.1, -0.2, 0.4, 0.3])
    clusters = np.array([0, 0, 1, 1, 2])
    w = np.array([0.5, 0.5, 0.5, 0.5, 1.0])
    res = panel_diebold_mariano(d, clusters, weights=w)
    mean = (0.25 + 0.05 - 0.1 + 0.2 + 0.3) / 3
    sums = [0.5 * (0.5 - mean) + 0.5 * (0.1 - mean), 0.5 * (-0.2 - mean) + 0.5 * (0.4 - mean), 0.3 - mean]
    var = 3 / 2 * sum(s * s for s in sums) / 9
    assert res.difference == pytest.approx(mean, abs=1e-12)
    assert res.statistic == pytest.approx(mean / math.sqrt(var), abs=1e-12)
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(mean / math.sqrt(var)), 2), abs=1e-12)
