"""The forecaster family: behaviour on planted patterns, fallbacks, intervals, windows, selection, the servable model."""

from __future__ import annotations

import logging
import os
import pickle
import warnings

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from features.contract import Accounting, Loaded, Quarantine
from features.series import ExogOptions, SeriesOptions, SeriesSet
from serving.models.base import ForecasterModel
from serving.models.forecaster import ForecastModel
from serving.models.series_model import NAIVE_METHODS, fourier_terms
from tests.helpers import REPO
from training.family import Report, TrialResult
from training.forecast import (
    BacktestOptions,
    Context,
    ForecastConfig,
    ForecasterFamily,
    Spec,
    Windows,
    best_per_series,
    evaluate_params,
    fit_series,
    rolling_origins,
)

RNG_SEED = 11
FAMILY = ForecasterFamily()


def series_set(frames: dict[str, np.ndarray], freq: str = "W", start: str = "2018-01-01", **exog) -> SeriesSet:
    rng_freq = {"D": "D", "W": "W-MON", "M": "MS"}[freq]
    parts = []
    for uid, y in frames.items():
        part = pd.DataFrame({"unique_id": uid, "ds": pd.date_range(start, periods=len(y), freq=rng_freq), "y": y})
        for name, values in exog.items():
            part[name] = values
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["unique_id"] = frame["unique_id"].astype("string")
    frame["ds"] = frame["ds"].astype("datetime64[ns]")
    return SeriesSet(frame, freq, exog_columns=list(exog))


