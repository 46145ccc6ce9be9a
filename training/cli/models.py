"""`ecomlab models list` and `ecomlab models promote`: the registry's versions, aliases and decisions.

Both only read or change an existing store: pointed at one that does not exist, they say so and exit 2
instead of creating an empty database (MLflow creates a SQLite store on first contact).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich import box
from rich.table import Table

from training.cli.app import EXIT_USAGE, console, fail, hint, models_app, user_errors

TRACKING_HELP = "MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)"
BETTER = {"maximize": "higher is better", "minimize": "lower is better"}


def missing_store(uri: str) -> str | None:
    """Why the local store `uri` does not exist; None when it does, or when it is a server (not checked here)."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        return None if path.is_file() else f"no MLflow store at {uri}: {path} does not exist"
    if uri.startswith("file:") or "://" not in uri:
        path = Path(urlsplit(uri).path if uri.startswith("file:") else uri)
        return None if path.is_dir() else f"no MLflow store at {uri}: folder {path} does not exist"
    return None


def open_store(tracking_uri: str | None) -> None:
    """Point MLflow at an existing store, or exit 2 with one line saying how to make one."""
    from training import tracking

    problem = missing_store(tracking.resolve_tracking_uri(tracking_uri))
    if problem:
        fail(f"{problem}; run `{hint('ecomlab quickstart')}` or `{hint('ecomlab train CONFIG')}` here first, "
             "or set MLFLOW_TRACKING_URI / --tracking-uri to your store")
        raise typer.Exit(EXIT_USAGE)
    with user_errors():  # a server that refuses connections: one line, exit 2
        tracking.setup(tracking_uri)


@models_app.command("list")
def models_list(
    name: Annotated[str | None, typer.Option(help="only this registered model")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (one object per version) instead of tables")] = False,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_HELP)] = None,
) -> None:
    """List registered models, their versions, aliases, decisions and scores."""
    from training.tracking.registry import list_models

    open_store(tracking_uri)
    rows = list_models(name)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        what = f"no versions of {name}" if name else "no registered models yet"
        console.print(f"{what}: run `{hint('ecomlab train CONFIG')}` or `{hint('ecomlab quickstart')}`", highlight=False)
        return
    for model in dict.fromkeys(r["name"] for r in rows):
        console.print(versions_table(model, [r for r in rows if r["name"] == model]))


def versions_table(name: str, rows: list[dict[str, Any]]) -> Table:
    """One model's versions, narrow enough for 80 columns: the metric and its direction go in the title."""
    scored = {(r["objective"], r["direction"]) for r in rows if r["objective"]}
    same = len(scored) == 1
    title = name
    if same:
        objective, direction = next(iter(scored))
        title = f"{name}: {objective}, {BETTER.get(direction, direction or 'direction unknown')}"
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for col, justify in (("version", "right"), ("alias", "left"), ("decision", "left"), ("score", "right"),
                         ("created", "left"), ("run", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    for r in rows:
        table.add_row(r["version"], ",".join(r["aliases"]), r["decision"], _score(r, same), r["created"], (r["run_id"] or "")[:8])
    return table


def _score(row: dict[str, Any], same_objective: bool) -> str:
    if row["score"] is None:
        return ""
    text = f"{row['score']:.4g}"
    if same_objective or not row["objective"]:
        return text
    arrow = {"maximize": " ↑", "minimize": " ↓"}.get(row["direction"], "")
    return f"{text} {row['objective']}{arrow}"


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="registered model name")],
    version: Annotated[str, typer.Argument(help="version to make champion")],
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_HELP)] = None,
) -> None:
    """Give a version the `champion` alias by hand; the former champion's decision becomes challenger."""
    from mlflow.exceptions import MlflowException

    from training.tracking.registry import promote

    open_store(tracking_uri)
    try:
        former = promote(name, version)
    except MlflowException as exc:
        fail(f"cannot promote {name} version {version}: {exc.message.splitlines()[0]}")
        raise typer.Exit(EXIT_USAGE) from None
    replaced = f" (replacing version {former})" if former and former != version else ""
    console.print(f"{name} version {version} is now [green]champion[/]{replaced}", highlight=False)
