"""The K-means customer segmenter family: config, search space, scoring, segment names, pyfunc.

The model is one scikit-learn Pipeline on RAW customer feature values (transform -> StandardScaler
-> KMeans), so the registered model takes the features as `features.customers` builds them.

Scores (all on a seeded sample of at most `evaluation.sample_size` holdout customers):
- objective `silhouette`: in the model's own space (its transform and scaler, fitted on train).
- `silhouette_comparable`: in the common space = StandardScaler(signed log1p(the model's feature
  columns)) fitted on the scored sample itself. `score_model` uses exactly this, so a registered
  champion and a new candidate are compared the same way whatever their transform.
- a silhouette is undefined when every scored customer lands in one segment: scored -1 (its minimum).
- a candidate whose smallest segment holds less than `evaluation.min_segment_share` of the training
  customers is scored -1 too (its real silhouette is kept as `silhouette_raw`): on heavy-tailed
  data an untransformed K-means puts a handful of outliers in their own segment and wins on
  silhouette (0.90 on UCI Online Retail with a 0.4% segment) while segmenting nobody.
- Calinski-Harabasz and Davies-Bouldin in the model's own space, as metrics.

Baseline: RFM quintile-score segmentation. Recency (reversed), frequency and monetary each get a
score 1..5 from train quintile edges; their sum is cut into `k` groups at train quantiles (k =
`evaluation.baseline_k`, else the middle of the k range). Scored like a candidate: silhouette of
the holdout labels in the standardised signed-log1p space of recency, frequency and monetary.

Segment ids are ordered by revenue share (0 = the segment with the most net revenue). Names come
from `name_segments` (rules in its docstring).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import mlflow.pyfunc
import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from features.contract import Loaded
from features.customers import FEATURES, CustomerFeatures, build_customer_features, signed_log1p
from training.family import Evaluation

log = logging.getLogger(__name__)

DEFAULT_FEATURE_SETS = {
    "rfm": ["recency", "frequency", "monetary"],
    "rfm_tenure": ["recency", "frequency", "monetary", "tenure"],
    "value": ["recency", "frequency", "monetary", "aov", "return_rate"],
    "all": list(FEATURES),
}
RFM = ["recency", "frequency", "monetary"]
HIGH, LOW, TOP = 0.5, -0.5, 1.0  # naming thresholds, in standard deviations of signed log1p(feature)


# ---- config ----


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_features(names: list[str], what: str) -> list[str]:
    unknown = [f for f in names if f not in FEATURES]
    if unknown:
        raise ValueError(f"{what}: unknown feature(s) {unknown}; known: {FEATURES}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: a feature is listed twice: {names}")
    return names


class FeatureOptions(Strict):
    candidates: list[str] = Field(default_factory=lambda: list(FEATURES), description="features a model may use")
    reference_date: date | None = Field(
        None, description="recency/tenure are counted to it; default: last order date + 1 day"
    )

    @field_validator("candidates")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        if len(v) < 2:
            raise ValueError("at least 2 candidate features are needed")
        return _check_features(v, "candidates")


class EvaluationOptions(Strict):
    sample_size: int = Field(5000, ge=50, description="customers scored by silhouette (seeded sample)")
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    stability_seeds: int = Field(3, ge=1, description="extra K-means seeds the final model is compared with (ARI)")
    baseline_k: int | None = Field(None, ge=2, description="RFM baseline segments; default: middle of the k range")
    min_segment_share: float = Field(
        0.01, ge=0, lt=0.5, description="candidates with a smaller segment (share of train) score -1"
    )


class SearchSpace(Strict):
    k_min: int = Field(2, ge=2)
    k_max: int = Field(8, ge=2)
    feature_sets: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_FEATURE_SETS.items()}
    )
    transforms: list[Literal["log1p", "none"]] = Field(default_factory=lambda: ["log1p", "none"], min_length=1)
    n_init: list[int] = Field(default_factory=lambda: [3, 10], min_length=1)

    @field_validator("feature_sets")
    @classmethod
    def _sets(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if not v:
            raise ValueError("at least one feature set is needed")
        for name, feats in v.items():
            if len(feats) < 2:
                raise ValueError(f"feature set {name!r} needs at least 2 features, got {feats}")
            _check_features(feats, f"feature set {name!r}")
        return v

    @field_validator("n_init")
    @classmethod
    def _n_init(cls, v: list[int]) -> list[int]:
        if any(n < 1 for n in v):
            raise ValueError(f"n_init choices must be >= 1, got {v}")
        return v

    @model_validator(mode="after")
    def _k_range(self) -> SearchSpace:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) is below k_min ({self.k_min})")
        return self


class SegmentConfig(Strict):
    """The `model:` section of a segmenter job."""

    features: FeatureOptions = FeatureOptions()
    evaluation: EvaluationOptions = EvaluationOptions()
    search: SearchSpace = SearchSpace()

    @model_validator(mode="after")
    def _sets_use_candidates(self) -> SegmentConfig:
        for name, feats in self.search.feature_sets.items():
            outside = [f for f in feats if f not in self.features.candidates]
            if outside:
                raise ValueError(f"search.feature_sets.{name}: {outside} not among features.candidates")
        return self


# ---- the model ----


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


@dataclass
class Segmenter:
    """A fitted pipeline, its feature columns, and the cluster -> segment id order and names."""

    pipeline: Pipeline
    features: list[str]
    params: dict[str, Any]
    segment_of: np.ndarray  # K-means cluster -> segment id (ordered by revenue share)
    names: dict[int, str]
    profiles: pd.DataFrame
    example_rows: pd.DataFrame  # a few training customers (one per segment) for the pyfunc's input example

    @property
    def min_share(self) -> float:
        """The smallest segment's share of the customers the model was fitted on."""
        return float(self.profiles["share"].min())

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
    """Fit the pipeline, order segments by revenue share and name them from their profiles."""
    cols = feature_columns(params["feature_set"], feats.available, cfg)
    pipe = build_pipeline(params["transform"], int(params["k"]), int(params["n_init"]), cfg.evaluation.seed)
    clusters = pipe.fit(feats.table[cols]).predict(feats.table[cols])
    k = int(params["k"])
    revenue = np.bincount(clusters, weights=feats.table["monetary"].to_numpy(), minlength=k)
    segment_of = np.empty(k, dtype=np.int64)
    segment_of[np.argsort(-revenue, kind="stable")] = np.arange(k)
    labels = segment_of[clusters]
    zs = segment_z(feats.table, labels, _profile_features(feats))
    names = name_segments(zs, k)
    profiles = profile_segments(feats.table, labels, names, _profile_features(feats), zs)
    firsts = pd.Series(np.arange(len(labels))).groupby(labels).first().to_numpy()
    example_rows = feats.table.iloc[np.sort(firsts)][["customer_id", *cols]].reset_index(drop=True)
    return Segmenter(pipe, cols, dict(params), segment_of, names, profiles, example_rows)


