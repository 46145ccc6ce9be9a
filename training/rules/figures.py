"""What a fitted rule set is logged with: the top rules by lift, a support/confidence/lift scatter, an item network.

Pure: the figures and tables read the fitted rules and never change them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from training.rules.fit import RulesFit


def top_rules_table(fitted: RulesFit, n: int) -> pd.DataFrame:
    """The `n` rules with the highest lift (ties: confidence, support), labels spelled out."""
    frame = fitted.rules.frame(fitted.items)
    if frame.empty:
        return frame
    frame["antecedent"] = [" & ".join(a) for a in frame["antecedent"]]
    frame = frame.sort_values(["lift", "confidence", "support"], ascending=False, kind="stable")
    return frame.head(n).reset_index(drop=True)


def scatter_figure(fitted: RulesFit) -> Figure:
    rules = fitted.rules
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    if len(rules):
        order = np.argsort(rules.lift, kind="stable")  # high lift drawn on top
        dots = ax.scatter(
            rules.support[order], rules.confidence[order], c=rules.lift[order], s=10, cmap="viridis", alpha=0.8
        )
        fig.colorbar(dots, ax=ax, label="lift")
        ax.set_xscale("log")
        _plain_log_ticks(ax)
    else:
        ax.text(0.5, 0.5, "no rules at these thresholds", ha="center", va="center", transform=ax.transAxes)
    title = f"{len(rules)} rules: support, confidence and lift"
    ax.set(xlabel="support (share of baskets)", ylabel="confidence", title=title)
    fig.tight_layout()
    return fig


def network_figure(table: pd.DataFrame) -> Figure:
    """Items of the top rules on a circle; an arrow per rule from each antecedent item to the consequent."""
    fig = Figure(figsize=(8, 8))
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title(f"Item network of the top {len(table)} rules by lift (width: confidence, colour: lift)")
    if table.empty:
        ax.text(0.5, 0.5, "no rules at these thresholds", ha="center", va="center", transform=ax.transAxes)
        return fig
    columns = table[["antecedent", "consequent", "confidence", "lift"]].itertuples(index=False)
    edges = [(a, c, conf, lift) for ante, c, conf, lift in columns for a in ante.split(" & ")]
    nodes = list(dict.fromkeys(x for a, c, *_ in edges for x in (a, c)))
    angle = 2 * np.pi * np.arange(len(nodes)) / len(nodes)
    xy = dict(zip(nodes, np.c_[np.cos(angle), np.sin(angle)]))
    lifts = table["lift"].to_numpy()
    norm = _normaliser(lifts.min(), lifts.max())
    cmap = _colormap()
    for a, c, conf, lift in edges:
        style = {"arrowstyle": "-|>", "color": cmap(norm(lift)), "lw": 0.5 + 3 * conf, "alpha": 0.7}
        ax.annotate("", xy=xy[c], xytext=xy[a], arrowprops={**style, "shrinkA": 8, "shrinkB": 8})
    pts = np.array([xy[n] for n in nodes])
    ax.scatter(pts[:, 0], pts[:, 1], s=60, color="black", zorder=3)
    for name, (x, y), a in zip(nodes, pts, angle):
        ax.text(1.1 * x, 1.1 * y, _short(name), fontsize=7, rotation=np.degrees(a) if x >= 0 else np.degrees(a) + 180,
                ha="left" if x >= 0 else "right", va="center", rotation_mode="anchor")
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    fig.colorbar(_mappable(cmap, norm), ax=ax, shrink=0.6, label="lift")
    fig.tight_layout()
    return fig


def _plain_log_ticks(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _short(label: str, width: int = 24) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _colormap() -> Any:
    from matplotlib import colormaps

    return colormaps["viridis"]


def _normaliser(lo: float, hi: float) -> Any:
    from matplotlib.colors import Normalize

    return Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-9)


def _mappable(cmap: Any, norm: Any) -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)
