"""Conformal forecast intervals: the finite-sample rule, coverage on planted noise, fall-backs, the served model."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.series import SeriesOptions, SeriesSet
from serving.models.forecaster import ForecastModel
from serving.models.intervals import MODEL, POOLED, SHRUNK
from training.forecast import ForecastConfig, ForecasterFamily, Windows
from training.forecast.calibration import calibrate, quantile_rows
from training.forecast.figures import models_table

FAMILY = ForecasterFamily()
NAIVE = {"method": "naive"}
HORIZON = 4


def series_set(frames: dict[str, np.ndarray], start: str = "2018-01-01") -> SeriesSet:
    parts = [pd.DataFrame({"unique_id": uid, "ds": pd.date_range(start, periods=len(y), freq="W-MON"), "y": y})
             for uid, y in frames.items()]
    frame = pd.concat(parts, ignore_index=True)
    frame["unique_id"] = frame["unique_id"].astype("string")
    frame["ds"] = frame["ds"].astype("datetime64[ns]")
    return SeriesSet(frame, "W")


def config(**kw) -> ForecastConfig:
    kw.setdefault("max_workers", 1)
    kw.setdefault("backtest", {"horizon": HORIZON})
    kw.setdefault("calibration", {"folds": 3, "step": HORIZON})  # few windows: fast (the default's: test_forecast_calibration)
    return ForecastConfig(series=SeriesOptions(freq="W"), **kw)


def noisy_levels(count: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """Independent normal noise around a level per series: a naive forecast's error has sd sqrt(2) sigma at every step."""
    rng = np.random.default_rng(seed)
    return {f"s{i}": rng.uniform(50, 500) + rng.normal(0, rng.uniform(2, 20), n) for i in range(count)}


