"""Figures logged with a fitted segmenter: segments in PCA, profile heatmap, silhouette against k.

Pure: they read the fitted model and the data, and never change either.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from training.segment.fit import Segmenter


def pca_figure(fitted: Segmenter, sample: pd.DataFrame) -> Figure:
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
    ax.set_title("Segment profiles (standardised feature means; names use the model's features only)")
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
