"""`ecomlab quickstart`: the main job. Generate the default data, validate it, write the KPI report, train and
register every family; from any folder (shipped configs are found in the checkout, outputs stay here)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from training.cli.app import EXIT_FAILED, app, console, fail, hint, shipped_config, user_errors
from training.cli.data import accounting_table
from training.cli.kpis import compute_and_write_kpis
from training.cli.train import champion_problem, load_job, run_train
from training.decision import CHAMPION

QUICKSTART_JOBS = ["configs/segment.yaml", "configs/forecast.yaml", "configs/recommend.yaml", "configs/clv.yaml"]


@app.command("quickstart")
def quickstart(
    out: Annotated[Path, typer.Option(help="folder for the generated data and the KPI report")] = Path("ecomlab-out"),
    trials: Annotated[int | None, typer.Option(min=1, help="override each job's tuning.n_trials")] = None,
    jobs: Annotated[str, typer.Option(help="comma-separated job configs to train")] = ",".join(QUICKSTART_JOBS),
) -> None:
    """The main job: generate the default data, validate it, KPI report, train and register every family.

    A champion registered by an older layout of the code that can no longer be loaded is replaced
    (the decision's reason says so): quickstart re-registers every family."""
    from features.spark.guard import mlflow_without_pyspark

    mlflow_without_pyspark()  # the default path never loads pyspark, even where the spark extra is installed
    started = time.perf_counter()
    data_dir = out / "data"
    loaded = _default_data(data_dir)
    console.print(accounting_table(loaded))
    page = compute_and_write_kpis(loaded, out / "kpis")
    failed = [path for path in [p.strip() for p in jobs.split(",") if p.strip()] if not _train_one(path, trials)]
    console.rule("[bold]done")
    console.print(
        f"KPI report: [bold]{page}[/]\n"
        f"data: {data_dir}  time: {time.perf_counter() - started:.1f} s\n"
        f"next: [bold]{hint(f'mlflow ui --backend-store-uri {ui_store_uri()}')}[/] to compare runs, "
        f"[bold]{hint('ecomlab models list')}[/], [bold]{hint('ecomlab serve')}[/] to serve the champions (run them here)",
        highlight=False,
    )
    if failed:
        fail(", ".join(failed), "failed jobs")
        raise typer.Exit(EXIT_FAILED)


def _default_data(data_dir: Path) -> Any:
    """The shipped synthetic data config's shop, written to `data_dir` and loaded back."""
    from features import synthetic
    from features.sources import load

    with user_errors():
        source = _synthetic_config()
        with console.status("generating the default data set"):
            synthetic.generate(source.synthetic).write(data_dir)
        return load(source)


def _synthetic_config() -> Any:
    from features.source_config import load_source_config

    return load_source_config(shipped_config("configs/data/synthetic.yaml"))


def _train_one(path: str, trials: int | None) -> bool:
    """Train one job config; False when it failed or left an unloadable champion in place."""
    overrides = [f"tuning.n_trials={trials}"] if trials else []
    with user_errors():
        job, model_cfg = load_job(shipped_config(path), overrides)
    result = run_train(job, model_cfg, replace_unloadable=True)
    if result is None:
        return False
    if result.decision.champion_error and result.decision.alias != CHAMPION:
        fail(champion_problem(result))
        return False
    return True


def ui_store_uri() -> str:
    """The store the jobs just used, as `mlflow ui` takes it (relative when it is ./mlflow.db)."""
    from training.tracking import default_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri()
    return "sqlite:///mlflow.db" if uri == default_tracking_uri() else uri