def _profile_features(feats: CustomerFeatures) -> list[str]:
    return [f for f in FEATURES if f in feats.table.columns]


# ---- scoring ----


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """A seeded, sorted sample of row positions (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def common_space(table: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Standardised signed log1p of `cols`: the one space every model is compared in."""
    return StandardScaler().fit_transform(signed_log1p(table[cols].to_numpy(dtype=np.float64)))


def safe_silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette, or -1 (its minimum) when it is undefined (one segment, or one customer per segment)."""
    n_labels = len(np.unique(labels))
    if not 2 <= n_labels <= len(labels) - 1:
        return -1.0
    return float(silhouette_score(x, labels))


def cluster_metrics(x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    n_labels = len(np.unique(labels))
    if not 2 <= n_labels <= len(labels) - 1:
        return {"calinski_harabasz": float("nan"), "davies_bouldin": float("nan")}
    return {
        "calinski_harabasz": float(calinski_harabasz_score(x, labels)),
        "davies_bouldin": float(davies_bouldin_score(x, labels)),
    }


def comparable_silhouette(table: pd.DataFrame, cols: list[str], labels: np.ndarray) -> float:
    return safe_silhouette(common_space(table, cols), labels)


def _scored_sample(holdout: CustomerFeatures, cfg: SegmentConfig) -> pd.DataFrame:
    ev = cfg.evaluation
    return holdout.table.iloc[sample_rows(len(holdout.table), ev.sample_size, ev.seed)]


def score_segmenter(model: Segmenter, holdout: CustomerFeatures, cfg: SegmentConfig) -> Evaluation:
    sample = _scored_sample(holdout, cfg)
    labels = model.predict(sample)
    x = model.transform(sample)
    k = len(model.names)
    shares = np.bincount(labels, minlength=k) / len(labels)
    silhouette = safe_silhouette(x, labels)
    degenerate = model.min_share < cfg.evaluation.min_segment_share
    metrics = {
        **cluster_metrics(x, labels),
        "silhouette_raw": silhouette,
        "silhouette_comparable": comparable_silhouette(sample, model.features, labels),
        "degenerate": float(degenerate),
        "train_min_segment_share": model.min_share,
        "k": float(k),
        "n_features": float(len(model.features)),
        "inertia_train": float(model.pipeline[-1].inertia_),
        "holdout_segments": float((shares > 0).sum()),
        "min_segment_share": float(shares.min()),
    }
    names = [model.names[i] for i in range(k)]
    details = pd.DataFrame({"segment_id": np.arange(k), "segment_name": names, "holdout_share": shares})
    return Evaluation(objective=-1.0 if degenerate else silhouette, metrics=metrics, details=details)


class RFMBaseline:
    """Quintile RFM scores summed and cut into k groups; edges learnt on train, applied to holdout."""

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, table: pd.DataFrame) -> RFMBaseline:
        scored = self._scored(table)
        self.edges_ = {c: np.quantile(v, [0.2, 0.4, 0.6, 0.8]) for c, v in scored.items()}
        self.total_edges_ = np.quantile(self._total(scored), np.linspace(0, 1, self.k + 1)[1:-1])
        return self

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        return np.searchsorted(self.total_edges_, self._total(self._scored(table)), side="right")

    @staticmethod
    def _scored(table: pd.DataFrame) -> dict[str, np.ndarray]:
        """Bigger is better on every axis: recency is negated."""
        return {
            "r": -table["recency"].to_numpy(),
            "f": table["frequency"].to_numpy(),
            "m": table["monetary"].to_numpy(),
        }

    def _total(self, scored: dict[str, np.ndarray]) -> np.ndarray:
        return sum(1 + np.searchsorted(self.edges_[c], v, side="right") for c, v in scored.items())


# ---- naming and profiles ----


def segment_z(table: pd.DataFrame, labels: np.ndarray, cols: list[str]) -> pd.DataFrame:
    """Per segment, the mean of each feature in standard deviations of signed log1p(feature)."""
    z = pd.DataFrame(common_space(table, cols), columns=cols)
    return z.groupby(labels).mean().sort_index()


def name_segments(zs: pd.DataFrame, k: int) -> dict[int, str]:
    """Readable, unique names from segment profiles `zs` (segment x feature, see `segment_z`).

    Rules, first match wins (top: z >= 1, high: z >= 0.5, low: z <= -0.5; recency high = long ago):
    returners (return_rate top); high-value loyal (monetary and frequency top, recency <= 0); new
    (tenure low, recency <= 0); at risk (recency high, frequency or monetary >= 0); lapsed (recency
    high); loyal (frequency high); big spenders (aov or monetary high); low-value occasional
    (monetary or frequency low); else regular. A feature the data lacks counts as average (z = 0).
    Repeated names get " 2", " 3", ... in segment-id order (the highest-revenue segment keeps the
    plain name).
    """
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for seg in range(k):
        base = _rule_name({f: float(v) for f, v in zs.loc[seg].items()} if seg in zs.index else {})
        seen[base] = seen.get(base, 0) + 1
        names[seg] = base if seen[base] == 1 else f"{base} {seen[base]}"
    return names


def _rule_name(z: dict[str, float]) -> str:
    """The first matching rule of `name_segments`."""
    rec, freq, mon = z.get("recency", 0.0), z.get("frequency", 0.0), z.get("monetary", 0.0)
    if z.get("return_rate", 0.0) >= TOP:
        return "returners"
    if mon >= TOP and freq >= TOP and rec <= 0:
        return "high-value loyal"
    if z.get("tenure", 0.0) <= LOW and rec <= 0:
        return "new"
    if rec >= HIGH:
        return "at risk" if freq >= 0 or mon >= 0 else "lapsed"
    if freq >= HIGH:
        return "loyal"
    if z.get("aov", 0.0) >= HIGH or mon >= HIGH:
        return "big spenders"
    if mon <= LOW or freq <= LOW:
        return "low-value occasional"
    return "regular"


def profile_segments(
    table: pd.DataFrame, labels: np.ndarray, names: dict[int, str], cols: list[str], zs: pd.DataFrame
) -> pd.DataFrame:
    """Size, share, revenue share, feature means and profile z-scores of each segment."""
    k = len(names)
    sizes = np.bincount(labels, minlength=k)
    revenue = np.bincount(labels, weights=table["monetary"].to_numpy(), minlength=k)
    total = revenue.sum()
    means = table[cols].groupby(labels).mean().reindex(range(k))
    out = pd.DataFrame(
        {
            "segment_id": np.arange(k),
            "segment_name": [names[i] for i in range(k)],
            "customers": sizes,
            "share": sizes / sizes.sum(),
            "revenue": revenue,
            "revenue_share": revenue / total if total > 0 else np.full(k, np.nan),
        }
    )
    out = out.join(means.add_prefix("mean_").reset_index(drop=True))
    return out.join(zs.reindex(range(k)).add_prefix("z_").reset_index(drop=True))


# ---- the pyfunc ----


def check_features(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The feature columns as float64, or a ValueError naming the missing column or the bad cell."""
    return pd.DataFrame(feature_matrix(frame, features), index=frame.index, columns=list(features))


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The feature columns as one float64 array (rows x features), or a ValueError as `check_features`."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a DataFrame of customer feature rows, got {type(frame).__name__}")
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValueError(f"missing feature column(s) {missing}; the segmenter needs {features}")
    out = {}
    for col in features:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.argmax(bad))
            raw = frame[col].iloc[first]
            shown = raw.item() if isinstance(raw, np.generic) else raw
            raise ValueError(
                f"column {col!r} row {frame.index[first]!r}: value {shown!r} is not a finite number "
                f"({int(bad.sum())} bad row(s) in the column)"
            )
        out[col] = values
    return np.column_stack([out[col] for col in features]) if features else np.empty((len(frame), 0))


