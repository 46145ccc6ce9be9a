"""Write a KPI report to a folder: one JSON of all figures, PNG plots and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MAX_TABLE_ROWS = 25


def write_report(report: dict[str, Any], figures: dict[str, Any], out: Path, title: str, meta: dict[str, Any]) -> Path:
    """Write kpis.json, <plot>.png and report.html into `out`; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "kpis.json").write_text(json.dumps({"meta": meta, "kpis": report}, indent=2, default=str))
    images: dict[str, str] = {}
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        (out / f"{name}.png").write_bytes(buf.getvalue())
        images[name] = base64.b64encode(buf.getvalue()).decode()
        plt.close(fig)
    page = out / "report.html"
    page.write_text(render_html(report, images, title, meta), encoding="utf-8")
    return page


def render_html(report: dict[str, Any], images: dict[str, str], title: str, meta: dict[str, Any]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}"
        "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}"
        "td:first-child,th:first-child{text-align:left}.na{color:#a33}img{max-width:100%}"
        "h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _table_of_scalars(meta),
    ]
    if images:
        parts.append("<h2>Plots</h2>")
        for name, data in images.items():
            parts.append(f"<h3>{html.escape(name.replace('_', ' '))}</h3><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
    for name, value in report.items():
        parts.append(f"<h2>{html.escape(name.replace('_', ' '))}</h2>")
        parts.append(_section(value))
    parts.append("</body></html>")
    return "\n".join(parts)


def _section(value: Any) -> str:
    if isinstance(value, dict) and value.get("status") == "unavailable":
        return f"<p class='na'>Not available: {html.escape(str(value.get('reason', '')))}</p>"
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if not isinstance(v, (dict, list))}
        out = [_table_of_scalars(scalars)] if scalars else []
        for key, sub in value.items():
            if isinstance(sub, list) and sub and isinstance(sub[0], dict):
                out.append(f"<h3>{html.escape(key.replace('_', ' '))}</h3>{_table_of_records(sub)}")
            elif isinstance(sub, dict) and sub:
                out.append(f"<h3>{html.escape(key.replace('_', ' '))}</h3>{_section(sub)}")
        return "\n".join(out)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _table_of_records(value)
    return f"<p>{html.escape(_fmt(value))}</p>"


def _table_of_scalars(values: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in values.items())
    return f"<table>{rows}</table>" if rows else ""


def _table_of_records(records: list[dict[str, Any]]) -> str:
    cols = list(records[0].keys())
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
        for r in records[:MAX_TABLE_ROWS]
    )
    more = f"<p>… {len(records) - MAX_TABLE_ROWS} more rows in kpis.json</p>" if len(records) > MAX_TABLE_ROWS else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)[:200]
    return "" if value is None else str(value)
