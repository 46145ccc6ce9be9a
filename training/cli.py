"""The `ecomlab` command line: data, KPIs, training, the registry, the service and the quickstart.

Exit codes: 0 success, 1 a job or command failed, 2 a user mistake (bad config, missing data, bad
arguments). User mistakes print one clear line, no traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")

import logging  # noqa: E402
import warnings  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from features.config_io import ConfigError  # noqa: E402
from features.sources import SourceError  # noqa: E402

app = typer.Typer(help="ecomlab: e-commerce forecasts, segments, basket rules and KPIs on MLflow and BentoML.", no_args_is_help=True)
data_app = typer.Typer(help="Generate, load and check data sources.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: list versions, promote a champion.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

console = Console()
err = Console(stderr=True)


def quiet_libraries() -> None:
    """Library chatter (MLflow's schema hints, pickling notes) belongs in logs, not on the user's screen."""
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("mlflow", "alembic", "optuna", "bentoml"):
        logging.getLogger(name).setLevel(logging.ERROR)


@app.callback()
def _setup() -> None:
    quiet_libraries()

EXIT_FAILED, EXIT_USAGE = 1, 2


class UserError(Exception):
    """A mistake the user can fix; printed as one line with exit code 2."""


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except (ConfigError, SourceError, UserError, FileNotFoundError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(EXIT_USAGE) from None


def progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=False,
    )


# ---------------------------------------------------------------- data


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option(help="folder to write the data set into")] = Path("ecomlab-data"),
    customers: Annotated[int, typer.Option(min=10, help="number of customers")] = 5000,
    weeks: Annotated[int, typer.Option(min=8, help="weeks of history")] = 104,
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
) -> None:
    """Generate the seeded synthetic shop (lines, customers, inventory and the planted truth)."""
    from features import synthetic

    with user_errors():
        t0 = time.perf_counter()
        with console.status("generating synthetic data"):
            data = synthetic.generate(n_customers=customers, weeks=weeks, seed=seed)
            data.write(out)
        console.print(
            f"wrote {len(data.lines):,} order lines, {len(data.customers):,} customers, "
            f"{len(data.inventory):,} products to [bold]{out}[/] in {time.perf_counter() - t0:.1f} s"
        )


def _load_with_progress(config: Path) -> Any:
    from features.sources import load

    with progress() as bar:
        task = bar.add_task(f"loading {config.name}", total=None)

        def step(name: str, i: int, n: int) -> None:
            bar.update(task, total=n, completed=i, description=f"loading {name or config.name}")

        loaded = load(config, progress=step)
        bar.update(task, total=1, completed=1)
    return loaded


def accounting_table(loaded: Any) -> Table:
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
        loaded = _load_with_progress(config)
    console.print(accounting_table(loaded))
    summary = loaded.quarantine.summary()
    if summary.empty:
        console.print("[green]no rows quarantined[/]")
        return
    table = Table(title="quarantine reasons")
    for col in ("column", "reason", "rows"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for row in summary.itertuples():
        table.add_row(str(row.column), str(row.reason), f"{row.rows:,}")
    console.print(table)
    rows = Table(title=f"first {show} quarantined rows")
    for col in ("file", "row", "column", "reason", "value"):
        rows.add_column(col)
    for r in loaded.quarantine.frame.head(show).itertuples():
        rows.add_row(str(r.file), str(r.row), str(r.column), str(r.reason), "" if r.value is None else str(r.value))
    console.print(rows)


# ---------------------------------------------------------------- kpis


@app.command("kpis")
def kpis(
    config: Annotated[Path, typer.Argument(help="a data config, e.g. configs/data/synthetic.yaml")],
    out: Annotated[Path | None, typer.Option(help="folder for kpis.json, PNG plots and report.html")] = None,
    churn_days: Annotated[int, typer.Option(help="inactivity window (days) that defines churn")] = 90,
) -> None:
    """Compute the full KPI report of a source; tables in the terminal, files in --out."""
    with user_errors():
        loaded = _load_with_progress(config)
    page = compute_and_write_kpis(loaded, out, churn_days)
    if page:
        console.print(f"report: [bold]{page}[/]")


def compute_and_write_kpis(loaded: Any, out: Path | None, churn_days: int = 90) -> Path | None:
    from features.kpis import headline, kpi_report

    with console.status("computing KPIs"):
        report = kpi_report(loaded.lines, customers=loaded.customers, inventory=loaded.inventory, options={"churn_window_days": churn_days})
    print_kpis(report)
    if out is None:
        return None
    from features.plots import kpi_figures
    from features.report import write_report

    with console.status("writing plots and the HTML report"):
        meta = {"data": loaded.name, **loaded.accounting.as_dict(), **headline(report)}
        return write_report(report, kpi_figures(report), out, f"ecomlab KPI report: {loaded.name}", meta)


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
        console.print(f"[yellow]{name}: not available[/] ({reason})")


# ---------------------------------------------------------------- train


@app.command("train")
def train(
    config: Annotated[Path, typer.Argument(help="a job config, e.g. configs/segment.yaml")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key, e.g. tuning.n_trials=5")] = None,
) -> None:
    """Run a training job: tune with Optuna, log to MLflow, register and decide champion/challenger."""
    from training.config import load_job_config

    with user_errors():
        job, model_cfg = load_job_config(config, set_ or [])
    result = run_train(job, model_cfg)
    if result is None:
        raise typer.Exit(EXIT_FAILED)


def run_train(job: Any, model_cfg: Any) -> Any:
    from training.jobs import Hooks, run_loaded_job

    console.rule(f"[bold]{job.job}[/] ({job.family})")
    with progress() as bar:
        stage = bar.add_task("starting", total=None)
        trials = bar.add_task("trials", total=job.tuning.n_trials, visible=False)

        def on_stage(msg: str) -> None:
            bar.update(stage, description=msg)
            if msg == "tuning":
                bar.update(trials, visible=True)

        def on_trial(frozen: Any) -> None:
            bar.advance(trials)

        try:
            with user_errors():
                result = run_loaded_job(job, model_cfg, Hooks(stage=on_stage, trial=on_trial))
        except typer.Exit:
            raise
        except Exception as exc:  # a failed job: one line, the details are in the MLflow run
            bar.stop()
            err.print(f"[bold red]job failed:[/] {type(exc).__name__}: {exc}", highlight=False)
            if os.environ.get("ECOMLAB_DEBUG"):
                raise
            return None
        bar.update(stage, description="done", total=1, completed=1)
    print_result(result)
    return result


def print_result(result: Any) -> None:
    table = Table(title=f"{result.job}: best trial vs baseline ({result.objective_name}, {result.direction})")
    table.add_column("")
    table.add_column("best trial", justify="right")
    table.add_column("baseline", justify="right")
    names = [result.objective_name, *[k for k in result.best.metrics if k != result.objective_name]]
    best = {result.objective_name: result.best.objective, **result.best.metrics}
    base = {result.objective_name: result.baseline.objective, **result.baseline.metrics}
    for name in names:
        table.add_row(name, _num(best.get(name)), _num(base.get(name)))
    console.print(table)
    params = Table(title="best parameters")
    params.add_column("parameter")
    params.add_column("value")
    for k, v in result.best_params.items():
        if k != "per_series":
            params.add_row(k, json.dumps(v, default=str) if isinstance(v, (list, dict)) else str(v))
    console.print(params)
    d = result.decision
    colour = "green" if d.alias == "champion" else "yellow"
    console.print(
        f"registry: [bold]{result.model_name}[/] version {d.version} -> [{colour}]{d.alias}[/] ({d.reason})\n"
        f"trials: {result.n_trials} ({result.n_failed} failed)  run: {result.run_id}  "
        f"tracking: {result.tracking_uri}  time: {result.seconds:.1f} s"
    )


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- models


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
        err.print(f"[bold red]error:[/] cannot promote {name} version {version}: {exc.message.splitlines()[0]}")
        raise typer.Exit(EXIT_USAGE) from None
    console.print(f"{name} version {version} is now [green]champion[/]")


# ---------------------------------------------------------------- serve


@app.command("serve")
def serve(
    config: Annotated[Path, typer.Option(help="service settings")] = Path("configs/serve.yaml"),
    port: Annotated[int | None, typer.Option(help="port (overrides the config)")] = None,
    host: Annotated[str | None, typer.Option(help="host (overrides the config; 127.0.0.1 by default)")] = None,
) -> None:
    """Start the BentoML model service (`bentoml serve serving.service:EcomlabService`)."""
    from serving.settings import load_settings

    with user_errors():
        settings = load_settings(config)
    env = {**os.environ, "ECOMLAB_SERVE_CONFIG": str(config.resolve())}
    args = [
        sys.executable, "-m", "bentoml", "serve", "serving.service:EcomlabService",
        "--host", host or settings.host, "--port", str(port or settings.port),
    ]
    os.execve(sys.executable, args, env)


# ---------------------------------------------------------------- quickstart

QUICKSTART_JOBS = ["configs/segment.yaml", "configs/forecast.yaml", "configs/recommend.yaml"]


@app.command("quickstart")
def quickstart(
    out: Annotated[Path, typer.Option(help="folder for the generated data and the KPI report")] = Path("ecomlab-out"),
    trials: Annotated[int | None, typer.Option(help="override each job's tuning.n_trials")] = None,
    jobs: Annotated[str, typer.Option(help="comma-separated job configs to train")] = ",".join(QUICKSTART_JOBS),
) -> None:
    """The main job: generate the default data, validate it, KPI report, train and register every family."""
    from features import synthetic
    from features.source_config import load_source_config
    from features.sources import load
    from training.config import load_job_config

    started = time.perf_counter()
    data_dir = out / "data"
    with user_errors():
        source = load_source_config(shipped_config("configs/data/synthetic.yaml"))
    with console.status("generating the default data set"):
        synthetic.generate(**source.synthetic).write(data_dir)
    with user_errors():
        loaded = load(source)
    console.print(accounting_table(loaded))
    page = compute_and_write_kpis(loaded, out / "kpis")
    failed = []
    for path in [p.strip() for p in jobs.split(",") if p.strip()]:
        overrides = [f"tuning.n_trials={trials}"] if trials else []
        with user_errors():
            job, model_cfg = load_job_config(shipped_config(path), overrides)
        if run_train(job, model_cfg) is None:
            failed.append(path)
    console.rule("[bold]done")
    console.print(
        f"KPI report: [bold]{page}[/]\n"
        f"data: {data_dir}  time: {time.perf_counter() - started:.1f} s\n"
        f"next: [bold]mlflow ui --backend-store-uri {ui_store_uri()}[/] to compare runs, "
        "[bold]ecomlab models list[/], [bold]ecomlab serve[/] to serve the champions"
    )
    if failed:
        err.print(f"[bold red]failed jobs:[/] {', '.join(failed)}")
        raise typer.Exit(EXIT_FAILED)


def shipped_config(path: str) -> Path:
    """A config path as given; a relative one missing from the working directory is looked up in
    the source checkout ecomlab runs from, so `ecomlab quickstart` works from any folder."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return given
    shipped = Path(__file__).resolve().parents[1] / given
    return shipped if shipped.exists() else given


def ui_store_uri() -> str:
    """The store the jobs just used, as `mlflow ui` takes it (relative when it is ./mlflow.db)."""
    from training.tracking import default_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri()
    return "sqlite:///mlflow.db" if uri == default_tracking_uri() else uri


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
