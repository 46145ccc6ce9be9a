"""THE score of a segmenter: one function for trials, the baseline, the candidate and the champion.

`score_segments(model, evaluation, cfg)` takes any `SegmenterModel` (a fitted `SegmentModel`, one
loaded from the registry, the RFM baseline) and uses only that Protocol: `features`, `names` and
`assign`. On a seeded sample of at most `evaluation.sample_size` customers of the evaluation data:
- the model assigns segments from the raw feature values of its `features`;
- every model is judged in the same space, whatever its own transform: the standardised signed
  log1p of its feature columns, the scaler fitted on the scored sample itself;
- objective `silhouette`: the mean of the customers' silhouette coefficients in that space; -1
  (its minimum) when it is undefined (every scored customer in one segment);
- degenerate-segment guard: a model one of whose segments holds less than `min_segment_share` of
  the scored customers scores -1 (its silhouette kept as `silhouette_raw`): on heavy-tailed data an
  untransformed K-means gives a handful of outliers their own segment and wins on silhouette (0.90
  on UCI Online Retail with a 0.4% segment) while segmenting nobody. Read from the labels on the
  scored data, so a loaded champion is judged exactly like a fresh candidate;
- metrics: Calinski-Harabasz and Davies-Bouldin in the same space, segment shares;
- losses: the objective on `evaluation.bootstrap` seeded resamples of the scored customers (the
  guard's verdict is the sample's): the same resamples for every model, so replicates pair up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_samples
from sklearn.preprocessing import StandardScaler

from features.customers import CustomerFeatures, signed_log1p
from serving.models.base import SegmenterModel
from serving.models.segmenter import feature_matrix
from training.family import Evaluation
from training.segment.config import SegmentConfig


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """A seeded, sorted sample of row positions (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def scored_sample(evaluation: CustomerFeatures, cfg: SegmentConfig) -> pd.DataFrame:
    """The customers a model is scored on: the same seeded sample for every model."""
    ev = cfg.evaluation
    return evaluation.table.iloc[sample_rows(len(evaluation.table), ev.sample_size, ev.seed)]


def common_space(x: np.ndarray) -> np.ndarray:
    """Standardised signed log1p of raw feature values: the one space every model is compared in."""
    return StandardScaler().fit_transform(signed_log1p(np.asarray(x, dtype=np.float64)))


def _defined(labels: np.ndarray) -> bool:
    """Silhouette and the cluster indices need 2 <= segments <= customers - 1."""
    return 2 <= len(np.unique(labels)) <= len(labels) - 1


def silhouettes(space: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each customer's silhouette coefficient; -1 for everyone when the silhouette is undefined."""
    if not _defined(labels):
        return np.full(len(labels), -1.0)
    return silhouette_samples(space, labels)


def cluster_metrics(space: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    if not _defined(labels):
        return {"calinski_harabasz": float("nan"), "davies_bouldin": float("nan")}
    return {
        "calinski_harabasz": float(calinski_harabasz_score(space, labels)),
        "davies_bouldin": float(davies_bouldin_score(space, labels)),
    }


def bootstrap(per_customer: np.ndarray, degenerate: bool, cfg: SegmentConfig) -> pd.DataFrame | None:
    """The objective on seeded resamples of the scored customers (with replacement), one row each.

    The degenerate-segment verdict is the scored sample's (a resample that misses a small segment
    says nothing new about the model), so a degenerate model's replicates are all -1."""
    ev = cfg.evaluation
    if ev.bootstrap == 0:
        return None
    rng = np.random.default_rng(ev.seed)
    n = len(per_customer)
    values = [-1.0 if degenerate else float(np.mean(per_customer[rng.integers(0, n, n)])) for _ in range(ev.bootstrap)]
    return pd.DataFrame({"replicate": np.arange(ev.bootstrap), "silhouette": values})


def score_segments(model: SegmenterModel, evaluation: CustomerFeatures, cfg: SegmentConfig) -> Evaluation:
    """THE score of a segmenter on evaluation customers (see the module docstring)."""
    sample = scored_sample(evaluation, cfg)
    x = feature_matrix(sample, list(model.features))
    labels = np.asarray(model.assign(x), dtype=np.int64)
    k = len(model.names)
    outside = labels[(labels < 0) | (labels >= k)]
    if len(outside):
        raise ValueError(f"the model assigned segment id {int(outside[0])}, outside its {k} named segments")
    space = common_space(x)
    per_customer = silhouettes(space, labels)
    counts = np.bincount(labels, minlength=k)
    shares = counts / len(labels)
    degenerate = bool(shares.min() < cfg.evaluation.min_segment_share)
    silhouette = float(np.mean(per_customer))
    losses = bootstrap(per_customer, degenerate, cfg)
    metrics = {
        **cluster_metrics(space, labels),
        "silhouette_raw": silhouette,
        "degenerate": float(degenerate),
        "min_segment_share": float(shares.min()),
        "segments_present": float((counts > 0).sum()),
        "k": float(k),
        "n_features": float(len(model.features)),
        "scored_customers": float(len(labels)),
    }
    if losses is not None:
        metrics["silhouette_bootstrap_sd"] = float(losses["silhouette"].std(ddof=1)) if len(losses) > 1 else 0.0
    details = _per_segment(model, labels, per_customer, shares)
    return Evaluation(objective=-1.0 if degenerate else silhouette, metrics=metrics, details=details, losses=losses)


def _per_segment(
    model: SegmenterModel, labels: np.ndarray, per_customer: np.ndarray, shares: np.ndarray
) -> pd.DataFrame:
    """Each segment's share of the scored customers and mean silhouette (NaN for an empty segment)."""
    k = len(shares)
    return pd.DataFrame(
        {
            "segment_id": np.arange(k),
            "segment_name": [model.names[i] for i in range(k)],
            "share": shares,
            "silhouette": pd.Series(per_customer).groupby(labels).mean().reindex(range(k)).to_numpy(),
        }
    )
