"""The sales forecaster family: one model per series (SARIMAX, ETS, Theta or a combination), chosen and scored on rolling-origin backtests.

How a job runs through it (the hooks of `training.family.Family`):
- `features` builds the long series table (`features.series`); `split` cuts rolling-origin
  windows (`backtest`): `test` = the last `backtest.folds` windows of the data; `valid` = as many
  (`backtest.selection_folds`) windows ending at the first test origin; `train` = each series cut
  at the first test origin. Every window refits before its origin.
- A trial samples ONE configuration (a model type of `methods` and its settings); `evaluate` backtests it on every
  series of `valid` in parallel and returns the mean MASE, a per-series table and per-step losses.
- `select` gives each series a configuration across the trials (`selection.best_per_series`, on
  `valid` only: the study's best unless one of its own is clearly better; the mean of its best 2..3
  trials unless a single one is clearly better; seasonal naive where nothing comes close). `fit` fits each series' choice; `score` backtests a model's recipes on the
  test windows (`scoring`), the seasonal-naive baseline and the champion alike.
- The registered model is refit on all the data (`refit_on_all_data`): forecasts start where the
  data ends.
- Intervals (`intervals: conformal`, the default) are calibrated on backtest errors of each fit's
  recipes (`calibration`); the score puts them around every test fold's forecasts, so the logged
  `best_coverage_80` / `baseline_coverage_80`... are those of the intervals served.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import optuna
import pandas as pd

from features.contract import Loaded
from features.series import SeriesSet, build_series
from serving.models.base import ForecasterModel
from serving.models.forecaster import ForecastModel
from serving.models.series_model import NAIVE_METHODS
from training.family import Evaluation, Report, Split, TrialResult
from training.forecast.backtest import Windows
from training.forecast.calibration import calibrate_models
from training.forecast.config import ForecastConfig
from training.forecast.figures import (
    acf_figure,
    fold_error_figure,
    forecast_figure,
    models_table,
    top_series,
)
from training.forecast.fit import fit_all
from training.forecast.parallel import warm_up
from training.forecast.scoring import (
    backtest_tables,
    evaluate_params,
    model_params,
    score_model,
    summarise,
)
from training.forecast.selection import best_per_series
from training.forecast.spec import Spec

log = logging.getLogger(__name__)

SNAIVE = {"method": "snaive"}


class ForecasterFamily:
    """Sales forecasts per series: SARIMAX, ETS and Theta tuned on rolling-origin backtests against seasonal naive."""

    name = "forecaster"
    direction: Literal["maximize", "minimize"] = "minimize"
    objective_name = "mase"
    config_model = ForecastConfig
    refit_on_all_data = True

    def features(self, loaded: Loaded, cfg: ForecastConfig) -> SeriesSet:
        warm_up(cfg.max_workers)  # the workers import while the series are built
        feats = build_series(loaded.lines, cfg.series, cfg.exog)
        for row in feats.partial.to_dict("records"):
            log.info("partial %s period %s %s (%d lines, y %.2f): %s", row["edge"], row["ds"].date(),
                     row["action"], row["lines"], row["y_total"], row["reason"])
        return feats

    def split(self, feats: SeriesSet, cfg: ForecastConfig) -> Split[SeriesSet, Windows]:
        """Test windows at the end, selection windows just before them, training data before the first test origin."""
        test = Windows(feats, cfg.backtest.folds, cfg.horizon, cfg.step)
        valid = Windows(test.before_first_origin(), cfg.selection_folds, cfg.horizon, cfg.step)
        longest = int(feats.frame.groupby("unique_id").size().max()) if len(feats.frame) else 0
        need = test.span + valid.span + 2
        if longest < need:
            raise ValueError(
                f"series have at most {longest} periods; {test.folds} test and {valid.folds} selection window(s) "
                f"of {cfg.horizon} periods every {cfg.step} need at least {need} (fewer backtest.folds or "
                "backtest.selection_folds, a shorter backtest.horizon, or a longer history)"
            )
        return Split(valid.series, valid, test)

    def initial_trials(self, cfg: ForecastConfig) -> list[dict[str, Any]]:
        """Well-tried configurations to enqueue before the sampler takes over (those within the bounds and methods).

        The model types alternate, so that a short study has tried each of them (and a series' best few,
        which combinations are made of, can differ in kind).
        """
        s = cfg.search
        arima = [  # exponential smoothing as an ARIMA, with a Fourier season, ARIMA(1,1,1), AR(1) around a mean
            {"p": 0, "d": 1, "q": 1, "trend": "n", "fourier": 0},
            {"p": 0, "d": 1, "q": 1, "trend": "n", "fourier": 2},
            {"p": 1, "d": 1, "q": 1, "trend": "n", "fourier": 2},
            {"p": 1, "d": 0, "q": 0, "trend": "c", "fourier": 2},
        ]
        if cfg.season <= cfg.seasonal_arma_max:  # plus the airline model and its ARIMA(1,1,1) variant
            arima = [{**p, "P": 0, "D": 0, "Q": 0} for p in arima]
            arima += [{"p": 0, "d": 1, "q": 1, "trend": "n", "fourier": 0, "P": 0, "D": 1, "Q": 1},
                      {"p": 1, "d": 1, "q": 1, "trend": "n", "fourier": 0, "P": 0, "D": 1, "Q": 1}]
        limits = {"p": s.p_max, "d": s.d_max, "q": s.q_max, "fourier": s.fourier_max, "P": s.P_max, "D": s.D_max, "Q": s.Q_max}
        arima = [{"method": "sarimax", **p} for p in arima
                 if all(v <= limits[k] for k, v in p.items() if k != "trend") and p["trend"] in s.trends]
        season = "add" if cfg.season <= cfg.seasonal_arma_max else "n"
        ets = [{"method": "ets", "error": "add", "ets_trend": "add", "damped": True, "ets_season": season},
               {"method": "ets", "error": "add", "ets_trend": "n", "ets_season": "n"},
               {"method": "ets", "error": "mul", "ets_trend": "add", "damped": True, "ets_season": "n"}]
        theta = [{"method": "theta", "deseasonalize": True}, {"method": "theta", "deseasonalize": False}]
        by_method = {"sarimax": arima, "ets": ets, "theta": theta}
        kinds = [by_method[m] for m in cfg.methods]
        seeds = [kind[i] for i in range(max(map(len, kinds))) for kind in kinds if i < len(kind)]
        if cfg.methods == ["sarimax"]:  # the search space then has no `method`: seeds without it
            seeds = [{k: v for k, v in p.items() if k != "method"} for p in seeds]
        return seeds

    def search_space(self, trial: optuna.Trial, cfg: ForecastConfig) -> dict[str, Any]:
        """One configuration for every series: a model type (`methods`) and its settings.

        SARIMAX: orders, trend, Fourier pairs, and seasonal ARMA orders only where the season allows them;
        ETS: error, trend, damping, season; Theta: with or without deseasonalising. A config with
        `methods: [sarimax]` samples exactly the parameters it did before model types existed.
        """
        method = trial.suggest_categorical("method", list(cfg.methods)) if len(cfg.methods) > 1 else cfg.methods[0]
        if method == "ets":
            trend = trial.suggest_categorical("ets_trend", ["n", "add"])
            return {"method": "ets", "error": trial.suggest_categorical("error", ["add", "mul"]), "ets_trend": trend,
                    "damped": trial.suggest_categorical("damped", [False, True]) if trend != "n" else False,
                    "ets_season": trial.suggest_categorical("ets_season", ["n", "add", "mul"])}
        if method == "theta":
            return {"method": "theta", "deseasonalize": trial.suggest_categorical("deseasonalize", [True, False])}
        s = cfg.search
        params = {
            "p": trial.suggest_int("p", 0, s.p_max),
            "d": trial.suggest_int("d", 0, s.d_max),
            "q": trial.suggest_int("q", 0, s.q_max),
            "trend": trial.suggest_categorical("trend", list(s.trends)),
            "fourier": trial.suggest_int("fourier", 0, s.fourier_max),
        }
        if cfg.season <= cfg.seasonal_arma_max:
            params |= {
                "P": trial.suggest_int("P", 0, s.P_max),
                "D": trial.suggest_int("D", 0, s.D_max),
                "Q": trial.suggest_int("Q", 0, s.Q_max),
            }
        return params if len(cfg.methods) == 1 else {"method": "sarimax", **params}

    def fit(self, feats: SeriesSet, params: dict[str, Any], cfg: ForecastConfig) -> ForecastModel:
        """Every series' model (its `per_series` choice, else the shared params): the servable itself.

        With `intervals: conformal` the intervals are calibrated on a backtest of the same recipes on the
        last windows of `feats` (`calibration`): windows before the test origin for the candidate, the
        test windows for the model refitted on all the data.
        """
        models = fit_all(feats, params, cfg)
        if cfg.intervals == "conformal":
            calibrate_models(models, feats, params, cfg)
        return ForecastModel(models, feats.freq, cfg.season, list(cfg.levels), list(feats.exog_columns))

    def servable(self, fitted: ForecastModel, cfg: ForecastConfig) -> ForecastModel:
        return fitted

    def baseline(self, train: SeriesSet, cfg: ForecastConfig) -> ForecastModel:
        """Seasonal naive on every series: a servable forecaster itself, so `score` treats it like a candidate."""
        return self.fit(train, SNAIVE, cfg)

    def score(self, model: ForecasterModel, evaluation: Windows, cfg: ForecastConfig) -> Evaluation:
        return score_model(model, evaluation, cfg)

    def evaluate(self, train: SeriesSet, evaluation: Windows, params: dict[str, Any], cfg: ForecastConfig) -> Evaluation:
        """score(servable(fit(train, params)), evaluation) without fitting on all of `train`: the same recipes backtested.

        Series `train` lacks would be missing from that model, so they are scored as seasonal naive here too.
        """
        known = set(train.ids)
        missing = [uid for uid in evaluation.series.ids if uid not in known]
        if missing:
            per_series = dict(params.get("per_series") or {}) | {uid: SNAIVE for uid in missing}
            params = {**params, "per_series": per_series}
        return evaluate_params(evaluation, params, cfg, len(missing))

    def select(self, trials: list[TrialResult], best_params: dict[str, Any], cfg: ForecastConfig) -> dict[str, Any]:
        """The study's best params plus each series' choice across the trials (see `best_per_series`)."""
        details = [(t.params, t.evaluation.details) for t in trials]
        losses = [t.evaluation.losses for t in trials]
        chosen = best_per_series(details, cfg.selection_margin, losses, cfg.combine_max)
        for uid, params in chosen.items():
            log.info("series %s: %s (%s)", uid, Spec.from_params(params).label(), params.get("note", ""))
        return {**best_params, "per_series": chosen}

    def report(self, fitted: ForecastModel, feats: SeriesSet, cfg: ForecastConfig) -> Report:
        """Figures and tables of the registered model, and its recipes backtested again on the test windows.

        That backtest gives the candidate's score again (the same recipes on the same windows), now
        with the per-fold table the per-fold figure needs; its coverage is that of the models' own
        intervals (the registered model's conformal ones were calibrated on these very windows).
        """
        test = self.split(feats, cfg).test
        folds, losses = backtest_tables(test, model_params(fitted, test.series.ids)[0], cfg)
        ev = summarise(folds, losses, list(cfg.levels))
        ids = top_series(feats)
        figures = {
            "forecast_top_series": forecast_figure(fitted, feats, ids, cfg.horizon),
            "test_error_per_fold": fold_error_figure(folds),
            "residual_acf": acf_figure(fitted, feats, ids),
        }
        models = models_table(fitted, list(cfg.levels))
        tables = {"test_series": ev.details, "test_folds": folds, "models": models}
        if not feats.partial.empty:
            tables["partial_periods"] = feats.partial
        metrics = {
            "partial_periods": float(len(feats.partial)),
            "groups_dropped_by_top_n": float(feats.groups_dropped),
            "final_series_fallback": float(models["method"].isin(NAIVE_METHODS).sum()),
            "final_fits_failed": float((models["fit_failure"] != "").sum()),
            "final_convergence_warnings": float(models["convergence_warnings"].sum()),
            "final_series_model_intervals": float(models["intervals"].str.contains("model").sum()),
        }
        return Report(figures=figures, tables=tables, metrics=metrics)

    def example(self, model: ForecastModel, fitted: ForecastModel, cfg: ForecastConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Two request rows; the second leaves `levels` out so the signature marks it optional."""
        ids = (model.series_ids * 2)[:2]
        horizon = cfg.horizon
        example = pd.DataFrame({"series_id": ids, "horizon": [horizon, max(horizon // 2, 1)],
                                "levels": [list(model.default_levels), None]})
        if model.user_exog:
            example["exog"] = [{c: [0.0] * h for c in model.user_exog} for h in example["horizon"]]
        return example, model.predict(None, example)
