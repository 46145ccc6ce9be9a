"""The `ecomlab` typer app and what every command shares: quiet libraries, one-line user errors, exit codes, progress.

Exit codes: 0 success, 1 a job or command failed, 2 a user mistake (bad config, missing data, bad
arguments). User mistakes print one clear line naming the file, key or column, no traceback.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # `runs compare` reads losses: no bars

import logging  # noqa: E402
import shutil  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: E402

from features.config_io import ConfigError, read_yaml  # noqa: E402
from features.readers.files import SourceError  # noqa: E402
from features.spark.session import SparkUnavailable  # noqa: E402 (imports no pyspark)
from serving.tracking_uri import StoreUnreachable  # noqa: E402

EXIT_FAILED, EXIT_USAGE = 1, 2  # 0 is success
LIBRARIES = ("mlflow", "alembic", "optuna", "bentoml", "py.warnings")
REPO = Path(__file__).resolve().parents[2]  # the source checkout ecomlab runs from (shipped configs live here)

app = typer.Typer(help="ecomlab: e-commerce forecasts, segments, basket rules and KPIs on MLflow and BentoML.", no_args_is_help=True)
data_app = typer.Typer(help="Generate, load and check data sources.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: list versions, promote a champion.", no_args_is_help=True)
app.add_typer(data_app, name="data")
runs_app = typer.Typer(help="Job runs: list them, compare them with paired significance tests.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")

console = Console()
err = Console(stderr=True)


def setup_logging(verbose: bool) -> None:
    """Library chatter (MLflow's schema hints, pickling notes, Python warnings) goes to logging, shown with -v.

    Python warnings are routed to the `py.warnings` logger instead of being filtered, so nothing is
    silenced: at the default level only errors of the libraries reach the screen."""
    logging.captureWarnings(True)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show library logs and warnings")] = False) -> None:
    setup_logging(verbose)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the mistakes a user can fix into one red line and exit code 2."""
    try:
        yield
    except (ConfigError, SourceError, FileNotFoundError, StoreUnreachable, SparkUnavailable) as exc:
        fail(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


def fail(message: str, label: str = "error") -> None:
    """One red line on stderr, never wrapped; the message is printed as is (no markup inside it)."""
    err.print(f"[bold red]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextmanager
def progress() -> Iterator[Progress]:
    """A progress bar that stays once the work is done, but is hidden when the work raises, so no
    spinner line is left beside the error printed next."""
    bar = Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=False,
    )
    with bar:
        try:
            yield bar
        except BaseException:
            for task in bar.task_ids:
                bar.update(task, visible=False)
            raise


def hint(command: str) -> str:
    """A command as it can be run here: prefixed with `uv run` when its program is not on PATH
    (a checkout used through `uv run`, where the console scripts live in .venv/bin)."""
    program = command.split(maxsplit=1)[0]
    return command if shutil.which(program) else f"uv run {command}"


JOB_KEYS = frozenset({"job", "family", "registry", "tuning", "experiment"})


def expect_kind(path: Path, wanted: str) -> None:
    """A job config given where a data config is expected (or the reverse) is one line naming both kinds,
    instead of one "unknown key" line per key of the other kind. Unreadable files are left to the loader."""
    try:
        data = read_yaml(path)
    except ConfigError:
        return
    is_job = bool(JOB_KEYS & set(data)) and "format" not in data
    is_data = "format" in data and not JOB_KEYS & set(data)
    if wanted == "data" and is_job:
        raise ConfigError(
            f"{path}: a job config (job: {data.get('job', '?')}), not a data config; "
            f"train it with `{hint(f'ecomlab train {path}')}` (its data config is {data.get('data', '?')})"
        )
    if wanted == "job" and is_data:
        raise ConfigError(
            f"{path}: a data config (format: {data['format']}), not a job config; "
            f"check it with `{hint(f'ecomlab data check {path}')}`, or train a job config such as configs/segment.yaml"
        )


def shipped_config(path: str) -> Path:
    """A config path as given; a relative one missing from the working directory is looked up in
    the source checkout ecomlab runs from, so `ecomlab quickstart` works from any folder."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return given
    shipped = REPO / given
    return shipped if shipped.exists() else given
