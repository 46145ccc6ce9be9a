"""KPI plots: matplotlib figures drawn from a `kpi_report` dict (the JSON form), so a saved report can be re-plotted.

Figures are built with `matplotlib.figure.Figure` (no pyplot state, safe in servers and tests);
a section that is unavailable in the report simply has no figure. A bar chart of a dimension the
data lacks (one category "all", one discount band "0%") would show a single bar that says nothing:
such a panel is left out and `dropped_charts` gives the note the page shows instead. Value axes use
thousands separators (never a "1e7" offset) and every axis label is words, not a column name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

BLUE, ORANGE, GREEN, GREY = "#4c72b0", "#dd8452", "#55a868", "#b0b0b0"

#: (report section, rows key, label column, chart title, what a single value means)
PANELS = [
    ("categories", "by_category", "category", "Revenue by category", "every sales line has the category {}"),
    ("channels", "by_channel", "channel", "Revenue and orders by channel", "every sales line has the channel {}"),
    ("returns", "by_category", "category", "Return rate by category", "every line has the category {}"),
    ("returns", "by_discount_band", "discount_band", "Return rate by discount band", "every line is in the discount band {}"),
    ("rfm", "segments", "segment", "RFM segments", "every customer is in the segment {}"),
]


def _available(section: Any) -> bool:
    return isinstance(section, dict) and section.get("status") != "unavailable"


def _drawn(section: dict[str, Any], key: str) -> bool:
    """A panel is worth drawing when its dimension has two values or more."""
    return len(section.get(key) or []) >= 2


def dropped_charts(report: dict[str, Any]) -> dict[str, str]:
    """Chart title -> the note shown instead, for each panel whose dimension has a single value in the data."""
    notes = {}
    for name, key, column, title, what in PANELS:
        section = report.get(name)
        if _available(section) and isinstance(section.get(key), list) and len(section[key]) == 1:
            value = section[key][0].get(column)
            notes[title] = f"not drawn: {what.format(repr(value))} in this data, so one bar would compare nothing"
    return notes


def thousands(value: float, _pos: Any = None) -> str:
    """Axis tick text: 12,345,678 rather than 1.2 with a "1e7" offset; small values keep their decimals."""
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.3g}"


def percent(value: float, _pos: Any = None) -> str:
    return f"{value:.0%}"


def _value_axis(axis: Any, kind: str = "number") -> None:
    axis.set_major_formatter(FuncFormatter(percent if kind == "share" else thousands))


def _barh(ax: Axes, labels: list[str], values: list[float], title: str, xlabel: str, kind: str = "number") -> None:
    order = np.argsort(values, kind="stable")
    ax.barh([labels[i] for i in order], [values[i] for i in order], color=BLUE)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    _value_axis(ax.xaxis, kind)


def cohort_heatmap(section: dict[str, Any]) -> Figure:
    """Cohorts (rows) x months since the cohort month (columns); unobserved cells blank."""
    rows = section["matrix"]
    cohort_by = section.get("cohort_by", "cohort month")
    cols = [k for k in rows[0] if k.startswith("m") and k[1:].isdigit()]
    values = np.array([[np.nan if r.get(c) is None else r[c] for c in cols] for r in rows], dtype=float)
    fig = Figure(figsize=(min(16, 3 + 0.35 * len(cols)), min(12, 2 + 0.3 * len(rows))))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis", vmin=0, vmax=max(np.nanmax(values), 1e-9))
    ax.set_yticks(range(len(rows)), [f"{r['cohort']} ({r['customers']:,})" for r in rows], fontsize=7)
    step = max(1, len(cols) // 20)
    ax.set_xticks(range(0, len(cols), step), [c[1:] for c in cols[::step]], fontsize=7)
    ax.set_xlabel(f"months since the {cohort_by.split(' (')[0]}")
    ax.set_ylabel(f"cohort: {cohort_by} (customers)")
    ax.set_title("Cohort retention: share of the cohort buying in the month")
    bar = fig.colorbar(image, ax=ax, label="share of the cohort buying")
    _value_axis(bar.ax.yaxis, "share")
    fig.tight_layout()
    return fig


def revenue_period_bars(section: dict[str, Any]) -> Figure:
    """Sales revenue per period, the best period in orange, partial edge periods grey (their low bar is no collapse)."""
    rows = section["by_period"]
    best = section["best_period"]["period"]
    labels = [r["period"] for r in rows]
    colors = [ORANGE if r["period"] == best else GREY if r["partial"] else BLUE for r in rows]
    fig = Figure(figsize=(min(16, 4 + 0.3 * len(rows)), 4.5))
    ax = fig.subplots()
    ax.bar(range(len(rows)), [r["revenue"] for r in rows], color=colors, width=0.8)
    ax.plot(range(len(rows)), [r["net_revenue"] for r in rows], color="#333333", lw=1, marker=".", label="net of returns")
    step = max(1, len(rows) // 24)
    ax.set_xticks(range(0, len(rows), step), labels[::step], rotation=45, ha="right", fontsize=7)
    period = section["period"]
    ax.set_xlabel(period if period == "month" else f"{period} starting")
    ax.set_ylabel("revenue (sales after discount)")
    _value_axis(ax.yaxis)
    ax.set_title(f"Revenue by {period}: best {best} ({section['best_period']['revenue']:,.0f})")
    handles = [Patch(color=ORANGE, label="best"), Patch(color=GREY, label="partial (data covers part of it)")]
    ax.legend(handles=[*handles, *ax.get_legend_handles_labels()[0]], loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def category_revenue_bars(section: dict[str, Any]) -> Figure | None:
    rows = section["by_category"]
    if not _drawn(section, "by_category"):
        return None
    fig = Figure(figsize=(7, 1.5 + 0.3 * len(rows)))
    _barh(fig.subplots(), [r["category"] for r in rows], [r["revenue"] for r in rows], "Revenue by category (sales lines)",
          "revenue (sales after discount)")
    fig.tight_layout()
    return fig


def channel_bars(section: dict[str, Any]) -> Figure | None:
    rows = section["by_channel"]
    if not _drawn(section, "by_channel"):
        return None
    fig = Figure(figsize=(11, 1.5 + 0.3 * len(rows)))
    left, right = fig.subplots(1, 2)
    labels = [r["channel"] for r in rows]
    _barh(left, labels, [r["revenue"] for r in rows], "Revenue by channel", "revenue (sales after discount)")
    _barh(right, labels, [r["orders"] for r in rows], "Orders by channel", "orders")
    fig.tight_layout()
    return fig


def return_rate_bars(section: dict[str, Any]) -> Figure | None:
    """Return rate (returned / sold units) by category and by discount band; a one-value dimension has no panel."""
    panels = [key for key in ("by_category", "by_discount_band") if _drawn(section, key)]
    if not panels:
        return None
    fig = Figure(figsize=(5.5 * len(panels), 4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, key in zip(axes, panels):
        rows = section[key]
        if key == "by_category":
            _barh(ax, [r["category"] for r in rows], [r["return_rate"] or 0.0 for r in rows], "Return rate by category",
                  "returned units / sold units", "share")
            continue
        ax.bar([r["discount_band"] for r in rows], [r["return_rate"] or 0.0 for r in rows], color=ORANGE)
        ax.set_title("Return rate by discount band")
        ax.set_xlabel("discount")
        ax.set_ylabel("returned units / sold units")
        _value_axis(ax.yaxis, "share")
    fig.tight_layout()
    return fig


def rfm_segment_bars(section: dict[str, Any]) -> Figure | None:
    """Customers per RFM segment, annotated with the segment's revenue share."""
    rows = section["segments"]
    if not _drawn(section, "segments"):
        return None
    fig = Figure(figsize=(8, 1.5 + 0.35 * len(rows)))
    ax = fig.subplots()
    labels = [r["segment"] for r in rows][::-1]
    ax.barh(labels, [r["customers"] for r in rows][::-1], color=GREEN)
    for y, r in enumerate(rows[::-1]):
        ax.annotate(f"{(r['revenue_share'] or 0):.0%} of revenue", (r["customers"], y),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_title("RFM segments: customers (and revenue share)")
    ax.set_xlabel("customers")
    _value_axis(ax.xaxis)
    ax.margins(x=0.25)
    fig.tight_layout()
    return fig


FIGURES: dict[str, tuple[str, Callable[[dict[str, Any]], Figure | None]]] = {
    "revenue_by_period": ("revenue_by_period", revenue_period_bars),
    "cohort_retention": ("cohort_retention", cohort_heatmap),
    "revenue_by_category": ("categories", category_revenue_bars),
    "channels": ("channels", channel_bars),
    "return_rates": ("returns", return_rate_bars),
    "rfm_segments": ("rfm", rfm_segment_bars),
}


def kpi_figures(report: dict[str, Any]) -> dict[str, Figure]:
    """One figure per available plotted section of the report with something to compare, keyed by a file-friendly name."""
    figures = {}
    for name, (section, draw) in FIGURES.items():
        if _available(report.get(section)) and (fig := draw(report[section])) is not None:
            figures[name] = fig
    return figures
