"""Conformal calibration (issue 17): own quantiles shrunk to pooled ones, their guarantee, and the served intervals."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.series import SeriesOptions, SeriesSet
from serving.models.intervals import MODEL, POOLED, SHRUNK
from training.forecast import ForecastConfig, ForecasterFamily, Windows
from training.forecast.calibration import FLOOR_SHARE, calibrate, quantile_rows, shrunk
from training.forecast.scoring import backtest_tables

FAMILY = ForecasterFamily()
STEPS = 2


def losses(noise: dict[str, float], n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` calibration errors per series and step at forecast 100: relative score |N(0, 1)| x the series' noise."""
    rows = [{"series_id": uid, "fold": f, "step": h, "yhat": 100.0, "abs_error": 100.0 * s * abs(rng.normal())}
            for uid, s in noise.items() for f in range(n) for h in range(1, STEPS + 1)]
    return pd.DataFrame(rows)


def coverage(noise: dict[str, float], n: int, level: int, seed: int, draws: int = 40, shrink: float = 30.0) -> pd.Series:
    """Per-series share of new exchangeable errors inside the calibrated interval (step 1 and 2)."""
    rng = np.random.default_rng(seed)
    out = calibrate(losses(noise, n, rng), {uid: 0.0 for uid in noise}, STEPS, "w", shrink)
    inside = {}
    for uid, s in noise.items():
        q = out[uid].q[level - 1]
        new = s * np.abs(rng.normal(size=(draws, STEPS)))
        inside[uid] = float(np.mean(new <= q))
    return pd.Series(inside)


# ---- the rule ----


def test_quantile_is_own_shrunk_to_pooled_with_weight_n_over_n_plus_shrink():
    rows = [{"series_id": "a", "fold": f, "step": 1, "yhat": 100.0, "abs_error": float(f + 1)} for f in range(19)]
    rows += [{"series_id": "b", "fold": f, "step": 1, "yhat": 100.0, "abs_error": 10.0 * (f + 1)} for f in range(19)]
    frame = pd.DataFrame(rows)
    out = calibrate(frame, {"a": 0.0, "b": 0.0, "new": 0.0}, steps=1, windows="w", shrink=30.0)
    own_a = quantile_rows(np.arange(1.0, 20.0)[:, None] / 100)
    pooled = quantile_rows(np.concatenate([np.arange(1.0, 20.0), 10 * np.arange(1.0, 20.0)])[:, None] / 100)
    w = 19 / (19 + 30)
    for level in (50, 80, 95):
        assert out["a"].q[level - 1, 0] == pytest.approx(w * own_a[level - 1, 0] + (1 - w) * pooled[level - 1, 0])
        lo, hi = sorted([own_a[level - 1, 0], pooled[level - 1, 0]])
        assert lo <= out["a"].q[level - 1, 0] <= hi  # between the two conformal quantiles
    assert out["a"].source[95 - 1] == SHRUNK and out["a"].describe([80]) == "80: series+pooled"
    np.testing.assert_allclose(out["new"].q[:95], pooled[:95])  # no errors of its own: pooled alone
    assert out["new"].source[80 - 1] == POOLED and out["new"].source[99 - 1] == MODEL  # 38 scores: no 99% quantile
    own_only = calibrate(frame, {"a": 0.0}, steps=1, windows="w", shrink=0.0)["a"]
    assert own_only.q[80 - 1, 0] == own_a[80 - 1, 0]  # shrink 0: the series' own quantile


def test_quantiles_grow_with_the_level_where_own_errors_reach_only_the_lower_levels():
    own = np.full((99, 1), np.nan)
    own[:80, 0] = 5.0  # a series with 5-18 errors: finite own quantile at 80%, none at 95%
    pooled = np.linspace(0.01, 1.0, 99)[:, None]
    q = shrunk(own, pooled, np.array([9.0]), 1.0)
    assert q[80 - 1, 0] == pytest.approx(0.9 * 5 + 0.1 * pooled[79, 0])
    assert np.all(np.diff(q[:, 0]) >= 0) and q[95 - 1, 0] >= q[80 - 1, 0]  # the 95% interval contains the 80% one


