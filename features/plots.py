"""KPI plots: matplotlib figures drawn from a `kpi_report` dict (the JSON form), so a saved report can be re-plotted.

Figures are built with `matplotlib.figure.Figure` (no pyplot state, safe in servers and tests);
a section that is unavailable in the report simply has no figure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure


def _available(section: Any) -> bool:
    return isinstance(section, dict) and section.get("status") != "unavailable"


def cohort_heatmap(section: dict[str, Any]) -> Figure:
    """Cohorts (rows) x months since signup (columns); unobserved cells blank."""
    rows = section["matrix"]
    cols = [k for k in rows[0] if k.startswith("m") and k[1:].isdigit()]
    values = np.array([[np.nan if r.get(c) is None else r[c] for c in cols] for r in rows], dtype=float)
    fig = Figure(figsize=(min(16, 3 + 0.35 * len(cols)), min(12, 2 + 0.3 * len(rows))))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis", vmin=0, vmax=max(np.nanmax(values), 1e-9))
    ax.set_yticks(range(len(rows)), [f"{r['cohort']} ({r['customers']})" for r in rows], fontsize=7)
    step = max(1, len(cols) // 20)
    ax.set_xticks(range(0, len(cols), step), [c[1:] for c in cols[::step]], fontsize=7)
    ax.set_xlabel("months since signup")
    ax.set_ylabel("cohort (customers)")
    ax.set_title("Cohort retention: share of the cohort buying in the month")
    fig.colorbar(image, ax=ax, label="active share")
    fig.tight_layout()
    return fig


def _barh(ax: Any, labels: list[str], values: list[float], title: str, xlabel: str) -> None:
    order = np.argsort(values)
    ax.barh([labels[i] for i in order], [values[i] for i in order], color="#4c72b0")
    ax.set_title(title)
    ax.set_xlabel(xlabel)


def category_revenue_bars(section: dict[str, Any]) -> Figure:
    rows = section["by_category"]
    fig = Figure(figsize=(7, 1.5 + 0.3 * len(rows)))
    _barh(fig.subplots(), [r["category"] for r in rows], [r["revenue"] for r in rows], "Revenue by category (sales lines)", "revenue")
    fig.tight_layout()
    return fig


def channel_bars(section: dict[str, Any]) -> Figure:
    rows = section["by_channel"]
    fig = Figure(figsize=(11, 1.5 + 0.3 * len(rows)))
    left, right = fig.subplots(1, 2)
    labels = [r["channel"] for r in rows]
    _barh(left, labels, [r["revenue"] for r in rows], "Revenue by channel", "revenue")
    _barh(right, labels, [r["orders"] for r in rows], "Orders by channel", "orders")
    fig.tight_layout()
    return fig


def return_rate_bars(section: dict[str, Any]) -> Figure:
    """Return rate (returned / sold units) by category and by discount band."""
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    cats = section["by_category"]
    rates = [r["return_rate"] or 0.0 for r in cats]
    _barh(left, [r["category"] for r in cats], rates, "Return rate by category", "returned units / sold units")
    bands = section["by_discount_band"]
    right.bar([r["discount_band"] for r in bands], [r["return_rate"] or 0.0 for r in bands], color="#dd8452")
    right.set_title("Return rate by discount band")
    right.set_xlabel("discount")
    right.set_ylabel("returned units / sold units")
    fig.tight_layout()
    return fig


def rfm_segment_bars(section: dict[str, Any]) -> Figure:
    """Customers per RFM segment, annotated with the segment's revenue share."""
    rows = section["segments"]
    fig = Figure(figsize=(8, 1.5 + 0.35 * len(rows)))
    ax = fig.subplots()
    labels = [r["segment"] for r in rows][::-1]
    ax.barh(labels, [r["customers"] for r in rows][::-1], color="#55a868")
    for y, r in enumerate(rows[::-1]):
        ax.annotate(f"{(r['revenue_share'] or 0):.0%} of revenue", (r["customers"], y),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_title("RFM segments: customers (and revenue share)")
    ax.set_xlabel("customers")
    ax.margins(x=0.25)
    fig.tight_layout()
    return fig


FIGURES: dict[str, tuple[str, Callable[[dict[str, Any]], Figure]]] = {
    "cohort_retention": ("cohort_retention", cohort_heatmap),
    "revenue_by_category": ("categories", category_revenue_bars),
    "channels": ("channels", channel_bars),
    "return_rates": ("returns", return_rate_bars),
    "rfm_segments": ("rfm", rfm_segment_bars),
}


def kpi_figures(report: dict[str, Any]) -> dict[str, Figure]:
    """One figure per available plotted section of the report, keyed by a file-friendly name."""
    figures = {}
    for name, (section, draw) in FIGURES.items():
        if _available(report.get(section)):
            figures[name] = draw(report[section])
    return figures
