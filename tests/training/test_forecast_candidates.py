"""ETS and Theta candidates, combinations of a series' best trials, and the noise-aware per-series selection."""

from __future__ import annotations

import logging
import pickle

import cloudpickle
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from features.series import SeriesSet
from serving.models.forecaster import ForecastModel
from serving.models.series_model import NAIVE_METHODS
from tests.helpers import REPO
from training.family import TrialResult
from training.forecast import Context, ForecastConfig, ForecasterFamily, Spec, best_per_series, fit_series
from training.forecast.selection import fold_mase

FAMILY = ForecasterFamily()
LEVELS = [80, 95]


def monthly(n: int = 72, seed: int = 3) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Monthly sales with a yearly season, a trend and noise: positive, so every ETS variant applies."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 200 + 2 * t + 40 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 8, n)
    return y, pd.date_range("2018-01-01", periods=n, freq="MS")


CTX = Context("M", 12)
SPECS = [
    {"method": "ets", "error": "add", "ets_trend": "add", "damped": True, "ets_season": "add"},
    {"method": "ets", "error": "mul", "ets_trend": "n", "ets_season": "mul"},  # simulated variance: seeded
    {"method": "theta", "deseasonalize": True},
    {"method": "theta", "deseasonalize": False},
    {"method": "combo", "members": [{"method": "ets", "ets_trend": "add"}, {"method": "theta", "deseasonalize": True},
                                    {"method": "sarimax", "p": 0, "d": 1, "q": 1, "fourier": 2}]},
]


@pytest.mark.parametrize("params", SPECS, ids=lambda p: Spec.from_params(p).label())
def test_ets_theta_and_combination_forecast_the_same_in_training_and_in_the_served_model(params):
    y, ds = monthly()
    spec = Spec.from_params(params)
    model = fit_series("s", y, ds, None, spec, CTX)
    assert model.method == params["method"] and model.reason == spec.label()
    assert Spec.from_params(model.recipe) == spec and Spec.from_params(spec.as_params()) == spec
    trained = model.forecast(8, LEVELS)  # what a backtest scores
    assert np.all(trained["lo_95"] < trained["lo_80"]) and np.all(trained["lo_80"] < trained["yhat"])
    assert np.all(trained["yhat"] < trained["hi_80"]) and np.all(trained["hi_80"] < trained["hi_95"])
    served = pickle.loads(cloudpickle.dumps(ForecastModel({"s": model}, "M", 12, LEVELS)))
    out = served.predict(None, pd.DataFrame({"series_id": ["s"], "horizon": [8]}))
    assert out["model"].eq(params["method"]).all()
    for column in ["yhat", "lo_80", "hi_80", "lo_95", "hi_95"]:
        np.testing.assert_array_equal(out[column].to_numpy(), trained[column].to_numpy())
    again = served.forecast("s", 3, [50])  # another level and a shorter horizon: the same path, sliced
    np.testing.assert_array_equal(again.mean, trained["yhat"].to_numpy()[:3])


def test_a_combinations_forecast_is_the_mean_of_its_members():
    y, ds = monthly()
    spec = Spec.from_params(SPECS[-1])
    combo = fit_series("s", y, ds, None, spec, CTX).forecast(6, LEVELS)
    members = [fit_series("s", y, ds, None, m, CTX).forecast(6, LEVELS) for m in spec.members]
    for column in ["yhat", "lo_80", "hi_80", "lo_95", "hi_95"]:
        np.testing.assert_allclose(combo[column], np.mean([m[column] for m in members], axis=0), rtol=1e-12)
    assert not np.allclose(members[0]["yhat"], members[1]["yhat"])  # a mean of different forecasts


def test_history_adapts_ets_and_theta_and_a_series_too_short_skips_the_candidate_with_the_reason():
    y, ds = monthly(20)
    ets = fit_series("s", y, ds, None, Spec.from_params(SPECS[0]), CTX)  # 20 months < 2 seasons: no ETS season
    assert ets.method == "ets" and ets.params["ets_season"] == "n" and "ETS season dropped" in ets.reason
    theta = fit_series("s", y, ds, None, Spec.from_params(SPECS[2]), CTX)
    assert theta.params["deseasonalize"] is False and "not deseasonalised" in theta.reason
    signed = y - 250  # values <= 0: multiplicative terms become additive
    mul = fit_series("s", signed, ds, None, Spec.from_params({"method": "ets", "error": "mul"}), CTX)
    assert mul.params["error"] == "add" and "made additive" in mul.reason
    short = fit_series("s", y[:10], ds[:10], None, Spec.from_params(SPECS[0]), CTX)
    assert short.method in NAIVE_METHODS and "too short for ETS(A,Ad,N)" in short.reason
    combo = fit_series("s", y[:10], ds[:10], None, Spec.from_params(SPECS[-1]), CTX)  # members fall back, the job goes on
    assert combo.method == "combo" and "member fell back" in combo.reason


