"""Rolling-origin backtests of one series: the one splitter every window of the family comes from.

A window's origin is a training length `cut`: the model is refitted on the first `cut` periods and
forecasts the next `horizon`. `rolling_origins` gives the last `folds` origins of a series, `step`
periods apart, the last window ending with the data. `Windows` pairs a series set with such
origins: the test windows end with the data, the selection (valid) windows end at the first test
origin, and the training data is each series cut there (`before_first_origin`).

Metrics per fold: MASE (MAE over the in-sample MAE of seasonal naive on the fold's training part,
naive-1 when that part is shorter than two seasons), sMAPE (0..200), RMSE and the share of held-out
points inside each prediction interval (the conformal half-widths a task carries, put around each
fold's forecasts, else the model's own); seasonal naive is scored on the same windows beside it,
with its own intervals.
This module runs in worker processes: it imports no MLflow, Optuna or matplotlib.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from features.series import SeriesSet
from training.forecast.fit import SeriesTask, fit_series
from training.forecast.spec import Context, Spec

LOSS_COLUMNS = ["series_id", "fold", "step", "ds", "actual", "yhat", "abs_error", "scale"]


def span(folds: int, horizon: int, step: int) -> int:
    """Periods from the first of `folds` origins to the end of the last window."""
    return horizon + (folds - 1) * step


def rolling_origins(n: int, folds: int, horizon: int, step: int) -> list[int]:
    """Training lengths of the last `folds` windows of a series of `n` periods, oldest first.

    Origins that would leave fewer than 2 periods to fit on are skipped (the series is reported
    as too short, never dropped silently).
    """
    cuts = [n - span(folds, horizon, step) + i * step for i in range(folds)]
    return [c for c in cuts if c >= 2]


@dataclass(frozen=True, eq=False)
class Windows:
    """The rolling-origin windows at the end of `series` that a model is scored on."""

    series: SeriesSet
    folds: int
    horizon: int
    step: int

    @property
    def span(self) -> int:
        return span(self.folds, self.horizon, self.step)

    def origins(self, n: int) -> list[int]:
        return rolling_origins(n, self.folds, self.horizon, self.step)

    def before_first_origin(self) -> SeriesSet:
        """Each series cut at its first origin: what was known then (to choose models without peeking)."""
        keep = self.series.frame.groupby("unique_id", sort=False).cumcount(ascending=False) >= self.span
        return replace(self.series, frame=self.series.frame[keep].reset_index(drop=True))


def mase_scale(train: np.ndarray, season: int) -> float:
    """In-sample MAE of seasonal naive (naive-1 below two seasons); NaN where it is zero."""
    lag = season if season > 1 and len(train) >= 2 * season else 1
    if len(train) <= lag:
        return math.nan
    mae = float(np.mean(np.abs(train[lag:] - train[:-lag])))
    return mae if mae > 0 else math.nan


def fold_metrics(actual: np.ndarray, fc: pd.DataFrame, scale: float, levels: list[int], prefix: str = "") -> dict[str, float]:
    err = actual - fc["yhat"].to_numpy()
    denom = np.abs(actual) + np.abs(fc["yhat"].to_numpy())
    ratio = np.divide(np.abs(err), denom, out=np.zeros_like(err), where=denom > 0)
    out = {
        f"{prefix}mase": float(np.mean(np.abs(err)) / scale) if math.isfinite(scale) else math.nan,
        f"{prefix}smape": float(200 * np.mean(ratio)),
        f"{prefix}rmse": float(np.sqrt(np.mean(err**2))),
    }
    for level in levels:
        inside = (actual >= fc[f"lo_{level}"].to_numpy()) & (actual <= fc[f"hi_{level}"].to_numpy())
        out[f"{prefix}coverage_{level}"] = float(np.mean(inside))
    return out


def _losses(uid: str, fold: int, fc: pd.DataFrame, actual: np.ndarray, scale: float) -> pd.DataFrame:
    yhat = fc["yhat"].to_numpy(dtype="float64")
    return pd.DataFrame({"series_id": uid, "fold": fold, "step": fc["step"].to_numpy(), "ds": fc["ds"].to_numpy(),
                         "actual": actual, "yhat": yhat, "abs_error": np.abs(actual - yhat), "scale": scale})


def backtest_series(
    task: SeriesTask, ctx: Context, windows: tuple[int, int, int], levels: list[int],
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """One row per fold (the candidate's and seasonal naive's errors on the same window) and the per-step losses."""
    folds, horizon, step = windows
    cutoffs = rolling_origins(len(task.y), folds, horizon, step)
    if not cutoffs:  # reported, never dropped: its MASE is undefined and counted as such
        row = {"unique_id": task.uid, "fold": np.nan, "method": "none", "spec": task.spec.label(),
               "reason": f"too short to backtest: {len(task.y)} periods, the folds need {span(*windows) + 2}",
               "warnings": 0, "convergence_warnings": 0, "fit_failed": False, "fit_seconds": 0.0}
        return [row], pd.DataFrame(columns=LOSS_COLUMNS)
    rows, losses = [], []
    for fold, cut in enumerate(cutoffs):
        h = min(horizon, len(task.y) - cut)
        train_user = None if task.user is None else task.user.iloc[:cut]
        test_user = None if task.user is None else task.user.iloc[cut:cut + h].reset_index(drop=True)
        started = time.perf_counter()
        model = fit_series(task.uid, task.y[:cut], task.ds[:cut], train_user, task.spec, ctx, task.note)
        model.conformal = task.conformal
        seconds = time.perf_counter() - started
        base = fit_series(task.uid, task.y[:cut], task.ds[:cut], None, Spec(method="snaive"), Context(ctx.freq, ctx.season))
        actual = task.y[cut:cut + h]
        scale = mase_scale(task.y[:cut], ctx.season)
        fc = model.forecast(h, levels, test_user)
        rows.append({
            "unique_id": task.uid, "fold": fold, "cutoff": task.ds[cut], "train_periods": cut, "horizon": h,
            "method": model.method, "spec": task.spec.label(), "reason": model.reason,
            **fold_metrics(actual, fc, scale, levels),
            **fold_metrics(actual, base.forecast(h, levels), scale, levels, prefix="snaive_"),
            "warnings": model.warnings, "convergence_warnings": model.convergence_warnings,
            "fit_failed": bool(model.failure), "fit_seconds": seconds,
        })
        losses.append(_losses(task.uid, fold, fc, actual, scale))
    return rows, pd.concat(losses, ignore_index=True)


@dataclass
class SeriesBacktest:
    """`backtest_series` with the job's shared settings: what worker processes run per series."""

    ctx: Context
    windows: tuple[int, int, int]  # folds, horizon, step
    levels: list[int]

    def __call__(self, task: SeriesTask) -> tuple[list[dict[str, Any]], pd.DataFrame]:
        return backtest_series(task, self.ctx, self.windows, self.levels)
