"""`ecomlab models list` and `ecomlab models promote`: the registry's versions, aliases and decisions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from training.cli.app import EXIT_USAGE, console, fail, models_app


@models_app.command("list")
def models_list(
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)")] = None,
) -> None:
    """List registered models, their versions, aliases and decisions."""
    from training import tracking

    tracking.setup(tracking_uri)
    rows = tracking.list_models()
    if not rows:
        console.print("no registered models yet: run `ecomlab train CONFIG` or `ecomlab quickstart`")
        return
    table = Table(title="registered models")
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(v) for v in row.values()])
    console.print(table)


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="registered model name")],
    version: Annotated[str, typer.Argument(help="version to make champion")],
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI")] = None,
) -> None:
    """Give a version the `champion` alias by hand."""
    from mlflow.exceptions import MlflowException

    from training import tracking

    tracking.setup(tracking_uri)
    try:
        tracking.promote(name, version)
    except MlflowException as exc:
        fail(f"cannot promote {name} version {version}: {exc.message.splitlines()[0]}")
        raise typer.Exit(EXIT_USAGE) from None
    console.print(f"{name} version {version} is now [green]champion[/]")
