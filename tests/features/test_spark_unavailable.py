"""`engine: spark` where Spark cannot run: no Java, or a master that cannot be reached. The command says what
is missing and how to get it in one line and exits 2, before reading any data; run as a user runs it
(`ecomlab kpis CONFIG --engine spark`, a fresh process, no JVM ever started)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("pyspark", reason="the spark extra is not installed (uv sync --extra spark)")
pytestmark = pytest.mark.slow  # fresh interpreters, as a user runs the command


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kpis(tmp_path: Path, spark: dict | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "lines.csv").write_text("order,day,sku,qty,price\nA1,2024-01-05,P1,2,3.50\n")
    body = {"name": "tiny", "format": "csv", "path": "lines.csv",
            "columns": {"order_id": "order", "order_date": "day", "product_id": "sku", "quantity": "qty", "unit_price": "price"}}
    if spark:
        body["spark"] = spark
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(body))
    return subprocess.run([sys.executable, "-m", "training.cli", "kpis", str(config), "--engine", "spark"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
                          cwd=Path(__file__).resolve().parents[2])


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_no_java_names_it_and_how_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "jdk"
    empty.mkdir()
    line = one_line(kpis(tmp_path, env={"JAVA_HOME": str(empty)}))
    assert "needs Java 17" in line and f"JAVA_HOME={empty} has no bin/java" in line and "apt-get install openjdk-17" in line


@pytest.mark.parametrize("scheme, what", [("spark", "standalone master"), ("sc", "Spark Connect server")])
def test_unreachable_master_names_it(tmp_path: Path, scheme: str, what: str) -> None:
    master = f"{scheme}://127.0.0.1:{closed_port()}"
    line = one_line(kpis(tmp_path, spark={"master": master}))
    assert f"Spark master {master} cannot be reached" in line and "spark.master" in line, what
