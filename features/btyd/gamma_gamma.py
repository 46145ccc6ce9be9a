"""Gamma-Gamma spend model (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value").

A customer's transaction values are Gamma(p, nu) with nu ~ Gamma(q, v) across customers, so the
mean of x repeat transactions, mbar, has a closed-form marginal density and the posterior mean
spend is a weighted average of the population mean p v / (q - 1) and the customer's own mbar. Only
customers with repeat purchases (x > 0) carry information; the model assumes spend is independent
of purchase frequency (check the correlation the fit reports).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln


@dataclass(frozen=True)
class GammaGammaParams:
    """Transaction value shape p; its rate nu ~ Gamma(shape q, rate v [currency])."""

    p: float
    q: float
    v: float


def log_likelihood_terms(params: GammaGammaParams, frequency: ArrayLike, monetary: ArrayLike) -> np.ndarray:
    """Per-customer log density of mbar given x (customers with x > 0 only; others make NaN)."""
    x = np.asarray(frequency, dtype="float64")
    mbar = np.asarray(monetary, dtype="float64")
    p, q, v = params.p, params.q, params.v
    px = p * x
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
                 + (px - 1) * np.log(mbar) + px * np.log(x) - (px + q) * np.log(x * mbar + v))
    return np.where(x > 0, terms, np.nan)


def log_likelihood(params: GammaGammaParams, frequency: ArrayLike, monetary: ArrayLike,
                   weights: ArrayLike | None = None) -> float:
    """Sum of the log-likelihood over customers with frequency > 0 (others ignored); no penalty."""
    x = np.asarray(frequency, dtype="float64")
    keep = x > 0
    terms = log_likelihood_terms(params, x[keep], np.asarray(monetary, dtype="float64")[keep])
    if weights is None:
        return float(terms.sum())
    return float(np.dot(np.asarray(weights, dtype="float64")[keep], terms))


def population_mean(params: GammaGammaParams) -> float:
    """E[transaction value] of a customer about whom nothing is known: p v / (q - 1); inf if q <= 1."""
    return params.p * params.v / (params.q - 1) if params.q > 1 else float("inf")


def conditional_expected_value(params: GammaGammaParams, frequency: ArrayLike, monetary: ArrayLike) -> np.ndarray:
    """E[transaction value | x, mbar] = p (v + x mbar) / (p x + q - 1); the population mean where x = 0."""
    x = np.asarray(frequency, dtype="float64")
    mbar = np.where(x > 0, np.asarray(monetary, dtype="float64"), 0.0)
    p, q, v = params.p, params.q, params.v
    with np.errstate(divide="ignore", invalid="ignore"):
        value = p * (v + x * mbar) / (p * x + q - 1)
    return np.where((x == 0) & (q <= 1), np.inf, value)