# ---- the guarantee on exchangeable errors ----


@pytest.mark.parametrize("level", [80, 95])
def test_coverage_is_nominal_within_binomial_noise_when_series_errors_are_alike(level):
    noise = {f"s{i}": 0.1 for i in range(150)}  # every series' errors exchangeable with every other's
    cover = coverage(noise, 20, level, seed=level)
    points = len(noise) * 40 * STEPS
    noise_sd = np.sqrt(level / 100 * (1 - level / 100) / points) + 0.08 / np.sqrt(len(noise))  # draws + quantile spread
    assert abs(cover.mean() - level / 100) <= 3 * noise_sd


def test_coverage_is_at_least_nominal_when_series_differ_and_lumpy_series_are_not_sacrificed():
    rng = np.random.default_rng(3)
    noise = {f"s{i}": float(s) for i, s in enumerate(rng.uniform(0.02, 0.4, 150))}
    cover = coverage(noise, 20, 80, seed=4)
    pooled_only = coverage(noise, 20, 80, seed=4, shrink=1e12)
    assert abs(pooled_only.mean() - 0.80) <= 0.03  # pooled: valid marginally over series...
    lumpy = [uid for uid, s in noise.items() if s > 0.3]
    assert pooled_only[lumpy].mean() < 0.6  # ...by over-covering calm series and missing lumpy ones
    assert cover.mean() >= 0.80 - 0.02  # each interval holds the narrower of two valid ones
    assert cover[lumpy].mean() > pooled_only[lumpy].mean() + 0.1 and cover.mean() < 0.85  # what shrinking buys, and costs


# ---- the served model ----


def walks(count: int, n: int, seed: int) -> SeriesSet:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2018-01-01", periods=n, freq="W-MON")
    frame = pd.concat([pd.DataFrame({"unique_id": f"w{i}", "ds": ds, "y": 500 + np.cumsum(rng.normal(0, 10, n))})
                       for i in range(count)], ignore_index=True)
    frame["unique_id"] = frame["unique_id"].astype("string")
    frame["ds"] = frame["ds"].astype("datetime64[ns]")
    return SeriesSet(frame, "W")


def test_served_intervals_are_the_stored_calibration_of_the_training_backtest():
    cfg = ForecastConfig(series=SeriesOptions(freq="W"), backtest={"horizon": 4}, max_workers=1,
                         calibration={"folds": 8}, min_train=16)
    feats = walks(6, 24, seed=8)  # origins at 13..20 periods: the first three leave fewer than min_train
    model = FAMILY.fit(feats, {"method": "naive"}, cfg)
    windows = Windows(feats, 8, 4, 1)
    errors = backtest_tables(windows, {"method": "naive"}, cfg)[1]
    errors = errors[errors["fold"] >= 3]  # cut = 24 - 11 + fold >= 16
    floors = {uid: FLOOR_SHARE * float(g["y"].abs().mean()) for uid, g in feats.frame.groupby("unique_id")}
    expected = calibrate(errors, floors, 4, "w", cfg.calibration.shrink)
    served = pickle.loads(pickle.dumps(model))  # what the registry stores and the service loads
    for uid in feats.ids:
        np.testing.assert_array_equal(model.models[uid].conformal.q, expected[uid].q)
        fc = served.forecast(uid, 4, [80, 95])
        for level in (80, 95):
            half = expected[uid].q[level - 1] * np.maximum(np.abs(fc.mean), floors[uid])
            np.testing.assert_allclose(fc.bounds[level][0], fc.mean - half)
            np.testing.assert_allclose(fc.bounds[level][1], fc.mean + half)
            np.testing.assert_allclose(fc.bounds[level], model.forecast(uid, 4, [level]).bounds[level])
    assert model.models["w0"].conformal.windows.startswith("8 window(s) of 4 every 1")


def test_calibration_keys_are_checked_and_named():
    assert ForecastConfig().calibration.folds == 20 and ForecastConfig().calibration.step == 1
    with pytest.raises(ValidationError, match="calibration.folds"):
        ForecastConfig(calibration={"folds": 0})
    with pytest.raises(ValidationError, match="calibration.window"):
        ForecastConfig(calibration={"window": 3})
