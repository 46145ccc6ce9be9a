"""Keeping pyspark out of the default path: the quickstart, the pandas engine and the service never load it.

pandera 0.35's package `__init__` runs `import pyspark.pandas` whenever pyspark is installed (to let
pyspark patch pandas' type hints), so with the `spark` extra installed every `import pandera.pandas`
would start pyspark's imports (about 1 s and its "pandas 3 not fully supported" warnings) in processes
that never use Spark, the service among them. `without_pyspark()` makes that one import fail as if
pyspark were absent, which pandera handles; a process that already uses Spark is left alone.
tests/test_layout.py checks that the service, the CLI and the pandas engine import no pyspark.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

_BLOCKED = ("pyspark", "pyspark.pandas")


@contextmanager
def without_pyspark() -> Iterator[None]:
    """Within the block, `import pyspark` raises ImportError, unless pyspark is already loaded; then only
    `pyspark.pandas` does (pandas-on-Spark, which ecomlab never uses and which pyspark 4.3 cannot import
    beside pandas 3 anyway): Spark's Python workers import pandera for the validation they run."""
    blocked = _BLOCKED if "pyspark" not in sys.modules else ("pyspark.pandas",) if "pyspark.pandas" not in sys.modules else ()
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not importable" marker
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


#: mlflow 3.17 modules that run `import pyspark` at import time whenever pyspark is installed
MLFLOW_PROBES = ("mlflow", "mlflow.types.schema", "mlflow.types.utils", "mlflow.models.utils", "mlflow.pyfunc",
                 "mlflow.tracking._model_registry.utils", "mlflow.utils.databricks_utils")


def mlflow_without_pyspark() -> None:
    """Import mlflow's pyspark-probing modules with pyspark hidden, for processes that never use Spark.

    The service and the quickstart call it first: with the `spark` extra installed, mlflow would
    otherwise load pyspark's Python package (~0.4 s and a few MB) into every service worker. mlflow then
    treats the process as one without Spark, which it is. A process already using Spark is left alone."""
    import importlib

    with without_pyspark():
        for name in MLFLOW_PROBES:
            importlib.import_module(name)
