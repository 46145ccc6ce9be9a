"""The servable customer-lifetime model: BG/NBD (or MBG/NBD) for purchases, Gamma-Gamma for spend.

`ClvModel` implements `serving.models.base.LifetimeModel`. It holds the fitted parameters only, so it
is small and loads in milliseconds; the closed forms live in `features.btyd`, logged with the model.

Request rows (pyfunc `predict`): `frequency` (repeat purchases), `recency` (first to last purchase),
`T` (first purchase to now), all in the model's time unit (`unit`: "D" days or "W" weeks), and
`monetary` (mean value of the repeat purchases; 0 for a customer without any); optional `horizon` (in
units) and `discount_rate` (annual) per row, the model's defaults where absent or null, as a forecaster
row carries its horizon; `customer_id` and other columns pass through.

Output columns added: expected_purchases (over the horizon), p_alive, expected_value (per order),
clv (discounted expected value over the horizon).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.btyd import (
    BetaGeoParams,
    GammaGammaParams,
    clv,
    conditional_expected_value,
    expected_purchases,
    p_alive,
)
from features.btyd.checks import customer_arrays

UNITS = {"D": "days", "W": "weeks"}
OUTPUTS = ["expected_purchases", "p_alive", "expected_value", "clv"]


class ClvModel(mlflow.pyfunc.PythonModel):
    """Fitted BG/NBD (or MBG/NBD) and Gamma-Gamma parameters plus the request defaults and bounds."""

    family: ClassVar[str] = "clv"

    def __init__(
        self, bg: BetaGeoParams, model: str, gg: GammaGammaParams, unit: str,
        default_horizon: float, default_discount_rate: float, max_horizon: float,
    ) -> None:
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {sorted(UNITS)}, got {unit!r}")
        self.bg = bg
        self.model = model
        self.gg = gg
        self.unit = unit
        self.default_horizon = float(default_horizon)
        self.default_discount_rate = float(default_discount_rate)
        self.max_horizon = float(max_horizon)

    def parameters(self) -> dict[str, float]:
        """The fitted parameters under the model's own names: r, alpha, a, b and p, q, v."""
        return {**asdict(self.bg), **asdict(self.gg)}

    def expected_purchases(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, t: Any) -> np.ndarray:
        """Expected purchases of each customer in the next `t` units (a scalar or one per customer)."""
        return expected_purchases(self.bg, self.model, t, frequency, recency, T)

    def value(
        self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, monetary: np.ndarray,
        horizon: float, discount_rate: float,
    ) -> dict[str, np.ndarray]:
        """Expected purchases over `horizon` units, P(alive), expected order value and discounted CLV."""
        horizon, discount_rate = self.check_terms(horizon, discount_rate)
        return {
            "expected_purchases": self.expected_purchases(frequency, recency, T, horizon),
            "p_alive": p_alive(self.bg, self.model, frequency, recency, T),
            "expected_value": conditional_expected_value(self.gg, frequency, monetary),
            "clv": clv(self.bg, self.model, self.gg, frequency, recency, T, monetary, horizon, discount_rate, self.unit),
        }

    def check_terms(self, horizon: Any, discount_rate: Any) -> tuple[float, float]:
        """(horizon, annual discount rate) or a ValueError naming the bad one and its bounds."""
        h = self.default_horizon if horizon is None else horizon
        d = self.default_discount_rate if discount_rate is None else discount_rate
        if isinstance(h, bool) or not isinstance(h, (int, float, np.number)) or not (0 < float(h) <= self.max_horizon):
            raise ValueError(f"horizon: {h!r} is not a number in (0, {self.max_horizon:g}] {UNITS[self.unit]}")
        if isinstance(d, bool) or not isinstance(d, (int, float, np.number)) or not (0 <= float(d) <= 1):
            raise ValueError(f"discount_rate: {d!r} is not an annual rate in [0, 1]")
        return float(h), float(d)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        frequency, recency, T, monetary = customer_arrays(frame)
        horizon, rate = (self._terms_column(frame, c, d) for c, d in (("horizon", self.default_horizon),
                                                                   ("discount_rate", self.default_discount_rate)))
        out = frame.copy()
        columns = {name: np.empty(len(frame)) for name in OUTPUTS}
        for h, d in set(zip(horizon.tolist(), rate.tolist(), strict=True)):
            rows = (horizon == h) & (rate == d)
            try:
                values = self.value(frequency[rows], recency[rows], T[rows], monetary[rows], h, d)
            except ValueError as exc:
                raise ValueError(f"row {frame.index[int(np.argmax(rows))]!r}: {exc}") from None
            for name in OUTPUTS:
                columns[name][rows] = values[name]
        for name in OUTPUTS:
            out[name] = columns[name]
        return out

    @staticmethod
    def _terms_column(frame: pd.DataFrame, column: str, default: float) -> np.ndarray:
        if column not in frame.columns:
            return np.full(len(frame), default)
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        given = frame[column].notna().to_numpy()
        if (given & np.isnan(values)).any():
            row = frame.index[int(np.argmax(given & np.isnan(values)))]
            raise ValueError(f"row {row!r} column {column!r}: {frame[column].loc[row]!r} is not a number")
        return np.where(given, values, default)
