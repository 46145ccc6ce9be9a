"""One series' fitted forecast model, and the checks a forecast query passes before it is answered.

Kept apart from `serving.models.forecaster` (the pyfunc class) so that training's worker processes,
which fit and backtest thousands of these, load neither MLflow nor anything else they do not use.

The seasonal terms are our own sin/cos pairs, not statsmodels' `CalendarFourier`/`Fourier`:
weekly data with a 52-week season is phased on the middle of the week within a year of 365.25 days
(`CalendarFourier("YE")` divides by each year's own 365/366 days and has no mid-period offset: up to
0.15 apart here, 0.03 after shifting the dates), monthly and daily seasons count periods since 1970
(`CalendarFourier` phases months by days and daily data from Monday; statsmodels' `Fourier` counts
from the first row, so every backtest fold would be phased differently).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from features.series import Freq, calendar_exog, future_starts
from serving.models.intervals import Bounds, Conformal
from serving.models.smoothing import SMOOTHING_METHODS, smoothing_path

MAX_HORIZON = 1000
KNOWN_PATH_STEPS = 104  # steps a served SARIMAX forecasts once and slices (see SeriesModel._known_path)
NAIVE_METHODS = ("snaive", "naive", "mean")
COMBO = "combo"  # the equal-weight mean of its member models' forecasts


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
    """One series' fitted model: SARIMAX, ETS or Theta results, a naive method or a combination, and why.

    `recipe` is the configuration chosen for the series (method and orders) before this series'
    history adapted it or a fall-back replaced it: what a backtest refits at every origin, applying
    the same adaptation and fall-backs. `params` is what was fitted here. `conformal` replaces the
    model's own intervals by calibrated ones where it can (None: the model's own, as in models
    registered before calibration existed: the class default fills the attribute they lack).
    A combination (`method` "combo") forecasts the mean of its `members`' points, and the mean of
    their lower and upper bounds as its own interval (before any conformal calibration of its own).
    `lower_limit` (0.0 where the fitted history never went below zero, as sales; None otherwise and in
    models registered before it existed) floors the point forecasts and the bounds: a forecast of
    negative sales, or a band reaching below zero, says nothing a user can act on. Flooring at a limit
    every actual value respects never moves a forecast farther from the actual, nor takes it out of
    an interval that held it.
    """

    unique_id: str
    method: str  # "sarimax" | "ets" | "theta" | "snaive" | "naive" | "mean" | "combo"
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
    recipe: dict[str, Any] = field(default_factory=dict)
    failure: str = ""  # the numerical error a SARIMAX fit fell back from ("" when none)
    conformal: Conformal | None = None
    members: tuple[SeriesModel, ...] = ()  # a combination's models (their own intervals, no conformal)
    lower_limit: float | None = None  # 0.0 for a series that never went below zero (sales): no forecast goes below it

    def forecast(self, horizon: int, levels: list[int], user_exog: pd.DataFrame | None = None) -> pd.DataFrame:
        """step, ds, yhat and lo_/hi_ bounds for each level."""
        return forecast_frame(*self.forecast_arrays(horizon, levels, user_exog))

    def forecast_arrays(
        self, horizon: int, levels: list[int], user_exog: pd.DataFrame | None = None
    ) -> tuple[pd.DatetimeIndex, np.ndarray, Bounds]:
        """Period starts, point forecasts and (lower, upper) bounds per level, as arrays.

        statsmodels notes the last prediction's dates on the results it forecasts from, so a forecast
        changes the pickled model (never its numbers); `training` forecasts on copies where that matters.
        """
        starts = future_starts(self.last_ds, self.design.freq, horizon)
        if self.method in NAIVE_METHODS:
            mean, bounds = naive_forecast(self.method, self.tail, self.sigma, self.n_obs, horizon, levels)
        elif self.method == COMBO:
            mean, bounds = self._combination(horizon, levels, user_exog)
        elif self.design.user:  # the caller's future regressor values: computed per request
            mean, bounds = self._sarimax(starts, horizon, levels, user_exog)
        else:
            mean, se = self._known_path(horizon)
            bounds = normal_bounds(mean, se, levels)
        bounds = bounds if self.conformal is None else self.conformal.apply(mean, bounds)
        if self.lower_limit is None:  # a series with negative values (net of returns), or a model from before
            return starts, mean, bounds
        low = self.lower_limit  # a limit the series never crossed: closer to any value it can take, never farther
        return starts, np.maximum(mean, low), {lv: (np.maximum(lo, low), np.maximum(hi, low)) for lv, (lo, hi) in bounds.items()}

    def _known_path(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Point forecasts and standard errors of steps 1..horizon when every regressor is known ahead.

        The forecast of step h does not depend on how many steps are asked for, so one forecast of
        `KNOWN_PATH_STEPS` (or more) steps serves every shorter request by slicing: a served request
        then costs no Kalman filter pass. Not pickled (see `__getstate__`).
        """
        cached = self.__dict__.get("_path")
        if cached is None or len(cached[0]) < horizon:
            steps = max(horizon, KNOWN_PATH_STEPS)
            if self.method in SMOOTHING_METHODS:
                mean, se = smoothing_path(self.method, self.results, self.n_obs, steps)
            else:
                starts = future_starts(self.last_ds, self.design.freq, steps)
                fc = self.results.get_forecast(steps=steps, exog=self.design.matrix(starts, None))
                mean, se = np.asarray(fc.predicted_mean, dtype="float64"), np.asarray(fc.se_mean, dtype="float64")
            cached = (mean * self.scale, se * self.scale)
            self.__dict__["_path"] = cached
        return cached[0][:horizon].copy(), cached[1][:horizon].copy()

    def _combination(self, horizon: int, levels: list[int], user_exog: pd.DataFrame | None) -> tuple[np.ndarray, Bounds]:
        """The members' mean point forecast, and the mean of their bounds at each level."""
        parts = [m.forecast_arrays(horizon, levels, user_exog)[1:] for m in self.members]
        mean = np.mean([p[0] for p in parts], axis=0)
        bounds = {lv: (np.mean([p[1][lv][0] for p in parts], axis=0), np.mean([p[1][lv][1] for p in parts], axis=0))
                  for lv in levels}
        return mean, bounds

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_path", None)
        return state

    def _sarimax(
        self, starts: pd.DatetimeIndex, horizon: int, levels: list[int], user_exog: pd.DataFrame | None,
    ) -> tuple[np.ndarray, Bounds]:
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
) -> tuple[np.ndarray, Bounds]:
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


