"""The forecaster as the registry stores it: an `mlflow.pyfunc.PythonModel` around a fitted `Forecaster`.

Request rows: `series_id` (str), `horizon` (int > 0), optional `levels` (list of ints in (0, 100);
default the levels the job was configured with) and, for a model with user regressors, `exog`: a
mapping {column: [one value per step]} or a list of {column: value} mappings, one per step (JSON
text of either is accepted too).

Response: a long frame, one row per (series, step): series_id, step, ds (ISO date of the period
start), yhat, model ("sarimax", "snaive", "naive" or "mean"), then lo_<level> / hi_<level> for
every level any row asked for (null where a row did not ask for that level). Long rows serve
as plain JSON records and need no unpacking of list cells.

Nothing is refitted: SARIMAX forecasts come from the stored results (they keep their end, so
`get_forecast(steps)` continues the series), naive methods from the stored tail.
"""

from __future__ import annotations

import math
from typing import Any

import mlflow.pyfunc
import pandas as pd

from training.forecast import Forecaster

OUTPUT_COLUMNS = ["series_id", "step", "ds", "yhat", "model"]


class ForecastModel(mlflow.pyfunc.PythonModel):
    """Request rows {series_id, horizon[, levels, exog]} in; one row per (series, step) out."""

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        rows = pd.DataFrame(model_input)
        missing = [c for c in ("series_id", "horizon") if c not in rows.columns]
        if missing:
            raise ValueError(f"forecast request lacks column(s) {missing}; expected series_id, horizon[, levels, exog]")
        parts = []
        for i, row in enumerate(rows.to_dict("records")):
            try:
                parts.append(self.forecaster.forecast(
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


def input_example(fitted: Forecaster, horizon: int) -> pd.DataFrame:
    """Two request rows; the second leaves `levels` out so the signature marks it optional."""
    ids = (fitted.ids * 2)[:2]
    example = pd.DataFrame({"series_id": ids, "horizon": [horizon, max(horizon // 2, 1)],
                            "levels": [list(fitted.levels), None]})
    if fitted.user_exog:
        example["exog"] = [{c: [0.0] * h for c in fitted.user_exog} for h in example["horizon"]]
    return example
