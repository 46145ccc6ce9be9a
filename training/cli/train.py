"""`ecomlab train`: run one training job with a progress bar and print the scores the registry decided on.

The candidate, baseline and champion scores printed come from the job's registry decision: they are
the numbers the new version's tags hold, all measured on the same test split.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from features.config_io import ConfigError
from training.cli.app import EXIT_FAILED, app, console, expect_kind, fail, hint, progress, user_errors
from training.decision import CHAMPION


@app.command("train")
def train(
    config: Annotated[Path, typer.Argument(help="a job config, e.g. configs/segment.yaml")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key, e.g. tuning.n_trials=5")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="worker processes sharing the study in tuning.storage")] = None,
    join: Annotated[str | None, typer.Option("--join", metavar="PARENT_RUN_ID", help="add one worker (this machine) to the study of a running job")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="pandas or spark: overrides the config's `engine` (spark: forecasts per series and rule mining on Spark)")] = None,
) -> None:
    """Run a training job: tune with Optuna, log to MLflow, register and decide champion/challenger.

    `--workers N` runs the trials in N processes sharing the study in `tuning.storage` (needed for N > 1);
    `--join PARENT_RUN_ID` adds a worker on another machine (same config, storage and tracking URI);
    `--engine spark` runs the job on the Spark engine whatever the config says."""
    with user_errors():
        if workers and join:
            raise ConfigError("--workers and --join: give one; --join runs one worker of a job started with --workers")
        if engine is not None:  # an override like any --set, so workers started with --workers get it too
            set_ = [*(set_ or []), f"engine={engine}"]
        job, model_cfg = load_job(config, set_ or [])
        if workers and workers > 1 and job.tuning.storage is None:
            raise ConfigError(
                f"{config}: tuning.storage: --workers {workers} needs a shared study storage, "
                "e.g. --set tuning.storage=postgresql://user@host/db"
            )
    if join:
        run_worker(job, model_cfg, join)
        return
    plan = None
    if workers:
        from training.jobs import Workers

        plan = Workers(workers, config, tuple(set_ or ()))
    result = run_train(job, model_cfg, workers=plan)
    if result is None:
        raise typer.Exit(EXIT_FAILED)
    if result.decision.champion_error:
        fail(champion_problem(result))
        raise typer.Exit(EXIT_FAILED)


def load_job(config: Path, overrides: list[str]) -> tuple[Any, Any]:
    """The validated job config, its data config's files checked: a missing data file fails here, in a
    blink, not after MLflow has been imported and set up."""
    from features.readers.files import source_files
    from features.source_config import load_source_config
    from training.config import load_job_config

    expect_kind(config, "job")
    job, model_cfg = load_job_config(config, overrides)
    source = load_source_config(job.data_path())
    if source.path:
        source_files(source)
    return job, model_cfg


def run_worker(job: Any, model_cfg: Any, parent_run_id: str) -> None:
    """One worker of a running job's study; prints what it did in one line."""
    from training.jobs import join_job

    with user_errors():
        try:
            done = join_job(job, model_cfg, parent_run_id)
        except (ConfigError, typer.Exit):
            raise
        except Exception as exc:  # a failed worker: one line and exit 1 (the coordinator shows it)
            fail(f"{type(exc).__name__}: {exc}", "worker failed")
            if os.environ.get("ECOMLAB_DEBUG"):
                raise
            raise typer.Exit(EXIT_FAILED) from None
    console.print(
        f"worker: {done.complete} trials complete, {done.failed} failed, {done.pruned} pruned unrun; "
        f"the study holds {done.study_complete} of {job.tuning.n_trials} complete trials",
        highlight=False, soft_wrap=True,
    )


