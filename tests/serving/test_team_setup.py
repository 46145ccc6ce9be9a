"""The team setup of docs/team-setup.md, with real processes: `mlflow server` on a fresh PostgreSQL database with
proxied artifacts, `ecomlab train` and `ecomlab models` as subprocesses, `bentoml serve` hot-reloading the champion.

Each test creates its own uniquely named database and drops it at the end, also on failure (tests/pg.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.helpers import tiny_job
from serving.tracking_uri import StoreUnreachable, check_reachable, unreachable
from tests.service_harness import free_port, start, start_mlflow_server, write_serve_config

ECOMLAB = str(Path(sys.executable).parent / "ecomlab")  # the console script, as a user runs it
NAME = "ecomlab-segmenter"
CUSTOMER = {"recency": 12.0, "frequency": 9.0, "monetary": 850.0, "quantity": 40.0, "tenure": 400.0, "aov": 94.4, "return_rate": 0.02}
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "true"}


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database's plain `postgresql://user@host:port/db` URL; dropped afterwards."""
    with pg.database() as url:
        yield url


def ecomlab(*args: str, cwd: Path, tracking_uri: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`ecomlab ARGS` in `cwd`, with MLFLOW_TRACKING_URI exported when given (and unset otherwise)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")} | QUIET
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return subprocess.run([ECOMLAB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def background(args: list[str], cwd: Path, tracking_uri: str) -> subprocess.Popen[str]:
    """A process with MLFLOW_TRACKING_URI exported, left running; read it with `communicate`."""
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_REGISTRY_URI"}, **QUIET, "MLFLOW_TRACKING_URI": tracking_uri}
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def served_version(url: str) -> str | None:
    (model,) = httpx.post(url + "/models", json={}, timeout=30).json()["models"]
    return model["version"]


@pytest.mark.service
def test_team_setup_on_postgresql(database: str, tmp_path: Path) -> None:
    """Job -> registry -> service over one `mlflow server` on PostgreSQL; promote by hand; the client folder goes away."""
    started = time.time()
    tracking = start_mlflow_server(tmp_path, database)
    service = None
    loader = lister = None
    try:
        up = time.time() - started
        folder_a = tmp_path / "A"
        folder_a.mkdir()
        trained = ecomlab("train", str(tiny_job("segmenter", folder_a)), cwd=folder_a, tracking_uri=tracking.url)
        assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
        assert sorted(p.name for p in folder_a.iterdir()) == ["data.yaml", "segmenter.yaml"]  # no local store, no artifacts
        job_s = time.time() - started - up

        from mlflow import MlflowClient

        client = MlflowClient(tracking.url, tracking.url)
        first = client.get_model_version_by_alias(NAME, "champion")
        assert first.version == "1" and first.tags["ecomlab.decision"] == "champion"
        assert client.get_run(first.run_id).info.artifact_uri.startswith("mlflow-artifacts:/")
        model_id = first.source.removeprefix("models:/")  # MLflow 3: a version's source is its logged model
        assert client.get_logged_model(model_id).artifact_location.startswith("mlflow-artifacts:/")
        assert client.get_model_version_download_uri(NAME, "1").startswith("mlflow-artifacts:/")
        assert any((tmp_path / "server-artifacts").rglob("MLmodel"))  # the bytes live with the server
        second = client.create_model_version(NAME, first.source, run_id=first.run_id, model_id=model_id)
        assert second.version == "2"

        shutil.rmtree(folder_a)  # the folder the job ran in is gone: the model loads from anywhere through the server
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        load = (
            "import json, mlflow, pandas as pd\n"
            f"m = mlflow.pyfunc.load_model('models:/{NAME}/1')\n"  # a fixed version: the test moves the alias meanwhile
            f"print(json.dumps({{'run_id': m.metadata.run_id, 'rows': len(m.predict(pd.DataFrame([{CUSTOMER!r}])))}}))\n"
        )
        loader = background([sys.executable, "-c", load], elsewhere, tracking.url)  # runs while the service starts

        # the service reads the server from its settings (tracking_uri), not from the environment
        config = write_serve_config(tmp_path, [{"family": "segmenter", "name": NAME}], reload_interval_s=1, tracking_uri=tracking.url)
        service = start(tmp_path, config, "")
        assert served_version(service.url) == "1"
        promoted = ecomlab("models", "promote", NAME, "2", "--tracking-uri", tracking.url, cwd=tmp_path)
        assert promoted.returncode == 0 and "version 2 is now champion" in promoted.stdout, promoted.stdout + promoted.stderr
        lister = background([ECOMLAB, "models", "list", "--json"], tmp_path, tracking.url)
        moved = time.time()
        while served_version(service.url) != "2":
            assert time.time() - moved < 15, f"the service did not pick up version 2:\n{service.tail()}"
            time.sleep(0.3)
        reload_s = time.time() - moved
        scored = httpx.post(service.url + "/segment", json={"customers": [CUSTOMER]}, timeout=30)
        assert scored.status_code == 200, scored.text

        listed, err = lister.communicate(timeout=120)
        assert lister.returncode == 0, err
        rows = {r["version"]: r for r in json.loads(listed)}
        assert rows["2"]["aliases"] == ["champion"] and rows["2"]["decision"] == "champion"
        assert rows["1"]["decision"] == "challenger"
        loaded, err = loader.communicate(timeout=120)
        assert loader.returncode == 0, err[-2000:]
        assert json.loads(loaded.strip().splitlines()[-1])["rows"] == 1  # loaded and predicted through the server
        print(f"mlflow server up {up:.1f} s, job {job_s:.1f} s, promote picked up in {reload_s:.1f} s, total {time.time() - started:.1f} s")
    finally:
        for process in (loader, lister):
            if process is not None and process.poll() is None:
                process.kill()
        if service is not None:
            service.stop()
        tracking.stop()


def one_error_line(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert process.returncode == 2 and len(lines) == 1, (process.returncode, err)
    return lines[0]


@pytest.mark.service
def test_unreachable_tracking_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Nothing listens on the port, or the database does not exist: one line naming it, exit 2, in moments, nothing written."""
    dead = f"http://127.0.0.1:{free_port()}"
    missing = f"{pg.server_url()}/{pg.unused_name()}"
    job = tiny_job("segmenter", tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")} | QUIET
    commands = {  # run side by side: each is a few seconds of imports
        "train": ([ECOMLAB, "train", str(job)], {**env, "MLFLOW_TRACKING_URI": dead}),
        "list": ([ECOMLAB, "models", "list"], {**env, "MLFLOW_TRACKING_URI": dead}),
        "promote": ([ECOMLAB, "models", "promote", NAME, "1", "--tracking-uri", missing], env),
    }
    started = time.time()
    running = {k: subprocess.Popen(cmd, cwd=tmp_path, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for k, (cmd, e) in commands.items()}
    lines = {k: one_error_line(p) for k, p in running.items()}
    took = time.time() - started
    assert f"tracking server {dead} unreachable: connection refused" in lines["train"]
    assert f"tracking server {dead} unreachable: connection refused" in lines["list"]
    db = missing.rsplit("/", 1)[1]
    assert f'refused the connection: database "{db}" does not exist' in lines["promote"]
    assert "***@" in lines["promote"] and pg.server_url().split("//")[1].split("@")[0] + "@" not in lines["promote"]  # user redacted
    assert took < 45, f"{took:.0f} s: MLflow's own retries (minutes) were not cut short"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no mlflow.db, mlruns or mlartifacts
    assert not pg.exists(db)


@pytest.mark.service
# ---- the reachability check itself (fast: loopback sockets, one PostgreSQL login) ----


def test_reachability_check_names_the_store_and_hides_credentials() -> None:
    port = free_port()  # nothing listens there
    for local in ("sqlite:///nowhere/mlflow.db", "file:///nowhere", "mlruns", "databricks", f"postgresql:///db?host=/tmp&port={port}"):
        assert unreachable(local) is None, local  # no network store (or a Unix socket): nothing to dial
    assert unreachable(f"http://alice:pa%40ss@127.0.0.1:{port}/prefix") == (
        f"tracking server http://***@127.0.0.1:{port}/prefix unreachable: connection refused"
    )
    with pytest.raises(StoreUnreachable, match=f"tracking database postgresql\\+psycopg://\\*\\*\\*@127.0.0.1:{port}/db unreachable"):
        check_reachable(f"postgresql+psycopg://bob:secret@127.0.0.1:{port}/db")


def test_reachability_check_asks_postgresql_about_the_database() -> None:
    """The port answers but the database is missing: PostgreSQL's own reason, with or without a driver suffix."""
    with pg.database() as url:
        assert unreachable(url) is None
        assert unreachable(url.replace("postgresql://", "postgresql+psycopg://", 1)) is None
    db = url.rsplit("/", 1)[1]  # dropped now
    assert unreachable(url).endswith(f'refused the connection: database "{db}" does not exist')
