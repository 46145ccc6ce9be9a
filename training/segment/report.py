"""What a fitted segmenter is logged with: profiles, the k curve, stability across seeds, figures.

Pure: every refit here is a new pipeline; the fitted model is only read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from features.customers import CustomerFeatures
from training.family import Report
from training.segment.config import SegmentConfig
from training.segment.figures import heatmap_figure, k_figure, pca_figure
from training.segment.fit import Segmenter, build_pipeline
from training.segment.scoring import common_space, scored_sample, silhouettes


def k_selection(fitted: Segmenter, feats: CustomerFeatures, cfg: SegmentConfig) -> pd.DataFrame:
    """Silhouette (in the scoring space) and inertia for every k in the range, fitted quickly (n_init=2)
    on the scored sample with the model's features and transform."""
    sample = scored_sample(feats, cfg)[fitted.features]
    space = common_space(sample.to_numpy(dtype=np.float64))
    rows = []
    for k in range(cfg.search.k_min, min(cfg.search.k_max, len(sample) - 1) + 1):
        pipe = build_pipeline(fitted.params["transform"], k, 2, cfg.evaluation.seed).fit(sample)
        labels = pipe[-1].labels_
        silhouette = float(np.mean(silhouettes(space, labels)))
        rows.append({"k": k, "silhouette": silhouette, "inertia": float(pipe[-1].inertia_)})
    return pd.DataFrame(rows)


def stability_table(fitted: Segmenter, feats: CustomerFeatures, cfg: SegmentConfig) -> pd.DataFrame:
    """Adjusted Rand index between the model's labels and refits with other K-means seeds, one row per seed
    (logged beside the score's bootstrap replicates as `losses/stability.parquet`)."""
    x = feats.table[fitted.features]
    reference = fitted.pipeline.predict(x)
    p, seed = fitted.params, cfg.evaluation.seed
    seeds = [seed + i for i in range(1, cfg.evaluation.stability_seeds + 1)]
    refits = (build_pipeline(p["transform"], int(p["k"]), int(p["n_init"]), s).fit(x) for s in seeds)
    scores = [float(adjusted_rand_score(reference, refit.predict(x))) for refit in refits]
    return pd.DataFrame({"seed": seeds, "ari": scores})


def stability(table: pd.DataFrame) -> dict[str, float]:
    return {"stability_ari_mean": float(table["ari"].mean()), "stability_ari_min": float(table["ari"].min())}


def segment_report(fitted: Segmenter, feats: CustomerFeatures, cfg: SegmentConfig) -> Report:
    """Profiles, k curve, PCA and heatmap, stability; the model's score is `score_segments`' alone."""
    k_table = k_selection(fitted, feats, cfg)
    profiles = fitted.profiles.copy()
    aris = stability_table(fitted, feats, cfg)
    metrics = {
        **stability(aris),
        "inertia": float(fitted.pipeline[-1].inertia_),
        "segments": float(len(fitted.names)),
        "return_rate_omitted": float("return_rate" in feats.omitted),
        **{f"features_{k}": float(v) for k, v in feats.stats.items()},
    }
    figures = {
        "segments_pca": pca_figure(fitted, scored_sample(feats, cfg)),
        "segment_profiles_heatmap": heatmap_figure(profiles),
        "k_selection": k_figure(k_table, int(fitted.params["k"])),
    }
    tables = {"segment_profiles": profiles, "k_selection": k_table}
    return Report(figures=figures, tables=tables, metrics=metrics, losses={"stability": aris})
