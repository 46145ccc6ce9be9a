"""Shared fixtures: the public data sets beside the checkout, isolated MLflow/BentoML homes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("BENTOML_HOME", str(REPO / ".bentoml"))
os.environ.setdefault("MPLBACKEND", "Agg")


def shared_dataset(name: str) -> Path:
    """Path of a public data set in ../shared/data; skip where it is absent, fail under CI."""
    path = SHARED_DATA / name
    if path.exists():
        return path
    reason = f"public data set {name!r} not found at ../shared/data/{name} (beside the checkout)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI the real-data tests must run")
    pytest.skip(reason)


@pytest.fixture
def shared_data():
    """Callable fixture: shared_data('uci_online_retail') -> Path or skip."""
    return shared_dataset


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty MLflow SQLite store; creating one runs migrations for ~8 s, copying takes ms."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def fresh_mlflow_db(template: Path, folder: Path) -> str:
    import shutil

    shutil.copy(template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"
