"""Write a KPI report to a folder: one JSON of all figures, PNG plots and one self-contained HTML page.

The page is a jinja2 template (`features/templates/kpi_report.html.j2`, shipped as package data), so
its layout is edited as HTML; every value is escaped by the template engine, plots are embedded as
base64 PNGs, and long tables are cut at `MAX_TABLE_ROWS` (the JSON keeps every row).
"""

from __future__ import annotations

import base64
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from matplotlib.figure import Figure

from features.jsonsafe import json_safe
from features.plots import dropped_charts

MAX_TABLE_ROWS = 25
TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "kpi_report.html.j2"
LIFETIME_TITLE = "Customer lifetime (BG/NBD + Gamma-Gamma)"


def write_report(report: dict[str, Any], figures: dict[str, Figure], out: Path, title: str, meta: dict[str, Any],
                 lifetime: tuple[dict[str, Any], dict[str, Figure]] | None = None) -> Path:
    """Write kpis.json, <plot>.png and report.html into `out`; returns the HTML path.

    `lifetime` (`features.btyd.report.lifetime_section`) adds the customer-lifetime block: its figures
    go to lifetime.json (kpis.json stays the KPI payload the service answers) and its charts to PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "kpis.json").write_text(json.dumps(json_safe({"meta": meta, "kpis": report}), indent=2, default=str))
    images = _write_pngs(figures, out)
    section, lifetime_images = None, {}
    if lifetime is not None:
        section, lifetime_images = lifetime[0], _write_pngs(lifetime[1], out)
        (out / "lifetime.json").write_text(json.dumps(json_safe(section), indent=2, default=str))
    page = out / "report.html"
    page.write_text(render_html(report, images, title, meta, section, lifetime_images), encoding="utf-8")
    return page


def render_html(report: dict[str, Any], images: dict[str, str], title: str, meta: dict[str, Any],
                lifetime: dict[str, Any] | None = None, lifetime_images: dict[str, str] | None = None) -> str:
    """The report page: meta table, plots (and a note for each chart left out), one section per KPI, then the
    customer-lifetime block when there is one."""
    template = _environment().get_template(TEMPLATE)
    return template.render(report=report, images=images, notes=dropped_charts(report), title=title, meta=meta,
                           max_rows=MAX_TABLE_ROWS, lifetime=lifetime, lifetime_images=lifetime_images or {},
                           lifetime_title=LIFETIME_TITLE)


def _write_pngs(figures: dict[str, Figure], out: Path) -> dict[str, str]:
    """Each figure as <name>.png in `out`; name -> base64 PNG for the page."""
    images = {}
    for name, fig in figures.items():
        png = _png(fig)
        (out / f"{name}.png").write_bytes(png)
        images[name] = base64.b64encode(png).decode()
    return images


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
    )
    env.filters.update(fmt=fmt, label=label, scalars_of=scalars_of)
    env.tests["records"] = is_records
    return env


def fmt(value: Any) -> str:
    """A figure as the page shows it: 4 significant digits, thousands separated; lists and dicts as short JSON."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)[:200]
    return "" if value is None else str(value)


def label(name: Any) -> str:
    """A column or key name as words ("average_order_value" -> "average order value"): the page is read, not parsed."""
    return str(name).replace("_", " ")


def scalars_of(section: dict[str, Any]) -> dict[str, Any]:
    """The entries of a section that are single values (the rest are sub-tables)."""
    return {k: v for k, v in section.items() if not isinstance(v, (dict, list))}


def is_records(value: Any) -> bool:
    """A non-empty list of dicts: rendered as a table with a column per key."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)
