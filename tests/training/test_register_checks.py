"""A model is registered only once its artifacts are all in the store (issue 12: the tracking server
restarted during a job must never leave a registered version whose artifacts are missing)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests.serving.test_batch import customers, segmenter_model
from training import tracking
from training.tracking.registry import ArtifactsMissing, missing_artifacts


def logged_segmenter(folder: Path) -> tracking.LoggedModel:
    client = MlflowClient()
    mlflow.set_experiment(experiment_id=client.create_experiment("checks", artifact_location=(folder / "art").as_uri()))
    model, example = segmenter_model(), customers(3, 0)
    with mlflow.start_run():
        return tracking.log_model(model, example, model.predict(None, example))


def artifact_folder(logged: tracking.LoggedModel) -> Path:
    location = mlflow.get_logged_model(logged.uri.removeprefix("models:/")).artifact_location
    return Path(location.removeprefix("file://"))


def test_a_complete_model_registers(tracking_dir: Path) -> None:
    logged = logged_segmenter(tracking_dir)
    assert missing_artifacts(logged) == []
    assert tracking.register(logged, "checked") == "1"


@pytest.mark.parametrize("lost", ["python_model.pkl", "MLmodel", "code"])
def test_a_model_with_lost_artifacts_is_not_registered(tracking_dir: Path, lost: str) -> None:
    import shutil

    logged = logged_segmenter(tracking_dir)
    target = artifact_folder(logged) / lost
    if target.is_dir():
        for child in target.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    else:
        target.unlink()
    with pytest.raises(ArtifactsMissing, match=f"lacks {lost}"):
        tracking.register(logged, "checked")
    assert MlflowClient().search_registered_models() == []  # nothing half-registered
