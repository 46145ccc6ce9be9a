"""Seeded customer summaries drawn exactly from BG/NBD / MBG/NBD with Gamma-Gamma spend (tests, bench/clv.py).

Straight to (frequency, recency, T, monetary), without order lines, so a million customers take a
second: N ~ Poisson(lambda T) arrivals had the customer lived; it lives for J repeat purchases
(BG/NBD: J ~ Geometric(p) >= 1, it drops out right after the J-th; MBG/NBD: J - 1, it may drop out
at time 0); x = min(N, J), and the x-th of N uniform arrival times is T * Beta(x, N - x + 1). The mean
of x Gamma(p, nu) spends is Gamma(p x, rate x nu), nu ~ Gamma(q, rate v). `grain` rounds recency
and T down to a grid (e.g. 1/7 week = a day), as summaries from dated orders are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate(n: int, r: float, alpha: float, a: float, b: float, p: float, q: float, v: float,
             seed: int, model: str = "bgnbd", t_max: float = 52.0, t_min: float = 26.0,
             grain: float = 0.0) -> pd.DataFrame:
    """n customers observed for T ~ U(t_min, t_max) units after their first purchase."""
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(t_min, t_max, n)
    rate = rng.gamma(r, 1.0 / alpha, n)
    dropout = np.clip(rng.beta(a, b, n), 1e-300, 1.0)
    lives = rng.geometric(dropout) - (1 if model == "mbgnbd" else 0)
    drawn = rng.poisson(rate * big_t)
    x = np.minimum(drawn, lives)
    last = rng.beta(np.maximum(x, 1), np.maximum(drawn - x + 1, 1))
    recency = np.where(x > 0, big_t * last, 0.0)
    nu = rng.gamma(q, 1.0 / v, n)
    monetary = np.where(x > 0, rng.gamma(p * np.maximum(x, 1)) / (np.maximum(x, 1) * nu), 0.0)
    if grain > 0:
        big_t, recency = np.floor(big_t / grain) * grain, np.floor(recency / grain) * grain
    return pd.DataFrame({"frequency": x.astype("float64"), "recency": recency, "T": big_t, "monetary": monetary})
