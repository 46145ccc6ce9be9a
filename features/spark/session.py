"""Starting a Spark session from `SparkSettings`, with one-line errors for what a user can fix.

Checked here: pyspark 4.3 with Java 17 starts `local[2]` in about 5 s. Python workers must run this
interpreter (`PYSPARK_PYTHON`), else they start a Python without pandas. pyspark 4.3 warns that pandas 3
is "not yet fully supported"; what we use is tested (tests/features/test_spark_*.py), so that one warning
is filtered.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import warnings
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from features.spark.settings import SparkSettings

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

INSTALL_HINT = "pip install 'ecomlab[spark]' (or: uv sync --extra spark)"
JAVA_HINT = "install a Java 17 runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17) or set JAVA_HOME"


class SparkUnavailable(RuntimeError):
    """Spark cannot be used here: pyspark or Java missing, or the master unreachable. The message says how to fix it."""


def quiet_pandas_warning() -> None:
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


def java_executable() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = os.path.join(home, "bin", "java")
        return candidate if os.access(candidate, os.X_OK) else None
    return shutil.which("java")


def _check_reachable(url: str, default_port: int) -> None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "localhost", parsed.port or default_port
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise SparkUnavailable(f"Spark master {url} cannot be reached ({exc.strerror or exc}); check spark.master in the config") from None


def check_requirements(settings: SparkSettings) -> None:
    """pyspark installed; Java present when this process runs a JVM; a remote master reachable. Raises SparkUnavailable."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(f"engine: spark needs pyspark, which is not installed: {INSTALL_HINT}") from None
    if settings.is_connect:
        _check_reachable(settings.master, 15002)
        return
    if java_executable() is None:
        where = f"JAVA_HOME={os.environ['JAVA_HOME']} has no bin/java" if os.environ.get("JAVA_HOME") else "no java on PATH"
        raise SparkUnavailable(f"engine: spark needs Java 17 ({where}): {JAVA_HINT}")
    if settings.master.startswith("spark://"):
        _check_reachable(settings.master, 7077)


def spark_session(settings: SparkSettings | None = None) -> SparkSession:
    """The active session, or a new one built from `settings` (one per process, as Spark wants)."""
    settings = settings or SparkSettings()
    check_requirements(settings)
    quiet_pandas_warning()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(settings.app_name)
    builder = builder.remote(settings.master) if settings.is_connect else builder.master(settings.master)
    conf = {
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # file partitions of at most 32 MB (Spark's 128 MB packs ~8M Parquet lines into one task): the loader
        # validates and caches each partition in one task, and at 19M lines under a 2 GB driver two 8M-line
        # tasks' cache unrolling left their aggregate no memory (AGGREGATE_OUT_OF_MEMORY, bench/spark.py)
        "spark.sql.files.maxPartitionBytes": "32m",
        "spark.ui.showConsoleProgress": "false",
        # the Python workers would print that warning once each (the driver filters it above)
        "spark.executorEnv.PYTHONWARNINGS": "ignore:PySpark does not yet fully support pandas:FutureWarning",
        **({"spark.driver.memory": settings.driver_memory} if settings.driver_memory else {}),
        **settings.conf,
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start or the master refused us: say so in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SparkUnavailable(f"Spark session could not start on {settings.master}: {first}") from None
    if not settings.is_connect:
        session.sparkContext.setLogLevel("ERROR")
    return session
