"""Figures of a fitted BG/NBD + Gamma-Gamma model, for the MLflow run and the KPI report.

Pure functions of plain arrays, frames and parameters: they never refit or change a model. Like
`features.plots` they build `matplotlib.figure.Figure` objects directly (no pyplot state, safe in
servers and tests), label axes in words and show numbers with thousands separators.

- `calibration_holdout_figure`: the Fader-Hardie check of a fit on data it never saw: customers
  grouped by their calibration frequency, mean actual against mean predicted holdout purchases.
- `p_alive_matrix_figure`: P(alive) over frequency x recency for one customer age T, so a reader sees
  how long silence after many purchases means "probably gone".
- `clv_by_segment_figure`: predicted CLV per RFM segment, on a symlog axis since CLV spans orders of
  magnitude and many customers are worth about zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from features.btyd.bgnbd import BetaGeoParams, Model, p_alive
from features.plots import BLUE, GREY, ORANGE, thousands
from features.rfm import SEGMENTS

TAIL_BIN = 7  # the smallest pooled tail "7+", as in Fader, Hardie & Lee (2005) on CDNOW
MAX_TAIL = 25  # frequent buyers: the tail moves up to the 90th percentile of frequency, at most this
MAX_GRID = 120  # recency columns of the P(alive) matrix at most; finer grids add pixels, not insight
UNIT_WORDS = {"D": "days", "W": "weeks"}


def default_tail(frequency: np.ndarray) -> int:
    """The pooled bin: the 90th percentile of calibration frequency, clipped to TAIL_BIN..MAX_TAIL.

    A fixed "7+" suits sparse buyers (CDNOW); in a shop where the median customer buys 19 times it
    would pool two thirds of the customers into one point."""
    if not len(frequency):
        return TAIL_BIN
    return int(np.clip(np.ceil(np.quantile(frequency, 0.9)), TAIL_BIN, MAX_TAIL))


def calibration_bins(table: pd.DataFrame, predicted_holdout: np.ndarray | pd.Series, tail: int | None = None) -> pd.DataFrame:
    """Per calibration-frequency bin (0, 1, ..., "tail+"): customers, mean actual and mean predicted holdout purchases."""
    predicted = np.asarray(predicted_holdout, dtype=np.float64)
    if len(predicted) != len(table):
        raise ValueError(f"predicted_holdout has {len(predicted)} values for {len(table)} customers")
    for column in ("frequency", "frequency_holdout"):
        if column not in table.columns:
            raise ValueError(f"missing column {column!r}: the calibration plot needs a summary with a holdout")
    frequency = table["frequency"].to_numpy(dtype=np.float64)
    tail = default_tail(frequency) if tail is None else tail
    top = int(min(tail, frequency.max())) if len(frequency) else 0
    binned = np.minimum(frequency, top).astype(np.int64)
    frame = pd.DataFrame({"bin": binned, "actual": table["frequency_holdout"].to_numpy(dtype=np.float64), "predicted": predicted})
    out = frame.groupby("bin").agg(customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean"))
    pooled = top == tail and (frequency > tail).any()
    out["label"] = [f"{b}+" if pooled and b == top else str(b) for b in out.index]
    return out


def calibration_holdout_figure(table: pd.DataFrame, predicted_holdout: np.ndarray | pd.Series, tail: int | None = None,
                               unit: str | None = None) -> Figure:
    """Mean actual vs predicted holdout purchases by calibration frequency; customers per bin as grey bars behind."""
    bins = calibration_bins(table, predicted_holdout, tail)
    x = np.arange(len(bins))
    fig = Figure(figsize=(max(8.0, 0.38 * len(bins) + 2), 4.5))
    ax = fig.subplots()
    counts = ax.twinx()
    counts.bar(x, bins["customers"], color=GREY, alpha=0.35, width=0.7, label="customers in the bin (right axis)")
    counts.set_ylabel("customers in the bin", color="#777777")
    counts.yaxis.set_major_formatter(FuncFormatter(thousands))
    ax.set_zorder(counts.get_zorder() + 1)  # the lines in front of the bars
    ax.patch.set_visible(False)
    ax.plot(x, bins["actual"], color=BLUE, marker="o", label="actual")
    ax.plot(x, bins["predicted"], color=ORANGE, marker="s", linestyle="--", label="predicted by the model")
    ax.set_xticks(x, list(bins["label"]), fontsize=8)
    ax.set_xlim(-0.6, len(bins) - 0.4)
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("mean purchases in the holdout period")
    ax.yaxis.set_major_formatter(FuncFormatter(thousands))
    ax.set_ylim(bottom=0)
    ax.set_title(f"Calibration vs holdout{_holdout_length(table, unit)}: actual and predicted purchases")
    handles = ax.get_legend_handles_labels()[0] + counts.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _holdout_length(table: pd.DataFrame, unit: str | None) -> str:
    if "duration_holdout" not in table.columns or table.empty:
        return ""
    lengths = np.unique(table["duration_holdout"].to_numpy(dtype=np.float64))
    if len(lengths) != 1:
        return ""
    return f" ({lengths[0]:g} {UNIT_WORDS.get(unit or '', 'periods')})"


def p_alive_grid(bg: BetaGeoParams, model: Model, max_frequency: int, max_recency: float, T: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (rows), recencies (columns) and P(alive) on that grid; impossible cells are NaN.

    A customer without repeat purchases has recency 0 by definition, so row 0 holds a value only at
    recency 0; recency beyond T cannot happen, so `max_recency` must not exceed T."""
    if max_frequency < 0 or max_recency < 0 or T <= 0:
        raise ValueError(f"need max_frequency >= 0, max_recency >= 0 and T > 0, got {max_frequency}, {max_recency}, {T}")
    if max_recency > T:
        raise ValueError(f"max_recency {max_recency:g} exceeds the customer age T = {T:g}")
    frequencies = np.arange(int(max_frequency) + 1, dtype=np.float64)
    columns = 1 if max_recency == 0 else min(max(int(np.floor(max_recency)) + 1, 2), MAX_GRID)
    recencies = np.linspace(0.0, float(max_recency), columns)
    f, r = np.meshgrid(frequencies, recencies, indexing="ij")
    matrix = np.asarray(p_alive(bg, model, f.ravel(), r.ravel(), np.full(f.size, float(T))), dtype=np.float64).reshape(f.shape)
    matrix[(f == 0) & (r > 0)] = np.nan
    return frequencies, recencies, matrix