def yearly_weekly(n: int, seed: int) -> np.ndarray:
    """Weekly sales with a yearly sinusoid, a slow trend and noise."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2018-01-01", periods=n, freq="W-MON")
    season = np.sin(2 * np.pi * weeks.day_of_year.to_numpy() / 365.25)
    return 1000 + 300 * season + 1.5 * np.arange(n) + rng.normal(0, 50, n)


def ar1(n: int, rng: np.random.Generator, phi: float = 0.6, mean: float = 100.0, sd: float = 5.0) -> np.ndarray:
    y = np.empty(n)
    y[0] = mean + rng.normal(0, sd / np.sqrt(1 - phi**2))
    for t in range(1, n):
        y[t] = mean + phi * (y[t - 1] - mean) + rng.normal(0, sd)
    return y


def cfg(**kw) -> ForecastConfig:
    kw.setdefault("max_workers", 1)
    return ForecastConfig(**kw)


def ctx(freq: str = "W", season: int = 52) -> Context:
    return Context(freq, season)


def weeks(n: int, start: str = "2020-01-06") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="W-MON")


# ---- behaviour ----


def test_tuned_model_beats_seasonal_naive_on_the_test_windows():
    feats = series_set({f"s{i}": yearly_weekly(182, RNG_SEED + i) for i in range(2)})
    config = cfg(search={"p_max": 1, "q_max": 1, "fourier_max": 2, "trends": ["n", "c"]})
    split = FAMILY.split(feats, config)
    trials = [TrialResult(p, FAMILY.evaluate(split.train, split.valid, p, config)) for p in FAMILY.initial_trials(config)]
    best = min(trials, key=lambda t: t.evaluation.objective).params
    params = FAMILY.select(trials, best, config)
    assert set(params["per_series"]) == {"s0", "s1"}
    model = FAMILY.servable(FAMILY.fit(split.train, params, config), config)
    scored = FAMILY.score(model, split.test, config)
    baseline = FAMILY.score(FAMILY.baseline(split.train, config), split.test, config)
    assert not scored.details["method"].isin(NAIVE_METHODS).any()  # fitted models (SARIMAX, ETS, Theta or their mean)
    assert scored.objective < 0.8 * baseline.objective
    assert scored.metrics["snaive_mase"] == pytest.approx(baseline.objective)


def test_constant_series_gets_a_flat_forecast():
    model = fit_series("c", np.full(60, 7.0), weeks(60), None, Spec(order=(1, 0, 0), trend="c"), ctx())
    fc = model.forecast(6, [80, 95])
    assert model.method == "mean" and "constant" in model.reason
    assert np.allclose(fc["yhat"], 7.0) and np.allclose(fc["hi_95"] - fc["lo_95"], 0.0)


def test_sarimax_intervals_widen_with_the_horizon():
    rng = np.random.default_rng(RNG_SEED)
    y = 500 + np.cumsum(rng.normal(0, 10, 120))
    model = fit_series("rw", y, weeks(120), None, Spec(order=(1, 1, 0)), ctx())
    fc = model.forecast(12, [80, 95])
    width80, width95 = (fc["hi_80"] - fc["lo_80"]).to_numpy(), (fc["hi_95"] - fc["lo_95"]).to_numpy()
    assert model.method == "sarimax"
    assert np.all(np.diff(width95) > 0) and np.all(width95 > width80)
    assert np.all(fc["lo_95"] < fc["yhat"]) and np.all(fc["yhat"] < fc["hi_95"])


def test_95_intervals_cover_about_95_percent_of_ar1_data():
    rng = np.random.default_rng(RNG_SEED)
    dates = weeks(80)
    inside, total = 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(150):
            y = ar1(84, rng)
            model = fit_series("ar", y[:80], dates, None, Spec(order=(1, 0, 0), trend="c"), ctx())
            fc = model.forecast(4, [95])
            inside += int(((y[80:] >= fc["lo_95"]) & (y[80:] <= fc["hi_95"])).sum())
            total += 4
    assert 0.90 <= inside / total <= 0.99


def test_naive_fallback_intervals_grow_like_sqrt_h():
    rng = np.random.default_rng(RNG_SEED)
    y = 100 + np.cumsum(rng.normal(0, 3, 10))  # too short for a SARIMAX: naive-1 (below one season)
    model = fit_series("short", y, weeks(10), None, Spec(), ctx())
    fc = model.forecast(4, [80])
    assert model.method == "naive" and "too short" in model.reason
    half = (fc["hi_80"] - fc["lo_80"]).to_numpy() / 2
    assert np.allclose(half / half[0], np.sqrt([1, 2, 3, 4]))
    assert np.allclose(fc["yhat"], y[-1])


def test_short_and_all_zero_series_fall_back_with_a_reason_instead_of_failing():
    feats = series_set({
        "zeros": np.zeros(40),
        "short": np.r_[np.full(32, np.nan), np.arange(8.0) + 5],
        "ok": yearly_weekly(40, RNG_SEED),
        "tiny": np.r_[np.full(37, np.nan), 3.0, 4.0, 5.0],
    })
    feats.frame = feats.frame.dropna(subset=["y"]).reset_index(drop=True)
    config = cfg(backtest=BacktestOptions(folds=2, horizon=2))
    ev = evaluate_params(Windows(feats, 2, 2, 2), {"p": 1, "d": 1, "q": 1}, config)
    by_id = ev.details.set_index("unique_id")
    assert by_id.loc["zeros", "method"] == "mean" and "constant series" in by_id.loc["zeros", "reason"]
    assert by_id.loc["short", "method"] == "naive" and "too short" in by_id.loc["short", "reason"]
    assert by_id.loc["ok", "method"] == "sarimax"
    assert by_id.loc["tiny", "folds"] == 0 and "too short to backtest: 3 periods" in by_id.loc["tiny", "reason"]
    assert ev.metrics["series_mase_undefined"] == 2.0  # all-zero training part and no fold: reported, left out
    fitted = FAMILY.fit(feats, {"p": 1, "d": 1, "q": 1}, config)
    assert fitted.models["zeros"].forecast(3, [80])["yhat"].eq(0).all()


def _broken_fit(monkeypatch, exc: Exception | None = None, raise_in_numpy: bool = False) -> None:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    def broken(self, *args, **kwargs):
        if raise_in_numpy:
            np.asarray_chkfinite([np.nan])
        raise exc

    monkeypatch.setattr(SARIMAX, "fit", broken)


def test_numerical_failure_falls_back_to_seasonal_naive_with_the_error(monkeypatch, caplog):
    _broken_fit(monkeypatch, np.linalg.LinAlgError("Schur decomposition solver error"))
    y = yearly_weekly(61, RNG_SEED)
    with caplog.at_level(logging.WARNING, logger="training.forecast.fit"):
        model = fit_series("bad", y, weeks(61), None, Spec(), ctx("W", 4))
    assert model.method == "snaive" and model.failure == "LinAlgError: Schur decomposition solver error"
    assert model.reason == "SARIMAX(1, 1, 1) fit failed (LinAlgError: Schur decomposition solver error)"
    assert np.allclose(model.forecast(4, [80])["yhat"], y[-4:])
    assert "series 'bad'" in caplog.text and "seasonal naive instead" in caplog.text
    assert model.recipe == Spec().as_params()  # a backtest refits the chosen recipe, with the same fall-back


def test_a_value_error_inside_numpy_is_numerical_and_counted(monkeypatch):
    _broken_fit(monkeypatch, raise_in_numpy=True)
    feats = series_set({"a": yearly_weekly(61, RNG_SEED)})
    ev = evaluate_params(Windows(feats, 2, 4, 4), {"p": 1, "d": 1, "q": 1}, cfg(season_length=4))
    assert ev.metrics["fits_failed"] == 2.0 and "infs or NaNs" in ev.details["reason"].iloc[0]


CODING_ERRORS = [TypeError("bad argument"), AttributeError("no such thing"), KeyError("p"), ValueError("our own check")]


@pytest.mark.parametrize("exc", CODING_ERRORS)
def test_a_coding_error_inside_the_fit_propagates(monkeypatch, exc):
    _broken_fit(monkeypatch, exc)
    with pytest.raises(type(exc)):
        fit_series("bug", yearly_weekly(61, RNG_SEED), weeks(61), None, Spec(), ctx("W", 4))


def test_non_finite_values_are_an_error_naming_the_series():
    y = np.r_[np.full(30, 5.0), np.inf, np.nan]
    with pytest.raises(ValueError, match="series 'bad' has 2 non-finite value"):
        fit_series("bad", y, weeks(32), None, Spec(), ctx())


def test_convergence_warnings_are_counted_and_logged_not_printed(recwarn, caplog):
    rng = np.random.default_rng(RNG_SEED)
    y = rng.normal(0, 1, 60).cumsum()
    spec = Spec(order=(2, 1, 2), trend="ct")
    with caplog.at_level(logging.DEBUG, logger="training.forecast.fit"):
        model = fit_series("w", y, weeks(60), None, spec, Context("W", 52, maxiter=5))
    assert model.method == "sarimax"
    assert model.convergence_warnings >= 1 and model.warnings >= model.convergence_warnings
    assert len(recwarn) == 0 and "ConvergenceWarning" in caplog.text


def test_low_memory_results_stay_small_and_still_give_intervals():
    rng = np.random.default_rng(RNG_SEED)
    days = pd.date_range("2023-01-01", periods=365, freq="D")
    y = 200 + 20 * np.array([0, 1, 2, 3, 5, 8, -4])[days.day_of_week] + rng.normal(0, 5, 365).cumsum() * 0.3
    model = fit_series("d", y, days, None, Spec(order=(1, 0, 1), seasonal=(1, 1, 1), trend="n"), Context("D", 7))
    assert model.method == "sarimax" and model.params["P"] == 1
    size = len(pickle.dumps(model))
    assert size < 600_000, f"pickled daily seasonal model is {size} bytes"
    fc = pickle.loads(pickle.dumps(model)).forecast(14, [80, 95])
    assert np.isfinite(fc[["lo_80", "hi_80", "lo_95", "hi_95"]].to_numpy()).all()
    assert (fc["hi_95"] - fc["lo_95"]).iloc[-1] > 0


@pytest.mark.parametrize("spec", [Spec(order=(1, 1, 1), trend="n"), Spec(order=(1, 0, 0), seasonal=(1, 1, 0), trend="c")])
def test_served_path_slices_one_forecast_and_matches_statsmodels(spec):
    """Without caller regressors the served forecast is sliced from one stored path: same numbers as
    statsmodels' own forecast and conf_int at every horizon, longer horizons included; not pickled."""
    rng = np.random.default_rng(RNG_SEED)
    days = pd.date_range("2023-01-01", periods=200, freq="D")
    y = 300 + 30 * np.array([0, 1, 2, 3, 5, 8, -4])[days.day_of_week] + rng.normal(0, 5, 200).cumsum() * 0.2
    model = fit_series("d", y, days, None, spec, Context("D", 7))
    assert model.method == "sarimax"
    for horizon in (1, 9, 104, 150):
        starts, mean, bounds = model.forecast_arrays(horizon, [50, 80, 95])
        direct_mean, direct = model._sarimax(starts, horizon, [50, 80, 95], None)
        np.testing.assert_allclose(mean, direct_mean, rtol=1e-9, atol=1e-9)
        for level in (50, 80, 95):
            np.testing.assert_allclose(bounds[level], direct[level], rtol=1e-9, atol=1e-9)
    assert len(model.__dict__["_path"][0]) == 150
    restored = pickle.loads(pickle.dumps(model))
    assert "_path" not in restored.__dict__
    pd.testing.assert_frame_equal(restored.forecast(12, [80]), model.forecast(12, [80]))


