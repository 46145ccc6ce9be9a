"""The tracking server restarted during a job (issue 12): MLflow's client retries each request (bounded:
MLFLOW_HTTP_REQUEST_MAX_RETRIES with exponential backoff), so a restart within the bound is absorbed and the
job completes; a server that stays away fails the job with the reason. Neither registers a model whose
artifacts are missing (training/tracking/registry.py checks the store before it registers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import pg
from tests.helpers import tiny_job
from tests.service_harness import MlflowServer, start_mlflow_server

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.long_module]

ECOMLAB = str(Path(sys.executable).parent / "ecomlab")
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "true"}
NAME = "ecomlab-segmenter"


@pytest.fixture
def database() -> Iterator[str]:
    with pg.database() as url:
        yield url


def long_job(folder: Path, trials: int) -> Path:
    """A segmenter job whose trials take long enough for the server to go away and come back meanwhile."""
    path = tiny_job("segmenter", folder, n_customers=3000)
    job = yaml.safe_load(path.read_text())
    job["tuning"]["n_trials"] = trials
    path.write_text(yaml.safe_dump(job))
    return path


def user_env(url: str, **env: str) -> dict[str, str]:
    """The environment of a user's shell pointed at `url`: none of the MLflow settings this test process may
    carry (other tests' in-process registry URI, which MLflow exports; the service's bounded retries)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST_") and k != "MLFLOW_REGISTRY_URI"}
    return {**inherited, **QUIET, "MLFLOW_TRACKING_URI": url, **env}


def run_job(config: Path, url: str, **env: str) -> subprocess.Popen[str]:
    """`ecomlab train` as a user starts it (see `user_env`)."""
    full = user_env(url, **env)
    return subprocess.Popen([ECOMLAB, "train", str(config)], cwd=config.parent, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_trials(url: str, experiment: str, count: int, job: subprocess.Popen[str], timeout: float = 180) -> None:
    """Until `count` trial runs of the job are on the server (or fail if the job ends first)."""
    from mlflow import MlflowClient

    client = MlflowClient(url, url)
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert job.poll() is None, "the job ended before the server went away: " + "".join(job.communicate()[1])[-2000:]
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            runs = client.search_runs([found.experiment_id], "tags.`mlflow.parentRunId` != ''", max_results=100)
            if len(runs) >= count:
                return
        time.sleep(0.3)
    pytest.fail(f"fewer than {count} trial runs after {timeout:.0f} s")


def test_a_restart_within_the_retry_bound_is_absorbed(database: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from training.tracking.registry import missing_artifacts
    from training.tracking.artifacts import LoggedModel

    server: MlflowServer = start_mlflow_server(tmp_path, database)
    job = None
    try:
        job = run_job(long_job(tmp_path, 25), server.url)
        wait_for_trials(server.url, "tiny-segmenter", 3, job)
        server.stop()  # SIGTERM to the server's process group: in-flight requests of the job fail and are retried
        down = time.time()
        time.sleep(2)
        server = start_mlflow_server(tmp_path, database, port=server.port)  # same store, same artifacts folder
        print(f"server down {time.time() - down:.1f} s")
        out, err = job.communicate(timeout=600)
        assert job.returncode == 0, out[-3000:] + err[-3000:]
        client = MlflowClient(server.url, server.url)
        version = client.get_model_version_by_alias(NAME, "champion")
        import mlflow

        mlflow.set_tracking_uri(server.url)  # missing_artifacts reads through MLflow's in-process URI
        assert missing_artifacts(LoggedModel(version.source, version.run_id)) == []
        check = [sys.executable, "-c", f"import mlflow; m = mlflow.pyfunc.load_model('models:/{NAME}/{version.version}'); "
                 "print(type(m.unwrap_python_model()).__name__)"]
        loaded = subprocess.run(check, env=user_env(server.url), cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert loaded.returncode == 0 and loaded.stdout.strip(), loaded.stderr[-2000:]
        parent = client.get_run(version.run_id)
        assert parent.info.status == "FINISHED" and float(parent.data.metrics["trials_complete"]) == 25
    finally:
        if job is not None and job.poll() is None:
            job.kill()
        server.stop()


def test_a_server_that_stays_away_fails_the_job_with_the_reason(database: str, tmp_path: Path) -> None:
    server = start_mlflow_server(tmp_path, database)
    job = None
    try:
        job = run_job(long_job(tmp_path, 25), server.url,
                      MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1")
        wait_for_trials(server.url, "tiny-segmenter", 2, job)
        server.stop()
        out, err = job.communicate(timeout=600)
        assert job.returncode != 0
        reason = [line for line in (out + err).splitlines() if "job failed" in line]
        assert reason and f"tracking store at {server.url} stopped answering" in " ".join(reason), (out + err)[-3000:]
        assert "nothing was registered" in " ".join(reason)
    finally:
        if job is not None and job.poll() is None:
            job.kill()
    server = start_mlflow_server(tmp_path, database, port=server.port)
    try:
        from mlflow import MlflowClient

        assert MlflowClient(server.url, server.url).search_model_versions(f"name='{NAME}'") == []
    finally:
        server.stop()
