"""Every MLflow call of the training side: tracking URI, experiments, runs, artifacts, registry, aliases.

Trainers return plain results; this module decides how they are logged. Trial runs are written with
`MlflowClient` (explicit run ids, no fluent active-run stack) so Optuna's `n_jobs > 1` threads never
meet the "Run ... already active" pitfall; the parent run uses the fluent API in the main thread.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
#: what a logged model needs at inference; explicit so MLflow does not spend seconds inferring it
RUNTIME_PACKAGES = ["mlflow", "pandas", "numpy", "scikit-learn", "statsmodels", "pyfim", "scipy", "cloudpickle"]
REPORTED_PACKAGES = [*RUNTIME_PACKAGES, "bentoml", "optuna", "mlxtend", "pandera", "pydantic"]

for noisy in ("alembic", "urllib3"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def default_tracking_uri(workdir: Path | None = None) -> str:
    """The embedded default: a SQLite file in the working directory."""
    return f"sqlite:///{((workdir or Path.cwd()) / 'mlflow.db').resolve()}"


def resolve_tracking_uri(configured: str | None = None) -> str:
    """`MLFLOW_TRACKING_URI` if set, else the config's, else the embedded default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or default_tracking_uri()


def setup(configured: str | None = None) -> str:
    uri = resolve_tracking_uri(configured)
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
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        return client.get_experiment_by_name(name).experiment_id  # created meanwhile by another process


@contextmanager
def parent_run(experiment: str, run_name: str, tags: dict[str, str]) -> Iterator[str]:
    """One parent run per job; yields its run id and ends it FAILED if the job raises.

    Under `mlflow run` (MLFLOW_RUN_ID set) the project's run is the parent run.
    """
    project_run = os.environ.get("MLFLOW_RUN_ID")
    if project_run:
        with mlflow.start_run(run_id=project_run) as run:
            mlflow.set_tags({**tags, **context_tags(), "mlflow.runName": run_name})
            yield run.info.run_id
        return
    exp_id = ensure_experiment(experiment)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags={**tags, **context_tags()}) as run:
        yield run.info.run_id


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


# ---- parent run content ----


def log_config(resolved: dict[str, Any], source_file: str) -> None:
    import yaml

    mlflow.log_text(yaml.safe_dump(resolved, sort_keys=False), "config/resolved.yaml")
    if source_file and Path(source_file).exists():
        mlflow.log_artifact(source_file, "config")


def log_dataset(lines: pd.DataFrame, name: str, source: str, digest: str, context: str = "training") -> None:
    """`mlflow.log_input` with the content digest, so runs on different data are told apart."""
    sample = lines.head(1000)
    dataset = mlflow.data.from_pandas(sample, source=source, name=name, digest=digest)
    mlflow.log_input(dataset, context=context, tags={"rows": str(len(lines))})


def log_params(params: dict[str, Any], prefix: str = "") -> None:
    mlflow.log_params({f"{prefix}{k}": _short(v) for k, v in flatten(params).items()})


def log_metrics(metrics: dict[str, float], prefix: str = "") -> None:
    mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in metrics.items() if _finite(v)})


def set_tags(tags: dict[str, Any]) -> None:
    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_json(data: Any, path: str) -> None:
    mlflow.log_text(json.dumps(data, indent=2, default=str), path)


def log_figures(figures: dict[str, Any], folder: str = "plots") -> None:
    import matplotlib.pyplot as plt

    for name, fig in figures.items():
        mlflow.log_figure(fig, f"{folder}/{name}.png")
        plt.close(fig)


def log_tables(tables: dict[str, pd.DataFrame], folder: str = "tables") -> None:
    """Each table as an MLflow table (UI) and a CSV artifact."""
    for name, table in tables.items():
        frame = table.reset_index(drop=False) if table.index.name else table
        frame = frame.map(lambda v: json.dumps(v, default=str) if isinstance(v, (list, dict, tuple)) else v)
        mlflow.log_table(frame, f"{folder}/{name}.json")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.csv"
            frame.to_csv(path, index=False)
            mlflow.log_artifact(str(path), folder)


@dataclass
class LoggedModel:
    uri: str
    run_id: str


def log_model(python_model: Any, input_example: pd.DataFrame, output_example: Any, name: str = "model") -> LoggedModel:
    """Log a pyfunc with explicit pip requirements, a signature and an input example."""
    signature = infer_signature(input_example, output_example)
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=python_model,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements(),
    )
    return LoggedModel(info.model_uri, mlflow.active_run().info.run_id)


# ---- registry ----


@dataclass
class Decision:
    version: str
    alias: str
    reason: str
    candidate_score: float
    champion_score: float | None
    champion_version: str | None
    baseline_score: float


def register(model: LoggedModel, name: str) -> str:
    version = mlflow.register_model(model.uri, name, await_registration_for=60)
    return str(version.version)


def champion_version(name: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def load_registered(name: str, version: str) -> Any:
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}")


def set_alias(name: str, version: str, alias: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


def tag_version(name: str, version: str, tags: dict[str, Any]) -> None:
    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))


def record_decision(name: str, decision: Decision) -> None:
    """Alias the version, and log the decision and the scores on the version and the parent run."""
    set_alias(name, decision.version, decision.alias)
    tags = {
        "ecomlab.decision": decision.alias,
        "ecomlab.decision_reason": decision.reason,
        "ecomlab.candidate_score": decision.candidate_score,
        "ecomlab.champion_score": "" if decision.champion_score is None else decision.champion_score,
        "ecomlab.champion_version": decision.champion_version or "",
        "ecomlab.baseline_score": decision.baseline_score,
    }
    tag_version(name, decision.version, tags)
    set_tags({**tags, "ecomlab.registered_version": decision.version})


def list_models() -> list[dict[str, Any]]:
    client = MlflowClient()
    rows = []
    for rm in client.search_registered_models():
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            rows.append(
                {
                    "name": rm.name,
                    "version": str(mv.version),
                    "alias": ",".join(a for a, v in (rm.aliases or {}).items() if str(v) == str(mv.version)),
                    "run_id": mv.run_id,
                    "decision": mv.tags.get("ecomlab.decision", ""),
                    "score": mv.tags.get("ecomlab.candidate_score", ""),
                    "created": pd.Timestamp(mv.creation_timestamp, unit="ms").strftime("%Y-%m-%d %H:%M"),
                }
            )
    return sorted(rows, key=lambda r: (r["name"], -int(r["version"])))


def promote(name: str, version: str) -> None:
    """Make `version` the champion by hand (people override the automatic decision)."""
    client = MlflowClient()
    client.get_model_version(name, version)  # raises a clear MlflowException if absent
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "ecomlab.decision", "champion (promoted by hand)")


def run_metrics(run_id: str) -> dict[str, float]:
    return dict(MlflowClient().get_run(run_id).data.metrics)


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
