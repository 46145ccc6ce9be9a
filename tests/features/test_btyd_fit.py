"""Maximum-likelihood fits of BG/NBD, MBG/NBD and Gamma-Gamma: gradients, compression, recovery, CDNOW."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad, minimize

from features.btyd import (
    BetaGeoParams,
    GammaGammaParams,
    NoRepeatPurchases,
    NotConverged,
    bgnbd,
    fit_beta_geo,
    fit_gamma_gamma,
    gamma_gamma,
)
from features.btyd import fit_bgnbd, fit_gg
from features.btyd._optimise import compress, penalised_objective
from tests.features.btyd_simulate import simulate
from tests.helpers import shared_dataset

TRUE_BG = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
TRUE_GG = {"p": 6.0, "q": 3.8, "v": 15.0}


def cohort(seed: int, model: str = "bgnbd", n: int = 4000, grain: float = 0.0) -> pd.DataFrame:
    return simulate(n, **TRUE_BG, **TRUE_GG, seed=seed, model=model, grain=grain)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_beta_geo_gradient_is_the_derivative_of_the_plain_likelihood(model):
    d = cohort(1, model, n=600)
    x, tx, T = d["frequency"].to_numpy(), d["recency"].to_numpy(), d["T"].to_numpy()
    data = fit_bgnbd._prepare(x, tx, T, np.ones(x.size), bgnbd.shift(model))
    objective = penalised_objective(fit_bgnbd._log_likelihood_and_gradient, data, penalizer=0.05)
    for theta in (np.log([0.3, 5.0, 0.7, 2.0]), np.log([2.0, 0.5, 3.0, 0.4])):
        value, grad = objective(theta)
        plain = bgnbd.log_likelihood(BetaGeoParams(*np.exp(theta)), model, x, tx, T)
        assert value == pytest.approx(-plain / x.size + 0.05 * np.sum(np.exp(2 * theta)), rel=1e-12)
        error = check_grad(lambda t: objective(t)[0], lambda t: objective(t)[1], theta)
        assert error < 1e-6 * max(1.0, np.linalg.norm(grad))


def test_gamma_gamma_gradient_is_the_derivative_of_the_plain_likelihood():
    d = cohort(2, n=600)
    rep = d[d["frequency"] > 0]
    x, m = rep["frequency"].to_numpy(), rep["monetary"].to_numpy()
    objective = penalised_objective(fit_gg._log_likelihood_and_gradient, fit_gg._prepare(x, m, np.ones(x.size)), penalizer=0.05)
    for theta in (np.log([6.0, 3.0, 15.0]), np.log([0.5, 9.0, 200.0])):
        value, grad = objective(theta)
        plain = gamma_gamma.log_likelihood(GammaGammaParams(*np.exp(theta)), x, m)
        assert value == pytest.approx(-plain / x.size + 0.05 * np.sum(np.exp(2 * theta)), rel=1e-12)
        error = check_grad(lambda t: objective(t)[0], lambda t: objective(t)[1], theta)
        assert error < 1e-6 * max(1.0, np.linalg.norm(grad))


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_penalizer_zero_is_the_plain_mle(model):
    """BFGS on finite differences of the plain, uncompressed log-likelihood lands on the same point."""
    d = cohort(3, model, n=1500)
    x, tx, T = d["frequency"].to_numpy(), d["recency"].to_numpy(), d["T"].to_numpy()
    fit = fit_beta_geo(x, tx, T, model)
    plain = lambda th: -bgnbd.log_likelihood(BetaGeoParams(*np.exp(th)), model, x, tx, T)  # noqa: E731
    nm = minimize(plain, np.log([1.0, 10.0, 1.0, 1.0]), method="BFGS", options={"gtol": 1e-7})
    ours = np.array(list(vars(fit.params).values()))
    np.testing.assert_allclose(ours, np.exp(nm.x), rtol=2e-4)
    assert fit.log_likelihood >= -nm.fun - 1e-7
    assert fit.log_likelihood == pytest.approx(-plain(np.log(ours)), rel=1e-12)
    penalised = fit_beta_geo(x, tx, T, model, penalizer=0.1)
    assert penalised.log_likelihood < fit.log_likelihood
    shrunk = np.array([penalised.params.r, penalised.params.alpha / T.max(), penalised.params.a, penalised.params.b])
    assert np.sum(shrunk**2) < np.sum((ours * [1, 1 / T.max(), 1, 1]) ** 2)


def test_gamma_gamma_penalizer_zero_is_the_plain_mle():
    d = cohort(4, n=3000)
    x, m = d["frequency"].to_numpy(), d["monetary"].to_numpy()
    fit = fit_gamma_gamma(x, m)
    plain = lambda th: -gamma_gamma.log_likelihood(GammaGammaParams(*np.exp(th)), x, m)  # noqa: E731
    nm = minimize(plain, np.log([1.0, 1.0, 10.0]), method="BFGS", options={"gtol": 1e-7})
    np.testing.assert_allclose(list(vars(fit.params).values()), np.exp(nm.x), rtol=2e-4)
    assert fit.log_likelihood >= -nm.fun - 1e-7
    assert fit_gamma_gamma(x, m, penalizer=0.1).log_likelihood < fit.log_likelihood


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_compressed_rows_with_weights_fit_like_the_raw_rows(model):
    d = cohort(5, model, n=3000, grain=1.0)  # whole units: many customers share a row
    x, tx, T = d["frequency"].to_numpy(), d["recency"].to_numpy(), d["T"].to_numpy()
    rows = compress([x, tx, T], np.ones(x.size))
    assert rows.weights.size < x.size / 2 and rows.weights.sum() == x.size
    raw = fit_beta_geo(x, tx, T, model)
    weighted = fit_beta_geo(*rows.columns, model, weights=rows.weights)
    np.testing.assert_allclose(list(vars(weighted.params).values()), list(vars(raw.params).values()), rtol=1e-6)
    assert weighted.log_likelihood == pytest.approx(bgnbd.log_likelihood(raw.params, model, x, tx, T), rel=1e-9)
    assert weighted.n == raw.n == x.size
    gg_rows = compress([x, np.round(d["monetary"].to_numpy())], np.ones(x.size))
    gg_raw = fit_gamma_gamma(x, np.round(d["monetary"].to_numpy()))
    gg_weighted = fit_gamma_gamma(*gg_rows.columns, weights=gg_rows.weights)
    np.testing.assert_allclose(list(vars(gg_weighted.params).values()), list(vars(gg_raw.params).values()), rtol=1e-6)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_planted_parameters_are_recovered_within_four_standard_errors(model, seed):
    d = cohort(seed, model, n=20000)
    fit = fit_beta_geo(d["frequency"], d["recency"], d["T"], model)
    for name, truth in TRUE_BG.items():
        assert abs(getattr(fit.params, name) - truth) < 4 * fit.std_errors[name], (name, fit)
        assert fit.std_errors[name] < 0.25 * truth  # the bound is informative, not a wide-open door
    gg = fit_gamma_gamma(d["frequency"], d["monetary"])
    for name, truth in TRUE_GG.items():
        assert abs(getattr(gg.params, name) - truth) < 4 * gg.std_errors[name], (name, gg)
    assert gg.n == int((d["frequency"] > 0).sum())
    assert abs(gg.correlation) < 0.05  # planted independent


def test_correlation_of_frequency_and_spend_is_reported():
    d = cohort(6, n=3000)
    x = d["frequency"].to_numpy()
    m = d["monetary"].to_numpy() * (1 + 0.2 * x)  # frequent buyers spend more: the model's assumption broken
    fit = fit_gamma_gamma(x, m)
    rep = x > 0
    assert fit.correlation == pytest.approx(np.corrcoef(x[rep], m[rep])[0, 1], rel=1e-12)
    assert fit.correlation > 0.3


def test_nobody_repeating_raises_no_repeat_purchases():
    with pytest.raises(NoRepeatPurchases, match="bgnbd"):
        fit_beta_geo([0, 0, 0], [0, 0, 0], [10, 20, 30])
    with pytest.raises(NoRepeatPurchases, match="gamma-gamma"):
        fit_gamma_gamma([0, 0], [0.0, 0.0])


def test_a_likelihood_without_a_maximum_raises_not_converged():
    """Every customer bought at the very end of the window: nobody ever drops out, a runs off to 0."""
    x = np.array([1, 2, 3, 4, 5, 2, 3, 1.0])
    T = np.array([10, 20, 30, 40, 50, 20, 30, 10.0])
    for model in ("bgnbd", "mbgnbd"):
        with pytest.raises(NotConverged, match=model):
            fit_beta_geo(x, T, T, model)
    # identical spend: q and p run off together; which symptom the optimiser meets first (a flat Hessian,
    # or a line search that gives up far out) depends on the machine's floating point
    with pytest.raises(NotConverged, match="gamma-gamma: .*(flat|the optimiser stopped)"):
        fit_gamma_gamma([1, 2, 3, 4], [10.0, 10.0, 10.0, 10.0])


@pytest.mark.parametrize(("frequency", "recency", "T", "field"), [
    ([1, 2], [5.0, 12.0], [10.0, 10.0], "recency"),
    ([0, 2], [3.0, 5.0], [10.0, 10.0], "recency"),
    ([1.5, 2], [5.0, 5.0], [10.0, 10.0], "frequency"),
    ([np.nan, 2], [5.0, 5.0], [10.0, 10.0], "frequency"),
    ([1, 2], [5.0, 5.0], [-1.0, 10.0], "T"),
])
def test_bad_customer_fields_are_named(frequency, recency, T, field):
    with pytest.raises(ValueError, match=field):
        fit_beta_geo(frequency, recency, T)


def test_gamma_gamma_refuses_non_positive_spend_of_repeaters():
    with pytest.raises(ValueError, match="monetary"):
        fit_gamma_gamma([1, 2, 0], [10.0, 0.0, 0.0])


# lifetimes 0.11.3 on ../shared/data/cdnow_lifetimes/cdnow_customers_summary_with_transactions.csv (weeks),
# produced with (from the repo root):
#   uv run --no-project --with lifetimes==0.11.3 --with 'pandas<3' --with 'numpy<2' --with 'scipy<1.14' \
#       python bench/_lifetimes_worker.py ../shared/data/cdnow_lifetimes/cdnow_customers_summary_with_transactions.csv \
#       OUT.json --penalizer P        (P = 0.0 and 0.01; resolved: numpy 1.26.4, scipy 1.13.1, pandas 2.3.3)
# Parameters are lifetimes' `params_` (alpha in weeks). The log-likelihood is the SUM over customers in
# WEEKS, by lifetimes' own `_negative_log_likelihood` at its fitted parameters with penalty 0 (times -n),
# not lifetimes' stored `_negative_log_likelihood_`, which is a mean on rescaled time (T / max T)
# plus the penalty (0.25027172880 for BG/NBD at P = 0). Gamma-Gamma: the 946 customers with x > 0.
LIFETIMES_CDNOW = {
    (0.0, "bgnbd"): ({"r": 0.2425929282798216, "alpha": 4.413532265271803, "a": 0.7928859664405851,
                      "b": 2.42575238262545}, -9582.425560567366),
    (0.0, "mbgnbd"): ({"r": 0.5248377255677019, "alpha": 6.182988479134203, "a": 0.8913562809310627,
                       "b": 1.614000025671838}, -9582.13268489992),
    (0.0, "gg"): ({"p": 6.248802496074264, "q": 3.744588460923312, "v": 15.447748064932831}, -4055.9232435028653),
    (0.01, "bgnbd"): ({"r": 0.242940342129809, "alpha": 4.432437170705417, "a": 0.2856415362766454,
                       "b": 0.6584536735406086}, -9596.285058041736),
    (0.01, "mbgnbd"): ({"r": 0.6152446923881224, "alpha": 6.738469208706334, "a": 0.49907925078318954,
                        "b": 0.6722762365250612}, -9591.749121608016),
    (0.01, "gg"): ({"p": 4.109250257153322, "q": 0.9683854158554005, "v": 3.780801423304109}, -4385.472478514054),
}


@pytest.mark.realdata
@pytest.mark.parametrize(("penalizer", "model"), list(LIFETIMES_CDNOW))
def test_cdnow_fit_agrees_with_lifetimes(penalizer, model):
    path = shared_dataset("cdnow_lifetimes") / "cdnow_customers_summary_with_transactions.csv"
    d = pd.read_csv(path)
    if model == "gg":
        fit = fit_gamma_gamma(d["x"], d["zbar"], penalizer=penalizer)
        assert fit.n == 946
    else:
        fit = fit_beta_geo(d["x"], d["t_x"], d["T"], model, penalizer=penalizer)
        assert fit.n == 2357
    params, log_likelihood = LIFETIMES_CDNOW[(penalizer, model)]
    for name, value in params.items():
        assert getattr(fit.params, name) == pytest.approx(value, rel=1e-3), name
    assert fit.log_likelihood == pytest.approx(log_likelihood, rel=1e-3)
    assert abs(fit.log_likelihood - log_likelihood) < 1e-3  # and to a thousandth of a log-likelihood unit
