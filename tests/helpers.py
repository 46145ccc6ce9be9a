"""Plain helpers shared by tests (fixtures live in conftest.py; tests import from here, never from conftest)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TOKEN = "s3cret-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def shared_dataset(name: str) -> Path:
    """Path of a public data set in ../shared/data; skip where it is absent, fail under CI."""
    path = SHARED_DATA / name
    if path.exists():
        return path
    reason = f"public data set {name!r} not found at ../shared/data/{name} (beside the checkout)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; under CI the real-data tests must run")
    pytest.skip(reason)


def fresh_mlflow_db(template: Path, folder: Path) -> str:
    """A copy of the initialised template store in `folder`; its URI."""
    shutil.copy(template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"
