"""Faults around the model service, each with real processes: `bentoml serve` and `mlflow server` on loopback.

The registry is unreachable at start, it goes away between reloads, and the BentoML worker is
SIGKILLed under load. (An alias pointing to a version without artifacts is in test_service.py.)
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from tests.service_harness import MlflowServer, Server, free_port, start, start_mlflow_server, write_serve_config

pytestmark = [pytest.mark.service, pytest.mark.long_module]

MODELS = [{"family": f, "name": f"ecomlab-{f}", "alias": "champion"} for f in ("segmenter", "forecaster", "recommender")]
CUSTOMER = {"recency": 12.0, "frequency": 9.0, "monetary": 850.0, "quantity": 40.0, "tenure": 400.0, "aov": 94.4, "return_rate": 0.02}
LINE = {"order_id": "1", "order_date": "2024-01-03", "customer_id": "a", "product_id": "p1", "quantity": 2, "unit_price": 10.0}


def _series() -> str:
    """A series the session forecaster knows (a category of the synthetic shop the registry fixture trains on)."""
    from features.synthetic import generate

    return str(generate(n_customers=50, weeks=10, seed=3).lines["category"].iloc[0])


MODEL_CALLS = {
    "/segment": {"customers": [CUSTOMER]},
    "/forecast": {"queries": [{"series_id": _series(), "horizon": 2}]},
    "/recommend": {"baskets": [{"items": ["any"]}]},  # an unknown item is reported, not an error
}


def wait_for(what: str, check: Callable[[], bool], timeout: float, server: Server) -> float:
    """Seconds until `check()` holds; fails with the service log's tail after `timeout`."""
    started = time.time()
    while not check():
        if time.time() - started > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{server.tail()}")
        time.sleep(0.3)
    return time.time() - started


def server_db(registry: tuple[Path, str], folder: Path) -> str:
    """A copy of the session registry for an `mlflow server`; model artifacts stay where they are (file URIs)."""
    source = Path(registry[1].removeprefix("sqlite:///"))
    shutil.copy(source, folder / "server.db")
    return f"sqlite:///{folder / 'server.db'}"


def test_registry_down_at_start_then_up(registry: tuple[Path, str], tmp_path: Path) -> None:
    """Alive but not ready, model endpoints 503 with the reason; ready once the registry comes up."""
    port = free_port()  # nothing listens here until the mlflow server starts on it
    config = write_serve_config(tmp_path, MODELS, reload_interval_s=1)
    srv = start(tmp_path, config, f"http://127.0.0.1:{port}", wait_ready=False)
    mlflow_server: MlflowServer | None = None
    try:
        assert httpx.get(srv.url + "/healthz").status_code == 200
        assert httpx.get(srv.url + "/livez").status_code == 200
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 503 and f"registry unreachable at http://127.0.0.1:{port}" in ready.text, ready.text
        for path, body in MODEL_CALLS.items():
            resp = httpx.post(srv.url + path, json=body, timeout=30)
            assert resp.status_code == 503, (path, resp.status_code, resp.text)
            assert "model unavailable" in resp.text and "registry unreachable" in resp.text, resp.text
            assert resp.headers.get("retry-after") == "1"
        models = httpx.post(srv.url + "/models", json={}, timeout=30).json()
        assert "registry unreachable" in models["registry_error"]
        assert {m["status"] for m in models["models"]} == {"unavailable"}
        assert httpx.post(srv.url + "/kpis", json={"lines": [LINE]}, timeout=30).status_code == 200  # needs no model
        assert srv.process.poll() is None

        mlflow_server = start_mlflow_server(tmp_path, server_db(registry, tmp_path), port=port)
        took = wait_for("ready after the registry came up", lambda: httpx.get(srv.url + "/readyz").status_code == 200, 60, srv)
        print(f"registry up: service ready {took:.1f} s after mlflow server answered /health")
        resp = httpx.post(srv.url + "/segment", json=MODEL_CALLS["/segment"], timeout=30)
        assert resp.status_code == 200, resp.text
        models = httpx.post(srv.url + "/models", json={}, timeout=30).json()
        assert models["registry_error"] is None and {m["status"] for m in models["models"]} == {"serving"}
        log = srv.log.read_text(errors="replace")
        assert "registry unreachable" in log and "registry reachable again" in log
        assert log.count("ecomlab-segmenter@champion not (re)loaded") <= 3  # logged when it starts or changes, not every second
    finally:
        srv.stop()
        if mlflow_server is not None:
            mlflow_server.stop()