class SegmentModel(mlflow.pyfunc.PythonModel):
    """Customer feature rows in; segment_id and segment_name out, other input columns passed through."""

    def __init__(self, pipeline: Pipeline, features: list[str], segment_of: np.ndarray, names: dict[int, str]) -> None:
        self.pipeline = pipeline
        self.features = list(features)
        self.segment_of = np.asarray(segment_of, dtype=np.int64)
        self.names = {int(k): str(v) for k, v in names.items()}

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        x = feature_matrix(model_input, self.features)
        out = model_input[[c for c in model_input.columns if c not in self.features]].copy()
        ids = self.assign(x) if len(x) else np.empty(0, dtype=np.int64)
        out["segment_id"] = ids.astype(np.int64)
        out["segment_name"] = pd.array([self.names[int(i)] for i in ids], dtype="string")
        return out

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Segment ids of raw feature rows (float64, columns in `features` order).

        The fitted pipeline's own steps as array arithmetic: the transform's function, the scaler's
        mean and scale, the nearest K-means centre (what `KMeans.predict` computes). A served request
        then costs microseconds instead of the ~1.5 ms of sklearn's per-call input validation.
        tests/test_segment.py checks it matches `pipeline.predict`. Other pipelines take the slow path.
        """
        steps = self.pipeline.named_steps
        transform, scale, kmeans = steps.get("transform"), steps.get("scale"), steps.get("kmeans")
        if not (
            isinstance(transform, FunctionTransformer) and transform.inverse_func is None and not transform.validate
            and isinstance(scale, StandardScaler) and isinstance(kmeans, KMeans) and len(steps) == 3
        ):
            frame = pd.DataFrame(x, columns=self.features)
            return self.segment_of[self.pipeline.predict(frame)]
        z = x if transform.func is None else np.asarray(transform.func(x), dtype=np.float64)
        if scale.with_mean:
            z = z - scale.mean_
        if scale.with_std:
            z = z / scale.scale_
        centres = kmeans.cluster_centers_
        distances = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        return self.segment_of[np.argmin(distances, axis=1)]


def model_features(model: Any) -> list[str]:
    """The feature columns of a loaded pyfunc: from our wrapper, else from the signature."""
    try:
        return list(model.unwrap_python_model().features)
    except (AttributeError, MlflowException):
        names = model.metadata.get_input_schema().input_names()
        return [n for n in names if n in FEATURES]


def examples(model: SegmentModel, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Input example (raw feature rows) and the model's output on it, for the signature.

    The last row's customer_id is missing on purpose: MLflow then marks customer_id optional in
    the signature, so callers may pass it through or leave it out.
    """
    example = rows.reset_index(drop=True).copy()
    example["customer_id"] = example["customer_id"].astype("string")
    example.loc[len(example) - 1, "customer_id"] = pd.NA
    return example, model.predict(None, example)


