"""The naive customer-lifetime baseline: each customer keeps buying at their calibration rate.

Expected purchases in the next t units = frequency / T * t (repeat purchases per unit of the
customer's age); order value = the customer's mean repeat spend (the population mean for customers
without one); everyone is alive. Scored by the same `training.clv.scoring.score_clv` as the models.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd


class NaiveRate:
    """Calibration purchase rate x time; implements `serving.models.base.LifetimeModel`'s calls."""

    family: ClassVar[str] = "clv"

    def __init__(self, unit: str, default_horizon: float, default_discount_rate: float, max_horizon: float) -> None:
        self.unit = unit
        self.default_horizon = default_horizon
        self.default_discount_rate = default_discount_rate
        self.max_horizon = max_horizon
        self.mean_spend_ = float("nan")

    def fit(self, table: pd.DataFrame) -> NaiveRate:
        repeaters = table[table["frequency"] > 0]
        self.mean_spend_ = float(repeaters["monetary"].mean()) if len(repeaters) else 0.0
        return self

    def expected_purchases(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, t: Any) -> np.ndarray:
        frequency, T = np.asarray(frequency, dtype=np.float64), np.asarray(T, dtype=np.float64)
        rate = np.divide(frequency, T, out=np.zeros_like(frequency), where=T > 0)
        return rate * np.asarray(t, dtype=np.float64)

    def value(
        self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, monetary: np.ndarray,
        horizon: float | None, discount_rate: float | None,
    ) -> dict[str, np.ndarray]:
        horizon = self.default_horizon if horizon is None else horizon
        purchases = self.expected_purchases(frequency, recency, T, horizon)
        spend = np.where(np.asarray(frequency) > 0, np.asarray(monetary, dtype=np.float64), self.mean_spend_)
        return {"expected_purchases": purchases, "p_alive": np.ones_like(purchases), "expected_value": spend,
                "clv": purchases * spend}
