"""`ecomlab score ... --engine spark` (issue 13, batch scoring): registered models give the local engine's
predictions on Spark, every row stamped with the model's name and version: the segmenter and the clv model
through mlflow.pyfunc.spark_udf, the forecaster (`horizon` rows per input row) and the recommender (list cells)
through mapInPandas with the local per-chunk code; bad cells and refused rows are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.serving.test_batch import clv_model, customers, forecaster_model, recommender_model, segmenter_model, summaries
from training.cli import app

pytestmark = pytest.mark.spark
runner = CliRunner()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, mlflow_template_db: Path) -> str:
    """A store with a model of each family registered as champion (no training job)."""
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
        "rec": (recommender_model(), pd.DataFrame({"items": [["apple", "kiwi"]], "k": [2]})),
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


def test_forecaster_and_recommender_on_spark_equal_local(spark, registry: str, tmp_path: Path) -> None:
    """Rows that ask for several output rows (forecaster, per-row levels) and list cells in and out (recommender,
    CSV cells as JSON lists or space-separated labels, Parquet lists), the basket ids passed through."""
    rng = np.random.default_rng(5)
    n = 300
    forecasts = pd.DataFrame({"series_id": rng.choice(["toys", "books"], n), "horizon": rng.integers(1, 6, n)})
    forecasts.to_parquet(tmp_path / "fc.parquet", index=False)
    forecasts.assign(levels="80 95").to_csv(tmp_path / "fc.csv", index=False)
    labels = np.array(["apple", "bread", "cheese", "dates", "eggs", "kiwi"])
    baskets = [list(rng.choice(labels, rng.integers(0, 4), replace=False)) for _ in range(n)]
    rec = pd.DataFrame({"basket_id": [f"b{i}" for i in range(n)], "items": baskets, "k": rng.integers(1, 5, n).astype(float)})
    rec.to_parquet(tmp_path / "rec.parquet", index=False)
    rec.assign(items=[json.dumps(b) if i % 2 else " ".join(b) for i, b in enumerate(baskets)]).to_csv(tmp_path / "rec.csv", index=False)
    for model, source in [("fc", "fc.parquet"), ("fc", "fc.csv"), ("rec", "rec.parquet"), ("rec", "rec.csv")]:
        for out_suffix in (".parquet", ".csv"):
            local_out, spark_out = tmp_path / f"{source}.local{out_suffix}", tmp_path / f"{source}.spark{out_suffix}"
            done = score(registry, f"models:/{model}@champion", tmp_path / source, local_out)
            assert done.exit_code == 0, done.output
            done = score(registry, f"models:/{model}@champion", tmp_path / source, spark_out, "--engine", "spark")
            assert done.exit_code == 0, done.output
            assert f"with {model} version 1" in done.output
            local, spark_rows = read(local_out), read(spark_out)
            if out_suffix == ".parquet" and model == "rec":  # list cells: compare them as lists
                for column in ("items", "scores", "rules", "unknown_items"):
                    assert [_plain(v) for v in spark_rows[column]] == [_plain(v) for v in local[column]], column
                local, spark_rows = local.drop(columns=["items", "scores", "rules", "unknown_items"]), \
                    spark_rows.drop(columns=["items", "scores", "rules", "unknown_items"])
            assert_same(local, spark_rows)
    assert len(local) == n and local["basket_id"].tolist() == rec["basket_id"].tolist()
    fc = read(tmp_path / "fc.csv.spark.csv")
    assert len(fc) == forecasts["horizon"].sum() and {"lo_80", "hi_95"} <= set(fc.columns)


def _plain(value: object) -> object:
    value = value.tolist() if hasattr(value, "tolist") else value
    return [_plain(v) for v in value] if isinstance(value, list) else value


def test_refused_rows_and_bad_cells_are_one_line(spark, registry: str, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    for at in (1, 60):  # in the first rows (read on the driver) and beyond them (an executor refuses it)
        rows = pd.DataFrame({"series_id": ["toys"] * 80, "horizon": [3] * 80})
        rows.loc[at] = ["nope", 2]
        rows.to_csv(source, index=False)
        done = score(registry, "models:/fc@champion", source, tmp_path / "out.parquet", "--engine", "spark")
        assert done.exit_code == 2
        assert "input row with series_id='nope', horizon=2.0: unknown series_id 'nope'" in done.output, done.output
        assert "Traceback" not in done.output and "Py4J" not in done.output
        assert not (tmp_path / "out.parquet").exists()
    (tmp_path / "baskets.csv").write_text('items,k\n"[""apple"", ",2\n')
    done = score(registry, "models:/rec@champion", tmp_path / "baskets.csv", tmp_path / "out.parquet", "--engine", "spark")
    assert done.exit_code == 2 and "column 'items': not a JSON list" in done.output, done.output
    bad = summaries(5, seed=3).astype({"monetary": object})
    bad.loc[2, "monetary"] = "lots"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    done = score(registry, "models:/clv@champion", tmp_path / "bad.csv", tmp_path / "out.parquet", "--engine", "spark")
    assert done.exit_code == 2
    assert "column 'monetary': 'lots' is not a number" in done.output
    assert not (tmp_path / "out.parquet").exists()
