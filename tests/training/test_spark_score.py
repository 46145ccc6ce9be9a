"""`ecomlab score ... --engine spark` (issue 13, batch scoring): registered models through mlflow.pyfunc.spark_udf
give the local engine's predictions, every row stamped with the model's name and version; the families
Spark cannot score say so in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.serving.test_batch import clv_model, customers, forecaster_model, segmenter_model, summaries
from training.cli import app

pytestmark = pytest.mark.spark
runner = CliRunner()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, mlflow_template_db: Path) -> str:
    """A store with a segmenter, a clv model and a forecaster registered as champions (no training job)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from tests.helpers import fresh_mlflow_db
    from training import tracking

    folder = tmp_path_factory.mktemp("spark-score")
    uri = fresh_mlflow_db(mlflow_template_db, folder)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    mlflow.set_experiment(experiment_id=client.create_experiment("score", artifact_location=(folder / "art").as_uri()))
    clv_example = summaries(3, 0).assign(horizon=[26.0, 52.0, np.nan], discount_rate=[0.1, 0.1, np.nan])  # as training.clv logs it
    clv_example["customer_id"] = clv_example["customer_id"].astype(object).where(clv_example["horizon"].notna(), None)
    examples = {
        "seg": (segmenter_model(), customers(3, 0)),
        "clv": (clv_model(), clv_example),
        "fc": (forecaster_model(), pd.DataFrame({"series_id": ["toys"], "horizon": [2]})),
    }
    for name, (model, example) in examples.items():
        with mlflow.start_run():
            logged = tracking.log_model(model, example, model.predict(None, example))
        client.set_registered_model_alias(name, "champion", str(mlflow.register_model(logged.uri, name).version))
    return uri


def score(uri: str, model: str, source: Path, out: Path, *extra: str) -> object:
    return runner.invoke(app, ["score", model, str(source), "--out", str(out), *extra],
                         env={"MLFLOW_TRACKING_URI": uri, "COLUMNS": "300"})


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"model_version": str})


def assert_same(local: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert list(spark.columns) == list(local.columns)
    assert len(spark) == len(local)
    for column in local.columns:
        a, b = local[column], spark[column]
        if a.dtype.kind == "f":
            np.testing.assert_allclose(b.to_numpy(dtype="float64"), a.to_numpy(dtype="float64"), rtol=1e-12, atol=0)
        else:
            assert b.astype(str).tolist() == a.astype(str).tolist(), column


@pytest.mark.parametrize(("model", "rows", "suffix", "extra"), [
    ("seg", lambda: customers(500, seed=11), ".parquet", ()),
    ("clv", lambda: summaries(500, seed=12), ".csv", ("--horizon", "26", "--discount-rate", "0.08")),
])
def test_spark_scoring_equals_local(spark, registry: str, tmp_path: Path, model: str, rows, suffix: str, extra: tuple) -> None:
    frame = rows()
    if model == "clv":  # half the rows bring their own horizon: the command line's fills the others
        frame["horizon"] = np.where(np.arange(len(frame)) % 2 == 0, 13.0, np.nan)
    source = tmp_path / f"in{suffix}"
    frame.to_parquet(source, index=False) if suffix == ".parquet" else frame.to_csv(source, index=False)
    for out_suffix in (".parquet", ".csv"):
        local_out, spark_out = tmp_path / f"local{out_suffix}", tmp_path / f"spark{out_suffix}"
        done = score(registry, f"models:/{model}@champion", source, local_out, *extra)
        assert done.exit_code == 0, done.output
        done = score(registry, f"models:/{model}@champion", source, spark_out, *extra, "--engine", "spark")
        assert done.exit_code == 0, done.output
        assert f"with {model} version 1" in done.output
        local, spark_rows = read(local_out), read(spark_out)
        assert_same(local, spark_rows)
        assert set(spark_rows["model_name"]) == {model} and set(spark_rows["model_version"]) == {"1"}
    assert local["customer_id"].tolist() == frame["customer_id"].tolist()  # every input row, in order


def test_spark_scoring_refuses_a_forecaster_and_bad_cells_in_one_line(spark, registry: str, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    pd.DataFrame({"series_id": ["toys"], "horizon": [3]}).to_csv(source, index=False)
    done = score(registry, "models:/fc@champion", source, tmp_path / "out.parquet", "--engine", "spark")
    assert done.exit_code == 2
    assert "forecaster model is not scored with --engine spark" in done.output
    assert "Traceback" not in done.output
    bad = summaries(5, seed=3).astype({"monetary": object})
    bad.loc[2, "monetary"] = "lots"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    done = score(registry, "models:/clv@champion", tmp_path / "bad.csv", tmp_path / "out.parquet", "--engine", "spark")
    assert done.exit_code == 2
    assert "column 'monetary': 'lots' is not a number" in done.output
    assert not (tmp_path / "out.parquet").exists()
