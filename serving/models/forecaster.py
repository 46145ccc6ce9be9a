"""The forecaster the registry stores: one fitted model per series behind `ForecasterModel`.

Request rows (pyfunc `predict`): `series_id` (str), `horizon` (int > 0), optional `levels` (list of
ints in (0, 100); default the levels the job was configured with) and, for a model with user
regressors, `exog`: a mapping {column: [one value per step]} or a list of {column: value} mappings,
one per step (JSON text of either is accepted too).

Response: a long frame, one row per (series, step): series_id, step, ds (ISO date of the period
start), yhat, model ("sarimax", "ets", "theta", "combo" (a mean of such models), "snaive", "naive"
or "mean"), then lo_<level> / hi_<level> for every level any row asked for (null where a row did not
ask for that level). Long rows serve as plain JSON records and need no unpacking of list cells.

Nothing is refitted: SARIMAX, ETS and Theta forecasts come from the stored statsmodels results (they
keep their end, so a forecast continues the series), naive methods from the stored tail, a combination
from its stored members. Intervals are the conformal ones calibrated at training
(`serving.models.intervals`) where the job asked for them and there were enough backtest errors, the
model's own otherwise (and in models registered before).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import mlflow.pyfunc
import pandas as pd

from features.series import Freq
from serving.models.base import SeriesForecast
from serving.models.intervals import Conformal
from serving.models.series_model import (
    SeriesModel,
    check_horizon,
    check_levels,
    forecast_frame,
    parse_exog,
)

OUTPUT_COLUMNS = ["series_id", "step", "ds", "yhat", "model"]


class ForecastModel(mlflow.pyfunc.PythonModel):
    """Every series' fitted model of one job, plus what a query is checked against."""

    family: ClassVar[str] = "forecaster"

    def __init__(
        self, models: dict[str, SeriesModel], freq: Freq, season: int, levels: list[int], user_exog: list[str] | None = None,
    ) -> None:
        self.models = models
        self.series_ids = list(models)
        self.freq = freq
        self.season = season
        self.default_levels = check_levels(levels)
        self.user_exog = list(user_exog or [])

    def series_model(self, series_id: str) -> SeriesModel:
        """The fitted model of one series; a ValueError names a few series the model does know."""
        if series_id not in self.models:
            known = self.series_ids
            raise ValueError(
                f"unknown series_id {series_id!r}; this model knows {len(known)} series, e.g. {known[:20]}"
            )
        return self.models[series_id]

    def forecast(self, series_id: str, horizon: int, levels: list[int] | None = None, exog: Any = None) -> SeriesForecast:
        """The array path the service answers from: no DataFrame per query, SARIMAX paths sliced from a cache."""
        model = self.series_model(series_id)
        horizon = check_horizon(horizon)
        levels = check_levels(self.default_levels if levels is None else levels)
        user = parse_exog(exog, model.design.user, horizon, series_id, known=self.user_exog)
        starts, mean, bounds = model.forecast_arrays(horizon, levels, user)
        return SeriesForecast(series_id, model.method, starts, mean, bounds)

    def series_specs(self) -> dict[str, dict[str, Any]]:
        """Each series' recipe (method and orders): what a backtest refits at every origin (else what was fitted)."""
        return {uid: dict(m.recipe or m.params) for uid, m in self.models.items()}

    def series_intervals(self) -> dict[str, Conformal]:
        """Each calibrated series' conformal half-widths: what a backtest puts around its refits' forecasts."""
        return {uid: m.conformal for uid, m in self.models.items() if m.conformal is not None}

    def forecast_table(self, series_id: str, horizon: int, levels: list[int] | None = None, exog: Any = None) -> pd.DataFrame:
        """One series' forecast as rows of the response frame (ds still timestamps)."""
        fc = self.forecast(series_id, horizon, levels, exog)
        out = forecast_frame(fc.starts, fc.mean, fc.bounds)
        out.insert(0, "series_id", series_id)
        out.insert(4, "model", fc.method)
        return out

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        rows = pd.DataFrame(model_input)
        missing = [c for c in ("series_id", "horizon") if c not in rows.columns]
        if missing:
            raise ValueError(f"forecast request lacks column(s) {missing}; expected series_id, horizon[, levels, exog]")
        parts = []
        for i, row in enumerate(rows.to_dict("records")):
            try:
                parts.append(self.forecast_table(
                    str(row["series_id"]), row["horizon"], _cell(row.get("levels")), _cell(row.get("exog")),
                ))
            except ValueError as exc:
                raise ValueError(f"request row {i}: {exc}") from None
        if not parts:
            return pd.DataFrame(columns=OUTPUT_COLUMNS)
        out = pd.concat(parts, ignore_index=True)
        out["ds"] = pd.DatetimeIndex(out["ds"]).strftime("%Y-%m-%d")
        return out


def _cell(value: Any) -> Any:
    """None for an absent optional cell (None, NaN, pd.NA), the value otherwise."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
