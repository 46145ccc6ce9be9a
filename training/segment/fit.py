"""Fitting a K-means segmenter: the pipeline on raw feature values, segment order, names and profiles."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from features.customers import CustomerFeatures, signed_log1p
from training.segment.config import SegmentConfig
from training.segment.naming import describe_segments

log = logging.getLogger(__name__)


def build_pipeline(transform: str, k: int, n_init: int, seed: int) -> Pipeline:
    """Raw feature values in, segment out: the served model does its own transform and scaling."""
    if transform not in ("log1p", "none"):
        raise ValueError(f"unknown transform {transform!r}; expected 'log1p' or 'none'")
    func = signed_log1p if transform == "log1p" else None
    return Pipeline(
        [
            ("transform", FunctionTransformer(func, feature_names_out="one-to-one")),
            ("scale", StandardScaler()),
            ("kmeans", KMeans(n_clusters=k, n_init=n_init, random_state=seed)),
        ]
    )


@dataclass(frozen=True)
class Segmenter:
    """A fitted pipeline, its feature columns, and the cluster -> segment id order and names."""

    pipeline: Pipeline
    features: list[str]
    params: dict[str, Any]
    segment_of: np.ndarray  # K-means cluster -> segment id (ordered by revenue share)
    names: dict[int, str]
    profiles: pd.DataFrame
    example_rows: pd.DataFrame  # a few training customers (one per segment) for the pyfunc's input example

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        return self.segment_of[self.pipeline.predict(table[self.features])]

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """Rows in the model's own (transformed, scaled) space."""
        return np.asarray(self.pipeline[:-1].transform(table[self.features]))


def feature_columns(feature_set: str, available: list[str], cfg: SegmentConfig) -> list[str]:
    """The set's features the data has; a set left with fewer than 2 cannot be used (named error)."""
    if feature_set not in cfg.search.feature_sets:
        raise ValueError(f"unknown feature set {feature_set!r}; configured: {sorted(cfg.search.feature_sets)}")
    wanted = cfg.search.feature_sets[feature_set]
    cols = [f for f in wanted if f in available]
    if len(cols) < 2:
        raise ValueError(f"feature set {feature_set!r}: only {cols} of {wanted} are available in the data")
    if len(cols) < len(wanted):
        log.info("feature set %r: %s not available in the data", feature_set, sorted(set(wanted) - set(cols)))
    return cols


def fit_segmenter(feats: CustomerFeatures, params: dict[str, Any], cfg: SegmentConfig) -> Segmenter:
    """Fit the pipeline, order segments by revenue share and name them from the model's features."""
    cols = feature_columns(params["feature_set"], feats.available, cfg)
    k = int(params["k"])
    pipe = build_pipeline(params["transform"], k, int(params["n_init"]), cfg.evaluation.seed)
    clusters = pipe.fit(feats.table[cols]).predict(feats.table[cols])
    segment_of = revenue_order(clusters, feats.table["monetary"].to_numpy(), k)
    labels = segment_of[clusters]
    names, profiles = describe_segments(feats.table, labels, cols, k)
    firsts = pd.Series(np.arange(len(labels))).groupby(labels).first().to_numpy()
    example_rows = feats.table.iloc[np.sort(firsts)][["customer_id", *cols]].reset_index(drop=True)
    return Segmenter(pipe, cols, dict(params), segment_of, names, profiles, example_rows)


def revenue_order(clusters: np.ndarray, monetary: np.ndarray, k: int) -> np.ndarray:
    """Cluster -> segment id, so that segment 0 brings the most (net) revenue."""
    revenue = np.bincount(clusters, weights=monetary, minlength=k)
    segment_of = np.empty(k, dtype=np.int64)
    segment_of[np.argsort(-revenue, kind="stable")] = np.arange(k)
    return segment_of
