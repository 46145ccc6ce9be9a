"""What a fitted forecaster is logged with: forecast, per-fold error and residual-ACF figures, the models table.

Pure: nothing here changes the model. Forecasts are drawn from copies of the series models (a
statsmodels forecast notes its dates on the results), residuals read from the filter's arrays rather
than statsmodels' cached `resid`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from statsmodels.tsa.stattools import acf

from features.series import SeriesSet
from serving.models.forecaster import ForecastModel
from serving.models.series_model import NAIVE_METHODS, SeriesModel, forecast_frame
from training.forecast.spec import Spec


def top_series(feats: SeriesSet, n: int = 4) -> list[str]:
    totals = feats.frame.groupby("unique_id")["y"].apply(lambda s: s.abs().sum()).sort_values(ascending=False)
    return [str(u) for u in totals.index[:n]]


def forecast_figure(model: ForecastModel, feats: SeriesSet, ids: list[str], horizon: int) -> Figure:
    fig = Figure(figsize=(10, 2.8 * len(ids)))
    axes = fig.subplots(len(ids), 1, squeeze=False)[:, 0]
    levels = sorted(model.default_levels, reverse=True)
    for ax, uid in zip(axes, ids):
        series = copy.deepcopy(model.series_model(uid))
        hist = feats.series(uid).tail(3 * max(model.season, 12))
        ax.plot(hist["ds"], hist["y"], color="black", lw=1, label="actual")
        if series.design.user:  # its forecasts need the caller's future regressor values
            ax.set_title(f"{uid}: needs future values of {series.design.user}; no forecast drawn", fontsize=9)
            continue
        ax.set_title(f"{uid}: {series.reason[:90]}", fontsize=9)
        fc = forecast_frame(*series.forecast_arrays(horizon, levels))
        ax.plot(fc["ds"], fc["yhat"], color="tab:blue", lw=1.5, label=f"forecast ({series.method})")
        for level, alpha in zip(levels, (0.15, 0.3, 0.45)):
            ax.fill_between(fc["ds"], fc[f"lo_{level}"], fc[f"hi_{level}"], color="tab:blue", alpha=alpha, lw=0,
                            label=f"{level}% interval")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def fold_error_figure(folds: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    per_fold = folds.groupby("fold")[["mase", "snaive_mase"]].mean()
    x = np.arange(len(per_fold))
    ax.bar(x - 0.2, per_fold["mase"], 0.4, label="model")
    ax.bar(x + 0.2, per_fold["snaive_mase"], 0.4, label="seasonal naive")
    ax.set_xticks(x, [f"fold {int(i)}" for i in per_fold.index])
    ax.set_ylabel("mean MASE over series")
    ax.set_title("test-window error per fold")
    ax.legend()
    fig.tight_layout()
    return fig


def residuals(model: SeriesModel, y: np.ndarray) -> np.ndarray:
    """One-step in-sample residuals (SARIMAX, after its differencing burn-in; ETS) or the naive method's.

    Theta and combinations keep no in-sample fit: no residuals (empty).
    """
    if model.method == "ets":
        return y - np.asarray(model.results.fittedvalues, dtype="float64") * model.scale
    if model.method not in NAIVE_METHODS and model.method != "sarimax":
        return np.empty(0)
    if model.method == "sarimax":
        spec = Spec.from_params(model.params)
        burn = spec.order[1] + spec.seasonal[1] * model.design.season
        return np.asarray(model.results.filter_results.forecasts_error[0], dtype="float64")[burn:] * model.scale
    s = model.design.season if model.method == "snaive" else 1
    return y[s:] - y[:-s] if model.method != "mean" else y - y.mean()


def acf_figure(model: ForecastModel, feats: SeriesSet, ids: list[str]) -> Figure:
    fig = Figure(figsize=(10, 2.4 * len(ids)))
    axes = fig.subplots(len(ids), 1, squeeze=False)[:, 0]
    for ax, uid in zip(axes, ids):
        series = model.series_model(uid)
        resid = residuals(series, feats.series(uid)["y"].to_numpy(dtype="float64"))
        nlags = min(2 * model.season, len(resid) // 2, 60)
        if len(resid) < 4 or np.allclose(resid, resid[0]):
            ax.set_title(f"{uid}: {'no in-sample residuals' if len(resid) == 0 else 'residuals constant'}, no ACF", fontsize=9)
            continue
        values = acf(resid, nlags=nlags, fft=True)
        ax.bar(np.arange(len(values)), values, width=0.4)
        band = 1.96 / math.sqrt(len(resid))
        ax.axhspan(-band, band, color="tab:blue", alpha=0.15)
        ax.set_title(f"{uid}: residual ACF ({series.method})", fontsize=9)
    fig.tight_layout()
    return fig


def models_table(model: ForecastModel, levels: list[int] | None = None) -> pd.DataFrame:
    """One row per series: what was fitted, why, and where each level's interval comes from."""
    levels = levels or model.default_levels
    rows = []
    for uid, m in model.models.items():
        intervals = m.conformal.describe(levels) if m.conformal is not None else ", ".join(f"{lv}: model" for lv in levels)
        rows.append({"unique_id": uid, "method": m.method, "model": Spec.from_params(m.params).label(),
                     "recipe": Spec.from_params(m.recipe).label() if m.recipe else "", "reason": m.reason,
                     "n_obs": m.n_obs, "last_ds": m.last_ds.date().isoformat(), "warnings": m.warnings,
                     "convergence_warnings": m.convergence_warnings, "fit_failure": m.failure,
                     "intervals": intervals})
    return pd.DataFrame(rows)
