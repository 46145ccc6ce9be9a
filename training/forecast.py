"""The sales forecaster family: one SARIMAX per series, chosen and scored on rolling-origin backtests.

How a job runs through it:
- `features` builds the long series table (`features.series`); `split` keeps all of it for
  training and names the rolling origins of the backtest (`folds` origins `step` periods apart,
  each forecasting `horizon` periods from a model refitted on everything before the origin).
- A trial samples ONE configuration (p,d,q,P,D,Q,trend,fourier); `evaluate` backtests it on every
  series in parallel (joblib's reusable loky process pool, one task per series) and returns the
  mean MASE plus a per-series table. The seasonal-naive baseline is scored on exactly the same
  folds, in the same table.
- `select` (called by the platform after the study) gives each series a configuration across the
  trials (`best_per_series`: the study's best unless one of its own is clearly better; seasonal
  naive where nothing beats it), with the reason recorded. `fit` then fits each series' choice.

Each configuration is adapted to each series, and the adaptation is recorded as a note:
- seasonal terms need >= 2 full seasons of history, else they are dropped;
- seasons longer than `seasonal_arma_max` (weekly data, s=52) get no seasonal ARMA: its state
  space has >52 states and a fit takes seconds; `fourier` sin/cos pairs carry the season instead
  (measured in bench/forecast.py);
- a series that is constant (all zero included) gets a flat `mean` forecast; one shorter than
  `min_train` gets seasonal naive (naive-1 below one season), never a failed job;
- a SARIMAX fit that raises falls back to seasonal naive with the error as the reason.

Metrics per fold: MASE (MAE over the in-sample MAE of seasonal naive on the fold's training part,
naive-1 when that part is shorter than two seasons), sMAPE (0..200), RMSE and the share of held-out
points inside each prediction interval. A series' figure is the mean over its folds; the objective
is the mean MASE over series (series whose MASE is undefined, a constant training part, are
counted and left out of both the model's and the baseline's mean).

SARIMAX is fitted with `low_memory=True`; those results cannot give forecast intervals (statsmodels
0.15 then keeps no forecast error covariance: `conf_int` is all NaN), so the fitted parameters are
run once more through the Kalman filter keeping only the forecast arrays (`_forecast_memory`):
~0.1-0.3 MB per pickled series model instead of 1-15 MB, intervals intact. The scale is
concentrated out of the likelihood (`concentrate_scale=True`: one parameter less, 2-5x fewer
optimiser steps measured here) and values are divided by their mean absolute value before fitting
(optimiser conditioning), scaled back in forecasts. Warnings of a fit are counted per series
(convergence warnings separately), never printed. BLAS threads are limited to one per fit: with
the default thread pool a fit ran 10x slower on the 2 cores here.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from threadpoolctl import threadpool_limits

from features.series import (
    SEASON_LENGTH,
    ExogOptions,
    Freq,
    SeriesOptions,
    SeriesSet,
    build_series,
    calendar_exog,
    future_starts,
)

if TYPE_CHECKING:  # loky workers import this module: keep MLflow, Optuna and matplotlib out of its imports
    import optuna
    from matplotlib.figure import Figure

    from features.contract import Loaded
    from training.family import Evaluation
    from training.forecast_pyfunc import ForecastModel

log = logging.getLogger(__name__)

TRENDS = ("n", "c", "t", "ct")
DEFAULT_HORIZON = {"D": 14, "W": 4, "M": 3}
SWITCH_MARGIN = 0.2  # see best_per_series
MAX_HORIZON = 1000
KNOWN_PATH_STEPS = 104  # steps a served SARIMAX forecasts once and slices (see SeriesModel._known_path)
NAIVE_METHODS = ("snaive", "naive", "mean")


# ---- config ----


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BacktestOptions(Strict):
    folds: int = Field(3, ge=1)
    horizon: int | None = Field(None, ge=1, description="periods per fold; default D 14, W 4, M 3")
    step: int | None = Field(None, ge=1, description="periods between origins; default the horizon")


class SearchSpace(Strict):
    p_max: int = Field(2, ge=0, le=5)
    d_max: int = Field(1, ge=0, le=2)
    q_max: int = Field(2, ge=0, le=5)
    P_max: int = Field(1, ge=0, le=2)
    D_max: int = Field(1, ge=0, le=1)
    Q_max: int = Field(1, ge=0, le=2)
    fourier_max: int = Field(3, ge=0, le=10, description="sin/cos pairs for the season")
    trends: list[Literal["n", "c", "t", "ct"]] = Field(default_factory=lambda: ["n", "c", "t"], min_length=1)


class ForecastConfig(Strict):
    series: SeriesOptions = SeriesOptions()
    exog: ExogOptions = ExogOptions()
    backtest: BacktestOptions = BacktestOptions()
    season_length: int | None = Field(None, ge=1, description="default from freq: D 7, W 52, M 12")
    levels: list[int] = Field(default_factory=lambda: [80, 95], min_length=1)
    max_workers: int = Field(2, ge=1)
    search: SearchSpace = SearchSpace()
    min_train: int = Field(16, ge=4, description="shortest history a SARIMAX is fitted on")
    seasonal_arma_max: int = Field(24, ge=1, description="longer seasons use Fourier terms, not seasonal ARMA")
    maxiter: int = Field(50, ge=5, description="optimiser iterations per SARIMAX fit")
    selection_margin: float = Field(SWITCH_MARGIN, ge=0, lt=1, description="a series leaves the study's best config only for a gain this large")

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        return check_levels(v)

    @model_validator(mode="after")
    def _weekend_needs_days(self) -> ForecastConfig:
        if "weekend" in self.exog.calendar and self.series.freq != "D":
            raise ValueError("exog.calendar 'weekend' needs series.freq: D")
        return self

    @property
    def season(self) -> int:
        return self.season_length or SEASON_LENGTH[self.series.freq]

    @property
    def horizon(self) -> int:
        return self.backtest.horizon or DEFAULT_HORIZON[self.series.freq]

    @property
    def step(self) -> int:
        return self.backtest.step or self.horizon


# ---- the fitted model: what it keeps and how it forecasts ----


def fourier_terms(starts: pd.DatetimeIndex, freq: Freq, season: int, k: int) -> pd.DataFrame:
    """sin/cos pairs of the season, phased on the calendar so folds and forecasts line up.

    Weekly data with a 52-week season is phased on the day of the year (a year is 52.18 weeks,
    so counting weeks would drift a day a year); other seasons count periods since 1970.
    """
    if freq == "W" and season == 52:
        phase = (starts.day_of_year.to_numpy() - 1 + 3.5) / 365.25
    else:
        phase = _period_number(starts, freq) / season
    cols = {}
    for j in range(1, k + 1):
        cols[f"sin{j}"] = np.sin(2 * np.pi * j * phase)
        cols[f"cos{j}"] = np.cos(2 * np.pi * j * phase)
    return pd.DataFrame(cols, index=starts, dtype="float64")


def _period_number(starts: pd.DatetimeIndex, freq: Freq) -> np.ndarray:
    days = starts.to_numpy().astype("datetime64[D]").astype("int64")
    if freq == "D":
        return days.astype("float64")
    if freq == "W":
        return ((days + 3) // 7).astype("float64")
    return ((starts.year.to_numpy() - 1970) * 12 + starts.month.to_numpy() - 1).astype("float64")


@dataclass
class Design:
    """Which regressors a series model uses, so the same matrix is rebuilt for any dates."""

    freq: Freq
    season: int
    fourier: int = 0
    calendar: list[str] = field(default_factory=list)
    user: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [*(f"{t}{j}" for j in range(1, self.fourier + 1) for t in ("sin", "cos")), *self.calendar, *self.user]

    def matrix(self, starts: pd.DatetimeIndex, user: pd.DataFrame | None) -> np.ndarray | None:
        parts = []
        if self.fourier:
            parts.append(fourier_terms(starts, self.freq, self.season, self.fourier).to_numpy())
        if self.calendar:
            parts.append(calendar_exog(starts, self.freq, self.calendar).to_numpy())
        if self.user:
            if user is None:
                raise ValueError(f"future values of regressor(s) {self.user} are required")
            parts.append(user[self.user].to_numpy(dtype="float64"))
        return np.column_stack(parts) if parts else None


@dataclass
class SeriesModel:
    """One series' fitted model: SARIMAX results or a naive method, and why it is what it is."""

    unique_id: str
    method: str  # "sarimax" | "snaive" | "naive" | "mean"
    params: dict[str, Any]
    reason: str
    last_ds: pd.Timestamp
    n_obs: int
    design: Design
    scale: float = 1.0
    results: Any = None
    tail: np.ndarray | None = None  # the last season (snaive), last value (naive) or mean (mean)
    sigma: float = 0.0
    warnings: int = 0
    convergence_warnings: int = 0

    def forecast(self, horizon: int, levels: list[int], user_exog: pd.DataFrame | None = None) -> pd.DataFrame:
        """step, ds, yhat and lo_/hi_ bounds for each level."""
        return forecast_frame(*self.forecast_arrays(horizon, levels, user_exog))

    def forecast_arrays(
        self, horizon: int, levels: list[int], user_exog: pd.DataFrame | None = None
    ) -> tuple[pd.DatetimeIndex, np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
        """Period starts, point forecasts and (lower, upper) bounds per level, as arrays."""
        starts = future_starts(self.last_ds, self.design.freq, horizon)
        if self.method != "sarimax":
            return starts, *naive_forecast(self.method, self.tail, self.sigma, self.n_obs, horizon, levels)
        if self.design.user:  # the caller's future regressor values: computed per request
            return starts, *self._sarimax(starts, horizon, levels, user_exog)
        mean, se = self._known_path(horizon)
        return starts, mean, normal_bounds(mean, se, levels)

    def _known_path(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Point forecasts and standard errors of steps 1..horizon when every regressor is known ahead.

        The forecast of step h does not depend on how many steps are asked for, so one forecast of
        `KNOWN_PATH_STEPS` (or more) steps serves every shorter request by slicing: a served request
        then costs no Kalman filter pass. Not pickled (see `__getstate__`).
        """
        cached = self.__dict__.get("_path")
        if cached is None or len(cached[0]) < horizon:
            steps = max(horizon, KNOWN_PATH_STEPS)
            starts = future_starts(self.last_ds, self.design.freq, steps)
            fc = self.results.get_forecast(steps=steps, exog=self.design.matrix(starts, None))
            mean = np.asarray(fc.predicted_mean, dtype="float64") * self.scale
            se = np.asarray(fc.se_mean, dtype="float64") * self.scale
            cached = (mean, se)
            self.__dict__["_path"] = cached
        return cached[0][:horizon].copy(), cached[1][:horizon].copy()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_path", None)
        return state

    def _sarimax(self, starts, horizon, levels, user_exog) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
        exog = self.design.matrix(starts, user_exog)
        fc = self.results.get_forecast(steps=horizon, exog=exog)
        mean = np.asarray(fc.predicted_mean, dtype="float64") * self.scale
        bounds = {}
        for level in levels:
            ci = np.asarray(fc.conf_int(alpha=1 - level / 100), dtype="float64") * self.scale
            bounds[level] = (ci[:, 0], ci[:, 1])
        return mean, bounds


def naive_forecast(
    method: str, tail: np.ndarray, sigma: float, n_obs: int, horizon: int, levels: list[int]
) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Point forecast and normal intervals from the in-sample residual spread.

    Spread per step (Hyndman & Athanasopoulos, FPP3 5.5): naive sigma*sqrt(h); seasonal naive
    sigma*sqrt(k+1) with k the whole seasons before step h (so it widens season by season);
    mean sigma*sqrt(1 + 1/n).
    """
    steps = np.arange(1, horizon + 1)
    if method == "snaive":
        season = len(tail)
        mean = tail[(steps - 1) % season]
        spread = np.sqrt((steps - 1) // season + 1.0)
    elif method == "naive":
        mean = np.repeat(tail[-1], horizon)
        spread = np.sqrt(steps.astype("float64"))
    elif method == "mean":
        mean = np.repeat(tail[-1], horizon)
        spread = np.repeat(math.sqrt(1 + 1 / max(n_obs, 1)), horizon)
    else:
        raise ValueError(f"unknown naive method {method!r}; known: {NAIVE_METHODS}")
    mean = mean.astype("float64")
    return mean, normal_bounds(mean, sigma * spread, levels)


def normal_bounds(mean: np.ndarray, se: np.ndarray, levels: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """(lower, upper) of the central normal interval at each level, from point forecasts and their spread."""
    bounds = {}
    for level in levels:
        half = NormalDist().inv_cdf(0.5 + level / 200) * se
        bounds[level] = (mean - half, mean + half)
    return bounds


def forecast_frame(starts: pd.DatetimeIndex, mean: np.ndarray, bounds: dict[int, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """step, ds, yhat and lo_/hi_ columns per level, from `SeriesModel.forecast_arrays`."""
    out = pd.DataFrame({"step": np.arange(1, len(mean) + 1), "ds": starts, "yhat": mean})
    for level, (lo, hi) in bounds.items():
        out[f"lo_{level}"], out[f"hi_{level}"] = lo, hi
    return out


@dataclass
class Forecaster:
    """All series models of one job, plus what serving needs to check a request."""

    models: dict[str, SeriesModel]
    freq: Freq
    season: int
    levels: list[int]
    user_exog: list[str] = field(default_factory=list)
    details: pd.DataFrame | None = None  # per-series backtest table of the chosen models

    @property
    def ids(self) -> list[str]:
        return list(self.models)

    def model(self, series_id: str) -> SeriesModel:
        if series_id not in self.models:
            known = self.ids
            raise ValueError(
                f"unknown series_id {series_id!r}; this model knows {len(known)} series, e.g. {known[:20]}"
            )
        return self.models[series_id]

    def forecast_arrays(
        self, series_id: str, horizon: int, levels: list[int] | None = None, exog: Any = None
    ) -> tuple[SeriesModel, pd.DatetimeIndex, np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
        """As `forecast`, without the DataFrame: the series' model, period starts, yhat and bounds per level."""
        model = self.model(series_id)
        horizon = check_horizon(horizon)
        levels = check_levels(self.levels if levels is None else levels)
        user = parse_exog(exog, model.design.user, horizon, series_id)
        return model, *model.forecast_arrays(horizon, levels, user)

    def forecast(self, series_id: str, horizon: int, levels: list[int] | None = None, exog: Any = None) -> pd.DataFrame:
        model, *arrays = self.forecast_arrays(series_id, horizon, levels, exog)
        out = forecast_frame(*arrays)
        out.insert(0, "series_id", series_id)
        out.insert(4, "model", model.method)
        return out


def check_horizon(horizon: Any) -> int:
    if not _whole(horizon):
        raise ValueError(f"horizon must be a whole number of periods, got {horizon!r}")
    h = int(horizon)
    if h <= 0 or h > MAX_HORIZON:
        raise ValueError(f"horizon must be between 1 and {MAX_HORIZON} periods, got {h}")
    return h


def check_levels(levels: Any) -> list[int]:
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
        raise ValueError(f"levels must be a list of integers in (0, 100), got {levels!r}")
    out = []
    for level in levels:
        if not _whole(level) or not 0 < float(level) < 100:
            raise ValueError(f"each level must be an integer in (0, 100), got {level!r}")
        out.append(int(level))
    return sorted(set(out))


def _whole(value: Any) -> bool:
    try:
        return not isinstance(value, (bool, str)) and float(value).is_integer()
    except (TypeError, ValueError):
        return False


def parse_exog(exog: Any, needed: list[str], horizon: int, series_id: str) -> pd.DataFrame | None:
    """Future regressor values: {column: [h values]} or [{column: value}] * h (JSON text accepted)."""
    if not needed:
        return None
    if exog is None:
        raise ValueError(
            f"series {series_id!r}: the model needs future values of regressor(s) {needed} "
            f"for {horizon} step(s); pass exog={{column: [one value per step]}}"
        )
    if isinstance(exog, str):
        exog = json.loads(exog)
    frame = pd.DataFrame(list(exog)) if isinstance(exog, (list, tuple, np.ndarray)) else pd.DataFrame(dict(exog))
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"series {series_id!r}: exog lacks regressor(s) {missing} (model needs {needed})")
    if len(frame) != horizon:
        raise ValueError(f"series {series_id!r}: exog has {len(frame)} step(s) but horizon is {horizon}")
    values = frame[needed].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any() or not np.isfinite(values.to_numpy(dtype="float64")).all():
        raise ValueError(f"series {series_id!r}: exog values must be finite numbers")
    return values.reset_index(drop=True)


# ---- one series' model choice ----


@dataclass(frozen=True)
class Spec:
    """A candidate model for one series: SARIMAX orders, trend, Fourier pairs, or a naive method."""

    method: str = "sarimax"
    order: tuple[int, int, int] = (1, 1, 1)
    seasonal: tuple[int, int, int] = (0, 0, 0)
    trend: str = "n"
    fourier: int = 0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Spec:
        method = params.get("method", "sarimax")
        if method not in ("sarimax", *NAIVE_METHODS):
            raise ValueError(f"unknown method {method!r}; known: {['sarimax', *NAIVE_METHODS]}")
        if method != "sarimax":
            return cls(method=method, order=(0, 0, 0))
        trend = params.get("trend", "n")
        if trend not in TRENDS:
            raise ValueError(f"unknown trend {trend!r}; known: {list(TRENDS)}")
        return cls(
            order=(int(params.get("p", 1)), int(params.get("d", 1)), int(params.get("q", 1))),
            seasonal=(int(params.get("P", 0)), int(params.get("D", 0)), int(params.get("Q", 0))),
            trend=trend,
            fourier=int(params.get("fourier", 0)),
        )

    def as_params(self) -> dict[str, Any]:
        if self.method != "sarimax":
            return {"method": self.method}
        (p, d, q), (P, D, Q) = self.order, self.seasonal
        return {"method": "sarimax", "p": p, "d": d, "q": q, "P": P, "D": D, "Q": Q,
                "trend": self.trend, "fourier": self.fourier}

    def label(self) -> str:
        if self.method != "sarimax":
            return self.method
        text = f"SARIMAX{self.order}"
        if any(self.seasonal):
            text += f"x{self.seasonal}"
        text += f" trend={self.trend}" if self.trend != "n" else ""
        return text + (f" fourier={self.fourier}" if self.fourier else "")


@dataclass(frozen=True)
class Context:
    """What every series of a job shares: frequency, season, regressors and fitting limits."""

    freq: str
    season: int
    calendar: tuple[str, ...] = ()
    user: tuple[str, ...] = ()
    min_train: int = 16
    seasonal_arma_max: int = 24
    maxiter: int = 50

    @classmethod
    def of(cls, feats: SeriesSet, cfg: ForecastConfig) -> Context:
        return cls(feats.freq, cfg.season, tuple(feats.calendar), tuple(feats.exog_columns),
                   cfg.min_train, cfg.seasonal_arma_max, cfg.maxiter)


def adapt(spec: Spec, n: int, ctx: Context) -> tuple[Spec, list[str]]:
    """The spec as this series' history allows it, and notes on what was changed."""
    notes: list[str] = []
    if spec.method != "sarimax":
        return spec, notes
    s = ctx.season
    if (any(spec.seasonal) or spec.fourier) and (s < 2 or n < 2 * s):
        notes.append(f"seasonal terms dropped: {n} periods < 2 seasons of {s}")
        return replace(spec, seasonal=(0, 0, 0), fourier=0), notes
    if any(spec.seasonal) and s > ctx.seasonal_arma_max:
        notes.append(f"seasonal ARMA not fitted for s={s} > seasonal_arma_max={ctx.seasonal_arma_max}")
        spec = replace(spec, seasonal=(0, 0, 0))
    if spec.fourier * 2 >= s:
        spec = replace(spec, fourier=max((s - 1) // 2, 0))
    return spec, notes


def n_params(spec: Spec, ctx: Context) -> int:
    (p, _, q), (P, _, Q) = spec.order, spec.seasonal
    trend = {"n": 0, "c": 1, "t": 1, "ct": 2}[spec.trend]
    return p + q + P + Q + trend + 2 * spec.fourier + len(ctx.calendar) + len(ctx.user) + 1


def fallback_method(n: int, season: int) -> str:
    """Seasonal naive needs one full season; naive-1 needs one value."""
    return "snaive" if season > 1 and n >= season else "naive"


# ---- fitting one series ----


def fit_series(
    uid: str, y: np.ndarray, ds: pd.DatetimeIndex, user: pd.DataFrame | None, spec: Spec, ctx: Context, note: str = ""
) -> SeriesModel:
    """Fit `spec` on one series, or the documented fallback (with the reason) where it cannot be."""
    y = np.asarray(y, dtype="float64")
    n = len(y)
    if n == 0:
        raise ValueError(f"series {uid!r} has no periods to fit")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"series {uid!r} has {int((~np.isfinite(y)).sum())} non-finite value(s) in y")
    base = Design(ctx.freq, ctx.season)
    if np.all(y == y[0]):
        return naive_model(uid, "mean", y, ds, base, f"constant series (every period {y[0]:g}): flat forecast")
    if spec.method != "sarimax":
        method = spec.method if spec.method != "snaive" else fallback_method(n, ctx.season)
        short = " (history shorter than one season: naive-1)" if method != spec.method else ""
        return naive_model(uid, method, y, ds, base, (note or f"{spec.method} chosen") + short)
    spec, notes = adapt(spec, n, ctx)
    need = max(ctx.min_train, 2 * n_params(spec, ctx) + spec.order[1] + spec.seasonal[1] * ctx.season)
    if n < need:
        return naive_model(uid, fallback_method(n, ctx.season), y, ds, base,
                           f"too short for {spec.label()}: {n} periods < {need}")
    design = Design(ctx.freq, ctx.season, spec.fourier, list(ctx.calendar), list(ctx.user))
    try:
        return sarimax_model(uid, y, ds, user, spec, design, ctx, "; ".join([note, *notes]).strip("; "))
    except Exception as exc:  # noqa: BLE001 - a failing fit falls back; the reason says why
        return naive_model(uid, fallback_method(n, ctx.season), y, ds, base,
                           f"{spec.label()} fit failed ({type(exc).__name__}: {exc})")


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
    endog = y / scale
    exog = design.matrix(ds, user)
    seasonal = (*spec.seasonal, ctx.season) if any(spec.seasonal) else (0, 0, 0, 0)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
        warnings.simplefilter("always")
        model = SARIMAX(endog, exog=exog, order=spec.order, seasonal_order=seasonal, trend=spec.trend,
                        concentrate_scale=True)
        params = model.fit(disp=False, low_memory=True, maxiter=ctx.maxiter).params
        results = model.filter(params, conserve_memory=_forecast_memory())
    n_conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if not (np.all(np.isfinite(params)) and np.isfinite(results.llf)):
        raise FloatingPointError("non-finite parameters or likelihood")
    return SeriesModel(uid, "sarimax", spec.as_params(), reason or spec.label(), pd.Timestamp(ds[-1]), len(y),
                       design, scale=scale, results=results, warnings=len(caught),
                       convergence_warnings=n_conv)


# ---- backtests ----


@dataclass
class Holdout:
    """The rolling origins every candidate, the baseline and the champion are scored on."""

    series: SeriesSet
    folds: int
    horizon: int
    step: int

    @property
    def span(self) -> int:
        """Periods from the first origin to the end of the data."""
        return self.horizon + (self.folds - 1) * self.step

    def cutoffs(self, n: int) -> list[int]:
        """Training lengths of the folds, oldest first (folds that leave < 2 periods are skipped)."""
        cuts = [n - self.span + i * self.step for i in range(self.folds)]
        return [c for c in cuts if c >= 2]

    def before_first_origin(self) -> SeriesSet:
        """Each series cut at its first origin: what was known then (to choose models without peeking)."""
        keep = self.series.frame.groupby("unique_id", sort=False).cumcount(ascending=False) >= self.span
        frame = self.series.frame[keep].reset_index(drop=True)
        return replace(self.series, frame=frame)


@dataclass
class SeriesTask:
    uid: str
    y: np.ndarray
    ds: pd.DatetimeIndex
    user: pd.DataFrame | None
    spec: Spec
    note: str = ""


def tasks(feats: SeriesSet, params: dict[str, Any]) -> list[SeriesTask]:
    """One task per series with its spec: `params["per_series"][uid]` when given, else `params`."""
    per_series = params.get("per_series") or {}
    shared = {k: v for k, v in params.items() if k != "per_series"}
    out = []
    for uid, frame in feats.frame.groupby("unique_id", sort=False):
        own = per_series.get(uid, shared)
        user = frame[feats.exog_columns].reset_index(drop=True) if feats.exog_columns else None
        out.append(SeriesTask(str(uid), frame["y"].to_numpy(dtype="float64"), pd.DatetimeIndex(frame["ds"]),
                              user, Spec.from_params(own), str(own.get("note", ""))))
    return out


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


def backtest_series(task: SeriesTask, ctx: Context, holdout: Holdout, levels: list[int]) -> list[dict[str, Any]]:
    """One row per fold: the candidate's and seasonal naive's errors on the same window."""
    cutoffs = holdout.cutoffs(len(task.y))
    if not cutoffs:  # reported, never dropped: its MASE is undefined and counted as such
        return [{"unique_id": task.uid, "fold": np.nan, "method": "none", "spec": task.spec.label(),
                 "reason": f"too short to backtest: {len(task.y)} periods, the folds need {holdout.span + 2}",
                 "warnings": 0, "convergence_warnings": 0, "fit_seconds": 0.0}]
    rows = []
    for fold, cut in enumerate(cutoffs):
        h = min(holdout.horizon, len(task.y) - cut)
        train_user = None if task.user is None else task.user.iloc[:cut]
        test_user = None if task.user is None else task.user.iloc[cut:cut + h].reset_index(drop=True)
        started = time.perf_counter()
        model = fit_series(task.uid, task.y[:cut], task.ds[:cut], train_user, task.spec, ctx, task.note)
        seconds = time.perf_counter() - started
        base = fit_series(task.uid, task.y[:cut], task.ds[:cut], None, Spec(method="snaive"), Context(ctx.freq, ctx.season))
        actual = task.y[cut:cut + h]
        scale = mase_scale(task.y[:cut], ctx.season)
        rows.append({
            "unique_id": task.uid, "fold": fold, "cutoff": task.ds[cut], "train_periods": cut, "horizon": h,
            "method": model.method, "spec": task.spec.label(), "reason": model.reason,
            **fold_metrics(actual, model.forecast(h, levels, test_user), scale, levels),
            **fold_metrics(actual, base.forecast(h, levels), scale, levels, prefix="snaive_"),
            "warnings": model.warnings, "convergence_warnings": model.convergence_warnings, "fit_seconds": seconds,
        })
    return rows


def _executor(max_workers: int):
    """joblib's reusable loky process pool: started once, kept between trials (a worker pays ~5 s of imports)."""
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=max_workers, timeout=600)


def run_parallel(func, items: list[Any], max_workers: int) -> list[Any]:
    """`func` over items on worker processes (in-process when one worker or one item), in order."""
    if max_workers <= 1 or len(items) <= 1:
        with threadpool_limits(1):
            return [func(item) for item in items]
    return list(_executor(max_workers).map(func, items))


def _import_models() -> None:
    import statsmodels.tsa.statespace.sarimax  # noqa: F401


def warm_up(max_workers: int) -> None:
    """Start the worker processes and their imports now, without waiting (e.g. while series are built)."""
    if max_workers > 1:
        executor = _executor(max_workers)
        for _ in range(max_workers):
            executor.submit(_import_models)


@dataclass
class _Backtest:
    ctx: Context
    holdout: Holdout
    levels: list[int]

    def __call__(self, task: SeriesTask) -> list[dict[str, Any]]:
        return backtest_series(task, self.ctx, self.holdout, self.levels)


def backtest(feats: SeriesSet, holdout: Holdout, params: dict[str, Any], cfg: ForecastConfig) -> pd.DataFrame:
    """Per-fold table of every series for one configuration (or one per series)."""
    runner = _Backtest(Context.of(feats, cfg), holdout, list(cfg.levels))
    rows = [row for part in run_parallel(runner, tasks(feats, params), cfg.max_workers) for row in part]
    return pd.DataFrame(rows)


def summarise(folds: pd.DataFrame, levels: list[int]) -> Evaluation:
    """Per-series means over folds, and the objective: mean MASE over series with a defined MASE."""
    from training.family import Evaluation

    metric_cols = ["mase", "smape", "rmse", *(f"coverage_{lv}" for lv in levels)]
    base_cols = [f"snaive_{c}" for c in metric_cols]
    folds = folds.reindex(columns=list(dict.fromkeys([*folds.columns, *metric_cols, *base_cols])))
    per = folds.groupby("unique_id", sort=False).agg(
        **{c: (c, "mean") for c in [*metric_cols, *base_cols]},
        folds=("fold", "count"),
        method=("method", lambda m: ",".join(sorted(set(m)))),
        spec=("spec", "first"),
        reason=("reason", lambda r: " | ".join(dict.fromkeys(x for x in r if x))),
        warnings=("warnings", "sum"),
        convergence_warnings=("convergence_warnings", "sum"),
        fit_seconds=("fit_seconds", "sum"),
    ).reset_index()
    per["beats_snaive"] = per["mase"] < per["snaive_mase"]
    defined = per[np.isfinite(per["mase"])]
    metrics = {c: float(defined[c].mean()) for c in [*metric_cols[1:], *base_cols]} if len(defined) else {}
    metrics.update({
        "series": float(len(per)),
        "series_mase_undefined": float(len(per) - len(defined)),
        "series_beating_snaive": float(defined["beats_snaive"].sum()),
        "series_fallback": float((~per["method"].str.contains("sarimax")).sum()),
        "convergence_warnings": float(per["convergence_warnings"].sum()),
    })
    objective = float(defined["mase"].mean()) if len(defined) else math.inf
    return Evaluation(objective=objective, metrics=metrics, details=per)


def evaluate_params(feats: SeriesSet, holdout: Holdout, params: dict[str, Any], cfg: ForecastConfig) -> tuple[Evaluation, pd.DataFrame]:
    """Backtest `params` on every series: (Evaluation with the per-series table, per-fold table)."""
    folds = backtest(feats, holdout, params, cfg)
    if folds.empty or folds["fold"].isna().all():
        raise ValueError(f"no series is long enough for {holdout.folds} fold(s) of {holdout.horizon} periods")
    return summarise(folds, list(cfg.levels)), folds


def baseline_evaluation(ev: Evaluation, levels: list[int]) -> Evaluation:
    """The seasonal-naive columns of a backtest, as the baseline's own Evaluation."""
    from training.family import Evaluation

    per = ev.details
    cols = ["mase", "smape", "rmse", *(f"coverage_{lv}" for lv in levels)]
    table = per[["unique_id", *(f"snaive_{c}" for c in cols)]].rename(columns=lambda c: c.removeprefix("snaive_"))
    defined = table[np.isfinite(table["mase"])]
    metrics = {c: float(defined[c].mean()) for c in cols[1:]} | {"series": float(len(table))}
    return Evaluation(float(defined["mase"].mean()) if len(defined) else math.inf, metrics, table)


# ---- per-series selection across trials ----


def best_per_series(
    trial_details: list[tuple[dict[str, Any], pd.DataFrame]], margin: float = SWITCH_MARGIN,
) -> dict[str, dict[str, Any]]:
    """Each series' configuration across the trials, with a note saying why.

    `trial_details` holds (params, per-series details) per trial; details need `unique_id`, `mase`
    and `snaive_mase`. A series takes the study's best configuration (lowest mean MASE over the
    series every trial scored) unless one of its own trials beats that by more than `margin`
    (0.2 = 20% lower MASE): with a few folds per series the plain per-series argmin mostly picks
    noise (measured in bench/forecast.py). A series whose chosen model does not beat seasonal
    naive in the backtest takes its own best trial if that does, else seasonal naive.
    """
    frames = [
        details[["unique_id", "mase", "snaive_mase"]].assign(trial=i)
        for i, (_, details) in enumerate(trial_details) if details is not None and not details.empty
    ]
    if not frames:
        return {}
    table = pd.concat(frames, ignore_index=True)
    mase = table.pivot_table(index="unique_id", columns="trial", values="mase", sort=False, dropna=False)
    snaive = table.groupby("unique_id", sort=False)["snaive_mase"].first()
    common = mase[np.isfinite(mase).all(axis=1)]
    overall = int(common.mean().idxmin()) if len(common) else None
    chosen: dict[str, dict[str, Any]] = {}
    for uid, row in mase.iterrows():
        chosen[str(uid)] = _choose(row[np.isfinite(row)], float(snaive[uid]), overall, margin, trial_details)
    return chosen


def _choose(scores: pd.Series, snaive: float, overall: int | None, margin: float, trial_details) -> dict[str, Any]:
    if scores.empty:
        return {"method": "snaive", "note": "MASE undefined in every trial: seasonal naive"}
    own = int(scores.idxmin())
    default = overall if overall in scores.index else own
    pick = own if scores[own] < (1 - margin) * scores[default] else default
    if not scores[pick] < snaive:
        pick = own
    if not scores[pick] < snaive:
        note = f"best backtest MASE {scores[own]:.3f} of {len(scores)} trial(s) does not beat seasonal naive {snaive:.3f}"
        return {"method": "snaive", "note": note}
    how = "the study's best configuration" if pick == overall else f"its own best of {len(scores)} trial(s)"
    params = {k: v for k, v in trial_details[pick][0].items() if k not in ("per_series", "note")}
    return {**params, "note": f"{how}: backtest MASE {scores[pick]:.3f} vs seasonal naive {snaive:.3f}"}


def tune(
    train: SeriesSet, holdout: Holdout, cfg: ForecastConfig, n_trials: int, seed: int = 0,
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], Evaluation]]]:
    """A small in-memory study (benches, tests; jobs run theirs through `training.tuning`).

    The family's initial trials first, then TPE; a configuration sampled twice is scored once.
    Returns the selected params (with `per_series`) and every (params, Evaluation).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    family = ForecasterFamily()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    for params in family.initial_trials(cfg)[:n_trials]:
        study.enqueue_trial(params)
    seen: dict[str, Evaluation] = {}
    trials: list[tuple[dict[str, Any], Evaluation]] = []

    def objective(trial: optuna.Trial) -> float:
        params = family.search_space(trial, cfg)
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen[key] = family.evaluate(train, holdout, params, cfg)
            trials.append((params, seen[key]))
        return seen[key].objective

    study.optimize(objective, n_trials=n_trials)
    return family.select(trials, study.best_params, cfg), trials


# ---- fitting all series ----


@dataclass
class _Fit:
    ctx: Context

    def __call__(self, task: SeriesTask) -> SeriesModel:
        return fit_series(task.uid, task.y, task.ds, task.user, task.spec, self.ctx, task.note)


def fit_forecaster(feats: SeriesSet, params: dict[str, Any], cfg: ForecastConfig) -> Forecaster:
    ctx = Context.of(feats, cfg)
    models = run_parallel(_Fit(ctx), tasks(feats, params), cfg.max_workers)
    return Forecaster({m.unique_id: m for m in models}, feats.freq, cfg.season, list(cfg.levels), list(feats.exog_columns))


def chosen_params(forecaster: Forecaster) -> dict[str, Any]:
    """The per-series params a fitted forecaster was built with (to backtest it again); other series: seasonal naive."""
    return {"method": "snaive", "per_series": {uid: {**m.params, "note": m.reason} for uid, m in forecaster.models.items()}}


def models_table(forecaster: Forecaster) -> pd.DataFrame:
    rows = []
    for uid, m in forecaster.models.items():
        spec = Spec.from_params(m.params)
        rows.append({"unique_id": uid, "method": m.method, "model": spec.label(), "reason": m.reason,
                     "n_obs": m.n_obs, "last_ds": m.last_ds.date().isoformat(), "warnings": m.warnings,
                     "convergence_warnings": m.convergence_warnings})
    return pd.DataFrame(rows)


# ---- figures ----


def top_series(feats: SeriesSet, n: int = 4) -> list[str]:
    totals = feats.frame.groupby("unique_id")["y"].apply(lambda s: s.abs().sum()).sort_values(ascending=False)
    return [str(u) for u in totals.index[:n]]


def forecast_figure(forecaster: Forecaster, feats: SeriesSet, ids: list[str], horizon: int) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.8 * len(ids)))
    axes = fig.subplots(len(ids), 1, squeeze=False)[:, 0]
    levels = sorted(forecaster.levels, reverse=True)
    for ax, uid in zip(axes, ids):
        hist = feats.series(uid).tail(3 * max(forecaster.season, 12))
        fc = forecaster.forecast(uid, horizon, levels)
        ax.plot(hist["ds"], hist["y"], color="black", lw=1, label="actual")
        ax.plot(fc["ds"], fc["yhat"], color="tab:blue", lw=1.5, label=f"forecast ({fc['model'].iloc[0]})")
        for level, alpha in zip(levels, (0.15, 0.3, 0.45)):
            ax.fill_between(fc["ds"], fc[f"lo_{level}"], fc[f"hi_{level}"], color="tab:blue", alpha=alpha, lw=0,
                            label=f"{level}% interval")
        ax.set_title(f"{uid}: {forecaster.models[uid].reason[:90]}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def fold_error_figure(folds: pd.DataFrame) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    per_fold = folds.groupby("fold")[["mase", "snaive_mase"]].mean()
    x = np.arange(len(per_fold))
    ax.bar(x - 0.2, per_fold["mase"], 0.4, label="model")
    ax.bar(x + 0.2, per_fold["snaive_mase"], 0.4, label="seasonal naive")
    ax.set_xticks(x, [f"fold {i}" for i in per_fold.index])
    ax.set_ylabel("mean MASE over series")
    ax.set_title("backtest error per fold")
    ax.legend()
    fig.tight_layout()
    return fig


def residuals(model: SeriesModel, y: np.ndarray) -> np.ndarray:
    """One-step in-sample residuals (SARIMAX, after its differencing burn-in) or the naive method's."""
    if model.method == "sarimax":
        spec = Spec.from_params(model.params)
        burn = spec.order[1] + spec.seasonal[1] * model.design.season
        return np.asarray(model.results.resid, dtype="float64")[burn:] * model.scale
    s = model.design.season if model.method == "snaive" else 1
    return y[s:] - y[:-s] if model.method != "mean" else y - y.mean()


def acf_figure(forecaster: Forecaster, feats: SeriesSet, ids: list[str]) -> Figure:
    from matplotlib.figure import Figure
    from statsmodels.tsa.stattools import acf

    fig = Figure(figsize=(10, 2.4 * len(ids)))
    axes = fig.subplots(len(ids), 1, squeeze=False)[:, 0]
    for ax, uid in zip(axes, ids):
        resid = residuals(forecaster.models[uid], feats.series(uid)["y"].to_numpy(dtype="float64"))
        nlags = min(2 * forecaster.season, len(resid) // 2, 60)
        if len(resid) < 4 or np.allclose(resid, resid[0]):
            ax.set_title(f"{uid}: residuals constant, no ACF", fontsize=9)
            continue
        values = acf(resid, nlags=nlags, fft=True)
        ax.bar(np.arange(len(values)), values, width=0.4)
        band = 1.96 / math.sqrt(len(resid))
        ax.axhspan(-band, band, color="tab:blue", alpha=0.15)
        ax.set_title(f"{uid}: residual ACF ({forecaster.models[uid].method})", fontsize=9)
    fig.tight_layout()
    return fig


# ---- the family ----


class ForecasterFamily:
    """Sales forecasts per series: SARIMAX tuned on rolling-origin backtests against seasonal naive."""

    name = "forecaster"
    direction: Literal["maximize", "minimize"] = "minimize"
    objective_name = "mase"
    config_model = ForecastConfig

    def features(self, loaded: Loaded, cfg: ForecastConfig) -> SeriesSet:
        warm_up(cfg.max_workers)  # the workers import while the series are built
        feats = build_series(loaded.lines, cfg.series, cfg.exog)
        for row in feats.partial.to_dict("records"):
            log.info("partial %s period %s %s (%d lines, y %.2f): %s", row["edge"], row["ds"].date(),
                     row["action"], row["lines"], row["y_total"], row["reason"])
        return feats

    def split(self, feats: SeriesSet, cfg: ForecastConfig) -> tuple[SeriesSet, Holdout]:
        """All of the series train; the holdout names the rolling origins (each fold refits before its origin)."""
        holdout = Holdout(feats, cfg.backtest.folds, cfg.horizon, cfg.step)
        n = feats.frame.groupby("unique_id").size()
        need = cfg.horizon + (cfg.backtest.folds - 1) * cfg.step + 2
        if int(n.max()) < need:
            raise ValueError(
                f"series have at most {int(n.max())} periods; {cfg.backtest.folds} fold(s) of horizon "
                f"{cfg.horizon} every {cfg.step} need at least {need}"
            )
        return feats, holdout

    def search_space(self, trial: optuna.Trial, cfg: ForecastConfig) -> dict[str, Any]:
        """One configuration for every series; seasonal ARMA orders only where the season allows them."""
        s = cfg.search
        params = {
            "p": trial.suggest_int("p", 0, s.p_max),
            "d": trial.suggest_int("d", 0, s.d_max),
            "q": trial.suggest_int("q", 0, s.q_max),
            "trend": trial.suggest_categorical("trend", list(s.trends)),
            "fourier": trial.suggest_int("fourier", 0, s.fourier_max),
        }
        if cfg.season <= cfg.seasonal_arma_max:
            params |= {
                "P": trial.suggest_int("P", 0, s.P_max),
                "D": trial.suggest_int("D", 0, s.D_max),
                "Q": trial.suggest_int("Q", 0, s.Q_max),
            }
        return params

    def initial_trials(self, cfg: ForecastConfig) -> list[dict[str, Any]]:
        """Well-tried configurations to enqueue before the sampler takes over (those within the bounds)."""
        s = cfg.search
        seasonal_arma = cfg.season <= cfg.seasonal_arma_max
        seeds = [  # exponential smoothing, with a Fourier season, ARIMA(1,1,1), AR(1) around a mean
            {"p": 0, "d": 1, "q": 1, "trend": "n", "fourier": 0},
            {"p": 0, "d": 1, "q": 1, "trend": "n", "fourier": 2},
            {"p": 1, "d": 1, "q": 1, "trend": "n", "fourier": 2},
            {"p": 1, "d": 0, "q": 0, "trend": "c", "fourier": 2},
        ]
        if seasonal_arma:  # plus the airline model and its ARIMA(1,1,1) variant
            seeds = [{**p, "P": 0, "D": 0, "Q": 0} for p in seeds]
            seeds += [{"p": 0, "d": 1, "q": 1, "trend": "n", "fourier": 0, "P": 0, "D": 1, "Q": 1},
                      {"p": 1, "d": 1, "q": 1, "trend": "n", "fourier": 0, "P": 0, "D": 1, "Q": 1}]
        limits = {"p": s.p_max, "d": s.d_max, "q": s.q_max, "fourier": s.fourier_max, "P": s.P_max, "D": s.D_max, "Q": s.Q_max}
        return [p for p in seeds if all(v <= limits[k] for k, v in p.items() if k != "trend") and p["trend"] in s.trends]

    def evaluate(self, train: SeriesSet, holdout: Holdout, params: dict[str, Any], cfg: ForecastConfig) -> Evaluation:
        return evaluate_params(holdout.series, holdout, params, cfg)[0]

    def baseline(self, train: SeriesSet, holdout: Holdout, cfg: ForecastConfig) -> Evaluation:
        ev, _ = evaluate_params(holdout.series, holdout, {"method": "snaive"}, cfg)
        return baseline_evaluation(ev, list(cfg.levels))

    def select(
        self, trials: list[tuple[dict[str, Any], Evaluation]], best_params: dict[str, Any], cfg: ForecastConfig | None = None,
    ) -> dict[str, Any]:
        """The study's best params plus each series' choice across the trials (see `best_per_series`)."""
        margin = cfg.selection_margin if cfg is not None else SWITCH_MARGIN
        return {**best_params, "per_series": best_per_series([(p, ev.details) for p, ev in trials], margin)}

    def fit(self, feats: SeriesSet, params: dict[str, Any], cfg: ForecastConfig) -> Forecaster:
        return fit_forecaster(feats, params, cfg)

    def report(self, fitted: Forecaster, feats: SeriesSet, cfg: ForecastConfig) -> tuple[dict[str, Figure], dict[str, pd.DataFrame], dict[str, float]]:
        _, holdout = self.split(feats, cfg)
        ev, folds = evaluate_params(feats, holdout, chosen_params(fitted), cfg)
        fitted.details = ev.details
        ids = top_series(feats)
        figures = {
            "forecast_top_series": forecast_figure(fitted, feats, ids, cfg.horizon),
            "backtest_error_per_fold": fold_error_figure(folds),
            "residual_acf": acf_figure(fitted, feats, ids),
        }
        tables = {"backtest_series": ev.details, "backtest_folds": folds, "models": models_table(fitted)}
        if not feats.partial.empty:
            tables["partial_periods"] = feats.partial
        metrics = {f"final_{k}": v for k, v in {"mase": ev.objective, **ev.metrics}.items()}
        metrics["partial_periods"] = float(len(feats.partial))
        metrics["groups_dropped_by_top_n"] = float(feats.groups_dropped)
        return figures, tables, metrics

    def pyfunc(self, fitted: Forecaster, cfg: ForecastConfig) -> tuple[ForecastModel, pd.DataFrame, pd.DataFrame]:
        from training.forecast_pyfunc import ForecastModel, input_example

        model = ForecastModel(fitted)
        example = input_example(fitted, cfg.horizon)
        return model, example, model.predict(None, example)

    def score_model(self, model: Any, holdout: Holdout, cfg: ForecastConfig) -> float:
        """Backtest a registered model's per-series choices on `holdout` (series it lacks: seasonal naive)."""
        forecaster = model.unwrap_python_model().forecaster
        return evaluate_params(holdout.series, holdout, chosen_params(forecaster), cfg)[0].objective

