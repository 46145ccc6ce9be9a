"""MLproject runs land in the experiment the job config names, not "Default" (issue 11, the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, tiny_job


def test_project_run_in_another_experiment_leaves_the_job_in_the_configs(tracking_dir: Path, monkeypatch) -> None:
    """MLflow created the project's run in "Default" (MLFLOW_RUN_ID): the job's run is created in the config's
    experiment, and the two runs name each other."""
    from mlflow.tracking import MlflowClient

    from training import tracking

    tracking.setup()
    client = MlflowClient()
    project = client.create_run("0", tags={"mlflow.project.entryPoint": "train"}).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", project)
    with tracking.parent_run("ecomlab-segment", "segment-test", {"ecomlab.job": "segment"}) as run_id:
        pass
    assert run_id != project
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "ecomlab-segment"
    assert run.data.tags["ecomlab.mlflow_project_run"] == project
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert client.get_run(project).data.tags["ecomlab.job_run"] == run_id


def test_project_run_in_the_configs_experiment_is_the_parent_run(tracking_dir: Path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    from training import tracking

    tracking.setup()
    project = MlflowClient().create_run(tracking.ensure_experiment("ecomlab-segment")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", project)
    with tracking.parent_run("ecomlab-segment", "segment-test", {}) as run_id:
        assert run_id == project


@pytest.mark.slow  # `mlflow run` of a tiny job in a subprocess
def test_mlflow_run_logs_the_job_in_the_configs_experiment(tracking_dir: Path) -> None:
    from mlflow.tracking import MlflowClient

    config = tiny_job("segmenter", tracking_dir)
    # not what MLflow exported for other tests of this process (set_experiment, set_registry_uri)
    exported = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_REGISTRY_URI")
    env = {**{k: v for k, v in os.environ.items() if k not in exported}, "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    mlflow = Path(sys.executable).parent / "mlflow"
    proc = subprocess.run(
        [str(mlflow), "run", str(REPO), "-e", "train", "-P", f"config={config}", "--env-manager", "local"],
        capture_output=True, text=True, cwd=tracking_dir, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient()
    experiment = client.get_experiment_by_name("tiny-segmenter")
    assert experiment is not None, [e.name for e in client.search_experiments()]
    parents = client.search_runs([experiment.experiment_id], "tags.`ecomlab.job` = 'segment'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert client.get_model_version("ecomlab-segmenter", "1").run_id == parents[0].info.run_id
