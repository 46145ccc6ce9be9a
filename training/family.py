"""The one surface every model family plugs into.

The platform (config -> Optuna study -> MLflow tracking -> registry -> service) knows nothing about
ARIMA, K-means or rules: it only calls these hooks, every one of which each family declares. A new
family is one package in `training/`, its servable class in `serving/models/` and one line in
`serving.models.registry.FAMILIES`.

One score per family: `score(model, evaluation)` scores a servable model (a trial's candidate, the
baseline, the new version or the current champion) on evaluation data none of them trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

import optuna
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel

from features.contract import Loaded

Feats = TypeVar("Feats")  # the family's feature table (customers, series, baskets)
Evl = TypeVar("Evl")  # the family's evaluation data (held-out customers, backtest windows, baskets)
Fitted = TypeVar("Fitted")  # what `fit` returns: the servable model plus what reports need
Cfg = TypeVar("Cfg", bound=BaseModel)


@dataclass
class Evaluation:
    """Scores of one model on evaluation data; `objective` is what the study optimises and the registry compares.

    `losses` holds the per-unit losses behind the objective (per customer sample, series x fold x step,
    basket), so two runs scored on the same evaluation data can be compared after the fact.
    """

    objective: float
    metrics: dict[str, float] = field(default_factory=dict)
    details: pd.DataFrame | None = None  # e.g. per-series or per-fold table, logged as an MLflow table
    losses: pd.DataFrame | None = None


@dataclass(frozen=True)
class Split(Generic[Feats, Evl]):
    """What a job fits on, tunes on and decides on.

    - `train`: candidates (and the baseline) are fitted on it;
    - `valid`: trials are scored on it, so tuning and per-unit selection see it;
    - `test`: the baseline, the chosen candidate and the current champion are scored on it; no fit,
      trial or selection has seen it, so the registry decision compares like with like.
    """

    train: Feats
    valid: Evl
    test: Evl


@dataclass(frozen=True)
class Report:
    """What a fitted model is logged with; building it never changes the model.

    `losses`: per-unit tables beside the score's (e.g. the segmenter's ARI per K-means seed), logged
    under `losses/` so runs can be compared on them later."""

    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    losses: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialResult:
    """One completed trial: its parameters and its evaluation on `Split.valid`."""

    params: dict[str, Any]
    evaluation: Evaluation


class Family(Protocol[Feats, Evl, Fitted, Cfg]):
    """What a model family provides; every hook is declared (none is looked up with getattr)."""

    name: str  # the key in serving.models.registry.FAMILIES
    direction: Literal["maximize", "minimize"]
    objective_name: str  # e.g. "silhouette", "mase", "hit_rate_at_k"
    config_model: type[Cfg]  # validates the job YAML's `model:` section (extra="forbid")
    refit_on_all_data: bool  # the registered model is refit on train + evaluation data after the decision's scoring

    def features(self, loaded: Loaded, cfg: Cfg) -> Feats:
        """Build the family's feature table from validated order lines (features/ does the work)."""

    def split(self, feats: Feats, cfg: Cfg) -> Split[Feats, Evl]:
        """Training data, tuning evaluation and the final evaluation every decision is made on."""

    def initial_trials(self, cfg: Cfg) -> list[dict[str, Any]]:
        """Well-tried parameters a fresh study starts from ([] for none)."""

    def search_space(self, trial: optuna.Trial, cfg: Cfg) -> dict[str, Any]:
        """Sample one candidate's parameters; bounds come from the YAML."""

    def fit(self, feats: Feats, params: dict[str, Any], cfg: Cfg) -> Fitted:
        """Fit a candidate on `feats` with `params`."""

    def servable(self, fitted: Fitted, cfg: Cfg) -> Any:
        """The servable model (a serving.models class) the registry stores."""

    def baseline(self, train: Feats, cfg: Cfg) -> Any:
        """The naive model (seasonal naive, popularity, RFM quintiles), fitted on `train`, that `score` accepts."""

    def score(self, model: Any, evaluation: Evl, cfg: Cfg) -> Evaluation:
        """THE score: of a servable model (or the baseline) on evaluation data."""

    def evaluate(self, train: Feats, evaluation: Evl, params: dict[str, Any], cfg: Cfg) -> Evaluation:
        """A trial: equal to score(servable(fit(train, params)), evaluation), possibly computed more cheaply."""

    def select(self, trials: list[TrialResult], best_params: dict[str, Any], cfg: Cfg) -> dict[str, Any]:
        """The final parameters from every trial (the best trial's, or a per-unit choice across trials)."""

    def report(self, fitted: Fitted, feats: Feats, cfg: Cfg) -> Report:
        """Figures, tables and extra metrics to log with the final model (pure)."""

    def example(self, model: Any, fitted: Fitted, cfg: Cfg) -> tuple[pd.DataFrame, Any]:
        """An input example and the model's output on it, for the signature."""
