"""What the service, `ecomlab score` and the registry decision may call on a served model.

Each family's servable class (one module per family in this package) implements one of these
Protocols; callers use the Protocol and never look for attributes. The classes are
`mlflow.pyfunc.PythonModel`s, so `predict` is MLflow's generic entry point too.

This package imports nothing that only training uses: no `training`, no optuna, no matplotlib.
Registered models are logged with this package's code (see `serving.models.registry.code_paths`),
so they load and predict where `training` cannot be imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd


@runtime_checkable
class Servable(Protocol):
    """Every served model: the family it belongs to and MLflow's pyfunc `predict`."""

    family: ClassVar[str]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame: ...


@runtime_checkable
class SegmenterModel(Servable, Protocol):
    """Raw customer feature rows in, segment ids and names out."""

    features: list[str]  # the feature columns it was trained on, in `assign`'s column order
    names: dict[int, str]  # segment id -> readable name

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Segment ids (int64) of rows of raw feature values (float64, columns in `features` order)."""
        ...


@dataclass(frozen=True)
class SeriesForecast:
    """One series' forecast: the method that made it, period starts, points and (lo, hi) per level."""

    series_id: str
    method: str
    starts: pd.DatetimeIndex
    mean: np.ndarray
    bounds: dict[int, tuple[np.ndarray, np.ndarray]]


@runtime_checkable
class ForecasterModel(Servable, Protocol):
    """Series ids and horizons in, point forecasts and intervals out (nothing is refitted)."""

    series_ids: list[str]
    default_levels: list[int]
    freq: str  # "D", "W" or "M": the period one forecast step covers

    def forecast(self, series_id: str, horizon: int, levels: list[int] | None = None, exog: Any = None) -> SeriesForecast:
        """The forecast of one series; a ValueError names what is wrong with the query."""
        ...

    def series_specs(self) -> dict[str, dict[str, Any]]:
        """Each series' chosen model as parameters (method and orders): what a backtest refits."""
        ...


@dataclass(frozen=True)
class BasketRecommendation:
    """Ranked items for one basket, their scores, the rules that fired, and the items the model has never seen."""

    items: list[str]
    scores: list[float]
    rules: list[list[str]]
    unknown_items: list[str]


@runtime_checkable
class RecommenderModel(Servable, Protocol):
    """Baskets in, ranked items to add out."""

    default_k: int
    max_k: int

    def recommend(self, baskets: list[list[str]], k: list[int]) -> list[BasketRecommendation]:
        """Up to k[i] items for basket i; a ValueError names the bad basket or k."""
        ...


@runtime_checkable
class LifetimeModel(Servable, Protocol):
    """Customer summaries (frequency, recency, T in `unit`; mean repeat spend) in, expected purchases,
    P(alive), expected order value and CLV out."""

    unit: str  # "D" (days) or "W" (weeks): the unit of recency, T and horizons
    default_horizon: float
    default_discount_rate: float  # annual
    max_horizon: float

    def expected_purchases(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, t: Any) -> np.ndarray:
        """Expected purchases of each customer in the next `t` units (a scalar or one per customer)."""
        ...

    def value(
        self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, monetary: np.ndarray,
        horizon: float | None, discount_rate: float | None,
    ) -> dict[str, np.ndarray]:
        """expected_purchases, p_alive, expected_value and clv per customer; a ValueError names a bad term."""
        ...