def random_walks(count: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """Random walks: a naive forecast's error grows like sqrt(step)."""
    rng = np.random.default_rng(seed)
    return {f"w{i}": 1000 + np.cumsum(rng.normal(0, 10, n)) for i in range(count)}


def coverage(model: ForecastModel, future: dict[str, np.ndarray], level: int) -> float:
    inside = []
    for uid, actual in future.items():
        lo, hi = model.forecast(uid, len(actual), [level]).bounds[level]
        inside.append((actual >= lo) & (actual <= hi))
    return float(np.mean(np.concatenate(inside)))


# ---- the finite-sample rule ----


def test_quantile_is_the_kth_smallest_error_with_k_ceil_n_plus_1_times_level():
    q = quantile_rows(np.array([[4.0], [1.0], [3.0], [2.0]]))  # n = 4
    assert q[80 - 1, 0] == 4.0  # k = ceil(5 * 0.8) = 4
    assert q[60 - 1, 0] == 3.0  # k = ceil(5 * 0.6) = 3
    assert q[20 - 1, 0] == 1.0  # k = ceil(5 * 0.2) = 1
    assert np.isnan(q[81 - 1, 0]) and np.isnan(q[95 - 1, 0])  # k = 5 > n: no finite quantile
    nineteen = quantile_rows(np.arange(1.0, 20.0)[:, None])
    assert nineteen[95 - 1, 0] == 19.0 and np.isnan(nineteen[96 - 1, 0])


def test_own_scores_shrunk_to_pooled_relative_errors_else_the_models_own():
    rows = [{"series_id": "big", "fold": f, "step": 1, "yhat": 100.0, "abs_error": float(f + 1)} for f in range(19)]
    rows += [{"series_id": "small", "fold": f, "step": 1, "yhat": -1000.0, "abs_error": 10.0 * (f + 1)} for f in range(5)]
    rows += [{"series_id": "zero", "fold": 0, "step": 1, "yhat": 0.0, "abs_error": 5.0}]  # 0 / 0: no score
    out = calibrate(pd.DataFrame(rows), {"big": 0.0, "small": 0.0, "zero": 0.0, "new": 3.0}, steps=1, windows="w", shrink=0.0)
    assert (out["big"].source[:95] == SHRUNK).all() and out["big"].q[95 - 1, 0] == 0.19  # shrink 0: own, k = 19
    assert out["big"].q[80 - 1, 0] == 0.16 and out["big"].source[96 - 1] == POOLED  # k = 20 > 19 own: 24 pooled
    # small: 5 own scores reach 80% (k = 5), not 95%: there the pooled scores 0.01..0.19 and 0.01..0.05 (24)
    assert out["small"].source[80 - 1] == SHRUNK and out["small"].q[80 - 1, 0] == pytest.approx(0.05)
    assert out["small"].source[95 - 1] == POOLED and out["small"].q[95 - 1, 0] == pytest.approx(0.19)  # k = 24
    assert out["small"].source[97 - 1] == MODEL and np.isnan(out["small"].q[97 - 1, 0])  # k = 25 > 24
    assert out["new"].q[80 - 1, 0] == pytest.approx(0.15) and out["new"].floor == 3.0  # no errors of its own: pooled
    assert out["small"].describe([80, 95, 97]) == "80: series+pooled, 95: pooled, 97: model"


def test_half_width_is_the_quantile_times_the_forecast_size_never_below_the_floor():
    out = calibrate(pd.DataFrame([{"series_id": "a", "fold": f, "step": h, "yhat": 10.0, "abs_error": float(h * (f + 1))}
                                  for f in range(4) for h in (1, 2)]), {"a": 2.0}, steps=2, windows="w")
    conformal = out["a"]  # 80%: k = 4 of 4 scores per step -> 0.4 at step 1, 0.8 at step 2
    mean = np.array([-50.0, 1.0, 30.0])
    lo, hi = conformal.apply(mean, {80: (mean - 1, mean + 1)})[80]
    np.testing.assert_allclose(hi - mean, [0.4 * 50, 0.8 * 2.0, 0.8 * 30])  # |yhat|; floor 2 at yhat 1; step 3 as step 2
    np.testing.assert_allclose(mean - lo, hi - mean)


# ---- behaviour on planted noise ----


def test_calibrated_intervals_cover_at_the_nominal_rate_where_the_models_own_do_not():
    count, n = 300, 80
    paths = noisy_levels(count, n + HORIZON, seed=5)
    feats = series_set({uid: y[:n] for uid, y in paths.items()})
    future = {uid: y[n:] for uid, y in paths.items()}
    calibrated = FAMILY.fit(feats, NAIVE, config())
    own = FAMILY.fit(feats, NAIVE, config(intervals="model"))
    assert abs(coverage(calibrated, future, 80) - 0.80) <= 0.03
    assert abs(coverage(calibrated, future, 95) - 0.95) <= 0.02
    assert coverage(own, future, 80) > 0.88  # naive's sqrt(h) spread is far too wide for noise around a level


def test_intervals_widen_with_the_step_when_errors_grow():
    model = FAMILY.fit(series_set(random_walks(60, 90, seed=3)), NAIVE, config())
    fc = model.forecast("w0", HORIZON, [80])
    lo, hi = fc.bounds[80]
    width = hi - lo
    assert np.all(np.diff(width) > 0) and width[-1] > 1.5 * width[0]  # sqrt(4) = 2 in theory
    flat = FAMILY.fit(series_set(noisy_levels(60, 90, seed=3)), NAIVE, config()).forecast("s0", HORIZON, [80])
    flat_width = flat.bounds[80][1] - flat.bounds[80][0]
    assert flat_width.max() < 1.3 * flat_width.min()


def test_too_few_errors_keep_the_models_own_interval_and_say_so():
    feats = series_set(random_walks(3, 12, seed=1))  # 3 folds of 4 weeks need 14 periods: nothing to calibrate on
    calibrated = FAMILY.fit(feats, NAIVE, config())
    own = FAMILY.fit(feats, NAIVE, config(intervals="model"))
    assert calibrated.models["w0"].conformal.describe([80, 95]) == "80: model, 95: model"
    assert models_table(calibrated, [80, 95])["intervals"].tolist() == ["80: model, 95: model"] * 3
    a, b = calibrated.forecast("w0", 6, [80, 95]), own.forecast("w0", 6, [80, 95])
    for level in (80, 95):
        np.testing.assert_allclose(a.bounds[level], b.bounds[level])
    one = series_set(random_walks(1, 90, seed=1))  # 3 errors per step: an 80% quantile needs 4
    assert FAMILY.fit(one, NAIVE, config()).models["w0"].conformal.describe([75, 80, 95]) == "75: series+pooled, 80: model, 95: model"
    two = FAMILY.fit(series_set(random_walks(2, 90, seed=1)), NAIVE, config())  # 6 pooled errors: 80% yes, 95% no
    assert two.models["w0"].conformal.describe([80, 95]) == "80: pooled, 95: model"
    fc, mine = two.forecast("w0", 6, [80, 95]), FAMILY.fit(series_set(random_walks(2, 90, seed=1)), NAIVE, config(intervals="model"))
    lo, hi = mine.forecast("w0", 6, [95]).bounds[95]
    assert np.all(fc.bounds[95][0] <= np.minimum(lo, fc.bounds[80][0]))  # the model's own 95%, nested around the 80%
    assert np.all(fc.bounds[95][1] >= np.maximum(hi, fc.bounds[80][1]))


def test_the_score_puts_the_candidates_calibration_around_every_test_fold():
    cfg = config(backtest={"horizon": HORIZON, "folds": 3})
    feats = series_set(noisy_levels(40, 100, seed=9))
    split = FAMILY.split(feats, cfg)
    calibrated = FAMILY.fit(split.train, NAIVE, cfg)
    own = FAMILY.fit(split.train, NAIVE, cfg.model_copy(update={"intervals": "model"}))
    first_test_origin = split.test.series.frame.groupby("unique_id")["ds"].nth(-split.test.span).max()
    assert calibrated.models["s0"].conformal.windows.endswith(str((first_test_origin - pd.Timedelta(weeks=1)).date()))
    a, b = FAMILY.score(calibrated, split.test, cfg), FAMILY.score(own, split.test, cfg)
    assert a.objective == pytest.approx(b.objective, rel=1e-12)  # the same point forecasts
    assert abs(a.metrics["coverage_80"] - 0.80) < abs(b.metrics["coverage_80"] - 0.80)
    baseline = FAMILY.score(FAMILY.baseline(split.train, cfg), split.test, cfg)
    assert {"coverage_80", "coverage_95"} <= set(baseline.metrics)


# ---- the served model ----


def test_served_model_gives_the_calibrated_intervals_through_forecast_and_pyfunc(tmp_path):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow.pyfunc

    from serving.models.registry import code_paths, unwrap

    model = FAMILY.fit(series_set(random_walks(30, 90, seed=4)), NAIVE, config())
    q = model.models["w1"].conformal.q
    fc = model.forecast("w1", HORIZON, [80, 95])
    size = np.abs(fc.mean)  # a random walk near 1000: far above the floor
    for level in (80, 95):
        np.testing.assert_allclose(fc.bounds[level][1] - fc.mean, q[level - 1, :HORIZON] * size)
    mlflow.pyfunc.save_model(tmp_path / "m", python_model=model, code_paths=[str(p) for p in code_paths()])
    loaded = unwrap(mlflow.pyfunc.load_model(str(tmp_path / "m")), "forecaster")
    out = loaded.predict(None, pd.DataFrame({"series_id": ["w1"], "horizon": [HORIZON + 3], "levels": [[80]]}))
    half = (out["hi_80"] - out["yhat"]).to_numpy()
    np.testing.assert_allclose(half[:HORIZON], q[80 - 1, :HORIZON] * size)
    assert np.all(half[HORIZON:] >= half[HORIZON - 1]) and np.all(np.diff(half[HORIZON - 1:]) > 0)  # grows like naive's own
    unasked = loaded.predict(None, pd.DataFrame({"series_id": ["w1"], "horizon": [2], "levels": [[50]]}))
    np.testing.assert_allclose((unasked["hi_50"] - unasked["yhat"]).to_numpy(), q[50 - 1, :2] * size[:2])  # any level


def test_a_model_saved_before_calibration_still_forecasts_with_its_own_intervals():
    feats = series_set(random_walks(5, 90, seed=2))
    model = FAMILY.fit(feats, NAIVE, config())
    own = FAMILY.fit(feats, NAIVE, config(intervals="model"))
    for m in model.models.values():
        del m.__dict__["conformal"]  # as unpickled from a version without the attribute
    fc, expected = model.forecast("w0", 3, [80]), own.forecast("w0", 3, [80])
    np.testing.assert_allclose(fc.bounds[80], expected.bounds[80])
    assert model.series_intervals() == {}
    windows = Windows(feats, 2, HORIZON, HORIZON)
    assert np.isfinite(FAMILY.score(model, windows, config()).metrics["coverage_80"])


def test_config_switch_defaults_to_conformal_and_rejects_other_values():
    assert ForecastConfig().intervals == "conformal"
    with pytest.raises(ValidationError, match="intervals"):
        ForecastConfig(intervals="bootstrap")


def test_sales_forecasts_and_bands_stay_at_or_above_zero() -> None:
    """A series that never went below zero (sales) is never forecast below zero, and neither are its bands,
    for every model type (here near zero, where the unfloored 95% bands reach far below it); a series with
    negative values (revenue net of returns) keeps its bands as fitted, and so does a model pickled before
    the floor existed (no `lower_limit`: the class default)."""
    from training.forecast import Context, Spec, fit_series

    rng = np.random.default_rng(3)
    ds = pd.date_range("2020-01-06", periods=104, freq="W-MON")
    sales = np.abs(rng.normal(0, 20, 104)).round()  # many weeks at or near zero
    specs = [Spec(method="naive"), Spec(method="snaive"), Spec(order=(1, 1, 1)), Spec(method="ets"), Spec(method="theta")]
    for spec in specs:
        model = fit_series("s", sales, ds, None, spec, Context("W", 52))
        fc = model.forecast(8, [80, 95])
        assert model.lower_limit == 0.0
        assert (fc[["yhat", "lo_80", "hi_80", "lo_95", "hi_95"]] >= 0).all().all(), (spec, fc)
        old = pickle.loads(pickle.dumps(model))  # as registered before the floor: no `lower_limit` attribute
        del old.__dict__["lower_limit"]
        unfloored = old.forecast(8, [80, 95])
        assert (unfloored["lo_95"] < 0).any(), spec  # the floor did something
        assert np.allclose(fc["hi_95"], np.maximum(unfloored["hi_95"], 0)) and np.allclose(fc["lo_95"], np.maximum(unfloored["lo_95"], 0))

    net = sales - 5  # some weeks below zero
    model = fit_series("n", net, ds, None, Spec(method="naive"), Context("W", 52))
    assert model.lower_limit is None and (model.forecast(8, [95])["lo_95"] < 0).any()
