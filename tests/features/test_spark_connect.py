"""The same job against Spark Connect: only the master URL changes (`spark.master: sc://host:port`).

A real Spark Connect server is started as users start one (`sbin/start-connect-server.sh`, shipped with
pyspark, in the foreground), on loopback; `ecomlab kpis CONFIG --engine spark` then runs through it as a
client (no JVM in the client process) and prints what the pandas engine prints: the same quarantine and
the same KPI table."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.features.test_spark_kpis import MALFORMED, differences
from tests.service_harness import free_port

pytest.importorskip("pyspark.sql.connect", reason="the spark extra is not installed (uv sync --extra spark)")
pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory):
    """`start-connect-server.sh --master local[2]` on 127.0.0.1, in the foreground; its sc:// URL."""
    import pyspark

    from features.spark.session import java_executable

    if java_executable() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no Java: under CI the Spark tests must run")
        pytest.skip("no Java 17 (apt-get install openjdk-17-jre-headless)")
    home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("connect")
    port = free_port()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_NO_DAEMONIZE": "1", "SPARK_LOG_DIR": str(logs),
           "SPARK_PID_DIR": str(logs), "PYSPARK_PYTHON": sys.executable}
    log = logs / "server.log"
    argv = ["bash", str(home / "sbin" / "start-connect-server.sh"), "--master", "local[2]",
            "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.session.timeZone=UTC"]
    server = subprocess.Popen(argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the Spark Connect server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def kpis(config: Path, engine: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.cli", "kpis", str(config), "--engine", engine, "--out",
                           str(config.parent / f"out-{engine}")], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "COLUMNS": "300"})


def test_kpis_through_spark_connect_equal_pandas(connect_server: str, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(MALFORMED)
    config = tmp_path / "malformed.yaml"
    config.write_text(yaml.safe_dump({
        "name": "malformed", "format": "csv", "path": "*.csv", "date_format": "%Y-%m-%d",
        "columns": {"order_id": "order", "order_date": "day", "customer_id": "customer", "product_id": "sku",
                    "quantity": "qty", "unit_price": "price"},
        "spark": {"master": connect_server},
    }))
    by_connect, by_pandas = kpis(config, "spark"), kpis(config, "pandas")
    assert by_connect.returncode == 0, by_connect.stdout + by_connect.stderr
    assert by_pandas.returncode == 0, by_pandas.stdout + by_pandas.stderr
    assert "KPIs" in by_connect.stdout and "net revenue" in by_connect.stdout
    def table(out: str) -> list[str]:  # pandas shows a loading bar before it and the customer-lifetime
        lines = out[out.index("KPIs"):].replace("out-spark", "out-pandas").splitlines()  # section's line (pandas only)
        return [ln for ln in lines if not ln.startswith("customer lifetime")]

    assert table(by_connect.stdout) == table(by_pandas.stdout)
    spark, pandas = (json.loads((tmp_path / f"out-{e}" / "kpis.json").read_text()) for e in ("spark", "pandas"))
    assert spark["meta"].pop("engine") == "spark" and "engine" not in pandas["meta"]
    assert spark["meta"]["rows_quarantined"] == 10 and spark["meta"]["duplicates_dropped"] == 1
    assert differences(spark, pandas) == []  # every KPI table, the quarantine and the accounting
