"""Maximum-likelihood fit of BG/NBD and MBG/NBD with an analytic gradient.

Speed comes from never touching a customer twice: identical (x, t_x, T) rows are merged with
weights, every term that depends on x alone (the gamma functions) is summed once per distinct x,
the T terms once per distinct T, and only the dropout log-odds z (see bgnbd.dead_log_odds) is
computed per row. Gradient of the log-likelihood, with s = expit(z) = P(dead | history):
    d/dr     = sum psi(r+x) - N psi(r) + N ln alpha - sum ln(alpha+T) + sum s [ln(alpha+T) - ln(alpha+t_x)]
    d/dalpha = N r/alpha - sum (r+x)/(alpha+T) + sum s (r+x) [1/(alpha+T) - 1/(alpha+t_x)]
    d/da     = N psi(a+b) - sum psi(a+b+x+m) + sum s / a
    d/db     = N psi(a+b) + sum psi(b+x+m) - N psi(b) - sum psi(a+b+x+m) - sum s / (b+x+m-1)
As lifetimes does, time is scaled by 1 / max(T) inside the fit and the penalty is
penalizer * (r^2 + (alpha/max T)^2 + a^2 + b^2) added to the MEAN negative log-likelihood, so a
`penalizer` means the same as lifetimes' `penalizer_coef` and does not depend on the time unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from features.btyd import bgnbd
from features.btyd._optimise import (
    FitOutcome,
    penalised_objective,
    NoRepeatPurchases,
    as_float,
    as_weights,
    compress,
    dot,
    softplus_and_sigmoid,
    minimise,
)
from features.btyd.bgnbd import BetaGeoParams, Model

NAMES = ("r", "alpha", "a", "b")


@dataclass(kw_only=True)
class BetaGeoFit(FitOutcome):
    params: BetaGeoParams
    model: Model



@dataclass(frozen=True)
class _Rows:
    """Compressed data in scaled time, grouped by distinct x and distinct T."""

    m: int
    n: float
    ux: np.ndarray
    wx: np.ndarray
    uT: np.ndarray
    wT: np.ndarray
    xwT: np.ndarray
    ut: np.ndarray
    xs: np.ndarray
    ixs: np.ndarray
    iTs: np.ndarray
    its: np.ndarray
    ws: np.ndarray


def _prepare(x: np.ndarray, tx: np.ndarray, big_t: np.ndarray, w: np.ndarray, m: int,
             groups: tuple[list[np.ndarray], list[np.ndarray]] | None = None) -> _Rows:
    """Group rows by x and by T; `groups` = (distinct values, codes) per column when already known."""
    (ux, ut, uT), (ix, it, iT) = groups or zip(*(np.unique(c, return_inverse=True) for c in (x, tx, big_t)),
                                              strict=True)
    wx = np.bincount(ix, w, minlength=ux.size)
    wT, xwT = np.bincount(iT, w, minlength=uT.size), np.bincount(iT, w * x, minlength=uT.size)
    rows = (x > 0) if m == 0 else np.ones(x.size, dtype=bool)
    return _Rows(m, float(w.sum()), ux, wx, uT, wT, xwT, ut, x[rows], ix[rows], iT[rows], it[rows], w[rows])


def _log_likelihood_and_gradient(params: np.ndarray, d: _Rows) -> tuple[float, np.ndarray]:
    r, al, a, b = params
    m, n, ux, wx = d.m, d.n, d.ux, d.wx
    lT, lt = np.log(al + d.uT), np.log(al + d.ut)
    inv_T, inv_t = 1.0 / (al + d.uT), 1.0 / (al + d.ut)
    with np.errstate(invalid="ignore", divide="ignore"):  # b + x - 1 at x = 0 is never used by BG/NBD
        bx = b + ux + m - 1
        log_bx = np.log(bx)
    gap = lT[d.iTs] - lt[d.its]
    z = np.log(a) - log_bx[d.ixs] + (r + d.xs) * gap
    softplus, sigmoid = softplus_and_sigmoid(z)
    s = d.ws * sigmoid
    s_by_x = np.bincount(d.ixs, s, minlength=ux.size)
    ll = (dot(wx, gammaln(r + ux) + gammaln(b + ux + m) - gammaln(a + b + ux + m))
          + n * (gammaln(a + b) - gammaln(r) - gammaln(b) + r * np.log(al))
          - dot(r * d.wT + d.xwT, lT) + dot(d.ws, softplus))
    psi_ab = digamma(a + b + ux + m)
    grad = np.array([
        dot(wx, digamma(r + ux)) - n * digamma(r) + n * np.log(al) - dot(d.wT, lT) + dot(s, gap),
        n * r / al - dot(r * d.wT + d.xwT, inv_T) + dot(s * (r + d.xs), inv_T[d.iTs] - inv_t[d.its]),
        n * digamma(a + b) - dot(wx, psi_ab) + s.sum() / a,
        n * (digamma(a + b) - digamma(b)) + dot(wx, digamma(b + ux + m) - psi_ab)
        - dot(s_by_x[s_by_x > 0], 1.0 / bx[s_by_x > 0]),
    ])
    return float(ll), grad


def check_customers(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> tuple[np.ndarray, ...]:
    """Validated float arrays; ValueError naming the field that is wrong."""
    x, tx, big_t = as_float("frequency", frequency), as_float("recency", recency), as_float("T", T)
    if not x.shape == tx.shape == big_t.shape:
        raise ValueError("frequency, recency and T must have the same length")
    problems = {"frequency": (x < 0) | (x != np.round(x)), "recency": (tx < 0) | (tx > big_t) | ((x == 0) & (tx > 0)),
                "T": big_t < 0}
    for name, bad in problems.items():
        if bad.any():
            raise ValueError(f"{name} is invalid for {int(bad.sum())} customers (negative, non-integer "
                             "frequency, recency > T, or recency > 0 without repeat purchases)")
    return x, tx, big_t


def fit_beta_geo(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, model: Model = "bgnbd",
                 penalizer: float = 0.0, weights: ArrayLike | None = None) -> BetaGeoFit:
    """Penalised MLE of (r, alpha, a, b); `weights` counts customers per row (default one each)."""
    m = bgnbd.shift(model)
    if penalizer < 0:
        raise ValueError(f"penalizer must be >= 0, got {penalizer}")
    x, tx, big_t = check_customers(frequency, recency, T)
    w = as_weights(weights, x.size)
    if not np.any((x > 0) & (w > 0)):
        raise NoRepeatPurchases(f"{model}: no customer has a repeat purchase; dropout cannot be estimated")
    rows = compress([x, tx, big_t], w)
    x, tx, big_t = rows.columns
    scale = 1.0 / big_t.max()
    uniques = [rows.uniques[0], rows.uniques[1] * scale, rows.uniques[2] * scale]
    data = _prepare(x, tx * scale, big_t * scale, rows.weights, m, (uniques, rows.codes))
    objective = penalised_objective(_log_likelihood_and_gradient, data, penalizer)
    best = minimise(objective, np.zeros(4), model, NAMES, data.n, np.array([1.0, 1.0 / scale, 1.0, 1.0]))
    params = BetaGeoParams(*(float(v) for v in best.natural))
    scaled_ll, _ = _log_likelihood_and_gradient(np.exp(best.theta), data)
    return BetaGeoFit(  # times scaled by s multiply the likelihood by s^-x: back to the caller's unit
        params=params, model=model, log_likelihood=scaled_ll + dot(rows.weights, x) * np.log(scale),
        n=int(round(data.n)), converged=True, iterations=best.iterations,
        std_errors=best.std_errors, message=best.message,
    )
