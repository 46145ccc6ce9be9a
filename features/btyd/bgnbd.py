"""BG/NBD and MBG/NBD closed forms: log-likelihood, P(alive), expected purchases.

BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way". A customer buys at
Poisson rate lambda ~ Gamma(r, alpha) while alive and may drop out after each REPEAT purchase with
probability p ~ Beta(a, b). MBG/NBD (Batislam, Denizel & Filiztekin 2007) lets the customer drop
out right after the first purchase too, so a customer who never came back can be "dead".

Both models differ by one shift `m` (0 for BG/NBD, 1 for MBG/NBD) in the Beta terms, so one set of
formulas serves both. Everything is computed in log space (softplus / expit of a log-odds `z`) so
that large frequency or T never overflow; the Gauss hypergeometric function of the conditional
expectation uses Euler's transformation, whose series converges where the textbook form blows up.
Times are in the caller's unit; alpha carries that unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, gammaln, hyp2f1

Model = Literal["bgnbd", "mbgnbd"]
MODELS: tuple[Model, ...] = ("bgnbd", "mbgnbd")


@dataclass(frozen=True)
class BetaGeoParams:
    """Purchase rate ~ Gamma(shape r, rate alpha [time unit]); dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


def shift(model: Model) -> int:
    """0 for BG/NBD, 1 for MBG/NBD (which may drop out at time 0 as well)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return 0 if model == "bgnbd" else 1


def _arrays(*values: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(v, dtype="float64") for v in values]


def dead_log_odds(params: BetaGeoParams, model: Model, frequency: ArrayLike, recency: ArrayLike,
                  T: ArrayLike) -> np.ndarray:
    """log of P(dropped out since t_x) / P(alive at T), given the history; -inf where it cannot have.

    z = ln a - ln(b + x + m - 1) + (r + x) [ln(alpha + T) - ln(alpha + t_x)]; under BG/NBD a
    customer without repeat purchases is alive (z = -inf).
    """
    x, tx, big_t = _arrays(frequency, recency, T)
    m = shift(model)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    can_die = (x > 0) | (m == 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.log(a) - np.log(b + x + m - 1)
             + (r + x) * (np.log(alpha + big_t) - np.log(alpha + tx)))
    return np.where(can_die, z, -np.inf)


def log_likelihood_terms(params: BetaGeoParams, model: Model, frequency: ArrayLike, recency: ArrayLike,
                         T: ArrayLike) -> np.ndarray:
    """Per-customer log-likelihood (FHL 2005 eq. 6; Batislam et al. 2007 for MBG/NBD)."""
    x, _, big_t = _arrays(frequency, recency, T)
    m = shift(model)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    base = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
            + gammaln(a + b) + gammaln(b + x + m) - gammaln(b) - gammaln(a + b + x + m)
            - (r + x) * np.log(alpha + big_t))
    return base + np.logaddexp(0.0, dead_log_odds(params, model, frequency, recency, T))


def log_likelihood(params: BetaGeoParams, model: Model, frequency: ArrayLike, recency: ArrayLike,
                   T: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Sum of the log-likelihood over customers (weights = how many customers share a row); no penalty."""
    terms = log_likelihood_terms(params, model, frequency, recency, T)
    if weights is None:
        return float(terms.sum())
    return float(np.dot(np.asarray(weights, dtype="float64"), terms))


def p_alive(params: BetaGeoParams, model: Model, frequency: ArrayLike, recency: ArrayLike,
            T: ArrayLike) -> np.ndarray:
    """P(still alive at T | x, t_x, T) = 1 / (1 + exp(z)), z the dropout log-odds."""
    return expit(-dead_log_odds(params, model, frequency, recency, T))


def _discounted_survivor(params: BetaGeoParams, m: int, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x+m; a+b+x+m-1; z), via Euler's transformation.

    (1-z)^(r+x) 2F1(A, B; C; z) = (1-z)^(a-1) 2F1(C-A, C-B; C; z) with C-A = a+b+m-1-r, C-B = a-1:
    that series converges at z -> 1 when the textbook one (C-A-B = a-1-r-x < 0) diverges. The
    textbook form stands in where the transformed one is not finite.
    """
    r, a, b = params.r, params.a, params.b
    c = a + b + x + m - 1
    with np.errstate(all="ignore"):
        euler = (1.0 - z) ** (a - 1.0) * hyp2f1(a + b + m - 1 - r, a - 1.0, c, z)
        plain = np.exp((r + x) * np.log1p(-z)) * hyp2f1(r + x, b + x + m, c, z)
    return np.where(np.isfinite(euler), euler, plain)


def expected_purchases(params: BetaGeoParams, model: Model, t: ArrayLike, frequency: ArrayLike,
                       recency: ArrayLike, T: ArrayLike) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected purchases in the next t units (FHL 2005 eq. 10).

    (a+b+x+m-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(...)] * P(alive). `t` broadcasts
    against the customers (a scalar, or e.g. shape (k, 1) for k horizons). Undefined at a == 1
    exactly (a removable singularity of the closed form).
    """
    x, _, big_t, tt = _arrays(frequency, recency, T, t)
    m = shift(model)
    a, b = params.a, params.b
    z = tt / (params.alpha + big_t + tt)
    bracket = 1.0 - _discounted_survivor(params, m, x, z)
    alive = p_alive(params, model, frequency, recency, T)
    return (a + b + x + m - 1) / (a - 1) * bracket * alive


def expected_purchases_new(params: BetaGeoParams, model: Model, t: ArrayLike) -> np.ndarray:
    """E[X(t)] for a customer just acquired: repeat purchases in (0, t] (FHL 2005 eq. 9).

    The conditional expectation at x = t_x = T = 0, where the MBG/NBD P(alive) b/(a+b) turns
    (a+b)/(a-1) into b/(a-1).
    """
    tt = np.asarray(t, dtype="float64")
    zero = np.zeros_like(tt)
    return expected_purchases(params, model, tt, zero, zero, zero)
