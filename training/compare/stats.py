"""Paired significance tests for comparing two models on the same evaluation units: pure numpy/scipy.

Every test returns a `PairedResult` whose `difference` is score(A) - score(B) in the score's own
units (A minus B, always), with a (1 - alpha) confidence interval and a two-sided p-value for H0 "no
difference". Which test fits which family is decided in `training.compare.paired`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

_CHUNK = 4_000_000  # resampled values held in memory at once by the bootstrap


@dataclass(frozen=True)
class PairedResult:
    test: str  # "diebold-mariano-hln", "mcnemar", "paired-bootstrap", "bootstrap"
    difference: float  # estimate of score(A) - score(B) in the score's own units
    ci_low: float  # (1 - alpha) confidence interval of that difference
    ci_high: float
    p_value: float  # two-sided, H0: no difference
    n: int  # paired units used
    statistic: float | None = None
    detail: dict[str, float | int | str] = field(default_factory=dict)


def _paired(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values need two 1-d arrays of one length, got shapes {x.shape} and {y.shape}")
    if len(x) == 0:
        raise ValueError("no paired units to compare")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired values must be finite (drop undefined units before comparing)")
    return x, y


def _t_result(mean: float, var: float, n: int, df: int, alpha: float, detail: dict) -> PairedResult:
    """t-test of `mean` with variance-of-the-mean `var`; a zero variance is a sure (non-)difference."""
    if var <= 0.0:
        return PairedResult("diebold-mariano-hln", mean, mean, mean, 1.0 if mean == 0.0 else 0.0, n, None,
                            {**detail, "variance": "zero"})
    se = math.sqrt(var)
    stat = mean / se
    q = float(stats.t.ppf(1 - alpha / 2, df))
    p = float(2 * stats.t.sf(abs(stat), df))
    return PairedResult("diebold-mariano-hln", mean, mean - q * se, mean + q * se, p, n, stat, {**detail, "df": df})


def diebold_mariano(loss_a: np.ndarray | list[float], loss_b: np.ndarray | list[float], h: int = 1,
                    alpha: float = 0.05) -> PairedResult:
    """Diebold-Mariano (1995) test on d = loss_a - loss_b (time-ordered), with the HLN (1997) correction.

    Long-run variance: autocovariances up to lag h - 1, rectangular kernel; the statistic is scaled
    by sqrt((n + 1 - 2h + h(h-1)/n) / n) and read against Student t with n - 1 df. The CI of mean(d)
    uses the same variance, correction and quantile, so it excludes 0 exactly when p < alpha.
    Identical losses give difference 0, p = 1, CI [0, 0]; a non-positive long-run variance falls back
    to the lag-0 variance (detail["variance"] says so).
    """
    a, b = _paired(loss_a, loss_b)
    n = len(a)
    if h < 1 or h >= n:
        raise ValueError(f"the forecast horizon h must be in 1..{n - 1} for {n} paired losses, got {h}")
    d = a - b
    mean = float(d.mean())
    e = d - mean
    gamma = [float(e[k:] @ e[: n - k]) / n for k in range(h)]
    lrv = gamma[0] + 2.0 * sum(gamma[1:])
    detail: dict[str, float | int | str] = {"h": h, "variance": f"long-run, lags 0..{h - 1}"}
    if lrv <= 0.0 and gamma[0] > 0.0:
        lrv, detail["variance"] = gamma[0], "lag-0 fallback (long-run variance was not positive)"
    hln = (n + 1 - 2 * h + h * (h - 1) / n) / n
    return _t_result(mean, lrv / n / hln if lrv > 0 else 0.0, n, n - 1, alpha, detail)


def panel_diebold_mariano(d: np.ndarray | list[float], clusters: np.ndarray | list, alpha: float = 0.05,
                          weights: np.ndarray | list[float] | None = None) -> PairedResult:
    """DM-type test of the (weighted) mean of d over panel units (one (series, fold) each), clustered by series.

    Folds of one series overlap in time and share its dynamics, so their d's correlate in ways a fixed
    HAC lag may miss; a cluster-robust (CR1) variance by series allows any correlation within a series
    and none across series. G/(G-1) and Student t with G-1 df (G series) are the small-sample
    correction: with one unit per series and equal weights it is exactly DM-HLN with h = 1.
    `weights` (1 / folds of the unit's series) make the mean the difference of mean-over-series scores.
    """
    x, w = _paired(d, np.ones(len(np.asarray(d))) if weights is None else weights)
    labels = np.asarray(clusters)
    if labels.shape != x.shape:
        raise ValueError(f"one cluster label per unit is needed, got {labels.shape} for {x.shape}")
    if (w <= 0).any():
        raise ValueError("panel weights must be positive")
    _, group = np.unique(labels, return_inverse=True)
    g = int(group.max()) + 1
    if g < 2:
        raise ValueError("a panel comparison needs at least 2 series in common")
    total = float(w.sum())
    mean = float(w @ x) / total
    sums = np.bincount(group, weights=w * (x - mean), minlength=g)
    var = g / (g - 1) * float(sums @ sums) / total**2
    return _t_result(mean, var, len(x), g - 1, alpha, {"clusters": g, "variance": "cluster-robust by series (CR1)"})


def _wilson(x: int, n: int, z: float) -> tuple[float, float]:
    centre = (x + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(x * (n - x) / n + z * z / 4)
    return centre - half, centre + half


def mcnemar(hit_a: np.ndarray | list[int], hit_b: np.ndarray | list[int], alpha: float = 0.05) -> PairedResult:
    """Exact McNemar test on paired 0/1 outcomes, with Newcombe's (1998) method-10 CI of the difference.

    p-value: the exact two-sided binomial test (not mid-p) of the discordant pairs against 1/2.
    CI of mean(hit_a) - mean(hit_b): Wilson score intervals of both proportions combined with the
    phi correlation of the paired table (Newcombe's method 10, no continuity correction).
    """
    x, y = _paired(hit_a, hit_b)
    if not (np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all()):
        raise ValueError("McNemar needs 0/1 outcomes")
    n = len(x)
    both = int(np.sum((x == 1) & (y == 1)))
    only_a = int(np.sum((x == 1) & (y == 0)))
    only_b = int(np.sum((x == 0) & (y == 1)))
    neither = n - both - only_a - only_b
    discordant = only_a + only_b
    p = float(stats.binomtest(only_a, discordant, 0.5).pvalue) if discordant else 1.0
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    z = float(stats.norm.ppf(1 - alpha / 2))
    l1, u1 = _wilson(both + only_a, n, z)
    l2, u2 = _wilson(both + only_b, n, z)
    denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(denom) if denom else 0.0
    lower = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    upper = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    diff = p1 - p2
    detail: dict[str, float | int | str] = {"a_only": only_a, "b_only": only_b, "both": both, "neither": neither,
                                            "ci": "Newcombe method 10", "p": "exact binomial"}
    return PairedResult("mcnemar", diff, diff - math.sqrt(max(lower, 0.0)), diff + math.sqrt(max(upper, 0.0)),
                        min(p, 1.0), n, float(discordant and (only_a - only_b) ** 2 / discordant), detail)


def _two_sided_share(diffs: np.ndarray) -> float:
    """Two-sided p from R resampled differences: twice the smaller of (k + 1) / (R + 1), k the count at or
    below 0 and at or above 0, capped at 1. The +1 (Davison & Hinkley) keeps p >= 2 / (R + 1): 50
    replicates cannot show p < 0.04."""
    r = len(diffs)
    return float(min(1.0, 2 * (min(np.sum(diffs <= 0), np.sum(diffs >= 0)) + 1) / (r + 1)))


def _resampled(values: np.ndarray, idx: np.ndarray, statistic: Callable[..., float]) -> np.ndarray:
    """`statistic` of each row of resamples, vectorised when it takes `axis` (np.mean, np.median...)."""
    rows = values[idx]
    try:
        out = np.asarray(statistic(rows, axis=1), dtype=np.float64)
    except TypeError:
        out = np.array([statistic(r) for r in rows], dtype=np.float64)
    return out


def paired_bootstrap(a: np.ndarray | list[float], b: np.ndarray | list[float],
                     statistic: Callable[..., float] = np.mean, n_resamples: int = 2000, seed: int = 0,
                     alpha: float = 0.05) -> PairedResult:
    """Paired bootstrap of statistic(a) - statistic(b): unit indices resampled jointly (numpy default_rng(seed)).

    CI: percentile interval of the resampled differences. p-value (two-sided): twice the smaller share
    of resampled differences at or below 0 and at or above 0 (with +1 in both counts, see
    `_two_sided_share`), capped at 1: the percentile CI inverted; identical inputs give p = 1.
    """
    x, y = _paired(a, b)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    n = len(x)
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK // n)
    diffs = []
    for start in range(0, n_resamples, per_chunk):
        idx = rng.integers(0, n, size=(min(per_chunk, n_resamples - start), n))
        diffs.append(_resampled(x, idx, statistic) - _resampled(y, idx, statistic))
    d = np.concatenate(diffs)
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return PairedResult("paired-bootstrap", float(statistic(x) - statistic(y)), float(low), float(high),
                        _two_sided_share(d), n, None, {"resamples": n_resamples, "seed": seed, "ci": "percentile"})


def replicate_difference(reps_a: np.ndarray | list[float], reps_b: np.ndarray | list[float], alpha: float = 0.05,
                         difference: float | None = None) -> PairedResult:
    """Difference of scores known only as paired bootstrap replicates (replicate i of A and B: one resample).

    CI: percentiles of reps_a - reps_b; p (two-sided): twice the smaller share of those differences at
    or beyond 0 on either side (see `_two_sided_share`). `difference` is the full-sample point estimate when given, else the
    replicates' mean difference.
    """
    x, y = _paired(reps_a, reps_b)
    d = x - y
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    point = float(d.mean()) if difference is None else float(difference)
    return PairedResult("bootstrap", point, float(low), float(high), _two_sided_share(d), len(d), None,
                        {"replicates": len(d), "ci": "percentile"})