def test_fourier_terms_need_one_and_a_half_seasons_seasonal_arma_two_and_long_seasons_use_fourier():
    y = yearly_weekly(120, RNG_SEED)
    short = fit_series("w", y[:70], weeks(70, "2018-01-01"), None, Spec(order=(0, 1, 1), fourier=2), ctx())
    assert short.design.fourier == 0 and "seasonal terms dropped: 70 periods < 1.5 seasons" in short.reason
    spec = Spec(order=(0, 1, 1), seasonal=(1, 0, 0), fourier=2)
    mid = fit_series("w", y[:80], weeks(80, "2018-01-01"), None, spec, ctx())  # the train part of two years less the test windows
    assert mid.design.fourier == 2 and "seasonal ARMA dropped: 80 periods < 2 seasons" in mid.reason
    long = fit_series("w", y, weeks(120, "2018-01-01"), None, spec, ctx())
    assert long.design.fourier == 2 and "seasonal ARMA not fitted for s=52" in long.reason


def test_weekly_fourier_terms_stay_on_the_calendar_across_years():
    """Phased on the day of the year: a week of the same date gets the same terms 11 years (574 weeks) later,
    where counting 52-week seasons would have drifted by 14 days."""
    mondays = pd.DatetimeIndex(["2018-03-05", "2029-03-05"])
    terms = fourier_terms(mondays, "W", 52, 2).to_numpy()
    np.testing.assert_allclose(terms[0], terms[1], atol=1e-12)
    assert (mondays[1] - mondays[0]).days == 574 * 7 and 574 % 52 == 2