def test_registry_down_during_reloads_keeps_serving(registry: tuple[Path, str], tmp_path: Path) -> None:
    """The registry goes away under a 1 s reload: every request still 200, ready, the error reported and logged."""
    mlflow_server = start_mlflow_server(tmp_path, server_db(registry, tmp_path))
    srv: Server | None = None
    try:
        config = write_serve_config(tmp_path, MODELS, reload_interval_s=1)
        srv = start(tmp_path, config, mlflow_server.url)
        statuses: list[int | str] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=30) as http:
                while not stop.is_set() and len(statuses) < 5000:
                    for path, body in MODEL_CALLS.items():
                        try:
                            statuses.append(http.post(srv.url + path, json=body).status_code)
                        except httpx.HTTPError as exc:
                            statuses.append(type(exc).__name__)
                    time.sleep(0.05)

        worker = threading.Thread(target=client)
        worker.start()
        try:
            time.sleep(1)
            assert httpx.post(srv.url + "/models", json={}, timeout=30).json()["registry_error"] is None
            mlflow_server.stop()

            def reported() -> bool:
                return bool(httpx.post(srv.url + "/models", json={}, timeout=30).json()["registry_error"])

            took = wait_for("/models reports the registry error", reported, 30, srv)
            print(f"registry stopped: reported by /models after {took:.1f} s")
            time.sleep(3)  # a few more reload rounds against the dead registry
        finally:
            stop.set()
            worker.join()
        assert statuses and set(statuses) == {200}, f"{len(statuses)} requests, statuses {set(statuses)}"
        models = httpx.post(srv.url + "/models", json={}, timeout=30).json()
        assert f"registry unreachable at {mlflow_server.url}" in models["registry_error"]
        assert all(m["status"] == "serving" and m["version"] and "registry unreachable" in m["error"] for m in models["models"])
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert f"registry unreachable at {mlflow_server.url}" in ready.json()["registry_error"]  # serving, and reported
        assert srv.process.poll() is None
        assert "registry unreachable" in srv.log.read_text(errors="replace")
    finally:
        if srv is not None:
            srv.stop()
        mlflow_server.stop()


def worker_pids(server: Server) -> list[int]:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [p.pid for p in children if "_bentoml_impl.worker.service" in " ".join(p.cmdline())]


def test_worker_killed_under_load_is_restarted(registry: tuple[Path, str], tmp_path: Path) -> None:
    """SIGKILL the one BentoML worker while 4 clients post: the arbiter starts a new one and few requests fail."""
    _, uri = registry
    config = write_serve_config(tmp_path, MODELS[:1])
    srv = start(tmp_path, config, uri)
    results: list[tuple[float, float, int | str]] = []  # (sent, answered, status or error)
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set() and len(results) < 20_000:
                sent = time.time()
                try:
                    status: int | str = http.post(srv.url + "/segment", json={"customers": [CUSTOMER] * 4}).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                results.append((sent, time.time(), status))

    clients = [threading.Thread(target=client) for _ in range(4)]
    try:
        (old,) = worker_pids(srv)
        for c in clients:
            c.start()
        time.sleep(1.5)
        assert results and all(r[2] == 200 for r in results), {r[2] for r in results}
        worker = psutil.Process(old)
        worker.kill()
        worker.wait(timeout=30)  # dead: a request sent from now on cannot be answered by it
        killed = time.time()

        def back() -> bool:
            return any(sent > killed and status == 200 for sent, _, status in list(results))

        wait_for("a request sent after the kill answered 200", back, 90, srv)
        back_in = min(answered for sent, answered, status in list(results) if sent > killed and status == 200) - killed
        time.sleep(1)
    finally:
        stop.set()
        for c in clients:
            if c.is_alive() or c.ident is not None:
                c.join()
        try:
            new = worker_pids(srv)
        finally:
            srv.stop()
    failed = [r for r in results if r[2] != 200]
    print(f"worker kill: {len(failed)} of {len(results)} requests failed, service back in {back_in:.1f} s")
    print(f"worker kill: failures {sorted({str(r[2]) for r in failed})}")
    assert new and old not in new, f"worker {old} not replaced: {new}"
    assert len(failed) <= 2 * len(clients), f"{len(failed)} failed: {sorted({str(r[2]) for r in failed})}"
    assert all(sent <= killed + back_in for sent, _, status in failed), "requests failed after the service was back"
