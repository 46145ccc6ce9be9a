"""The Spark engine's loading and KPIs against the pandas engine: equal figures, equal quarantine, equal accounting."""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from features.kpis import kpi_report
from features.readers.files import SourceError
from features.sources import load
from tests.helpers import REPO, SHARED_DATA

pytestmark = [pytest.mark.spark, pytest.mark.long_module]

#: every shipped data config whose format the Spark engine reads (csv, whitespace, parquet, excel)
REAL = {"cdnow": "cdnow_lifetimes", "electronics_2019": "keithgalli_sales_2019", "superstore": "sample_superstore",
        "uci_online_retail": "uci_online_retail", "uci_online_retail_ii": "uci_online_retail_ii"}


def differences(spark_value: Any, pandas_value: Any, path: str = "") -> list[str]:
    """Where two JSON-ready reports differ: keys, lengths, strings and ints exactly, floats to 1e-9 relative."""
    a, b = spark_value, pandas_value
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        same = a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        return [] if same else [f"{path}: spark {a!r} vs pandas {b!r}"]
    return [] if a == b and type(a) is type(b) else [f"{path}: spark {a!r} vs pandas {b!r}"]


def same_quarantine(spark_loaded, local) -> None:
    key = ["column", "reason"]
    got = spark_loaded.quarantine_counts.sort_values(key, ignore_index=True)
    want = local.quarantine.summary().sort_values(key, ignore_index=True)
    assert got.astype(str).values.tolist() == want.astype(str).values.tolist()
    assert spark_loaded.accounting.as_dict() == local.accounting.as_dict()


@pytest.fixture(scope="module")
def pandas_reference():
    """name -> (local Loaded, pandas KPI report): every data set present is loaded once, in a background thread
    that starts with the module, so the pandas side runs while Spark works (Spark leaves a core idle often)."""
    present = [name for name in sorted(REAL) if (SHARED_DATA / REAL[name]).exists()]
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pandas-reference")
    futures: dict[str, Future] = {name: pool.submit(_reference, name) for name in present}

    def get(name: str) -> tuple[Any, dict[str, Any]]:
        if name not in futures:
            futures[name] = pool.submit(_reference, name)
        return futures[name].result()

    yield get
    for future in futures.values():
        future.cancel()
    pool.shutdown(wait=True)


def _reference(name: str) -> tuple[Any, dict[str, Any]]:
    loaded = load(REPO / "configs" / "data" / f"{name}.yaml")
    return loaded, kpi_report(loaded.lines, loaded.customers, loaded.inventory)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_data_kpis_and_quarantine_equal_pandas(name, spark, shared_data, pandas_reference) -> None:
    """One Spark load and one Spark report per data set, against the pandas engine's: every KPI table to 1e-9."""
    from features.spark.kpis import kpi_report_spark
    from features.spark.read import load_spark

    shared_data(REAL[name])
    got = load_spark(spark, REPO / "configs" / "data" / f"{name}.yaml")
    try:
        report = kpi_report_spark(got.lines, got.customers, got.inventory)
    finally:
        got.lines.unpersist()
    local, want = pandas_reference(name)
    same_quarantine(got, local)
    assert differences(report, want) == []


def _write_config(folder: Path, name: str, body: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **body}))
    return path


MALFORMED = """order,day,customer,sku,qty,price,note
A1,2024-01-05,C1,P1,2,3.50,ok
A1,2024-01-05,C1,P1,2,3.50,ok
A2,2024-13-40,C2,P2,1,2.00,bad date
A3,2024-01-07,C2,P2,two,2.00,not a number
,2024-01-08,C3,P3,1,1.00,no order id
A4,2024-01-08,C3,,1,1.00,no product
,,,,,,
order,day,customer,sku,qty,price,note
A5,2024-01-09,,P1,1.5,3.50,half a unit
A6,2024-01-09,C4,P1,0,3.50,zero
A7,2024-01-10,C4,P2,-1,2.00,a return
A8,2024-01-11,C5,P3,3,-1.00,negative price
A9,2024-01-12,C5,P3,1,1e400,too big
A10,2024-01-12,C1,P2,4,2.00,ok
A11,2024-02-01,C6,P1,1,3.50,ok
"""


def _malformed_source(folder: Path) -> Path:
    (folder / "a.csv").write_text(MALFORMED)
    (folder / "b.csv").write_text("order,day,customer,sku,qty,price,note\nA1,2024-01-05,C1,P1,2,3.50,ok\n"
                                  "B1,bad,C1,P1,1,1,x\nB2,worse,C1,P1,1,1,x\nB3,nope,C1,P1,1,1,x\nB4,never,C1,P1,1,1,x\n"
                                  "B5,2024-03-01,C7,P2,2,2.0,ok\n")
    return _write_config(folder, "malformed", {
        "format": "csv", "path": "*.csv", "date_format": "%Y-%m-%d",
        "columns": {"order_id": "order", "order_date": "day", "customer_id": "customer", "product_id": "sku",
                    "quantity": "qty", "unit_price": "price"},
        "extra_columns": {"note": "note"},
    })


