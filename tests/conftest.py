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
