"""What the parent run holds: config, data set, parameters, metrics, figures, tables, losses, the model."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from features.profile import PROFILE_ARTIFACT, PROFILE_FILE
from serving.models.registry import code_paths
from training.tracking.runs import _finite, _short, flatten, pip_requirements


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


def log_losses(losses: dict[str, pd.DataFrame | None], folder: str = "losses") -> None:
    """Per-unit losses behind each score as Parquet artifacts, so runs can be paired and compared later."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in losses.items():
            if frame is None:
                continue
            path = Path(tmp) / f"{name}.parquet"
            frame.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), folder)


@dataclass
class LoggedModel:
    uri: str
    run_id: str


def log_model(
    python_model: Any, input_example: pd.DataFrame, output_example: Any, name: str = "model",
    profile: dict[str, Any] | None = None,
) -> LoggedModel:
    """Log a servable model with its code, explicit pip requirements, a signature and an input example.

    The code of `serving` and `features` travels with the model, so it loads and predicts where
    `training` cannot be imported (a Spark worker, `ecomlab score`, the service). The reference
    `profile` of its training inputs lands in the model folder (artifacts/reference_profile.json),
    so whatever loads the model finds the profile beside it (drift).
    """
    signature = infer_signature(input_example, output_example)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = None
        if profile is not None:
            path = Path(tmp) / PROFILE_FILE
            path.write_text(json.dumps(profile))
            artifacts = {PROFILE_ARTIFACT: str(path)}
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=python_model,
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements(),
            code_paths=_staged_code(Path(tmp)),
            artifacts=artifacts,
        )
    return LoggedModel(info.model_uri, mlflow.active_run().info.run_id)


def _staged_code(folder: Path) -> list[str]:
    """Copies of the model's code packages without caches or data files."""
    out = []
    for package in code_paths():
        target = folder / package.name
        shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt"))
        out.append(str(target))
    return out

