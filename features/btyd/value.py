"""Customer lifetime value: BG/NBD expected purchases x Gamma-Gamma expected spend, discounted.

The horizon is cut into unit periods (days or weeks); the purchases expected in period i,
E[Y(i)] - E[Y(i-1)], are valued at the customer's expected spend and discounted at the end of the
period. The discount rate is given per year, as analysts quote it, and converted to the unit
compounding-equivalently: d_unit = (1 + annual) ** (unit_days / 365.25) - 1. (lifetimes steps in
30-unit "months" of whatever unit the data has; this does not.) A fractional horizon ends with a
shorter last period, discounted at the horizon itself.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from features.btyd.bgnbd import BetaGeoParams, Model, expected_purchases
from features.btyd.gamma_gamma import GammaGammaParams, conditional_expected_value

UNIT_DAYS = {"D": 1.0, "W": 7.0}


def unit_discount_rate(annual_discount_rate: float, unit: str) -> float:
    """The per-unit rate that compounds to `annual_discount_rate` over 365.25 days."""
    if unit not in UNIT_DAYS:
        raise ValueError(f"unit must be one of {sorted(UNIT_DAYS)}, got {unit!r}")
    if not annual_discount_rate > -1:
        raise ValueError(f"annual_discount_rate must be > -1, got {annual_discount_rate}")
    return float((1.0 + annual_discount_rate) ** (UNIT_DAYS[unit] / 365.25) - 1.0)


def period_ends(horizon: float) -> np.ndarray:
    """1, 2, ..., floor(horizon), then horizon itself when it is fractional."""
    if not np.isfinite(horizon) or horizon <= 0:
        raise ValueError(f"horizon must be a positive number of units, got {horizon}")
    ends = np.arange(1.0, np.floor(horizon) + 1.0)
    if horizon > (ends[-1] if ends.size else 0.0):
        ends = np.append(ends, horizon)
    return ends


BLOCK_CELLS = 2_000_000  # periods x customers evaluated at once: bounded memory for any batch


def clv(bg: BetaGeoParams, model: Model, gg: GammaGammaParams, frequency: ArrayLike, recency: ArrayLike,
        T: ArrayLike, monetary: ArrayLike, horizon: float, annual_discount_rate: float, unit: str) -> np.ndarray:
    """Discounted expected value of each customer's purchases over the next `horizon` units.

    All period ends are evaluated in one broadcast call per block of customers (a call per period cost
    ~30 us each: 1.6 ms for a 52-week horizon on one customer)."""
    d = unit_discount_rate(annual_discount_rate, unit)
    spend = conditional_expected_value(gg, frequency, monetary)
    f, r, t = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (frequency, recency, T)))
    ends = period_ends(horizon)[:, None]
    discount = (1.0 + d) ** -ends
    total = np.empty(f.shape)
    step = max(1, BLOCK_CELLS // len(ends))
    for lo in range(0, f.size, step):
        part = slice(lo, lo + step)
        upto = expected_purchases(bg, model, ends, f[part], r[part], t[part])
        total[part] = (np.diff(upto, axis=0, prepend=0.0) * discount).sum(axis=0)
    shape = np.broadcast(np.asarray(frequency), np.asarray(recency), np.asarray(T)).shape
    return (total * spend).reshape(shape) if shape else (total * spend)[0]