# ---- figures ----


def _figures(
    fitted: Segmenter, feats: CustomerFeatures, cfg: SegmentConfig, k_table: pd.DataFrame
) -> dict[str, Figure]:
    sample = _scored_sample(feats, cfg)
    return {
        "segments_pca": pca_figure(fitted, sample),
        "segment_profiles_heatmap": heatmap_figure(fitted.profiles),
        "k_selection": k_figure(k_table, int(fitted.params["k"])),
    }


def pca_figure(fitted: Segmenter, sample: pd.DataFrame) -> Figure:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0)
    xy = pca.fit_transform(fitted.transform(sample))
    labels = fitted.predict(sample)
    fig = Figure(figsize=(7, 5.5))
    ax = fig.subplots()
    for seg, name in fitted.names.items():
        m = labels == seg
        ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.6, label=f"{seg}: {name} ({m.sum()})")
    var = pca.explained_variance_ratio_
    ax.set(xlabel=f"PC1 ({var[0]:.0%})", ylabel=f"PC2 ({var[1]:.0%})")
    ax.set_title("Segments (PCA of the model's scaled features)")
    ax.legend(fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


def heatmap_figure(profiles: pd.DataFrame) -> Figure:
    zcols = [c for c in profiles.columns if c.startswith("z_")]
    z = profiles[zcols].to_numpy(dtype=float)
    lim = max(float(np.nanmax(np.abs(z))), 0.5)
    fig = Figure(figsize=(1.2 * len(zcols) + 3, 0.6 * len(profiles) + 2))
    ax = fig.subplots()
    im = ax.imshow(z, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(zcols)), [c[2:] for c in zcols], rotation=30, ha="right")
    ax.set_yticks(range(len(profiles)), [f"{i}: {n}" for i, n in zip(profiles["segment_id"], profiles["segment_name"])])
    for (r, c), v in np.ndenumerate(z):
        colour = "white" if abs(v) > 0.6 * lim else "black"
        ax.text(c, r, f"{v:+.2f}", ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(im, ax=ax, label="mean z of signed log1p(feature)")
    ax.set_title("Segment profiles (standardised feature means)")
    fig.tight_layout()
    return fig


def k_figure(k_table: pd.DataFrame, chosen: int) -> Figure:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    (sil,) = ax.plot(k_table["k"], k_table["silhouette"], "o-", color="tab:blue", label="silhouette")
    chosen_line = ax.axvline(chosen, color="grey", ls="--", lw=1, label=f"chosen k = {chosen}")
    ax.set(xlabel="k (segments)", ylabel="silhouette", title="Silhouette and inertia against k (sample)")
    ax.set_xticks(k_table["k"])
    ax2 = ax.twinx()
    (inertia,) = ax2.plot(k_table["k"], k_table["inertia"], "s-", color="tab:orange", label="inertia")
    ax2.set_ylabel("inertia")
    ax.legend(handles=[sil, inertia, chosen_line], loc="center right", fontsize=8)
    fig.tight_layout()
    return fig


def k_selection(fitted: Segmenter, feats: CustomerFeatures, cfg: SegmentConfig) -> pd.DataFrame:
    """Silhouette and inertia for every k in the range, fitted quickly (n_init=2) on the sample."""
    sample = _scored_sample(feats, cfg)[fitted.features]
    rows = []
    for k in range(cfg.search.k_min, min(cfg.search.k_max, len(sample) - 1) + 1):
        pipe = build_pipeline(fitted.params["transform"], k, 2, cfg.evaluation.seed).fit(sample)
        x = np.asarray(pipe[:-1].transform(sample))
        rows.append({"k": k, "silhouette": safe_silhouette(x, pipe[-1].labels_), "inertia": float(pipe[-1].inertia_)})
    return pd.DataFrame(rows)


def stability(fitted: Segmenter, feats: CustomerFeatures, cfg: SegmentConfig) -> dict[str, float]:
    """Adjusted Rand index between the model's labels and refits with other K-means seeds."""
    x = feats.table[fitted.features]
    reference = fitted.pipeline.predict(x)
    p, seed = fitted.params, cfg.evaluation.seed
    refits = (
        build_pipeline(p["transform"], int(p["k"]), int(p["n_init"]), seed + i).fit(x)
        for i in range(1, cfg.evaluation.stability_seeds + 1)
    )
    scores = [adjusted_rand_score(reference, refit.predict(x)) for refit in refits]
    return {"stability_ari_mean": float(np.mean(scores)), "stability_ari_min": float(np.min(scores))}


# ---- the family ----


class SegmenterFamily:
    """K-means customer segments; see the module docstring for how candidates are scored."""

    name = "segmenter"
    direction: Literal["maximize", "minimize"] = "maximize"
    objective_name = "silhouette"
    config_model = SegmentConfig

    def features(self, loaded: Loaded, cfg: SegmentConfig) -> CustomerFeatures:
        feats = build_customer_features(loaded.lines, cfg.features.reference_date, cfg.features.candidates)
        for feature, reason in feats.omitted.items():
            log.warning("customer feature %r left out of the candidates: %s", feature, reason)
        return feats

    def split(self, feats: CustomerFeatures, cfg: SegmentConfig) -> tuple[CustomerFeatures, CustomerFeatures]:
        """Seeded random train/holdout split of the customers."""
        n = len(feats.table)
        n_holdout = int(round(n * cfg.evaluation.holdout_fraction))
        need = 2 * cfg.search.k_max
        if n_holdout < need or n - n_holdout < need:
            raise ValueError(
                f"too few customers ({n}) for a holdout of {cfg.evaluation.holdout_fraction:.0%} with k up to "
                f"{cfg.search.k_max}: train and holdout need at least {need} customers each"
            )
        order = np.random.default_rng(cfg.evaluation.seed).permutation(n)
        return feats.subset(np.sort(order[n_holdout:])), feats.subset(np.sort(order[:n_holdout]))

    def search_space(self, trial: optuna.Trial, cfg: SegmentConfig) -> dict[str, Any]:
        s = cfg.search
        return {
            "k": trial.suggest_int("k", s.k_min, s.k_max),
            "feature_set": trial.suggest_categorical("feature_set", sorted(s.feature_sets)),
            "transform": trial.suggest_categorical("transform", list(s.transforms)),
            "n_init": trial.suggest_categorical("n_init", sorted(set(s.n_init))),
        }

    def evaluate(
        self, train: CustomerFeatures, holdout: CustomerFeatures, params: dict[str, Any], cfg: SegmentConfig
    ) -> Evaluation:
        return score_segmenter(fit_segmenter(train, params, cfg), holdout, cfg)

    def baseline(self, train: CustomerFeatures, holdout: CustomerFeatures, cfg: SegmentConfig) -> Evaluation:
        k = cfg.evaluation.baseline_k or (cfg.search.k_min + cfg.search.k_max) // 2
        rfm = RFMBaseline(k).fit(train.table)
        sample = _scored_sample(holdout, cfg)
        labels = rfm.predict(sample)
        scaler = StandardScaler().fit(signed_log1p(train.table[RFM].to_numpy(dtype=np.float64)))
        x = scaler.transform(signed_log1p(sample[RFM].to_numpy(dtype=np.float64)))
        metrics = {
            **cluster_metrics(x, labels),
            "silhouette_comparable": comparable_silhouette(sample, RFM, labels),
            "k": float(k),
            "holdout_segments": float(len(np.unique(labels))),
        }
        return Evaluation(objective=safe_silhouette(x, labels), metrics=metrics)

    def fit(self, feats: CustomerFeatures, params: dict[str, Any], cfg: SegmentConfig) -> Segmenter:
        return fit_segmenter(feats, params, cfg)

    def report(
        self, fitted: Segmenter, feats: CustomerFeatures, cfg: SegmentConfig
    ) -> tuple[dict[str, Figure], dict[str, pd.DataFrame], dict[str, float]]:
        """Profiles, k curve, PCA and heatmap; silhouette/CH/DB on a seeded sample of all customers."""
        sample = _scored_sample(feats, cfg)
        labels = fitted.predict(sample)
        x = fitted.transform(sample)
        k_table = k_selection(fitted, feats, cfg)
        metrics = {
            "silhouette_all": safe_silhouette(x, labels),
            **cluster_metrics(x, labels),
            **stability(fitted, feats, cfg),
            "inertia": float(fitted.pipeline[-1].inertia_),
            "segments": float(len(fitted.names)),
            "return_rate_omitted": float("return_rate" in feats.omitted),
            **{f"features_{k}": float(v) for k, v in feats.stats.items()},
        }
        tables = {"segment_profiles": fitted.profiles, "k_selection": k_table}
        return _figures(fitted, feats, cfg, k_table), tables, metrics

    def pyfunc(self, fitted: Segmenter, cfg: SegmentConfig) -> tuple[SegmentModel, pd.DataFrame, pd.DataFrame]:
        model = SegmentModel(fitted.pipeline, fitted.features, fitted.segment_of, fitted.names)
        return (model, *examples(model, fitted.example_rows))

    def score_model(self, model: Any, holdout: CustomerFeatures, cfg: SegmentConfig) -> float:
        cols = model_features(model)
        absent = [c for c in cols if c not in holdout.table.columns]
        if absent:
            raise ValueError(f"the model needs feature(s) {absent} that the evaluation data does not have")
        sample = _scored_sample(holdout, cfg)
        labels = model.predict(sample[cols].reset_index(drop=True))["segment_id"].to_numpy()
        return comparable_silhouette(sample, cols, labels)
