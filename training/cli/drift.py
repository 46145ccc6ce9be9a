"""`ecomlab drift MODEL_URI INPUT`: a data set of model inputs against the model's reference profile, offline.

The same statistics as the service's GET /drift (features.profile), on the whole file read in chunks:
only bin counts are kept, so memory does not grow with the file. Exit 0 whatever the statuses (the
table says them); 2 for what the user can fix (an unknown model, an unreadable input, missing columns).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from training.cli.app import EXIT_FAILED, EXIT_USAGE, app, console, fail, user_errors
from training.cli.models import TRACKING_HELP, missing_store

STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red", "insufficient": "dim"}


@app.command("drift", help="Compare INPUT (a CSV or Parquet of the model's input columns, as `ecomlab score` reads) with "
                           "the reference profile of MODEL_URI's training inputs: PSI, p-value and status per feature.")
def drift(
    model_uri: Annotated[str, typer.Argument(metavar="MODEL_URI", help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH")],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="a .csv or .parquet of model inputs")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_HELP)] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="rows read at a time")] = 100_000,
) -> None:
    from serving.batch import ModelNotFound, StoreUnreachable
    from serving.batch_inputs import InputError
    from serving.tracking_uri import resolve_tracking_uri

    logging.getLogger("urllib3").setLevel(logging.ERROR)
    uri = resolve_tracking_uri(tracking_uri)
    problem = missing_store(uri)
    if problem:
        fail(f"{problem}; set MLFLOW_TRACKING_URI or --tracking-uri to the store that holds {model_uri}")
        raise typer.Exit(EXIT_USAGE)
    try:
        with user_errors():
            answer = _compare(model_uri, input_path, uri, chunk_size)
    except (InputError, ModelNotFound, StoreUnreachable) as exc:
        fail(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except typer.Exit:
        raise
    except Exception as exc:  # a failure we did not foresee: one line, exit 1
        fail(f"{type(exc).__name__}: {exc}".splitlines()[0], "drift failed")
        raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        _table(answer)


def _compare(model_uri: str, input_path: Path, uri: str, chunk_size: int) -> dict[str, Any]:
    from features.profile import compare, counts_of
    from serving.batch import load_scoring_model
    from serving.batch_inputs import InputError, input_kind, needs, open_source
    from serving.drift_profile import drift_columns, fetch_profile
    from serving.settings import load_settings

    if input_kind(input_path) not in ("csv", "parquet"):
        raise InputError(f"{input_path}: expected a .csv or .parquet of model inputs")
    with console.status(f"loading {model_uri}"):
        scoring = load_scoring_model(model_uri, uri)
        profile = fetch_profile(scoring.uri)
    head = {"model": scoring.name, "version": scoring.version, "family": scoring.family, "input": str(input_path)}
    if profile is None:
        return {**head, "status": "no reference", "rows": 0, "features": []}
    need = needs(scoring.family, scoring.model)
    source = open_source(input_path, chunk_size, need)
    specs = profile["features"]
    counts = {f: np.zeros(len(s["shares"]), dtype=np.int64) for f, s in specs.items()}
    rows = 0
    for chunk in source.chunks():
        frame = chunk.frame
        rows += len(frame)
        columns = drift_columns(scoring.family, frame)
        for feature in counts:
            if feature in columns:
                counts[feature] += counts_of(specs[feature], columns[feature])
    s = load_settings().drift
    results = [asdict(compare(f, specs[f], c, s.warn_psi, s.alert_psi, s.min_window)) for f, c in counts.items()]
    rank = {"insufficient": 0, "ok": 1, "warn": 2, "alert": 3}
    status = max((r["status"] for r in results), key=rank.__getitem__, default="insufficient")
    return {**head, "status": status, "rows": rows, "warn_psi": s.warn_psi, "alert_psi": s.alert_psi,
            "min_window": s.min_window, "features": results}


def _table(answer: dict[str, Any]) -> None:
    title = f"{answer['model']} version {answer['version']} vs {answer['input']} ({answer['rows']:,} rows): {answer['status']}"
    if answer["status"] == "no reference":
        console.print(f"{answer['model']} version {answer['version']} has no reference profile (registered before "
                      "profiles): retrain it to compare inputs", highlight=False)
        return
    table = Table(title=title)
    for column in ("feature", "kind", "rows", "PSI", "p-value", "test", "status"):
        table.add_column(column, justify="right" if column in ("rows", "PSI", "p-value") else "left")
    for r in answer["features"]:
        psi = "-" if r["psi"] is None else f"{r['psi']:.4f}"
        p = "-" if r["p_value"] is None else f"{r['p_value']:.3g}"
        style = STYLE.get(r["status"], "")
        table.add_row(r["feature"], r["kind"], f"{r['window']:,}", psi, p, r["test"], f"[{style}]{r['status']}[/]")
    console.print(table)
    console.print(f"PSI thresholds: warn {answer['warn_psi']}, alert {answer['alert_psi']}; "
                  f"fewer than {answer['min_window']} rows: insufficient", highlight=False)
