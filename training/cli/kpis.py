"""`ecomlab kpis`: the full KPI report of a source, as terminal tables and (with --out) JSON, PNG plots and HTML."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from features.contract import Loaded
from training.cli.app import app, console, expect_kind, user_errors
from training.cli.data import load_with_progress


class EngineChoice(str, Enum):
    """Where the KPIs are computed."""

    pandas = "pandas"
    spark = "spark"


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
    engine: Annotated[EngineChoice | None, typer.Option(help="pandas or spark; overrides the config's `engine:`")] = None,
) -> None:
    """Compute the full KPI report of a source; tables in the terminal, files in --out."""
    with user_errors():
        chosen = engine.value if engine else _config_engine(config)
        if chosen == "spark":
            page = _spark_kpis(config, out, churn_days, period.value)
        else:
            page = compute_and_write_kpis(load_with_progress(config), out, churn_days, period.value)
    if page:
        console.print(f"report: [bold]{page}[/]")


def _config_engine(config: Path) -> str:
    from features.source_config import load_source_config

    expect_kind(config, "data")
    return load_source_config(config).engine


def _spark_kpis(config: Path, out: Path | None, churn_days: int, period: str) -> Path | None:
    """The same report on the Spark engine (`features.spark`); the customer-lifetime section is not computed there."""
    from features.source_config import load_source_config
    from features.spark.kpis import kpi_report_spark
    from features.spark.read import load_spark
    from features.spark.session import spark_session

    expect_kind(config, "data")
    cfg = load_source_config(config)
    with console.status(f"starting Spark ({cfg.spark.master})"):
        session = spark_session(cfg.spark)
    with console.status(f"loading {config.name} on Spark"):
        loaded = load_spark(session, cfg)
    try:
        with console.status("computing KPIs on Spark"):
            report = kpi_report_spark(loaded.lines, customers=loaded.customers, inventory=loaded.inventory,
                                      options={"churn_window_days": churn_days, "revenue_period": period})
    finally:
        loaded.lines.unpersist()
    print_kpis(report)
    if out is None:
        return None
    from features.kpis import headline
    from features.plots import kpi_figures
    from features.report import write_report

    lifetime = ({"status": "unavailable", "reason": "not computed on the Spark engine (run with --engine pandas)"}, {})
    with console.status("writing plots and the HTML report"):
        meta = {"data": loaded.name, "engine": "spark", **loaded.accounting.as_dict(), **headline(report)}
        return write_report(report, kpi_figures(report), out, f"ecomlab KPI report: {loaded.name}", meta, lifetime)


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
