"""The sales forecaster family (`ForecasterFamily`), a package split by concern:

config (the job's `model:` section), spec (a series' candidate model and how history adapts it),
fit (one series and all of them, with the numerical fall-backs), smoothing (ETS and Theta fits),
backtest (the one rolling-origin splitter and a series' backtest), scoring (THE score), selection
(per-series choice across trials and combinations), figures, family (the hooks), parallel (the worker pool).

Worker processes import this package to run `fit` and `backtest`, so the modules that load Optuna,
matplotlib or MLflow (family, scoring, figures: ~5 s of imports per worker here) are imported on
first use of the names `_LAZY` lists.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from training.forecast.backtest import Windows, rolling_origins
from training.forecast.config import BacktestOptions, ForecastConfig, SearchSpace
from training.forecast.fit import fit_series
from training.forecast.selection import best_per_series
from training.forecast.spec import Context, Spec

if TYPE_CHECKING:
    from training.forecast.family import ForecasterFamily
    from training.forecast.scoring import evaluate_params, score_model

_LAZY = {
    "ForecasterFamily": "training.forecast.family",
    "evaluate_params": "training.forecast.scoring",
    "score_model": "training.forecast.scoring",
}

__all__ = ["BacktestOptions", "Context", "ForecastConfig", "ForecasterFamily", "SearchSpace", "Spec", "Windows",
           "best_per_series", "evaluate_params", "fit_series", "rolling_origins", "score_model"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
