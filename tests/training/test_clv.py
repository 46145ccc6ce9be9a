"""The customer-lifetime family (issue 14): THE score, the naive baseline, selection of the Gamma-Gamma
penalizer, the split, bad data, and the model beating the baseline on the planted cohort."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.sources import load
from training.clv import ClvConfig, ClvFamily, ClvFeatures, NaiveRate, NoRepeatPurchases, score_clv
from training.config import load_job_config
from training.family import Evaluation, TrialResult
from tests.helpers import tiny_job

CFG = ClvConfig()


def summary(**columns) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    frame.index = pd.Index([f"c{i}" for i in range(len(frame))], name="customer_id")
    return frame


class Fixed:
    """A model that predicts fixed purchases per customer, to check the score's arithmetic."""

    def __init__(self, predicted: np.ndarray) -> None:
        self.predicted = predicted

    def expected_purchases(self, frequency, recency, T, t):
        return self.predicted * np.asarray(t) / np.asarray(t)

    def value(self, frequency, recency, T, monetary, horizon, discount_rate):
        n = len(frequency)
        return {"expected_purchases": self.predicted, "p_alive": np.full(n, 0.5), "expected_value": np.full(n, 10.0),
                "clv": np.full(n, 3.0)}


def test_score_is_the_mean_absolute_holdout_error_per_customer() -> None:
    table = summary(frequency=[0, 1, 3, 9], recency=[0.0, 4, 10, 30], T=[20.0, 20, 30, 40], monetary=[0.0, 5, 8, 12],
                    frequency_holdout=[0, 2, 1, 8], duration_holdout=[10.0] * 4, monetary_holdout=[0.0, 9, 11, 10])
    ev = score_clv(Fixed(np.array([0.5, 1.0, 1.0, 4.0])), ClvFeatures(table, "W"), CFG)
    assert isinstance(ev, Evaluation)
    assert ev.objective == pytest.approx((0.5 + 1 + 0 + 4) / 4)
    assert ev.metrics["holdout_rmse"] == pytest.approx(np.sqrt((0.25 + 1 + 0 + 16) / 4))
    assert ev.metrics["holdout_spend_mae"] == pytest.approx((1 + 1 + 0) / 3)  # customers who bought in the holdout
    assert list(ev.losses["customer_id"]) == ["c0", "c1", "c2", "c3"] and ev.losses["abs_error"].sum() == pytest.approx(5.5)
    assert list(ev.details["calibration_frequency"]) == ["0", "1", "3", "7+"]


def test_naive_baseline_is_calibration_rate_times_holdout_length() -> None:
    table = summary(frequency=[0, 2, 6], recency=[0.0, 8, 20], T=[10.0, 20, 30], monetary=[0.0, 4, 6])
    naive = NaiveRate("W", 52, 0.1, 520).fit(table)
    got = naive.expected_purchases(table["frequency"].to_numpy(), None, table["T"].to_numpy(), 15.0)
    np.testing.assert_allclose(got, [0.0, 2 / 20 * 15, 6 / 30 * 15])
    assert naive.value(table["frequency"].to_numpy(), None, table["T"].to_numpy(), table["monetary"].to_numpy(), 52, 0.1)[
        "expected_value"][0] == pytest.approx(5.0)  # the repeaters' mean spend for a customer without one


def test_gamma_gamma_penalizer_is_chosen_on_spend_error() -> None:
    trials = [
        TrialResult({"model": "bgnbd", "penalizer": 1e-3, "gg_penalizer": 0.01}, Evaluation(0.5, {"holdout_spend_mae": 9.0})),
        TrialResult({"model": "mbgnbd", "penalizer": 1e-4, "gg_penalizer": 0.05}, Evaluation(0.7, {"holdout_spend_mae": 2.0})),
    ]
    chosen = ClvFamily().select(trials, dict(trials[0].params), CFG)
    assert chosen == {"model": "bgnbd", "penalizer": 1e-3, "gg_penalizer": 0.05}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    job, cfg = load_job_config(tiny_job("clv", tmp_path_factory.mktemp("clv")))
    family = ClvFamily()
    loaded = load(job.data_path())
    return family, cfg, loaded, family.features(loaded, cfg)


def test_split_keeps_customers_apart_and_the_refit_sees_the_whole_history(planted) -> None:
    family, cfg, _, feats = planted
    split = family.split(feats, cfg)
    ids = [set(part.table.index) for part in (split.train, split.valid, split.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(map(len, ids)) == len(feats.table)
    assert split.train.full is None and split.train.fit_table() is split.train.table
    assert feats.fit_table() is feats.full and (feats.full["T"].max() > feats.table["T"].max())


def test_model_beats_the_naive_rate_on_the_planted_cohort(planted) -> None:
    family, cfg, _, feats = planted
    split = family.split(feats, cfg)
    params = family.initial_trials(cfg)[0]
    model = family.servable(family.fit(split.train, params, cfg), cfg)
    ours, naive = family.score(model, split.test, cfg), family.score(family.baseline(split.train, cfg), split.test, cfg)
    assert ours.objective < naive.objective and ours.metrics["holdout_rmse"] < naive.metrics["holdout_rmse"]
    assert family.evaluate(split.train, split.test, params, cfg).objective == pytest.approx(ours.objective)


def test_report_logs_the_parameters_under_their_own_names(planted) -> None:
    family, cfg, _, feats = planted
    fitted = family.fit(feats, family.initial_trials(cfg)[0], cfg)
    report = family.report(fitted, feats, cfg)
    assert {"r", "alpha", "a", "b", "p", "q", "v", "freq_spend_correlation"} <= set(report.metrics)
    assert set(report.figures) == {"calibration_holdout", "p_alive_matrix", "clv_by_segment"}
    assert report.tables["parameters"]["parameter"].tolist() == ["r", "alpha", "a", "b", "p", "q", "v"]
    assert len(report.tables["clv_comparison"]) == 3


def test_no_repeat_purchases_is_one_clear_error(planted, tmp_path: Path) -> None:
    family, cfg, loaded, _ = planted
    lines = loaded.lines
    first = lines.sort_values("order_date").drop_duplicates("customer_id")  # one purchase day per customer
    only_first = lines[lines["order_id"].isin(first["order_id"])]
    once = type(loaded)(only_first, loaded.quarantine, loaded.accounting, "one-purchase shop")
    with pytest.raises(NoRepeatPurchases, match="no customer made a repeat purchase"):
        family.features(once, cfg)


def test_the_planted_cohort_parameters_come_back_within_their_standard_errors() -> None:
    """The synthetic shop's BG/NBD + Gamma-Gamma cohort (features.synthetic): the family's own summaries of
    the cohort's order lines, fitted at penalizer 0, recover the planted parameters within 4 standard errors."""
    from features.btyd import fit_beta_geo, fit_gamma_gamma
    from features.btyd.summary import summarise
    from features.synthetic import generate

    data = generate(n_customers=50, weeks=104, seed=11, clv_customers=8000)
    truth = data.truth["clv"]
    cohort = data.lines[data.lines["customer_id"].astype(str).str.startswith(truth["customer_id_prefix"])]
    table = summarise(cohort, unit="W").table
    f, r, t, m = (table[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary"))
    purchases, spend = fit_beta_geo(f, r, t), fit_gamma_gamma(f, m)
    for fit, planted in ((purchases, truth["bgnbd"]), (spend, truth["gamma_gamma"])):
        got = asdict(fit.params)
        for name, value in planted.items():
            se = fit.std_errors[name]
            assert abs(got[name] - value) < 4 * se, f"{name}: fitted {got[name]:.4f}, planted {value}, se {se:.4f}"