def test_malformed_file_quarantined_like_local(spark, tmp_path) -> None:
    """Bad dates, non-numbers, missing ids, duplicates (within and across files), blank and header rows;
    Arrow batches and normaliser passes of 4 rows so a file spans several passes, one of them with no valid date."""
    from features.spark.read import load_spark

    config = _malformed_source(tmp_path)
    local = load(config)
    old = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "4")
    try:
        got = load_spark(spark, config, rows_per_pass=4)
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", old)
    same_quarantine(got, local)
    assert got.accounting.duplicates_dropped == 2 and got.accounting.rows_quarantined >= 10
    pd.testing.assert_frame_equal(got.quarantine.frame, local.quarantine.frame)
    lines = got.lines.toPandas().sort_values("_seq").drop(columns="_seq").reset_index(drop=True)
    want = local.lines.reset_index(drop=True)
    assert lines.astype(str).values.tolist() == want[lines.columns].astype(str).values.tolist()
    sample = load_spark(spark, config, sample_rows=3).quarantine.frame  # a bounded sample: every entry of the first rows
    first_rows = local.quarantine.frame.drop_duplicates(["file", "row"]).head(3)
    shown = local.quarantine.frame.merge(first_rows[["file", "row"]], on=["file", "row"])
    pd.testing.assert_frame_equal(sample, shown)


def test_date_format_nothing_matches_is_the_same_error(spark, tmp_path) -> None:
    from features.spark.read import load_spark

    (tmp_path / "x.csv").write_text("order,day,sku,qty,price\nA1,05/01/2024,P1,1,2\nA2,06/01/2024,P1,1,2\n")
    config = _write_config(tmp_path, "wrongformat", {
        "format": "csv", "path": "x.csv", "date_format": "%Y-%m-%d",
        "columns": {"order_id": "order", "order_date": "day", "product_id": "sku", "quantity": "qty", "unit_price": "price"},
    })
    with pytest.raises(SourceError) as local_error:
        load(config)
    with pytest.raises(SourceError) as spark_error:
        load_spark(spark, config)
    assert str(spark_error.value) == str(local_error.value)


def test_synthetic_shop_with_side_tables_equals_pandas(spark, tmp_path) -> None:
    """Engagement, signup cohorts and stockout risk need the customers and inventory tables: a small seeded shop."""
    from features import synthetic
    from features.spark.kpis import kpi_report_spark
    from features.spark.read import load_spark

    data = synthetic.generate(synthetic.synthetic_options({"n_customers": 300, "weeks": 40, "seed": 5}, "test"))
    data.lines.to_parquet(tmp_path / "lines.parquet", coerce_timestamps="us")  # Spark reads no nanoseconds
    data.customers.to_parquet(tmp_path / "customers.parquet")
    data.inventory.to_parquet(tmp_path / "inventory.parquet")
    columns = {c: c for c in ("order_id", "order_date", "customer_id", "product_id", "product_name", "category",
                              "quantity", "unit_price", "discount", "channel", "returned")}
    config = _write_config(tmp_path, "shop", {
        "format": "parquet", "path": "lines.parquet", "columns": columns,
        "customers": {"path": "customers.parquet"}, "inventory": {"path": "inventory.parquet"},
    })
    local = load(config)
    want = kpi_report(local.lines, local.customers, local.inventory, {"revenue_period": "week"})
    got = load_spark(spark, config)
    same_quarantine(got, local)
    report = kpi_report_spark(got.lines, got.customers, got.inventory, {"revenue_period": "week"})
    assert all("status" not in report[k] for k in ("engagement", "cohort_retention", "stockout_risk", "channels"))
    assert differences(report, want) == []
    # an inventory without categories: each product's category is that of its first line, as locally
    from features.kpis import run_kpi
    from features.spark.kpis import prepare_spark, run_kpi_spark

    bare = local.inventory.drop(columns=["category"])
    want_stock = run_kpi("stockout_risk", local.lines, None, bare)
    got_stock = run_kpi_spark("stockout_risk", prepare_spark(got.lines), None, bare)
    assert want_stock["by_category"] and differences(got_stock, want_stock) == []


def test_cli_engine_spark_prints_the_same_headline(spark, tmp_path) -> None:
    """`ecomlab kpis --engine spark` runs in-process (reusing the session): the same headline table as pandas.
    A small two-file CSV source: the real data sets' figures are the test above's."""
    from typer.testing import CliRunner

    from training.cli import app

    config = str(_malformed_source(tmp_path))
    runner = CliRunner()
    by_spark = runner.invoke(app, ["kpis", config, "--engine", "spark"])
    by_pandas = runner.invoke(app, ["kpis", config])
    assert by_spark.exit_code == 0, by_spark.output
    assert by_pandas.exit_code == 0, by_pandas.output
    table = by_spark.output[by_spark.output.index("KPIs"):]
    assert "net revenue" in table
    assert table == by_pandas.output[by_pandas.output.index("KPIs"):]


def test_engine_keys_in_data_configs(tmp_path) -> None:
    from features.config_io import ConfigError
    from features.source_config import load_source_config

    good = _write_config(tmp_path, "good", {"format": "synthetic", "engine": "spark", "spark": {"master": "local[1]"}})
    cfg = load_source_config(good)
    assert cfg.engine == "spark" and cfg.spark.master == "local[1]"
    bad = _write_config(tmp_path, "bad", {"format": "synthetic", "engine": "dask"})
    with pytest.raises(ConfigError, match="engine"):
        load_source_config(bad)
