"""Maximum-likelihood fit of the Gamma-Gamma spend model with an analytic gradient.

Per customer (x repeat purchases, mean spend m):
    l = lnG(px+q) - lnG(px) - lnG(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(xm+v)
    dl/dp = x [psi(px+q) - psi(px) + ln m + ln x - ln(xm+v)]
    dl/dq = psi(px+q) - psi(q) + ln v - ln(xm+v)
    dl/dv = q/v - (px+q)/(xm+v)
The gamma and digamma terms depend on x alone and are summed once per distinct x, so a row costs
one log and one division. Penalty as lifetimes' GammaGammaFitter: penalizer * (p^2 + q^2 + v^2)
on the mean negative log-likelihood (v is in currency units, so a penalizer's strength depends on
the currency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from features.btyd._optimise import (
    FitOutcome,
    Compressed,
    NoRepeatPurchases,
    as_float,
    as_weights,
    compress,
    dot,
    minimise,
    penalised_objective,
    weighted_correlation,
)
from features.btyd.gamma_gamma import GammaGammaParams

NAMES = ("p", "q", "v")


@dataclass(kw_only=True)
class GammaGammaFit(FitOutcome):
    params: GammaGammaParams
    correlation: float = float("nan")



@dataclass(frozen=True)
class _Rows:
    n: float
    ux: np.ndarray
    wx: np.ndarray
    x: np.ndarray
    xm: np.ndarray
    w: np.ndarray
    sum_wx_log_m: float
    sum_w_log_m: float


def _prepare(x: np.ndarray, mbar: np.ndarray, w: np.ndarray,
             x_groups: tuple[np.ndarray, np.ndarray] | None = None) -> _Rows:
    """Group rows by x; `x_groups` = (distinct x, each row's code) when already known."""
    ux, ix = x_groups or np.unique(x, return_inverse=True)
    log_m = np.log(mbar)
    return _Rows(float(w.sum()), ux, np.bincount(ix, w, minlength=ux.size), x, x * mbar, w,
                 dot(w, x * log_m), dot(w, log_m))


def _log_likelihood_and_gradient(params: np.ndarray, d: _Rows) -> tuple[float, np.ndarray]:
    p, q, v = params
    px, log_x = p * d.ux, np.log(d.ux)
    lv = np.log(d.xm + v)
    pxq_rows = p * d.x + q
    psi_pxq = digamma(px + q)
    ll = (dot(d.wx, gammaln(px + q) - gammaln(px) + px * log_x)
          + d.n * (q * np.log(v) - gammaln(q)) + p * d.sum_wx_log_m - d.sum_w_log_m
          - dot(d.w, pxq_rows * lv))
    grad = np.array([
        dot(d.wx, d.ux * (psi_pxq - digamma(px) + log_x)) + d.sum_wx_log_m - dot(d.w * d.x, lv),
        dot(d.wx, psi_pxq) - d.n * digamma(q) + d.n * np.log(v) - dot(d.w, lv),
        d.n * q / v - dot(d.w, pxq_rows / (d.xm + v)),
    ])
    return float(ll), grad


def fit_gamma_gamma(frequency: ArrayLike, monetary: ArrayLike, penalizer: float = 0.0,
                    weights: ArrayLike | None = None) -> GammaGammaFit:
    """Penalised MLE of (p, q, v) on the customers with frequency > 0 (the others are ignored)."""
    if penalizer < 0:
        raise ValueError(f"penalizer must be >= 0, got {penalizer}")
    x, mbar = as_float("frequency", frequency), as_float("monetary", monetary)
    if x.shape != mbar.shape:
        raise ValueError("frequency and monetary must have the same length")
    w = as_weights(weights, x.size)
    if np.any((x < 0) | (x != np.round(x))):
        raise ValueError("frequency must be a non-negative integer")
    keep = (x > 0) & (w > 0)
    if not keep.any():
        raise NoRepeatPurchases("gamma-gamma: no customer has a repeat purchase; spend per order cannot be estimated")
    if np.any(mbar[keep] <= 0):
        raise ValueError(f"monetary must be > 0 for customers with repeat purchases "
                         f"({int((mbar[keep] <= 0).sum())} are not)")
    xk, mk, wk = x[keep], mbar[keep], w[keep]
    if pd.unique(mk[:: max(1, mk.size // 2000)]).size > 0.8 * min(mk.size, 2000):
        # spend barely repeats (a sample of 2000 says so): merging rows would cost more than it saves
        codes, ux = pd.factorize(xk)
        rows = Compressed([xk, mk], wk, [np.asarray(ux)], [codes])
    else:
        rows = compress([xk, mk], wk)
    data = _prepare(*rows.columns, rows.weights, (rows.uniques[0], rows.codes[0]))
    objective = penalised_objective(_log_likelihood_and_gradient, data, penalizer)
    theta0 = np.array([0.0, np.log(2.0), np.log(np.average(rows.columns[1], weights=rows.weights))])
    best = minimise(objective, theta0, "gamma-gamma", NAMES, data.n, np.ones(3))
    params = GammaGammaParams(*(float(v) for v in best.natural))
    return GammaGammaFit(
        params=params,
        log_likelihood=_log_likelihood_and_gradient(np.exp(best.theta), data)[0],
        n=int(round(data.n)), converged=True, iterations=best.iterations,
        std_errors=best.std_errors, message=best.message,
        correlation=weighted_correlation(rows.columns[0], rows.columns[1], rows.weights),
    )
