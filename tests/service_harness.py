"""Start a real `bentoml serve` of the ecomlab service (and a real `mlflow server`) on loopback, the way users start them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    dashboard_dir: Path | None = None  # its workers' shared dashboard folder (the last uploaded file's KPIs)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def write_serve_config(folder: Path, models: list[dict], **settings) -> Path:
    cfg = {"host": "127.0.0.1", "port": 3000, "models": models, "reload_interval_s": 0, **settings}
    path = folder / "serve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(folder: Path, config: Path, tracking_uri: str, env: dict[str, str] | None = None, wait_ready: bool = True) -> Server:
    port = free_port()
    log = folder / f"serve-{port}.log"
    full_env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "ECOMLAB_SERVE_CONFIG": str(config),
        # a home per server: BentoML keeps its Prometheus multiprocess files there and clears them at
        # start, so servers sharing one home wiped each other's counters
        "BENTOML_HOME": str(folder / f"bentoml-home-{port}"),
        "ECOMLAB_DASHBOARD_DIR": str(folder / f"dashboard-{port}"),  # its workers' shared folder (the last upload), its own
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:EcomlabService", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=full_env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process, log, Path(full_env["ECOMLAB_DASHBOARD_DIR"]))
    wait_until_up("bentoml serve", process, server.url + ("/readyz" if wait_ready else "/healthz"), 120, log, server.stop)
    return server


def wait_until_up(what: str, process: subprocess.Popen, url: str, timeout: float, log: Path, stop) -> None:
    """Poll `url` until it answers 200. If the process exits or `timeout` seconds pass first, `stop()`
    it and raise RuntimeError with the tail of its log."""
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.time() > deadline:
            stop()
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"{what}: no 200 from {url} within {timeout:.0f} s (exit code {process.returncode}):\n{tail}")
        time.sleep(0.5)


@dataclass
class MlflowServer:
    url: str
    port: int
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        """SIGTERM to the whole process group (`mlflow server` runs uvicorn as a child), SIGKILL after 20 s."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=20)
                return
            except subprocess.TimeoutExpired:
                continue


def start_mlflow_server(folder: Path, backend_uri: str, port: int | None = None, timeout: float = 90) -> MlflowServer:
    """`mlflow server` on loopback over `backend_uri`, in its own process group; waits for /health.

    The server's job runner (huey consumers, ~7 processes) is switched off: nothing here uses it.
    """
    port = port or free_port()
    log = folder / f"mlflow-server-{port}.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", backend_uri, "--artifacts-destination", str(folder / "server-artifacts"), "--workers", "1",
        ],
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=folder, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    server = MlflowServer(f"http://127.0.0.1:{port}", port, process, log)
    wait_until_up("mlflow server", process, server.url + "/health", timeout, log, server.stop)
    return server
