"""The K-means customer segmenter as a `training.family.Family`: the hooks the platform calls."""

from __future__ import annotations

import logging
from typing import Any, Literal

import optuna
import pandas as pd

from features.contract import Loaded
from features.customers import CustomerFeatures, build_customer_features
from serving.models.base import SegmenterModel
from serving.models.segmenter import SegmentModel
from training.family import Evaluation, Report, Split, TrialResult
from training.splits import random_split
from training.segment.baseline import RFMBaseline
from training.segment.config import SegmentConfig
from training.segment.fit import Segmenter, fit_segmenter
from training.segment.report import segment_report
from training.segment.scoring import score_segments

log = logging.getLogger(__name__)


def examples(model: SegmenterModel, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Input example (raw feature rows) and the model's output on it, for the signature.

    The last row's customer_id is missing on purpose: MLflow then marks customer_id optional in
    the signature, so callers may pass it through or leave it out.
    """
    example = rows.reset_index(drop=True).copy()
    example["customer_id"] = example["customer_id"].astype("string")
    example.loc[len(example) - 1, "customer_id"] = pd.NA
    return example, model.predict(None, example)


class SegmenterFamily:
    """K-means customer segments, scored by `training.segment.scoring.score_segments` alone."""

    name = "segmenter"
    direction: Literal["maximize", "minimize"] = "maximize"
    objective_name = "silhouette"
    config_model = SegmentConfig
    refit_on_all_data = False  # the registered model is the one scored on the test customers

    def features(self, loaded: Loaded, cfg: SegmentConfig) -> CustomerFeatures:
        feats = build_customer_features(loaded.lines, cfg.features.reference_date, cfg.features.candidates)
        for feature, reason in feats.omitted.items():
            log.warning("customer feature %r left out of the candidates: %s", feature, reason)
        return feats

    def split(self, feats: CustomerFeatures, cfg: SegmentConfig) -> Split[CustomerFeatures, CustomerFeatures]:
        """Seeded random split of the customers: test (holdout_fraction), valid (valid_fraction), train (the rest)."""
        ev = cfg.evaluation
        train, valid, test = random_split(len(feats.table), ev.holdout_fraction, ev.valid_fraction, ev.seed,
                                          2 * cfg.search.k_max, f" with k up to {cfg.search.k_max}")
        return Split(feats.subset(train), feats.subset(valid), feats.subset(test))

    def initial_trials(self, cfg: SegmentConfig) -> list[dict[str, Any]]:
        """K-means on log RFM-style features with a mid-range k: a sound start on most shops."""
        s = cfg.search
        preferred = [f for f in ("value", "rfm", "rfm_tenure") if f in s.feature_sets]
        feature_set = preferred[0] if preferred else sorted(s.feature_sets)[0]
        return [
            {
                "k": min(max(4, s.k_min), s.k_max),
                "feature_set": feature_set,
                "transform": "log1p" if "log1p" in s.transforms else s.transforms[0],
                "n_init": max(s.n_init),
            }
        ]

    def search_space(self, trial: optuna.Trial, cfg: SegmentConfig) -> dict[str, Any]:
        s = cfg.search
        return {
            "k": trial.suggest_int("k", s.k_min, s.k_max),
            "feature_set": trial.suggest_categorical("feature_set", sorted(s.feature_sets)),
            "transform": trial.suggest_categorical("transform", list(s.transforms)),
            "n_init": trial.suggest_categorical("n_init", sorted(set(s.n_init))),
        }

    def fit(self, feats: CustomerFeatures, params: dict[str, Any], cfg: SegmentConfig) -> Segmenter:
        return fit_segmenter(feats, params, cfg)

    def servable(self, fitted: Segmenter, cfg: SegmentConfig) -> SegmentModel:
        return SegmentModel(fitted.pipeline, fitted.features, fitted.segment_of, fitted.names)

    def baseline(self, train: CustomerFeatures, cfg: SegmentConfig) -> RFMBaseline:
        k = cfg.evaluation.baseline_k or (cfg.search.k_min + cfg.search.k_max) // 2
        return RFMBaseline(k).fit(train.table)

    def score(self, model: SegmenterModel, evaluation: CustomerFeatures, cfg: SegmentConfig) -> Evaluation:
        return score_segments(model, evaluation, cfg)

    def evaluate(
        self, train: CustomerFeatures, evaluation: CustomerFeatures, params: dict[str, Any], cfg: SegmentConfig
    ) -> Evaluation:
        return self.score(self.servable(self.fit(train, params, cfg), cfg), evaluation, cfg)

    def select(self, trials: list[TrialResult], best_params: dict[str, Any], cfg: SegmentConfig) -> dict[str, Any]:
        """One model for every customer: the best trial's parameters."""
        return dict(best_params)

    def report(self, fitted: Segmenter, feats: CustomerFeatures, cfg: SegmentConfig) -> Report:
        return segment_report(fitted, feats, cfg)

    def example(
        self, model: SegmenterModel, fitted: Segmenter, cfg: SegmentConfig
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        return examples(model, fitted.example_rows)
