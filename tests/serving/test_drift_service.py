"""Issue 16, drift over the real service (the session `server`) and `ecomlab drift` (a subprocess).

Traffic is drawn from the served segmenter's reference profile (a value inside each bin, bins drawn with
their training shares), so "from the training distribution" holds whatever the session's synthetic data
is; the shifted traffic puts every value above the largest training quantile. Each phase sends a full
window (drift.window rows), so earlier tests' traffic to the same server has left the ring.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from serving.settings import DriftSettings
from tests.helpers import AUTH
from tests.service_harness import Server
from tests.serving.test_service import registry_client

pytestmark = pytest.mark.service
WINDOW = DriftSettings().window  # the session server's settings name no drift section: the defaults


def profile_of(registry: tuple[Path, str], version: str) -> dict:
    import mlflow

    registry_client(registry)
    path = mlflow.artifacts.download_artifacts(f"models:/ecomlab-segmenter/{version}/artifacts/reference_profile.json")
    return json.loads(Path(path).read_text())


def sample(spec: dict, n: int, rng: np.random.Generator, shifted: bool = False) -> np.ndarray:
    """Values whose bins follow the reference shares: a bin's upper edge, or just above the last edge."""
    edges = np.asarray(spec["edges"])
    if shifted:
        return np.full(n, edges[-1] + max(1.0, abs(edges[-1])))
    upper = np.append(edges, np.nextafter(edges[-1], np.inf))
    return upper[rng.choice(len(upper), n, p=np.asarray(spec["shares"]) / sum(spec["shares"]))]


def rows(profile: dict, n: int, seed: int, shifted: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f: sample(s, n, rng, shifted) for f, s in profile["features"].items()})
    if "return_rate" in frame:
        frame["return_rate"] = frame["return_rate"].clip(0, 1)
    return frame


def send(server: Server, frame: pd.DataFrame) -> str:
    version = ""
    for start in range(0, len(frame), 50):  # the session server's max_batch
        customers = frame.iloc[start:start + 50].to_dict("records")
        resp = httpx.post(server.url + "/segment", json={"customers": customers}, headers=AUTH, timeout=30)
        assert resp.status_code == 200, resp.text
        version = resp.json()["version"]
    return version


def segmenter_drift(server: Server) -> dict:
    resp = httpx.get(server.url + "/drift/segmenter", headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    (model,) = resp.json()["models"]
    return model


def served_segmenter_version(server: Server) -> str:
    resp = httpx.get(server.url + "/models/segmenter", headers=AUTH, timeout=30)
    return resp.json()["version"]


def test_drift_after_traffic_ok_then_shifted_alerts(server: Server, registry: tuple[Path, str]) -> None:
    profile = profile_of(registry, served_segmenter_version(server))
    version = send(server, rows(profile, WINDOW, seed=1))
    model = segmenter_drift(server)
    assert model["version"] == version and model["name"] == "ecomlab-segmenter" and model["window"] == WINDOW
    assert {f["feature"] for f in model["features"]} == set(profile["features"])
    assert all(f["status"] == "ok" and f["window"] == WINDOW for f in model["features"]), model
    assert model["status"] == "ok"

    send(server, rows(profile, WINDOW, seed=2, shifted=True))
    model = segmenter_drift(server)
    statuses = {f["feature"]: f["status"] for f in model["features"]}
    assert model["status"] == "alert" and sum(s == "alert" for s in statuses.values()) >= len(statuses) - 1, statuses
    every = httpx.get(server.url + "/drift", headers=AUTH, timeout=30).json()
    statuses = {m["family"]: m["status"] for m in every["models"]}
    assert set(statuses) == {"segmenter", "forecaster", "recommender", "clv"}
    assert not {"no reference", "unavailable"} & set(statuses.values()), statuses  # every family was logged with a profile
    assert every["warn_psi"] == 0.1 and every["alert_psi"] == 0.25

    metrics = httpx.get(server.url + "/metrics", headers=AUTH, timeout=30).text
    lines = [line for line in metrics.splitlines() if line.startswith("ecomlab_input_drift{")]
    assert any('model="ecomlab-segmenter"' in line and f'version="{version}"' in line for line in lines), lines
    assert max(float(line.rsplit(" ", 1)[1]) for line in lines if 'model="ecomlab-segmenter"' in line) >= 0.25


def test_drift_of_an_unknown_family_is_404_in_the_error_shape(server: Server) -> None:
    resp = httpx.get(server.url + "/drift/nope", headers=AUTH, timeout=30)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found" and "nope" in resp.json()["error"]["message"]
    assert httpx.get(server.url + "/drift", timeout=30).status_code == 401  # the token is needed like /models
    spec = httpx.get(server.url + "/docs.json", headers=AUTH, timeout=30).json()
    assert "get" in spec["paths"]["/drift"] and "404" in spec["paths"]["/drift/{family}"]["get"]["responses"]


def ecomlab_drift(registry: tuple[Path, str], *args: str) -> subprocess.CompletedProcess:
    folder, uri = registry
    script = Path(sys.executable).with_name("ecomlab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "training.cli"]
    return subprocess.run(
        [*command, "drift", *args], cwd=folder, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "200"},
    )


def test_ecomlab_drift_compares_a_csv_with_the_reference(registry: tuple[Path, str], tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    _, uri = registry
    version = str(MlflowClient(uri, uri).get_model_version_by_alias("ecomlab-segmenter", "champion").version)
    profile = profile_of(registry, version)
    same, shifted = tmp_path / "same.csv", tmp_path / "shifted.csv"
    rows(profile, 3000, seed=3).to_csv(same, index=False)
    rows(profile, 3000, seed=4, shifted=True).to_csv(shifted, index=False)
    uri_arg = f"models:/ecomlab-segmenter/{version}"

    done = ecomlab_drift(registry, uri_arg, str(same), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert answer["rows"] == 3000 and answer["status"] == "ok" and answer["version"] == version
    assert {f["feature"]: f["status"] for f in answer["features"]} == {f: "ok" for f in profile["features"]}

    done = ecomlab_drift(registry, uri_arg, str(shifted))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "alert" in done.stdout and "PSI" in done.stdout and "3,000 rows" in done.stdout

    done = ecomlab_drift(registry, uri_arg, str(tmp_path / "missing.csv"))
    assert done.returncode == 2 and "missing.csv" in done.stderr + done.stdout
