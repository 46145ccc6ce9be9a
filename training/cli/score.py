"""`ecomlab score MODEL_URI INPUT --out FILE`: a registered model over a file of inputs, in bounded memory.

The scoring itself is `serving.batch` (no training code: it runs the servable models the service runs);
this module parses the command line, shows the progress bar and turns failures into one line.
Exit codes: 2 for what the user can fix (an unknown model or alias, a store that cannot be reached,
an unreadable input, missing columns, a row the model refuses), 1 for anything else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from features.spark.settings import ENGINES  # plain pydantic: imports no pyspark
from training.cli.app import EXIT_FAILED, EXIT_USAGE, app, console, expect_kind, fail, user_errors
from training.cli.models import TRACKING_HELP, missing_store

if TYPE_CHECKING:
    from serving.batch import Scored
    from serving.batch_inputs import LinesOptions

HELP = (
    "Score INPUT with a registered model and write the predictions to --out (.parquet or .csv); every output row "
    "names the model and its version.\n\n"
    "MODEL_URI: models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH.\n\n"
    "INPUT: a CSV or Parquet file of the model's inputs (segmenter: its feature columns; forecaster: series_id, "
    "horizon[, levels, exog]; recommender: items[, k]; clv: frequency, recency, T, monetary[, horizon, discount_rate]; other columns are "
    "passed through; CSV list cells are JSON lists or space-separated labels), or a data config whose order lines "
    "are turned into inputs the way training did."
)


@app.command("score", help=HELP)
def score(
    model_uri: Annotated[str, typer.Argument(metavar="MODEL_URI", help="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH")],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="a .csv or .parquet of model inputs, or a data config (.yaml)")],
    out: Annotated[Path, typer.Option(help="the output file: .parquet or .csv")],
    chunk_size: Annotated[int, typer.Option(min=1, help="rows scored (and held in memory) at a time")] = 100_000,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_HELP)] = None,
    horizon: Annotated[float | None, typer.Option(min=0, help="clv: units ahead, for rows without their own (default: the model's); forecaster, data config: periods ahead (default: D 14, W 4, M 3)")] = None,
    discount_rate: Annotated[float | None, typer.Option(min=0, help="clv: annual discount rate, for rows without their own (default: the model's)")] = None,
    reference_date: Annotated[str | None, typer.Option(help="segmenter, data config: the date recency counts to (default: last day + 1)")] = None,
    basket_level: Annotated[str, typer.Option(help="recommender, data config: order | customer")] = "order",
    item: Annotated[str, typer.Option(help="recommender, data config: product_id | product_name | category")] = "product_id",
    engine: Annotated[str, typer.Option(help="pandas (chunks in this process) or spark (segmenter and clv through mlflow.pyfunc.spark_udf, forecaster and recommender through mapInPandas)")] = "pandas",
    spark_master: Annotated[str, typer.Option(help="--engine spark: local[N], spark://host:7077, yarn, k8s://... or sc://host:port")] = "local[2]",
) -> None:
    from serving.batch import ModelNotFound, StoreUnreachable
    from serving.batch_inputs import InputError, LinesOptions
    from serving.tracking_uri import redact, resolve_tracking_uri

    if not logging.getLogger().isEnabledFor(logging.INFO):  # urllib3's retry warnings would add lines to the one error
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    uri = resolve_tracking_uri(tracking_uri)
    problem = missing_store(uri)
    if problem:
        _usage(f"{problem}; set MLFLOW_TRACKING_URI or --tracking-uri to the store that holds {model_uri}")
    if engine not in ENGINES:
        _usage(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    options = LinesOptions(reference_date, horizon, basket_level, item)
    started = time.perf_counter()
    try:
        with user_errors():
            if engine == "spark":
                scored, name, version = _run_spark(model_uri, input_path, out, uri, options, discount_rate, spark_master)
            else:
                scored, name, version = _run(model_uri, input_path, out, chunk_size, uri, options, discount_rate)
    except (InputError, ModelNotFound, StoreUnreachable) as exc:
        _usage(str(exc))
    except typer.Exit:
        raise
    except Exception as exc:  # a failure we did not foresee: one line, exit 1, nothing half-written
        fail(f"{type(exc).__name__}: {exc}".splitlines()[0], "scoring failed")
        raise typer.Exit(EXIT_FAILED) from None
    seconds = time.perf_counter() - started
    console.print(
        f"scored {scored.rows_in:,} input rows with {name} version {version} ({redact(uri)}): "
        f"{scored.rows_out:,} rows to [bold]{out}[/] in {seconds:.1f} s",
        highlight=False, soft_wrap=True,
    )


def _usage(message: str) -> None:
    fail(message)
    raise typer.Exit(EXIT_USAGE)


def _run(
    model_uri: str, input_path: Path, out: Path, chunk_size: int, uri: str, options: LinesOptions, discount_rate: float | None,
) -> tuple[Scored, str, str]:
    """Load the model, open the input (a file streamed in chunks, or a data config built in memory), score."""
    from serving.batch import OutputWriter, frame_chunks, load_scoring_model, score_chunks
    from serving.batch_inputs import InputError, input_kind, inputs_from_loaded, needs, open_source

    kind = input_kind(input_path)  # mistakes in the paths are told before the model loads
    if not input_path.is_file():
        raise InputError(f"{input_path}: no such file")
    OutputWriter(out)
    with console.status(f"loading {model_uri}"):
        scoring = load_scoring_model(model_uri, uri)
    need = needs(scoring.family, scoring.model)
    if scoring.family == "clv":  # the terms of the value, for the rows that do not give their own
        terms = {"horizon": options.horizon, "discount_rate": discount_rate}
        scoring = replace(scoring, fill={k: v for k, v in terms.items() if v is not None})
    if kind == "config":
        frame = inputs_from_loaded(scoring.family, scoring.model, _loaded(input_path, scoring.family), options)
        total, unit, chunks = len(frame), "rows", lambda: frame_chunks(frame, chunk_size)
    else:
        source = open_source(input_path, chunk_size, need)
        total, unit, chunks = source.total, source.unit, source.chunks
    with _bar(total, unit) as on_chunk:
        scored = score_chunks(scoring, chunks(), out, on_chunk)
    return scored, scoring.name, scoring.version


def _run_spark(
    model_uri: str, input_path: Path, out: Path, uri: str, options: LinesOptions, discount_rate: float | None, master: str,
) -> tuple[Scored, str, str]:
    """The same scoring on Spark (`serving.batch_spark`): the session starts first, so a missing Java fails in one line."""
    from features.spark.settings import SparkSettings
    from serving.batch_spark import score_spark
    from training.engine import session

    spark = session(SparkSettings(master=master))
    terms = {"horizon": options.horizon, "discount_rate": discount_rate}
    with console.status(f"scoring on Spark ({master}) with {model_uri}"):
        return score_spark(spark, model_uri, input_path, out, uri, {k: v for k, v in terms.items() if v is not None})


def _loaded(config: Path, family: str) -> Any:
    """The validated rows of a data config (the forecaster needs none: it scores the series it knows)."""
    expect_kind(config, "data")
    if family == "forecaster":
        return None
    from training.cli.data import load_with_progress

    return load_with_progress(config)


@contextmanager
def _bar(total: int, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal (rows for Parquet and data configs, bytes read for CSV); silent otherwise."""
    if not console.is_terminal:
        yield lambda rows, done: None
        return
    amount = DownloadColumn() if unit == "bytes" else TextColumn("{task.completed:,}/{task.total:,} rows")
    bar = Progress(
        SpinnerColumn(), TextColumn("[bold]scoring[/] {task.fields[rows]:,} rows"), BarColumn(), amount,
        TimeElapsedColumn(), console=console, transient=True,
    )
    with bar:
        task = bar.add_task("scoring", total=total, rows=0)
        yield lambda rows, done: bar.update(task, completed=done, rows=rows)
