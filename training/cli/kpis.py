"""`ecomlab kpis`: the full KPI report of a source, as terminal tables and (with --out) JSON, PNG plots and HTML."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from features.contract import Loaded
from training.cli.app import app, console, user_errors
from training.cli.data import load_with_progress


class Period(str, Enum):
    """The periods of revenue by period."""

    month = "month"
    week = "week"
    day = "day"


@app.command("kpis")
def kpis(
    config: Annotated[Path, typer.Argument(help="a data config, e.g. configs/data/synthetic.yaml")],
    out: Annotated[Path | None, typer.Option(help="folder for kpis.json, PNG plots and report.html")] = None,
    churn_days: Annotated[int, typer.Option(min=1, help="inactivity window (days) that defines churn")] = 90,
    period: Annotated[Period, typer.Option(help="the period of revenue by period")] = Period.month,
) -> None:
    """Compute the full KPI report of a source; tables in the terminal, files in --out."""
    with user_errors():
        loaded = load_with_progress(config)
    page = compute_and_write_kpis(loaded, out, churn_days, period.value)
    if page:
        console.print(f"report: [bold]{page}[/]")


def compute_and_write_kpis(loaded: Loaded, out: Path | None, churn_days: int = 90, period: str = "month") -> Path | None:
    """Print the headline KPIs; with `out`, write kpis.json, the plots and report.html there (returns the page).

    The customer-lifetime section (two model fits) is computed only here, where the HTML report is written."""
    from features.kpis import headline, kpi_report

    with console.status("computing KPIs"):
        report = kpi_report(loaded.lines, customers=loaded.customers, inventory=loaded.inventory, options={"churn_window_days": churn_days, "revenue_period": period})
    print_kpis(report)
    if out is None:
        return None
    from features.btyd.report import lifetime_section
    from features.plots import kpi_figures
    from features.report import write_report

    with console.status("fitting BG/NBD + Gamma-Gamma for the customer-lifetime section"):
        lifetime = lifetime_section(loaded.lines)
    if lifetime[0].get("status") == "unavailable":
        console.print(f"[yellow]customer lifetime: not available[/] ({lifetime[0]['reason']})", highlight=False)
    with console.status("writing plots and the HTML report"):
        meta = {"data": loaded.name, **loaded.accounting.as_dict(), **headline(report)}
        return write_report(report, kpi_figures(report), out, f"ecomlab KPI report: {loaded.name}", meta, lifetime)


def print_kpis(report: dict[str, Any]) -> None:
    from features.kpis import headline

    table = Table(title="KPIs")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in headline(report).items():
        table.add_row(key.replace("_", " "), f"{value:,.4g}" if isinstance(value, float) else f"{value:,}")
    console.print(table)
    missing = {k: v.get("reason") for k, v in report.items() if isinstance(v, dict) and v.get("status") == "unavailable"}
    for name, reason in missing.items():
        console.print(f"[yellow]{name}: not available[/] ({reason})", highlight=False)