def p_alive_matrix_figure(bg: BetaGeoParams, model: Model, max_frequency: int, max_recency: float, T: float,
                          unit: str | None = None) -> Figure:
    """Heatmap of P(alive) by repeat purchases (rows, growing upwards) and recency (columns) at age T."""
    frequencies, recencies, matrix = p_alive_grid(bg, model, max_frequency, max_recency, T)
    half_r = (recencies[1] - recencies[0]) / 2 if len(recencies) > 1 else 0.5
    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(matrix), origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                      interpolation="nearest",
                      extent=(recencies[0] - half_r, recencies[-1] + half_r, frequencies[0] - 0.5, frequencies[-1] + 0.5))
    words = UNIT_WORDS.get(unit or "", "periods")
    ax.set_xlabel(f"recency: {words} from the first to the last purchase")
    ax.set_ylabel("repeat purchases (frequency)")
    age = f"{T:,.0f}" if T >= 10 else f"{T:.2g}"
    ax.set_title(f"P(alive) of a customer aged {age} {words} ({_model_name(model)})")
    bar = fig.colorbar(image, ax=ax, label="probability the customer is still active")
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.0%}"))
    fig.tight_layout()
    return fig


def _model_name(model: Model) -> str:
    return {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD"}.get(model, str(model))


def _segment_order(names: Sequence[str], medians: dict[str, float]) -> list[str]:
    """RFM segments in the vocabulary's order (best first); other names after them, by falling median."""
    known = [s for s in SEGMENTS if s in names]
    others = sorted((s for s in names if s not in SEGMENTS), key=lambda s: -medians[s])
    return known + others


def _linthresh(values: np.ndarray) -> float:
    """The linear zone of the symlog axis: a power of ten at or below 1 % of the median positive CLV.

    Customers worth less than that are "about zero" for the plot; above it each decade gets equal room."""
    positive = values[values > 0]
    if not len(positive):
        return 1.0
    return float(10 ** np.floor(np.log10(np.median(positive) / 100)))


def _money(value: float) -> str:
    """A median as written beside its box: thousands separated, and "< 0.01" rather than 3.39e-05."""
    return "< 0.01" if 0 <= value < 0.01 else thousands(value)


def clv_by_segment_figure(clv_values: np.ndarray | pd.Series, segments: np.ndarray | pd.Series | Sequence[str]) -> Figure:
    """Box plot of predicted CLV per segment (boxes: quartiles; whiskers: 5th-95th percentile); medians written beside."""
    values = np.asarray(clv_values, dtype=np.float64)
    names = np.asarray(segments, dtype=object).astype(str)
    if len(values) != len(names):
        raise ValueError(f"{len(values)} CLV values for {len(names)} segment labels")
    if not len(values) or not np.isfinite(values).all():
        raise ValueError("CLV values must be finite and not empty")
    groups = {s: values[names == s] for s in np.unique(names)}
    medians = {s: float(np.median(v)) for s, v in groups.items()}
    order = _segment_order(list(groups), medians)[::-1]  # barh-like: the first segment on top
    fig = Figure(figsize=(9, 1.6 + 0.45 * len(order)))
    ax = fig.subplots()
    ax.boxplot([groups[s] for s in order], orientation="horizontal", whis=(5, 95), showfliers=False, widths=0.6,
               patch_artist=True, boxprops={"facecolor": "#dbe4f0", "edgecolor": BLUE},
               medianprops={"color": ORANGE, "linewidth": 2}, whiskerprops={"color": GREY}, capprops={"color": GREY})
    ax.set_yticks(range(1, len(order) + 1), [f"{s} ({len(groups[s]):,})" for s in order])
    linthresh = _linthresh(values)
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.xaxis.set_major_formatter(FuncFormatter(thousands))
    tops = {s: float(np.percentile(groups[s], 95)) for s in order}
    for y, s in enumerate(order, start=1):
        ax.annotate(f"median {_money(medians[s])}", (tops[s], y), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=8, color="#333333")
    right = max(max(tops.values()), linthresh)
    ax.set_xlim(min(0.0, float(values.min()) * 1.2), right * 10 if right > linthresh else right * 4)
    ax.set_xlabel("predicted CLV (symlog scale; box: quartiles, whiskers: 5th to 95th percentile)")
    ax.set_ylabel("segment (customers)")
    ax.set_title("Predicted customer lifetime value by segment")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
