"""`ecomlab data generate` and `ecomlab data check`: make the synthetic shop, load and validate a source."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from features.config_io import apply_overrides
from features.contract import Loaded
from training.cli.app import REPO, console, data_app, expect_kind, hint, progress, user_errors

GENERATED = "configs/data/generated.yaml"  # the shipped data config that reads `ecomlab data generate`'s default folder


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option(help="folder to write the data set into")] = Path("ecomlab-data"),
    customers: Annotated[int, typer.Option(min=10, help="number of customers")] = 5000,
    weeks: Annotated[int, typer.Option(min=8, help="weeks of history")] = 104,
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
    set_: Annotated[list[str] | None, typer.Option("--set", help="another generator option, e.g. n_products=300")] = None,
) -> None:
    """Generate the seeded synthetic shop (lines, customers, inventory and the planted truth)."""
    from features import synthetic

    with user_errors():
        values = apply_overrides({"n_customers": customers, "weeks": weeks, "seed": seed}, set_ or [], "--set")
        options = synthetic.synthetic_options(values, "ecomlab data generate")
        t0 = time.perf_counter()
        with console.status("generating synthetic data"):
            data = synthetic.generate(options)
            data.write(out)
    console.print(
        f"wrote {len(data.lines):,} order lines, {len(data.customers):,} customers, "
        f"{len(data.inventory):,} products to [bold]{out}[/] in {time.perf_counter() - t0:.1f} s"
    )
    console.print(_check_hint(out), highlight=False, soft_wrap=True)


def _check_hint(out: Path) -> str:
    """The command that checks what was just written: the shipped config when it reads this folder."""
    from features.source_config import load_source_config

    if not (REPO / GENERATED).exists():  # installed without the checkout's configs
        return f"next: a data config with `format: synthetic` and `path: {out}` reads it"
    shipped = load_source_config(REPO / GENERATED)
    if shipped.path and shipped.resolve(shipped.path).resolve() == out.resolve():
        shown = GENERATED if Path.cwd().resolve() == REPO else str(REPO / GENERATED)
        return f"next: {hint(f'ecomlab data check {shown}')}"
    return f"next: a data config with `format: synthetic` and `path:` this folder (relative to the config) reads it, like {GENERATED}"


def load_with_progress(config: Path) -> Loaded:
    """Load a data config with a progress bar over its files."""
    from features.sources import load

    expect_kind(config, "data")
    with progress() as bar:
        task = bar.add_task(f"loading {config.name}", total=None)

        def step(name: str, i: int, n: int) -> None:
            bar.update(task, total=n, completed=i, description=f"loading {name or config.name}")

        loaded = load(config, progress=step)
        bar.update(task, total=1, completed=1)
    return loaded


def accounting_table(loaded: Loaded) -> Table:
    acc = loaded.accounting
    table = Table(title=f"{loaded.name}: row accounting")
    table.add_column("rows")
    table.add_column("count", justify="right")
    for label, value in (
        ("read", acc.rows_read), ("clean", acc.rows_clean), ("quarantined", acc.rows_quarantined),
        ("exact duplicates dropped", acc.duplicates_dropped), ("files", acc.files),
    ):
        table.add_row(label, f"{value:,}")
    return table


@data_app.command("check")
def data_check(
    config: Annotated[Path, typer.Argument(help="a data config, e.g. configs/data/uci_online_retail.yaml")],
    show: Annotated[int, typer.Option(help="quarantined rows to list")] = 10,
) -> None:
    """Load and validate a source: row accounting and the quarantine reasons."""
    with user_errors():
        loaded = load_with_progress(config)
    console.print(accounting_table(loaded))
    summary = loaded.quarantine.summary()
    if summary.empty:
        console.print("[green]no rows quarantined[/]")
        return
    console.print(_reasons_table(loaded))
    console.print(_rows_table(loaded, show))


def _reasons_table(loaded: Loaded) -> Table:
    table = Table(title="quarantine reasons")
    for col in ("column", "reason", "rows"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for row in loaded.quarantine.summary().itertuples():
        table.add_row(str(row.column), str(row.reason), f"{row.rows:,}")
    return table


def _rows_table(loaded: Loaded, show: int) -> Table:
    rows = Table(title=f"first {show} quarantined rows")
    for col in ("file", "row", "column", "reason", "value"):
        rows.add_column(col)
    for r in loaded.quarantine.frame.head(show).itertuples():
        value = "" if pd.isna(r.value) else escape(str(r.value))
        rows.add_row(escape(str(r.file)), str(r.row), str(r.column), str(r.reason), value)
    return rows