# ---- regressors ----


def test_user_regressor_needs_future_values_and_calendar_flags_do_not():
    rng = np.random.default_rng(RNG_SEED)
    promo = (rng.random(104) < 0.2).astype(float)
    y = 100 + 60 * promo + rng.normal(0, 3, 104)
    feats = series_set({"s": y}, promo=promo)
    feats.calendar = ["december"]
    feats.frame["december"] = (feats.frame["ds"].dt.month == 12).astype(float)
    config = cfg(exog=ExogOptions(columns=["promo"], calendar=["december"]))
    fitted = FAMILY.fit(feats, {"p": 0, "d": 0, "q": 0, "trend": "c"}, config)
    assert fitted.models["s"].design.columns == ["december", "promo"]
    with pytest.raises(ValueError, match=r"needs future values of regressor\(s\) \['promo'\]"):
        fitted.forecast("s", 2)
    with pytest.raises(ValueError, match="exog has 1 step"):
        fitted.forecast("s", 2, exog={"promo": [1.0]})
    fc = fitted.forecast("s", 2, exog=[{"promo": 1.0}, {"promo": 0.0}])
    assert fc.mean[0] - fc.mean[1] == pytest.approx(60, abs=5)
    example, output = FAMILY.example(fitted, fitted, config)
    assert "exog" in example.columns and len(output) == len(example) * config.horizon - config.horizon // 2


# ---- windows, selection and config ----