def test_the_search_covers_the_model_types_and_their_settings_and_methods_restricts_it():
    config = ForecastConfig(series={"freq": "M"}, max_workers=1)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sampled = [FAMILY.search_space(study.ask(), config) for _ in range(60)]
    assert {p["method"] for p in sampled} == {"sarimax", "ets", "theta"}
    ets = [p for p in sampled if p["method"] == "ets"]
    assert {p["error"] for p in ets} == {"add", "mul"} and {p["ets_season"] for p in ets} == {"n", "add", "mul"}
    assert {p["damped"] for p in ets if p["ets_trend"] == "add"} == {False, True}
    assert {p["deseasonalize"] for p in sampled if p["method"] == "theta"} == {False, True}
    assert all(Spec.from_params(p).method == p["method"] for p in sampled)
    seeds = FAMILY.initial_trials(config)
    assert [p["method"] for p in seeds[:3]] == ["sarimax", "ets", "theta"]  # a short study tries every type
    only = config.model_copy(update={"methods": ["ets", "theta"]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))  # a study has one search space
    assert {FAMILY.search_space(study.ask(), only)["method"] for _ in range(20)} == {"ets", "theta"}
    assert {p["method"] for p in FAMILY.initial_trials(only)} == {"ets", "theta"}
    old = config.model_copy(update={"methods": ["sarimax"]})  # the search space before model types existed
    study = optuna.create_study()
    assert "method" not in FAMILY.search_space(study.ask(), old) and all("method" not in p for p in FAMILY.initial_trials(old))


def trial(uid_errors: dict[str, list[list[float]]], yhat_shift: float = 0.0) -> pd.DataFrame:
    """Per-step losses: for each series, folds of absolute errors (actual 100, scale 1, forecast below or above)."""
    rows = []
    for uid, folds in uid_errors.items():
        for fold, errors in enumerate(folds):
            for step, err in enumerate(errors, start=1):
                rows.append({"series_id": uid, "fold": fold, "step": step, "ds": pd.Timestamp("2020-01-06"),
                             "actual": 100.0, "yhat": 100.0 + err + yhat_shift, "abs_error": abs(err + yhat_shift), "scale": 1.0})
    return pd.DataFrame(rows)


def details_of(losses: pd.DataFrame, snaive: float) -> pd.DataFrame:
    mase = {uid: float(np.mean(fold_mase(g))) for uid, g in losses.groupby("series_id", sort=False)}
    return pd.DataFrame({"unique_id": list(mase), "mase": list(mase.values()), "snaive_mase": snaive})


def test_selection_prefers_the_combination_within_noise_and_a_clearly_better_single_model_otherwise(caplog):
    a, b = {"method": "ets", "error": "add", "ets_trend": "n", "ets_season": "n"}, {"method": "theta", "deseasonalize": False}
    # x: b is a little worse than a (13% in the mean of both): within noise
    # y: a is far better than b on every fold: the mean cannot reach it
    la = trial({"x": [[1, 1], [1, 1], [1, 1]], "y": [[1, 1], [1, 1], [1, 1]]})
    lb = trial({"x": [[1.3, 1.3], [1.3, 1.3], [1.3, 1.3]], "y": [[20, 20], [20, 20], [20, 20]]})
    trials = [TrialResult(a, _ev(la)), TrialResult(b, _ev(lb))]
    config = ForecastConfig(series={"freq": "M"}, max_workers=1)
    with caplog.at_level(logging.INFO, logger="training.forecast.family"):
        chosen = FAMILY.select(trials, a, config)["per_series"]
    x, y = chosen["x"], chosen["y"]
    assert x["method"] == "combo" and x["members"] == [a, b] and "within noise" in x["note"]
    assert y == {**a, "note": y["note"]} and "clearly better than the best combination" in y["note"]
    assert "series x: mean of [ETS(A,N,N) + Theta]" in caplog.text and "series y: ETS(A,N,N)" in caplog.text
    assert "backtest MASE 1.150" in x["note"]  # the mean forecast's error: (1 + 1.3) / 2 at every step
    # a single model better by more than the margin but not on every fold is still within noise
    lc = trial({"x": [[0.5, 0.5], [0.5, 0.5], [2, 2]], "y": [[1, 1], [1, 1], [1, 1]]})
    ld = trial({"x": [[2, 2], [2, 2], [1, 1]], "y": [[20, 20], [20, 20], [20, 20]]})  # mean with c: 1.333
    mixed = best_per_series([(a, details_of(lc, 9.0)), (b, details_of(ld, 9.0))], trial_losses=[lc, ld])
    assert mixed["x"]["method"] == "combo" and mixed["y"]["method"] == "ets"
    # without losses (e.g. trials read back from storage) no combination exists: the single-model rule
    assert best_per_series([(a, details_of(la, 9.0)), (b, details_of(lb, 9.0))])["x"]["method"] == "ets"


