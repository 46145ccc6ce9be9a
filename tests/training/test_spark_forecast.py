"""Forecasts for many series on the Spark engine (issue 13): `ecomlab train CONFIG --engine spark` fits, backtests and
selects per series through groupBy(series).applyInPandas, and chooses the local engine's orders and forecasts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.helpers import tiny_job
from training.cli import app

pytestmark = pytest.mark.spark


def test_forecast_job_on_spark_equals_local(spark, tracking_dir: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from training.jobs import run_job

    config = tiny_job("forecaster", tracking_dir)
    quick = ["model.backtest.folds=2", "model.backtest.selection_folds=2"]  # 6 category series, 2 trials, 2 + 2 windows
    local = run_job(config, [*quick, "model.max_workers=1"])
    args = ["train", str(config), "--engine", "spark", *(a for o in quick for a in ("--set", o))]
    done = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert done.exit_code == 0, done.output
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("tiny-forecaster").experiment_id],
                              "tags.`ecomlab.job` = 'forecast'", order_by=["attributes.start_time DESC"])
    on_spark = runs[0]
    assert on_spark.info.run_id != local.run_id and on_spark.data.tags["ecomlab.engine"] == "spark"

    chosen = {k: v for k, v in on_spark.data.params.items() if k.startswith("best.")}
    assert chosen == {k: v for k, v in mlflow.get_run(local.run_id).data.params.items() if k.startswith("best.")}
    assert on_spark.data.metrics["best_mase"] == pytest.approx(local.candidate.objective, rel=1e-9)

    tables = {a.path for a in client.list_artifacts(on_spark.info.run_id, "tables")}  # the per-series tables, in the one parent run
    assert {"tables/candidate_details.csv", "tables/models.csv"} <= tables
    series = pd.read_csv(client.download_artifacts(on_spark.info.run_id, "tables/models.csv", str(tracking_dir)))
    assert len(series) == len(local.best_params["per_series"]) >= 3

    version = client.search_model_versions(f"run_id = '{on_spark.info.run_id}'")[0].version
    models = [mlflow.pyfunc.load_model(f"models:/{local.model_name}/{v}") for v in (local.decision.version, version)]
    local_model, spark_model = (m.unwrap_python_model() for m in models)
    assert spark_model.series_specs() == local_model.series_specs()  # the same orders, trend and Fourier terms per series
    request = pd.DataFrame({"series_id": local_model.series_ids, "horizon": [6] * len(local_model.series_ids)})
    expected, got = local_model.predict(None, request), spark_model.predict(None, request)
    assert list(got.columns) == list(expected.columns)
    numbers = [c for c in expected.columns if expected[c].dtype.kind == "f"]
    assert {"yhat", "lo_80", "hi_95"} <= set(numbers)
    np.testing.assert_allclose(got[numbers].to_numpy(), expected[numbers].to_numpy(), rtol=1e-9, atol=1e-9)
    assert got.drop(columns=numbers).equals(expected.drop(columns=numbers))
