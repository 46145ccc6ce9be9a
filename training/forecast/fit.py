"""Fitting one series (SARIMAX, ETS, Theta, a combination of them, or the documented fall-back) and every series of a job.

- a series that is constant (all zero included) gets a flat `mean` forecast; one shorter than
  `min_train` (or than twice the spec's parameters) gets seasonal naive (naive-1 below one season);
- a SARIMAX fit that fails NUMERICALLY falls back to seasonal naive with the error as the reason,
  logged and counted (`SeriesModel.failure`). Numerical means: numpy's LinAlgError (singular or
  non-decomposable matrices in the Kalman filter), FloatingPointError (non-finite parameters or
  likelihood after the fit), or a ValueError raised inside numpy or scipy (e.g. "array must not
  contain infs or NaNs" once the optimiser steps to non-finite values). Anything else, statsmodels'
  own argument checks included, is a bug or bad input and propagates. ETS and Theta fits
  (`smoothing`) fall back the same way;
- a combination fits each member as above (each with its own fall-backs) and forecasts their mean.

SARIMAX is fitted with `low_memory=True`; those results cannot give forecast intervals (statsmodels
0.15 then keeps no forecast error covariance: `conf_int` is all NaN), so the fitted parameters are
run once more through the Kalman filter keeping only the forecast arrays (`_forecast_memory`):
~0.1-0.3 MB per pickled series model instead of 1-15 MB, intervals intact. The scale is
concentrated out of the likelihood (`concentrate_scale=True`: one parameter less, 2-5x fewer
optimiser steps measured here) and values are divided by their mean absolute value before fitting
(optimiser conditioning), scaled back in forecasts. A fit's warnings are counted per series
(convergence warnings separately) and logged at debug level, never printed.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features.series import SeriesSet
from serving.models.intervals import Conformal
from serving.models.series_model import COMBO, NAIVE_METHODS, Design, SeriesModel
from training.forecast.config import ForecastConfig
from training.forecast.parallel import run_parallel
from training.forecast.smoothing import smoothing_model
from training.forecast.spec import Context, Spec, adapt, fallback_method, n_params

log = logging.getLogger(__name__)

NUMERIC_LIBRARIES = ("numpy", "scipy")


def numerical_failure(exc: BaseException) -> bool:
    """Whether a fit's exception is numerical (fall back) rather than a bug (propagate); see the module doc."""
    if isinstance(exc, (np.linalg.LinAlgError, FloatingPointError)):
        return True
    if not isinstance(exc, ValueError) or exc.__traceback__ is None:
        return False
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0] in NUMERIC_LIBRARIES


def fit_series(
    uid: str, y: np.ndarray, ds: pd.DatetimeIndex, user: pd.DataFrame | None, spec: Spec, ctx: Context, note: str = ""
) -> SeriesModel:
    """Fit `spec` on one series, or the documented fall-back (with the reason) where it cannot be."""
    y = np.asarray(y, dtype="float64")
    model = _fit_or_fall_back(uid, y, ds, user, spec, ctx, note)
    model.recipe = spec.as_params()
    model.lower_limit = 0.0 if len(y) and bool(np.all(y[np.isfinite(y)] >= 0)) else None
    return model


def _fit_or_fall_back(
    uid: str, y: np.ndarray, ds: pd.DatetimeIndex, user: pd.DataFrame | None, spec: Spec, ctx: Context, note: str
) -> SeriesModel:
    n = len(y)
    if n == 0:
        raise ValueError(f"series {uid!r} has no periods to fit")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"series {uid!r} has {int((~np.isfinite(y)).sum())} non-finite value(s) in y")
    base = Design(ctx.freq, ctx.season)
    if np.all(y == y[0]):
        return naive_model(uid, "mean", y, ds, base, f"constant series (every period {y[0]:g}): flat forecast")
    if spec.method in NAIVE_METHODS:
        method = spec.method if spec.method != "snaive" else fallback_method(n, ctx.season)
        short = " (history shorter than one season: naive-1)" if method != spec.method else ""
        return naive_model(uid, method, y, ds, base, (note or f"{spec.method} chosen") + short)
    if spec.method == COMBO:
        return combination_model(uid, y, ds, user, spec, ctx, note)
    spec, notes = adapt(spec, n, ctx, positive=bool(np.all(y > 0)))
    need = max(ctx.min_train, 2 * n_params(spec, ctx) + spec.order[1] + spec.seasonal[1] * ctx.season)
    if n < need:
        return naive_model(uid, fallback_method(n, ctx.season), y, ds, base,
                           f"too short for {spec.label()}: {n} periods < {need}")
    reason = "; ".join([note, *notes]).strip("; ")
    try:
        if spec.method != "sarimax":
            return smoothing_model(uid, y, ds, spec, ctx, reason)
        design = Design(ctx.freq, ctx.season, spec.fourier, list(ctx.calendar), list(ctx.user))
        return sarimax_model(uid, y, ds, user, spec, design, ctx, reason)
    except (np.linalg.LinAlgError, FloatingPointError, ValueError) as exc:
        if not numerical_failure(exc):
            raise
        failure = f"{type(exc).__name__}: {exc}"
        log.warning("series %r: %s fit failed (%s); seasonal naive instead", uid, spec.label(), failure)
        model = naive_model(uid, fallback_method(n, ctx.season), y, ds, base, f"{spec.label()} fit failed ({failure})")
        model.failure = failure
        return model


