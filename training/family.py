"""The one surface every model family plugs into.

The platform (config -> Optuna study -> MLflow tracking -> registry -> service) knows nothing about
ARIMA, K-means or rules: it only calls these methods. A new family is one module in `training/`
plus its feature builder in `features/`, registered in `training.families.FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import optuna
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel

from features.contract import Loaded


@dataclass
class Evaluation:
    """Scores of one fitted model (or baseline) on held-out data; `objective` is what the study optimises."""

    objective: float
    metrics: dict[str, float] = field(default_factory=dict)
    details: pd.DataFrame | None = None  # e.g. per-series or per-fold table, logged as an MLflow table


class Family(Protocol):
    """What a model family provides. `Cfg` is the family's own pydantic model (extra="forbid")."""

    name: str  # "segmenter", "forecaster", "recommender"
    direction: Literal["maximize", "minimize"]
    objective_name: str  # e.g. "silhouette", "mase", "hit_rate_at_k"
    config_model: type[BaseModel]  # validates the job YAML's `model:` section

    def features(self, loaded: Loaded, cfg: Any) -> Any:
        """Build the family's feature table from validated order lines."""

    def split(self, feats: Any, cfg: Any) -> tuple[Any, Any]:
        """Training data and the evaluation data every candidate (and the champion) is scored on."""

    def search_space(self, trial: optuna.Trial, cfg: Any) -> dict[str, Any]:
        """Sample one candidate's parameters; bounds come from the YAML."""

    def evaluate(self, train: Any, holdout: Any, params: dict[str, Any], cfg: Any) -> Evaluation:
        """Fit on `train` with `params` and score on `holdout` (folds live inside for backtests)."""

    def baseline(self, train: Any, holdout: Any, cfg: Any) -> Evaluation:
        """The naive model scored exactly like a candidate (seasonal naive, popularity, ...)."""

    def fit(self, feats: Any, params: dict[str, Any], cfg: Any) -> Any:
        """Final fit on all the data with the chosen parameters."""

    def report(self, fitted: Any, feats: Any, cfg: Any) -> tuple[dict[str, Figure], dict[str, pd.DataFrame], dict[str, float]]:
        """Figures, tables and extra metrics to log with the final model."""

    def pyfunc(self, fitted: Any, cfg: Any) -> tuple[Any, pd.DataFrame, Any]:
        """(mlflow.pyfunc.PythonModel, input example frame, output example) of what the registry stores."""

    def score_model(self, model: Any, holdout: Any, cfg: Any) -> float:
        """Objective of an already-registered model (loaded pyfunc) on `holdout`: the champion check."""