def test_selection_windows_end_before_the_first_test_origin():
    feats = series_set({"a": yearly_weekly(120, 1), "b": yearly_weekly(120, 2)})
    config = cfg(backtest={"folds": 3, "selection_folds": 2, "horizon": 4, "step": 2})
    split = FAMILY.split(feats, config)
    first_test = min(split.test.origins(120))
    assert rolling_origins(120, 3, 4, 2) == [112, 114, 116] and first_test == 112
    assert split.train.frame.groupby("unique_id").size().eq(first_test).all()
    assert split.valid.series is split.train
    valid = split.valid.origins(first_test)
    assert valid == [106, 108] and max(valid) + config.horizon == first_test
    test_start = feats.series("a")["ds"].iloc[first_test]
    assert split.valid.series.frame["ds"].max() < test_start


def test_split_names_what_is_too_short():
    feats = series_set({"a": yearly_weekly(25, 1)})
    message = r"at most 25 periods; 3 test and 3 selection window\(s\) of 4 periods every 4 need at least 26"
    with pytest.raises(ValueError, match=message):
        FAMILY.split(feats, cfg())
    assert FAMILY.split(feats, cfg(backtest={"selection_folds": 2})).valid.folds == 2


def test_shipped_config_splits_the_synthetic_shops_weeks():
    model = yaml.safe_load((REPO / "configs" / "forecast.yaml").read_text())["model"]
    config = ForecastConfig(**model)
    split = FAMILY.split(series_set({"toys": yearly_weekly(103, 1)}), config)  # 104 weeks, the last partial
    assert len(split.train.frame) == 91 and split.valid.origins(91) == [79, 83, 87]


def details(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["unique_id", "mase", "snaive_mase"])


def test_best_per_series_keeps_the_study_best_unless_a_clear_gain_and_falls_back_to_snaive():
    a, b = {"p": 0, "d": 1, "q": 1}, {"p": 2, "d": 0, "q": 2}
    trials = [
        (a, details([("x", 0.80, 1.0), ("y", 0.90, 1.0), ("z", 1.30, 1.2)])),
        (b, details([("x", 0.78, 1.0), ("y", 0.50, 1.0), ("z", 1.25, 1.2)])),
    ]
    chosen = best_per_series(trials)  # study best: b (mean 0.843 vs 1.0)
    assert chosen["x"]["p"] == 2 and "study's best" in chosen["x"]["note"]
    assert chosen["y"]["p"] == 2
    assert chosen["z"] == {"method": "snaive", "note": chosen["z"]["note"]} and "does not beat" in chosen["z"]["note"]
    trials[0] = (a, details([("x", 0.50, 1.0), ("y", 0.90, 1.0), ("z", 1.30, 1.2)]))
    chosen = best_per_series(trials)  # x: a beats the study best (b, 0.78) by more than 20%
    assert chosen["x"]["p"] == 0 and "own best" in chosen["x"]["note"]
    assert best_per_series(trials, margin=0.0)["y"]["p"] == 2


def test_config_rejects_unknown_keys_and_bad_levels():
    with pytest.raises(ValidationError, match="horizn"):
        ForecastConfig(backtest={"horizn": 3})
    with pytest.raises(ValidationError, match="level"):
        ForecastConfig(levels=[80, 100])
    with pytest.raises(ValidationError, match="weekend"):
        ForecastConfig(exog={"calendar": ["weekend"]})
    config = ForecastConfig(series={"freq": "M"})
    assert (config.season, config.horizon, config.step, config.selection_folds) == (12, 3, 3, 3)


# ---- the family, end to end, and the servable model ----