def _ev(losses: pd.DataFrame):
    from training.family import Evaluation

    details = details_of(losses, 9.0)
    return Evaluation(objective=float(details["mase"].mean()), metrics={}, details=details, losses=losses)


def test_seasonal_naive_replaces_a_combination_only_when_clearly_better():
    a, b = {"method": "ets"}, {"method": "theta"}
    la, lb = trial({"x": [[4, 4], [5, 5]]}), trial({"x": [[-6, -6], [-7, -7]]})  # combination MASE 1.0
    near = best_per_series([(a, details_of(la, 0.9)), (b, details_of(lb, 0.9))], trial_losses=[la, lb])
    assert near["x"]["method"] == "combo" and "within noise of seasonal naive" in near["x"]["note"]
    far = best_per_series([(a, details_of(la, 0.5)), (b, details_of(lb, 0.5))], trial_losses=[la, lb])
    assert far["x"]["method"] == "snaive" and "clearly better" in far["x"]["note"]


def test_an_old_config_without_methods_validates_with_every_type_and_sarimax_only_trains_as_before():
    for path in sorted((REPO / "configs").glob("forecast*.yaml")):
        model = yaml.safe_load(path.read_text()).get("model", {})
        config = ForecastConfig(**model)
        assert config.methods == ["sarimax", "ets", "theta"] and config.combine_max == 3, path.name
    feats = _two_series()
    config = ForecastConfig(series={"freq": "M"}, max_workers=1, methods=["sarimax"], combine_max=0,
                            backtest={"folds": 2, "horizon": 3})
    split = FAMILY.split(feats, config)
    trials = [TrialResult(p, FAMILY.evaluate(split.train, split.valid, p, config)) for p in FAMILY.initial_trials(config)[:2]]
    params = FAMILY.select(trials, trials[0].params, config)
    assert all(Spec.from_params(p).method in ("sarimax", *NAIVE_METHODS) for p in params["per_series"].values())
    model = FAMILY.fit(split.train, params, config)
    assert FAMILY.score(model, split.test, config).details["mase"].notna().all()


def _two_series(n: int = 60, seeds: tuple[int, ...] = (1, 2)) -> SeriesSet:
    parts = []
    for i, seed in enumerate(seeds):
        y, ds = monthly(n, seed)
        parts.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
    frame = pd.concat(parts, ignore_index=True)
    frame["unique_id"] = frame["unique_id"].astype("string")
    return SeriesSet(frame, "M")


def test_a_job_with_every_type_selects_fits_calibrates_and_serves_combinations():
    feats = _two_series(48, seeds=(1,))
    config = ForecastConfig(series={"freq": "M"}, max_workers=1, backtest={"folds": 2, "horizon": 3})
    split = FAMILY.split(feats, config)
    trials = [TrialResult(p, FAMILY.evaluate(split.train, split.valid, p, config)) for p in FAMILY.initial_trials(config)[:3]]
    assert {t.params["method"] for t in trials} == {"sarimax", "ets", "theta"}
    params = FAMILY.select(trials, trials[0].params, config)
    model = FAMILY.fit(split.train, params, config)
    assert model.models["s0"].method == "combo" and model.models["s0"].conformal is not None
    score = FAMILY.score(model, split.test, config)
    assert score.details["method"].tolist() == ["combo"] and len(score.losses) == 2 * 3  # per-step losses, as before
    out = model.predict(None, pd.DataFrame({"series_id": ["s0"], "horizon": [3]}))
    assert list(out.columns) == ["series_id", "step", "ds", "yhat", "model", "lo_80", "hi_80", "lo_95", "hi_95"]


def test_a_combination_takes_the_best_trial_of_each_model_type_first():
    a, a2, b = {"method": "ets"}, {"method": "ets", "ets_trend": "add"}, {"method": "theta"}
    la, la2, lb = trial({"x": [[1, 1], [1, 1]]}), trial({"x": [[1.1, 1.1], [1.1, 1.1]]}), trial({"x": [[-1.2, -1.2], [-1.2, -1.2]]})
    chosen = best_per_series([(a, details_of(la, 9.0)), (a2, details_of(la2, 9.0)), (b, details_of(lb, 9.0))],
                             trial_losses=[la, la2, lb])
    assert chosen["x"]["members"] == [a, b]  # not the near-copy a2, though it scored better than b
    one_type = best_per_series([(a, details_of(la, 9.0)), (a2, details_of(la2, 9.0)), (a, details_of(la, 9.0))],
                               trial_losses=[la, la2, la])
    assert one_type["x"]["members"] == [a, a2]  # one type only: distinct configurations, a repeated trial once
