"""THE score of the forecaster family: a rolling-origin backtest of each series' recipe.

`score_model` scores anything implementing `ForecasterModel` (a candidate, a loaded champion, the
seasonal-naive baseline) through `series_specs()`: each series' recipe is refitted before every
origin of the windows and its forecasts compared with what followed. Series the model lacks are
scored as seasonal naive and counted (`series_not_in_model`). A trial (`evaluate_params`) is the
same backtest of the trial's params, so it equals the score of the model `fit` would build from
them on the windows' data, without fitting that model (in every point metric; a trial's intervals
are the models' own, not calibrated). A model's calibrated intervals (`series_intervals`) are put
around each fold's forecasts, so the test coverage it logs is that of the intervals it serves.

The objective is the mean MASE over series (a series' MASE is the mean over its folds); series
whose MASE is undefined (a constant training part, or too short for any window) are counted and
left out of both the model's and the seasonal-naive mean.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from serving.models.base import ForecasterModel
from serving.models.forecaster import ForecastModel
from serving.models.intervals import Conformal
from serving.models.series_model import NAIVE_METHODS
from training.family import Evaluation
from training.forecast.backtest import LOSS_COLUMNS, SeriesBacktest, Windows
from training.forecast.config import ForecastConfig
from training.forecast.fit import tasks
from training.forecast.parallel import run_parallel
from training.forecast.spec import Context

log = logging.getLogger(__name__)


def backtest_tables(
    windows: Windows, params: dict[str, Any], cfg: ForecastConfig, intervals: dict[str, Conformal] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-fold table, per-step losses) of every series of `windows` for `params` (shared or `per_series`).

    `intervals`: calibrated half-widths per series, put around every fold's forecasts (else the models' own).
    """
    runner = SeriesBacktest(Context.of(windows.series, cfg), (windows.folds, windows.horizon, windows.step), list(cfg.levels))
    parts = run_parallel(runner, tasks(windows.series, params, intervals), cfg.max_workers)
    folds = pd.DataFrame([row for rows, _ in parts for row in rows])
    losses = [frame for _, frame in parts if len(frame)]
    losses_frame = pd.concat(losses, ignore_index=True) if losses else pd.DataFrame(columns=LOSS_COLUMNS)
    if folds.empty or folds["fold"].isna().all():
        raise ValueError(f"no series is long enough for {windows.folds} window(s) of {windows.horizon} periods")
    return folds, losses_frame


def summarise(folds: pd.DataFrame, losses: pd.DataFrame | None, levels: list[int]) -> Evaluation:
    """Per-series means over folds, and the objective: mean MASE over series with a defined MASE."""
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
        fits_failed=("fit_failed", "sum"),
        fit_seconds=("fit_seconds", "sum"),
    ).reset_index()
    per["beats_snaive"] = per["mase"] < per["snaive_mase"]
    defined = per[np.isfinite(per["mase"])]
    metrics = {c: float(defined[c].mean()) for c in [*metric_cols[1:], *base_cols]} if len(defined) else {}
    metrics.update({
        "series": float(len(per)),
        "series_mase_undefined": float(len(per) - len(defined)),
        "series_beating_snaive": float(defined["beats_snaive"].sum()),
        "series_fallback": float(per["method"].map(_only_naive).sum()),
        "fits_failed": float(per["fits_failed"].sum()),
        "convergence_warnings": float(per["convergence_warnings"].sum()),
    })
    objective = float(defined["mase"].mean()) if len(defined) else math.inf
    return Evaluation(objective=objective, metrics=metrics, details=per, losses=losses)


def _only_naive(methods: str) -> bool:
    """Whether every fold of a series fell back to a naive method (`methods`: the folds' methods, comma-joined)."""
    return all(m in NAIVE_METHODS for m in methods.split(","))


def evaluate_params(
    windows: Windows, params: dict[str, Any], cfg: ForecastConfig, not_in_model: int = 0,
    intervals: dict[str, Conformal] | None = None,
) -> Evaluation:
    """Backtest `params` on every series of `windows`: the Evaluation with its per-series table and losses."""
    ev = summarise(*backtest_tables(windows, params, cfg, intervals), list(cfg.levels))
    ev.metrics["series_not_in_model"] = float(not_in_model)
    return ev


def model_params(model: ForecasterModel, ids: list[str]) -> tuple[dict[str, Any], list[str]]:
    """A model's recipes as backtest params for `ids` (seasonal naive where it lacks one), and the ids it lacks."""
    specs = model.series_specs()
    missing = [uid for uid in ids if uid not in specs]
    per_series = {uid: specs[uid] for uid in ids if uid in specs}
    per_series |= {uid: {"method": "snaive", "note": "series not in the model: seasonal naive"} for uid in missing}
    return {"method": "snaive", "per_series": per_series}, missing


def score_model(model: ForecasterModel, windows: Windows, cfg: ForecastConfig) -> Evaluation:
    """THE score of a forecaster on `windows`; see the module doc."""
    params, missing = model_params(model, windows.series.ids)
    if missing:
        log.warning("%d series are not in the model and are scored as seasonal naive, e.g. %s", len(missing), missing[:5])
    intervals = model.series_intervals() if isinstance(model, ForecastModel) else {}  # other forecasters: their own
    return evaluate_params(windows, params, cfg, len(missing), intervals)