def order_lines(seed: int = RNG_SEED) -> Loaded:
    """Two years of 6-hourly orders in two categories, with a weekday pattern and a yearly swing."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2021-01-04", "2022-12-31 18:00", freq="6h")
    n = len(stamps)
    level = np.array([1, 1, 1, 1, 1.5, 2, 0.5])[stamps.day_of_week] * (1 + 0.3 * np.sin(2 * np.pi * stamps.day_of_year / 365.25))
    lines = pd.DataFrame({
        "order_id": pd.array([f"o{i}" for i in range(n)], dtype="string"),
        "order_date": stamps.astype("datetime64[ns]"),
        "customer_id": pd.array([None] * n, dtype="string"),
        "product_id": pd.array(rng.choice(["a", "b"], n), dtype="string"),
        "product_name": pd.array([None] * n, dtype="string"),
        "category": pd.array(rng.choice(["toys", "books"], n, p=[0.6, 0.4]), dtype="string"),
        "quantity": (rng.poisson(3 * level) + 1).astype("int64"),
        "unit_price": 10.0,
        "discount": 0.0,
        "channel": pd.array([None] * n, dtype="string"),
        "returned": False,
    })
    return Loaded(lines, Quarantine(), Accounting(n, n, 0, 0))


@pytest.fixture(scope="module")
def job():
    config = ForecastConfig(series=SeriesOptions(freq="W", group_by="category"), max_workers=2,
                            search={"p_max": 1, "q_max": 1, "fourier_max": 1})
    feats = FAMILY.features(order_lines(), config)
    split = FAMILY.split(feats, config)
    trials = [TrialResult(p, FAMILY.evaluate(split.train, split.valid, p, config)) for p in FAMILY.initial_trials(config)[:3]]
    params = FAMILY.select(trials, trials[0].params, config)
    candidate = FAMILY.servable(FAMILY.fit(split.train, params, config), config)
    fitted = FAMILY.fit(feats, params, config)  # refit on all data: the registered model
    return config, feats, split, trials, params, candidate, fitted


def test_family_runs_end_to_end(job):
    config, feats, split, trials, params, candidate, fitted = job
    assert feats.ids == ["toys", "books"] and len(feats.partial) == 1  # the week of 2022-12-26 ends after the data
    assert isinstance(candidate, ForecasterModel) and candidate.family == "forecaster"
    baseline = FAMILY.score(FAMILY.baseline(split.train, config), split.test, config)
    assert baseline.details["mase"].notna().all() and baseline.objective > 0
    assert all(t.evaluation.details is not None and len(t.evaluation.details) == 2 for t in trials)
    on_valid = FAMILY.score(FAMILY.baseline(split.train, config), split.valid, config)
    assert trials[0].evaluation.details["snaive_mase"].round(9).tolist() == on_valid.details["mase"].round(9).tolist()
    losses = trials[0].evaluation.losses
    assert list(losses.columns) == ["series_id", "fold", "step", "ds", "actual", "yhat", "abs_error", "scale"]
    assert len(losses) == 2 * config.selection_folds * config.horizon
    assert losses["ds"].max() < split.test.series.series("toys")["ds"].iloc[min(split.test.origins(103))]
    by_fold = losses.groupby(["series_id", "fold"])
    fold_mase = by_fold["abs_error"].mean() / by_fold["scale"].first()
    assert fold_mase.groupby("series_id").mean().mean() == pytest.approx(trials[0].evaluation.objective)


def test_a_trial_equals_the_score_of_the_model_fit_would_build(job):
    config, feats, split, trials, params, candidate, fitted = job
    for trial in trials[:2]:
        model = FAMILY.servable(FAMILY.fit(split.train, trial.params, config), config)
        assert FAMILY.score(model, split.valid, config).objective == pytest.approx(trial.evaluation.objective, rel=1e-12)
    scored = FAMILY.score(candidate, split.test, config)
    assert FAMILY.evaluate(split.train, split.test, params, config).objective == pytest.approx(scored.objective, rel=1e-12)
    assert FAMILY.score(fitted, split.test, config).objective == pytest.approx(scored.objective, rel=1e-12)


def test_a_models_score_is_the_same_after_a_pickle_round_trip(job):
    config, _, split, _, _, candidate, _ = job
    again = pickle.loads(cloudpickle.dumps(candidate))
    assert FAMILY.score(again, split.test, config).objective == FAMILY.score(candidate, split.test, config).objective


def test_series_the_model_lacks_are_scored_as_seasonal_naive_and_counted(job):
    config, feats, split, *_ = job
    toys_only = replace_frame(split.train, split.train.frame[split.train.frame["unique_id"] == "toys"])
    model = FAMILY.fit(toys_only, {"p": 0, "d": 1, "q": 1}, config)
    ev = FAMILY.score(model, split.test, config)
    assert ev.metrics["series_not_in_model"] == 1.0
    books = ev.details.set_index("unique_id").loc["books"]
    assert books["method"] == "snaive" and books["mase"] == pytest.approx(books["snaive_mase"])
    assert FAMILY.evaluate(toys_only, split.test, {"p": 0, "d": 1, "q": 1}, config).objective == pytest.approx(ev.objective)


def replace_frame(feats: SeriesSet, frame: pd.DataFrame) -> SeriesSet:
    return SeriesSet(frame.reset_index(drop=True), feats.freq, feats.exog_columns, feats.calendar)


def test_report_is_pure_and_carries_the_test_backtest(job):
    config, feats, split, _, _, candidate, fitted = job
    fitted.forecast("toys", 3)  # a served path in the cache must not matter either
    before = cloudpickle.dumps(fitted)
    report = FAMILY.report(fitted, feats, config)
    assert cloudpickle.dumps(fitted) == before
    assert isinstance(report, Report)
    assert set(report.figures) == {"forecast_top_series", "test_error_per_fold", "residual_acf"}
    assert {"test_series", "test_folds", "models", "partial_periods"} <= set(report.tables)
    assert report.metrics["partial_periods"] == 1.0
    scored = FAMILY.score(candidate, split.test, config)
    assert report.tables["test_series"]["mase"].mean() == pytest.approx(scored.objective)


def test_parallel_and_serial_backtests_agree(job):
    config, _, split, trials, *_ = job
    serial = FAMILY.evaluate(split.train, split.valid, trials[0].params, config.model_copy(update={"max_workers": 1}))
    assert serial.objective == pytest.approx(trials[0].evaluation.objective)


def test_unknown_series_id_names_the_known_ones(job):
    fitted = job[-1]
    with pytest.raises(ValueError, match=r"unknown series_id 'games'; this model knows 2 series, e.g. \['toys', 'books'\]"):
        fitted.forecast("games", 3)


def test_forecast_starts_after_the_data_and_specs_are_the_recipes(job):
    config, feats, _, _, params, _, fitted = job
    fc = fitted.forecast("books", 3, [50])
    assert fc.starts[0] == feats.frame["ds"].max() + pd.Timedelta(weeks=1) and set(fc.bounds) == {50}
    specs = fitted.series_specs()
    assert set(specs) == {"toys", "books"}
    assert all(s == Spec.from_params(params["per_series"][u]).as_params() for u, s in specs.items())


def test_pyfunc_round_trip(job, tmp_path):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    from serving.models.registry import code_paths, unwrap

    config, _, split, _, _, _, fitted = job
    model = FAMILY.servable(fitted, config)
    example, output = FAMILY.example(model, fitted, config)
    mlflow.pyfunc.save_model(tmp_path / "m", python_model=model, input_example=example,
                             signature=infer_signature(example, output), code_paths=[str(p) for p in code_paths()])
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "m"))
    out = loaded.predict(pd.DataFrame({"series_id": ["books"], "horizon": [3], "levels": [[50, 90]]}))
    assert out.columns.tolist() == ["series_id", "step", "ds", "yhat", "model", "lo_50", "hi_50", "lo_90", "hi_90"]
    assert out["ds"].tolist() == ["2022-12-26", "2023-01-02", "2023-01-09"]
    both = loaded.predict(example)
    assert len(both) == 6 and {"lo_80", "hi_95"} <= set(both.columns)
    pd.testing.assert_frame_equal(both, output)
    for bad, message in [
        ({"series_id": ["nope"], "horizon": [2]}, "unknown series_id 'nope'"),
        ({"series_id": ["toys"], "horizon": [0]}, "horizon must be between 1"),
        ({"series_id": ["toys"], "horizon": [2], "levels": [[100]]}, r"level must be an integer in \(0, 100\)"),
    ]:
        with pytest.raises(Exception, match=message):
            loaded.predict(pd.DataFrame(bad))
    champion = unwrap(loaded, "forecaster")
    assert isinstance(champion, ForecastModel)
    assert FAMILY.score(champion, split.test, config).objective == FAMILY.score(model, split.test, config).objective


def test_a_spec_with_nothing_to_estimate_but_the_scale_fits_without_falling_back():
    y = yearly_weekly(60, RNG_SEED)
    model = fit_series("w", y - y.mean(), weeks(60, "2018-01-01"), None, Spec(order=(0, 0, 0)), ctx())
    assert model.method == "sarimax" and model.failure == ""