def run_train(job: Any, model_cfg: Any, replace_unloadable: bool = False, workers: Any = None) -> Any:
    """Run the job under a progress bar; None when it failed (one line printed, the details are in the MLflow run).

    `replace_unloadable` lets a version replace a champion that cannot be loaded (quickstart re-registers
    the models of an older layout); otherwise such a champion stays and the new version is a challenger."""
    from training.jobs import Hooks, run_loaded_job

    console.rule(f"[bold]{job.job}[/] ({job.family})")
    try:
        with user_errors(), progress() as bar:
            stage = bar.add_task("starting", total=None)
            trials = bar.add_task("trials", total=job.tuning.n_trials, visible=False)

            def on_stage(msg: str) -> None:
                bar.update(stage, description=msg)
                if msg == "tuning":
                    bar.update(trials, visible=True)

            def on_trial(_trial: Any) -> None:
                bar.advance(trials)

            hooks = Hooks(stage=on_stage, trial=on_trial)
            hooks.note = lambda msg: console.print(msg, highlight=False, soft_wrap=True)
            plan = {"workers": workers} if workers else {}
            result = run_loaded_job(job, model_cfg, hooks, replace_unloadable=replace_unloadable, **plan)
            bar.update(stage, description="done", total=1, completed=1)
    except typer.Exit:
        raise
    except Exception as exc:  # a failed job: one line, the details are in the MLflow run
        from serving.tracking_uri import is_unreachable
        from serving.tracking_uri import redact, resolve_tracking_uri

        if is_unreachable(exc) or type(exc).__name__ == "TrackingLost":  # nothing reached the run: say so
            uri = redact(resolve_tracking_uri(job.tracking_uri))
            fail(f"the tracking store at {uri} stopped answering during the job, beyond MLflow's retries "
                 f"(MLFLOW_HTTP_REQUEST_MAX_RETRIES); nothing was registered: {str(exc).splitlines()[0][:300]}", "job failed")
        else:
            fail(f"{type(exc).__name__}: {exc}", "job failed")
        if os.environ.get("ECOMLAB_DEBUG"):
            raise
        return None
    print_result(result, registered_figures(result.run_id, job.family))
    return result


def champion_problem(result: Any) -> str:
    """The line that says the current champion could not be loaded or scored, and how to promote by hand."""
    d, name = result.decision, result.model_name
    return (
        f"current champion {name} v{d.champion_version} could not be loaded or scored: {d.champion_error}; "
        f"version {d.version} registered as challenger; promote it by hand with `{hint(f'ecomlab models promote {name} {d.version}')}`"
    )


#: the figures of the registered model shown after a job, per family (logged on the run by the family's report)
MODEL_FIGURES = {
    "recommender": ("n_rules", "n_itemsets"),
    "segmenter": ("segments", "inertia"),
    "forecaster": ("final_series_fallback", "final_fits_failed"),
    "clv": ("repeat_customers_fitted", "freq_spend_correlation"),
}


def registered_figures(run_id: str, family: str) -> dict[str, float]:
    """The registered model's own figures, read back from its run (the report of the fitted model, not
    the best trial's, which was fitted on fewer data)."""
    from mlflow.exceptions import MlflowException

    from training import tracking

    try:
        metrics = tracking.run_metrics(run_id)
    except MlflowException:  # the job is done and registered; a summary line is not worth failing it
        return {}
    return {k: metrics[k] for k in MODEL_FIGURES.get(family, ()) if k in metrics}


def print_result(result: Any, figures: dict[str, float] | None = None) -> None:
    """Scores on the test split (candidate, baseline, champion), the chosen parameters, the registered
    model's figures and the registry decision."""
    d = result.decision
    console.print(_scores_table(result))
    console.print(_params_table(result.best_params))
    if figures:
        shown = "  ".join(f"{k.replace('_', ' ')}: {_num(v)}" for k, v in figures.items())
        console.print(f"registered model: {shown}", highlight=False)
    colour = "green" if d.alias == CHAMPION else "yellow"
    refit = "; the registered model is refit on all data after scoring" if d.refit_on_all_data else ""
    console.print(
        f"registry: [bold]{result.model_name}[/] version {d.version} -> [{colour}]{d.alias}[/] ({d.reason}){refit}\n"
        f"trials: {result.n_trials} ({result.n_failed} failed)  run: {result.run_id}  "
        f"tracking: {result.tracking_uri}  time: {result.seconds:.1f} s",
        highlight=False,
    )


def _scores_table(result: Any) -> Table:
    d = result.decision
    table = Table(title="scores on the test split")
    table.add_column(result.model_name)
    table.add_column(f"{result.objective_name} ({result.direction})", justify="right")
    table.add_row(f"candidate v{d.version}", _num(d.candidate_score))
    table.add_row("baseline", _num(d.baseline_score))
    if d.champion_version is None:
        table.add_row("champion", "none yet")
    elif d.champion_error:
        table.add_row(f"champion v{d.champion_version}", "could not be scored")
    else:
        table.add_row(f"champion v{d.champion_version}", _num(d.champion_score))
    return table


def _params_table(best_params: dict[str, Any]) -> Table:
    params = Table(title="chosen parameters")
    params.add_column("parameter")
    params.add_column("value")
    for k, v in best_params.items():
        if k != "per_series":
            params.add_row(k, json.dumps(v, default=str) if isinstance(v, (list, dict)) else str(v))
    return params


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
