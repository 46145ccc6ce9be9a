"""The customer-lifetime family (BG/NBD or MBG/NBD + Gamma-Gamma) as a `training.family.Family`."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd

from features.contract import Loaded
from serving.models.clv import ClvModel
from training.clv.baseline import NaiveRate
from training.clv.config import ClvConfig
from training.clv.data import ClvFeatures, build_features
from training.clv.fit import ClvFit, fit_clv
from training.clv.report import clv_report
from training.clv.scoring import score_clv
from training.family import Evaluation, Report, Split, TrialResult
from training.splits import random_split


class ClvFamily:
    """Purchases and spend per customer; scored by `training.clv.scoring.score_clv` alone."""

    name = "clv"
    direction: Literal["maximize", "minimize"] = "minimize"
    objective_name = "holdout_mae"
    config_model = ClvConfig
    refit_on_all_data = True  # the registered model is refit on every customer's whole history

    def features(self, loaded: Loaded, cfg: ClvConfig) -> ClvFeatures:
        return build_features(loaded, cfg)

    def split(self, feats: ClvFeatures, cfg: ClvConfig) -> Split[ClvFeatures, ClvFeatures]:
        """Seeded random split of the customers; each keeps its calibration summary and holdout outcome."""
        ev = cfg.evaluation
        train, valid, test = random_split(len(feats.table), ev.test_fraction, ev.valid_fraction, ev.seed, ev.min_customers)
        return Split(feats.subset(train), feats.subset(valid), feats.subset(test))

    def initial_trials(self, cfg: ClvConfig) -> list[dict[str, Any]]:
        """Plain BG/NBD with the lightest penalizers: the published model."""
        s = cfg.search
        model = "bgnbd" if "bgnbd" in s.models else s.models[0]
        return [{"model": model, "penalizer": s.penalizer[0], "gg_penalizer": s.gg_penalizer[0]}]

    def search_space(self, trial: optuna.Trial, cfg: ClvConfig) -> dict[str, Any]:
        s = cfg.search
        return {
            "model": trial.suggest_categorical("model", list(s.models)),
            "penalizer": trial.suggest_float("penalizer", *s.penalizer, log=True),
            "gg_penalizer": trial.suggest_float("gg_penalizer", *s.gg_penalizer, log=True),
        }

    def fit(self, feats: ClvFeatures, params: dict[str, Any], cfg: ClvConfig) -> ClvFit:
        return fit_clv(feats, params)

    def servable(self, fitted: ClvFit, cfg: ClvConfig) -> ClvModel:
        return fitted.model(cfg)

    def baseline(self, train: ClvFeatures, cfg: ClvConfig) -> NaiveRate:
        t = cfg.serving
        return NaiveRate(train.unit, t.horizon, t.discount_rate, t.max_horizon).fit(train.table)

    def score(self, model: Any, evaluation: ClvFeatures, cfg: ClvConfig) -> Evaluation:
        return score_clv(model, evaluation, cfg)

    def evaluate(self, train: ClvFeatures, evaluation: ClvFeatures, params: dict[str, Any], cfg: ClvConfig) -> Evaluation:
        return self.score(self.servable(self.fit(train, params, cfg), cfg), evaluation, cfg)

    def select(self, trials: list[TrialResult], best_params: dict[str, Any], cfg: ClvConfig) -> dict[str, Any]:
        """The purchase model and its penalizer from the best trial (the objective); the Gamma-Gamma
        penalizer from the trial with the smallest holdout spend error, since it cannot move the objective."""
        params = dict(best_params)
        spend = [t for t in trials if "holdout_spend_mae" in t.evaluation.metrics]
        if spend:
            best_spend = min(spend, key=lambda t: t.evaluation.metrics["holdout_spend_mae"])
            params["gg_penalizer"] = best_spend.params["gg_penalizer"]
        return params

    def report(self, fitted: ClvFit, feats: ClvFeatures, cfg: ClvConfig) -> Report:
        return clv_report(fitted, feats, cfg)

    def example(self, model: ClvModel, fitted: ClvFit, cfg: ClvConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Summary rows as floats (a request's JSON numbers), per-row terms, and a last row with neither a
        customer id nor terms: MLflow then marks customer_id, horizon and discount_rate optional."""
        rows = fitted.table.head(5)
        example = rows[["frequency", "recency", "T", "monetary"]].astype(np.float64).reset_index()
        example["customer_id"] = example["customer_id"].astype("string")
        example["horizon"] = float(cfg.serving.horizon)
        example["discount_rate"] = float(cfg.serving.discount_rate)
        last = len(example) - 1
        example.loc[last, ["customer_id", "horizon", "discount_rate"]] = pd.NA
        return example, model.predict(None, example)