def normal_bounds(mean: np.ndarray, se: np.ndarray, levels: list[int]) -> Bounds:
    """(lower, upper) of the central normal interval at each level, from point forecasts and their spread."""
    bounds = {}
    for level in levels:
        half = NormalDist().inv_cdf(0.5 + level / 200) * se
        bounds[level] = (mean - half, mean + half)
    return bounds


def forecast_frame(starts: pd.DatetimeIndex, mean: np.ndarray, bounds: Bounds) -> pd.DataFrame:
    """step, ds, yhat and lo_/hi_ columns per level, from `SeriesModel.forecast_arrays`."""
    out = pd.DataFrame({"step": np.arange(1, len(mean) + 1), "ds": starts, "yhat": mean})
    for level, (lo, hi) in bounds.items():
        out[f"lo_{level}"], out[f"hi_{level}"] = lo, hi
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


def parse_exog(
    exog: Any, needed: list[str], horizon: int, series_id: str, known: list[str] | None = None
) -> pd.DataFrame | None:
    """Future regressor values: {column: [h values]} or [{column: value}] * h (JSON text accepted).

    A name outside `known` (the regressors of the model's job; the series' `needed` when not given) is
    an error, not ignored: a misspelt regressor would leave the caller believing the forecast used it.
    A series that fell back to a naive method needs none of the job's regressors but accepts their
    names; without `known`, such a series (nothing `needed`) cannot tell a job's name from a typo.
    """
    if exog is None:
        if needed:
            raise ValueError(
                f"series {series_id!r}: the model needs future values of regressor(s) {needed} "
                f"for {horizon} step(s); pass exog={{column: [one value per step]}}"
            )
        return None
    if not needed and known is None:
        return None
    if isinstance(exog, str):
        exog = json.loads(exog)
    frame = pd.DataFrame(list(exog)) if isinstance(exog, (list, tuple, np.ndarray)) else pd.DataFrame(dict(exog))
    accepted = needed if known is None else [*known, *needed]
    unknown = [str(c) for c in frame.columns if c not in accepted]
    if unknown:
        uses = f"regressor(s) {sorted(set(accepted))}" if accepted else "no regressors"
        raise ValueError(f"series {series_id!r}: exog names unknown regressor(s) {unknown}; the model uses {uses}")
    if not needed:
        return None
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"series {series_id!r}: exog lacks regressor(s) {missing} (model needs {needed})")
    if len(frame) != horizon:
        raise ValueError(f"series {series_id!r}: exog has {len(frame)} step(s) but horizon is {horizon}")
    values = frame[needed].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any() or not np.isfinite(values.to_numpy(dtype="float64")).all():
        raise ValueError(f"series {series_id!r}: exog values must be finite numbers")
    return values.reset_index(drop=True)
