"""Closed forms of BG/NBD, MBG/NBD and Gamma-Gamma against values worked out by other routes.

P(alive), the log-likelihood and the Gamma-Gamma spend are written out plainly from the published
formulas (Fader, Hardie & Lee 2005; Batislam et al. 2007; Fader & Hardie 2013), scalar by scalar.
The expected purchases, which the module computes with a Gauss hypergeometric function, are
computed here WITHOUT one: by integrating over the posterior of the dropout probability p, with the
purchase rate integrated out analytically (E[Y(t) | lambda, p, alive] = (1 - exp(-lambda p t)) / p).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.integrate import quad

from features.btyd import (
    BetaGeoParams,
    GammaGammaParams,
    bgnbd,
    clv,
    conditional_expected_value,
    expected_purchases,
    expected_purchases_new,
    gamma_gamma,
    p_alive,
    unit_discount_rate,
)

BG = BetaGeoParams(r=0.243, alpha=4.414, a=0.793, b=2.426)  # about CDNOW's fit, weeks
STRONG = BetaGeoParams(r=2.1, alpha=9.0, a=1.7, b=0.9)  # a > 1, b < 1: a different regime
GG = GammaGammaParams(p=6.25, q=3.74, v=15.44)
#: (x, t_x, T): no repeat purchase, two early-ish, one very early, many late
CUSTOMERS = [(0, 0.0, 38.86), (2, 30.43, 38.86), (1, 1.71, 38.86), (7, 29.43, 35.0)]
SHIFT = {"bgnbd": 0, "mbgnbd": 1}


def hand_p_alive(par: BetaGeoParams, model: str, x: int, tx: float, T: float) -> float:
    """FHL 2005 eq. (8): 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x)); MBG: b + x, always."""
    r, al, a, b = par.r, par.alpha, par.a, par.b
    if model == "bgnbd":
        return 1.0 / (1.0 + (x > 0) * a / (b + x - 1 if x > 0 else 1.0) * ((al + T) / (al + tx)) ** (r + x))
    return 1.0 / (1.0 + a / (b + x) * ((al + T) / (al + tx)) ** (r + x))


def hand_log_likelihood(par: BetaGeoParams, model: str, x: int, tx: float, T: float) -> float:
    """ln of A1 A2 (A3 + delta A4), FHL 2005 section 7 (MBG/NBD: B(a, b+x+1) and a / (b + x))."""
    r, al, a, b = par.r, par.alpha, par.a, par.b
    m = SHIFT[model]
    a1 = math.lgamma(r + x) - math.lgamma(r) + r * math.log(al)
    a2 = math.lgamma(a + b) + math.lgamma(b + x + m) - math.lgamma(b) - math.lgamma(a + b + x + m)
    a3 = (al + T) ** -(r + x)
    a4 = a / (b + x + m - 1) * (al + tx) ** -(r + x) if (x > 0 or m) else 0.0
    return a1 + a2 + math.log(a3 + a4)


def _beta_integral(f, par: BetaGeoParams) -> float:
    """integral over (0, 1) of f(p) p^(a-1) (1-p)^(b-1) dp (the Beta kernel handled by QUADPACK's QAWS)."""
    value, _ = quad(f, 0.0, 1.0, weight="alg", wvar=(par.a - 1, par.b - 1), epsabs=0.0, epsrel=1e-13, limit=500)
    return value


def _lost_over_p(k: float, c: float, p: float) -> float:
    """(1 - (1 + c p)^-k) / p, and its limit k c at p = 0 (QUADPACK evaluates the end points)."""
    return k * c if p == 0 else -math.expm1(-k * math.log1p(c * p)) / p


def posterior_expected_purchases(par: BetaGeoParams, model: str, t: float, x: int, tx: float, T: float) -> float:
    """E[Y(t) | x, t_x, T] = E[ alive-part of L * (1 - e^(-lambda p t)) / p ] / E[L] over the prior.

    Over lambda ~ Gamma(r, alpha): E[lambda^x e^(-lambda s)] is proportional to (alpha + s)^-(r+x)
    (the common factor cancels). Alive at T after x repeats: (1-p)^(x+m); dead: p (1-p)^(x+m-1).
    """
    r, al = par.r, par.alpha
    m = SHIFT[model]
    g = lambda s: (al + s) ** -(r + x)  # noqa: E731

    def alive_future(p: float) -> float:
        return (1 - p) ** (x + m) * g(T) * _lost_over_p(r + x, t / (al + T), p)

    def likelihood(p: float) -> float:
        dead = p * (1 - p) ** (x + m - 1) * g(tx) if (x > 0 or m) else 0.0
        return (1 - p) ** (x + m) * g(T) + dead

    return _beta_integral(alive_future, par) / _beta_integral(likelihood, par)


def prior_expected_purchases(par: BetaGeoParams, model: str, t: float) -> float:
    """E[X(t)] = E[(1-p)^m (1 - (alpha / (alpha + p t))^r) / p] over p ~ Beta(a, b)."""
    m = SHIFT[model]
    f = lambda p: (1 - p) ** m * _lost_over_p(par.r, t / par.alpha, p)  # noqa: E731
    return _beta_integral(f, par) / _beta_integral(lambda p: 1.0, par)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
@pytest.mark.parametrize("par", [BG, STRONG], ids=["cdnow-like", "a>1,b<1"])
def test_p_alive_and_log_likelihood_match_the_published_formulas(model, par):
    x, tx, T = (np.array(c) for c in zip(*CUSTOMERS, strict=True))
    want_alive = [hand_p_alive(par, model, *c) for c in CUSTOMERS]
    want_ll = [hand_log_likelihood(par, model, *c) for c in CUSTOMERS]
    np.testing.assert_allclose(p_alive(par, model, x, tx, T), want_alive, rtol=1e-12)
    np.testing.assert_allclose(bgnbd.log_likelihood_terms(par, model, x, tx, T), want_ll, rtol=1e-12)
    assert bgnbd.log_likelihood(par, model, x, tx, T, weights=[1, 2, 0, 1]) == pytest.approx(
        want_ll[0] + 2 * want_ll[1] + want_ll[3], rel=1e-12)
    if model == "bgnbd":
        assert p_alive(par, model, 0, 0.0, 38.86) == 1.0  # BG/NBD: no repeat purchase, no chance to drop out


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
@pytest.mark.parametrize("par", [BG, STRONG], ids=["cdnow-like", "a>1,b<1"])
@pytest.mark.parametrize("t", [1.0, 39.0, 520.0])
def test_expected_purchases_match_the_posterior_integral(model, par, t):
    x, tx, T = (np.array(c) for c in zip(*CUSTOMERS, strict=True))
    want = [posterior_expected_purchases(par, model, t, *c) for c in CUSTOMERS]
    np.testing.assert_allclose(expected_purchases(par, model, t, x, tx, T), want, rtol=1e-9)
    assert expected_purchases_new(par, model, t) == pytest.approx(prior_expected_purchases(par, model, t), rel=1e-9)


def test_expected_purchases_broadcast_horizons_against_customers():
    x, tx, T = (np.array(c) for c in zip(*CUSTOMERS, strict=True))
    grid = expected_purchases(BG, "bgnbd", np.array([[1.0], [10.0]]), x, tx, T)
    assert grid.shape == (2, len(CUSTOMERS))
    np.testing.assert_allclose(grid[1], expected_purchases(BG, "bgnbd", 10.0, x, tx, T), rtol=1e-14)
    assert np.all(grid[1] > grid[0])


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_large_frequency_and_age_stay_finite_without_warnings(model):
    x = np.array([0, 1, 60, 500, 3000, 3000])
    tx = np.array([0, 1e5, 199.0, 4999.0, 9.9e4, 10.0])
    T = np.array([1e5, 1e5, 200.0, 5000.0, 1e5, 1e5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alive = p_alive(BG, model, x, tx, T)
        horizons = [expected_purchases(BG, model, t, x, tx, T) for t in (1.0, 52.0, 1e4, 1e7)]
    assert np.all((alive >= 0) & (alive <= 1)) and alive[5] < 1e-100 < alive[4]
    for near, far in zip(horizons, horizons[1:]):
        assert np.all(np.isfinite(far)) and np.all(far >= near)
    want = posterior_expected_purchases(BG, model, 52.0, 60, 199.0, 200.0)  # the series-risky middle case
    assert horizons[1][2] == pytest.approx(want, rel=1e-8)


def test_gamma_gamma_expected_spend_is_the_credibility_weighted_mean():
    """Fader & Hardie (2013) eq. (5): w * mbar + (1 - w) * p v / (q - 1), w = p x / (p x + q - 1)."""
    cases = [(0, 0.0), (1, 11.77), (2, 22.35), (14, 80.0)]
    p, q, v = GG.p, GG.q, GG.v
    want = []
    for x, mbar in cases:
        w = p * x / (p * x + q - 1)
        want.append(w * mbar + (1 - w) * p * v / (q - 1))
    x, mbar = (np.array(c, dtype=float) for c in zip(*cases, strict=True))
    np.testing.assert_allclose(conditional_expected_value(GG, x, mbar), want, rtol=1e-12)
    assert conditional_expected_value(GammaGammaParams(2.0, 0.5, 1.0), [0], [0.0])[0] == np.inf  # q <= 1: no mean


def test_gamma_gamma_log_likelihood_matches_the_density():
    """ln f(mbar | x) = ln G(px+q) - ln G(px) - ln G(q) + q ln v + (px-1) ln mbar + px ln x - (px+q) ln(v + x mbar)."""
    p, q, v = GG.p, GG.q, GG.v
    x, m = 3, 27.5
    want = (math.lgamma(p * x + q) - math.lgamma(p * x) - math.lgamma(q) + q * math.log(v)
            + (p * x - 1) * math.log(m) + p * x * math.log(x) - (p * x + q) * math.log(v + x * m))
    assert gamma_gamma.log_likelihood(GG, [0, 3, 3], [0.0, 27.5, 27.5]) == pytest.approx(2 * want, rel=1e-12)
    assert gamma_gamma.log_likelihood(GG, [3, 0], [27.5, 5.0], weights=[4, 9]) == pytest.approx(4 * want, rel=1e-12)


def test_clv_discounts_each_period_purchases_at_the_per_unit_rate():
    x, tx, T, mbar = np.array([0.0, 2.0]), np.array([0.0, 30.43]), np.array([38.86, 38.86]), np.array([0.0, 22.35])
    d = 1.1 ** (7 / 365.25) - 1
    assert unit_discount_rate(0.1, "W") == pytest.approx(d, rel=1e-14)
    spend = conditional_expected_value(GG, x, mbar)
    ends = [1.0, 2.0, 3.0, 3.5]
    cumulative = [np.zeros(2)] + [expected_purchases(BG, "bgnbd", e, x, tx, T) for e in ends]
    want = sum((cumulative[i + 1] - cumulative[i]) / (1 + d) ** ends[i] for i in range(4)) * spend
    got = clv(BG, "bgnbd", GG, x, tx, T, mbar, horizon=3.5, annual_discount_rate=0.1, unit="W")
    np.testing.assert_allclose(got, want, rtol=1e-12)
    undiscounted = clv(BG, "bgnbd", GG, x, tx, T, mbar, horizon=3.5, annual_discount_rate=0.0, unit="W")
    np.testing.assert_allclose(undiscounted, cumulative[-1] * spend, rtol=1e-12)
    assert np.all(got < undiscounted)
    in_days = BetaGeoParams(BG.r, BG.alpha * 7, BG.a, BG.b)  # the same customers, time in days
    daily = clv(in_days, "bgnbd", GG, x, tx * 7, T * 7, mbar, horizon=3.5 * 7, annual_discount_rate=0.0, unit="D")
    np.testing.assert_allclose(daily, undiscounted, rtol=1e-12)
    with pytest.raises(ValueError, match="unit"):
        clv(BG, "bgnbd", GG, x, tx, T, mbar, horizon=4, annual_discount_rate=0.1, unit="M")
    with pytest.raises(ValueError, match="horizon"):
        clv(BG, "bgnbd", GG, x, tx, T, mbar, horizon=0, annual_discount_rate=0.1, unit="W")
