"""The service side imports nothing that only training uses: a registered model serves where
`training`, optuna and matplotlib are absent (DESIGN: no arrow runs serving -> training)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO  # noqa: E402

pytestmark = pytest.mark.slow  # a fresh interpreter per check

TRAINING_ONLY = ("training", "optuna", "matplotlib")


def imported_after(module: str) -> list[str]:
    """Top-level packages of TRAINING_ONLY in sys.modules after importing `module` in a fresh interpreter."""
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(TRAINING_ONLY)!r}))))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["serving.service", "serving.store", "serving.models.registry", "serving.tracking_uri"])
def test_serving_imports_nothing_training_only(module: str) -> None:
    assert imported_after(module) == []


def test_tracking_uri_imports_no_mlflow() -> None:
    code = "import sys, serving.tracking_uri; print('mlflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def pyspark_after(code: str) -> bool:
    """Whether pyspark is in sys.modules after `code` ran in a fresh interpreter (pyspark is installed here)."""
    probe = f"{code}\nimport sys; print('pyspark' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1] == "True"


def test_default_path_loads_no_pyspark_and_spark_stays_usable() -> None:
    """The service and the quickstart's modules never load pyspark, though the spark extra is installed
    here and both pandera and mlflow would load it by themselves (features/spark/guard.py); a Spark-engine
    process that imported them still imports pyspark (the guard hides it only while importing)."""
    pytest.importorskip("pyspark", reason="the check needs pyspark installed (the test extra has it)")
    assert pyspark_after("import pandera.pandas") is True  # the behaviour worked around: if this fails, drop the guard
    code = (
        "import sys, serving.service, mlflow.pyfunc, mlflow.models\n"
        "from features.spark.guard import mlflow_without_pyspark; mlflow_without_pyspark()\n"
        "import training.cli, training.cli.quickstart, training.jobs, training.families, features.sources, features.kpis, "
        "features.synthetic, features.report, features.btyd.report\n"
        "assert 'pyspark' not in sys.modules, sorted(m for m in sys.modules if m.startswith('pyspark'))\n"
        "import pyspark.sql"
    )
    assert pyspark_after(code) is True
