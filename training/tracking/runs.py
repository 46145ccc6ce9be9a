"""Tracking URI, experiments, the parent run and trial runs.

Trial runs are written with `MlflowClient` (explicit run ids, no fluent active-run stack) so Optuna's
`n_jobs > 1` threads never meet the "Run ... already active" pitfall; the parent run uses the fluent
API in the main thread.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from serving.tracking_uri import check_reachable, resolve_tracking_uri

log = logging.getLogger(__name__)

#: what a logged model needs at inference; explicit so MLflow does not spend seconds inferring it
RUNTIME_PACKAGES = ["mlflow", "pandas", "numpy", "scikit-learn", "statsmodels", "pyfim", "scipy", "threadpoolctl", "cloudpickle"]
REPORTED_PACKAGES = [*RUNTIME_PACKAGES, "bentoml", "optuna", "mlxtend", "pandera", "pydantic"]


def setup(configured: str | None = None) -> str:
    """Point MLflow at the resolved store; a server or database that refuses connections raises StoreUnreachable
    at once (MLflow itself would retry for minutes), before anything is written."""
    uri = resolve_tracking_uri(configured)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def artifact_root(uri: str) -> str | None:
    """Explicit artifact location for local stores (beside the SQLite file); servers keep their own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        return None
    return None


def ensure_experiment(name: str) -> str:
    """The experiment's id, created with an explicit artifact location when it is new."""
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = artifact_root(mlflow.get_tracking_uri())
    location = f"{root}/{name}" if root else None
    try:  # the kind tag makes MLflow's UI open on the training runs, not its GenAI overview
        return client.create_experiment(
            name, artifact_location=location, tags={"mlflow.experimentKind": "custom_model_development"}
        )
    except MlflowException:
        return client.get_experiment_by_name(name).experiment_id  # created meanwhile by another process


@contextmanager
def parent_run(experiment: str, run_name: str, tags: dict[str, str]) -> Iterator[str]:
    """One parent run per job, in the experiment the config names; yields its run id and ends it FAILED if the job raises.

    Under `mlflow run` (MLFLOW_RUN_ID set) MLflow has created the project's run before our code runs,
    in the experiment of `--experiment-name` ("Default" without it). When that is the config's
    experiment, the project's run is the parent run; otherwise the job runs in the config's experiment
    and the two runs point at each other (MLflow cannot move a run between experiments).
    """
    project_run = os.environ.pop("MLFLOW_RUN_ID", None)  # consumed here, as mlflow.start_run would
    exp_id = ensure_experiment(experiment)
    if project_run and experiment_of(project_run) == exp_id:
        with mlflow.start_run(run_id=project_run) as run, _failure_logged():
            mlflow.set_tags({**tags, **context_tags(), "mlflow.runName": run_name})
            yield run.info.run_id
        return
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags={**tags, **context_tags()}) as run, _failure_logged():
        if project_run:
            _link_project_run(project_run, run.info.run_id, experiment)
        yield run.info.run_id


def _link_project_run(project_run: str, run_id: str, experiment: str) -> None:
    """The job's run keeps the project's provenance tags; the project's run says where the job went."""
    client = MlflowClient()
    project_tags = client.get_run(project_run).data.tags
    kept = {k: v for k, v in project_tags.items() if k.startswith(("mlflow.project.", "mlflow.source.", "mlflow.gitRepoURL"))}
    mlflow.set_tags({**kept, "ecomlab.mlflow_project_run": project_run})
    client.set_tag(project_run, "ecomlab.job_run", run_id)
    client.set_tag(project_run, "ecomlab.job_experiment", experiment)
    client.set_tag(project_run, "mlflow.note.content", f"This job logged to experiment {experiment!r}, run {run_id}.")


@contextmanager
def _failure_logged() -> Iterator[None]:
    """A job that raises leaves its traceback on the run (the run itself ends FAILED)."""
    try:
        yield
    except BaseException as exc:
        if not _store_lost(exc):  # a store that stopped answering would only make each call retry again
            mlflow.log_text(traceback.format_exc(), "error/traceback.txt")
            mlflow.set_tag("ecomlab.error", f"{type(exc).__name__}: {exc}"[:4000])
        raise


def _store_lost(exc: BaseException) -> bool:
    from serving.tracking_uri import is_unreachable

    return isinstance(exc, Exception) and (type(exc).__name__ == "TrackingLost" or is_unreachable(exc))


def experiment_of(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.experiment_id


def context_tags() -> dict[str, str]:
    tags = {"ecomlab.versions": json.dumps(package_versions())}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    out = {}
    for name in REPORTED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def pip_requirements() -> list[str]:
    versions = package_versions()
    return [f"{name}=={versions[name]}" for name in RUNTIME_PACKAGES if name in versions]


# ---- trial runs (thread-safe: explicit client calls only) ----


def start_trial_run(parent_id: str, experiment_id: str, number: int) -> str:
    client = MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=f"trial-{number:03d}",
        tags={"mlflow.parentRunId": parent_id, "ecomlab.trial": str(number)},
    )
    return run.info.run_id


def end_trial_run(run_id: str, params: dict[str, Any], metrics: dict[str, float], error: str | None = None) -> None:
    client = MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)],
        params=[Param(k, _short(v)) for k, v in flatten(params).items()],
        tags=[RunTag("ecomlab.error", error[:4000])] if error else [],
    )
    client.set_terminated(run_id, status="FAILED" if error else "FINISHED")


# ---- helpers ----


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, (list, tuple, dict)) else str(value)
    return text[:6000]


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