def combination_model(
    uid: str, y: np.ndarray, ds: pd.DatetimeIndex, user: pd.DataFrame | None, spec: Spec, ctx: Context, note: str,
) -> SeriesModel:
    """Each member fitted (with its own fall-backs); the combination forecasts their mean."""
    members = tuple(fit_series(uid, y, ds, user, member, ctx) for member in spec.members)
    regressors = sorted({c for m in members for c in m.design.user})
    fell_back = [f"{Spec.from_params(m.recipe).label()}: {m.reason}" for m in members if m.method in NAIVE_METHODS]
    reason = "; ".join([note or spec.label(), *(f"member fell back ({x})" for x in fell_back)])
    return SeriesModel(uid, COMBO, spec.as_params(), reason, pd.Timestamp(ds[-1]), len(y),
                       Design(ctx.freq, ctx.season, user=regressors),
                       warnings=sum(m.warnings for m in members),
                       convergence_warnings=sum(m.convergence_warnings for m in members),
                       failure="; ".join(m.failure for m in members if m.failure), members=members)


def naive_model(uid: str, method: str, y: np.ndarray, ds: pd.DatetimeIndex, design: Design, reason: str) -> SeriesModel:
    """Seasonal naive / naive / mean with the in-sample residual spread for intervals."""
    s = design.season
    if method == "snaive":
        tail, resid = y[-s:], y[s:] - y[:-s]
    elif method == "naive":
        tail, resid = y[-1:], np.diff(y)
    else:
        tail, resid = np.array([y.mean()]), y - y.mean()
    sigma = float(np.sqrt(np.mean(resid**2))) if len(resid) else 0.0
    return SeriesModel(uid, method, {"method": method}, reason, pd.Timestamp(ds[-1]), len(y), design,
                       tail=np.asarray(tail, dtype="float64"), sigma=sigma)


def _forecast_memory() -> int:
    """Kalman filter memory flags that keep only what out-of-sample forecasts and residuals need."""
    from statsmodels.tsa.statespace import kalman_filter as kf

    return kf.MEMORY_CONSERVE & ~kf.MEMORY_NO_FORECAST & ~kf.MEMORY_NO_STD_FORECAST


def sarimax_model(
    uid: str, y: np.ndarray, ds: pd.DatetimeIndex, user: pd.DataFrame | None,
    spec: Spec, design: Design, ctx: Context, reason: str,
) -> SeriesModel:
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    scale = float(np.mean(np.abs(y))) or 1.0
    exog = design.matrix(ds, user)
    seasonal = (*spec.seasonal, ctx.season) if any(spec.seasonal) else (0, 0, 0, 0)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
        warnings.simplefilter("always")
        model = SARIMAX(y / scale, exog=exog, order=spec.order, seasonal_order=seasonal, trend=spec.trend,
                        concentrate_scale=True)
        if model.k_params == 0:  # white noise around zero: only the scale is left to estimate
            model = SARIMAX(y / scale, exog=exog, order=spec.order, seasonal_order=seasonal, trend=spec.trend)
        params = model.fit(disp=False, low_memory=True, maxiter=ctx.maxiter).params
        results = model.filter(params, conserve_memory=_forecast_memory())
    if not (np.all(np.isfinite(params)) and np.isfinite(results.llf)):
        raise FloatingPointError("non-finite parameters or likelihood")
    n_conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if caught:
        log.debug("series %r, %s: %d warning(s) in the fit: %s", uid, spec.label(), len(caught),
                  sorted({f"{w.category.__name__}: {w.message}" for w in caught}))
    return SeriesModel(uid, "sarimax", spec.as_params(), reason or spec.label(), pd.Timestamp(ds[-1]), len(y),
                       design, scale=scale, results=results, warnings=len(caught), convergence_warnings=n_conv)


# ---- every series of a job ----


@dataclass
class SeriesTask:
    uid: str
    y: np.ndarray
    ds: pd.DatetimeIndex
    user: pd.DataFrame | None
    spec: Spec
    note: str = ""
    conformal: Conformal | None = None  # calibrated half-widths a backtest puts around each fold's forecasts


def tasks(feats: SeriesSet, params: dict[str, Any], intervals: dict[str, Conformal] | None = None) -> list[SeriesTask]:
    """One task per series with its spec (`params["per_series"][uid]` when given, else `params`) and its intervals."""
    per_series = params.get("per_series") or {}
    shared = {k: v for k, v in params.items() if k != "per_series"}
    out = []
    for uid, frame in feats.frame.groupby("unique_id", sort=False):
        own = per_series.get(uid, shared)
        user = frame[feats.exog_columns].reset_index(drop=True) if feats.exog_columns else None
        out.append(SeriesTask(str(uid), frame["y"].to_numpy(dtype="float64"), pd.DatetimeIndex(frame["ds"]),
                              user, Spec.from_params(own), str(own.get("note", "")), (intervals or {}).get(str(uid))))
    return out


@dataclass
class _Fit:
    ctx: Context

    def __call__(self, task: SeriesTask) -> SeriesModel:
        return fit_series(task.uid, task.y, task.ds, task.user, task.spec, self.ctx, task.note)


def fit_all(feats: SeriesSet, params: dict[str, Any], cfg: ForecastConfig) -> dict[str, SeriesModel]:
    """Every series' model, fitted in parallel; series keep the feature table's order."""
    models = run_parallel(_Fit(Context.of(feats, cfg)), tasks(feats, params), cfg.max_workers)
    return {m.unique_id: m for m in models}
