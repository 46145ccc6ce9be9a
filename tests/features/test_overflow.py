"""Numbers a column cannot hold safely are quarantined as "out of range"; KPIs never see wrapped, infinite or NaN values.

Issue 11: a quantity of 99999999999999999999 or 9223372036854775807 wrapped to -2**63 and was a
clean row (gross revenue -2.8e19); a unit price of 1e308 gave revenue null. The bounds are in
`features.contract`: a sum over 2**32 lines of in-range values can neither wrap nor overflow.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.contract import MAX_AMOUNT, MAX_QUANTITY
from features.kpis import kpi_report
from features.sources import load, validate_frame
from tests.helpers import write_csv_source

GOOD = "1,2024-01-03,a,p1,2,10.0\n2,2024-01-04,b,p1,1,5.0\n"
OVERFLOWING = {
    # file line -> (cells, column the quarantine names)
    4: ("3,2024-01-05,c,p1,99999999999999999999,1.0", "quantity"),
    5: ("4,2024-01-05,c,p1,9223372036854775807,1.0", "quantity"),
    6: ("5,2024-01-05,c,p1,-9223372036854775808,1.0", "quantity"),
    7: ("6,2024-01-05,c,p1,2,1e308", "unit_price"),
    8: ("7,2024-01-05,c,p1,1,1e400", "unit_price"),
    9: ("8,2024-01-05,c,p1,1000,1e296", "quantity x unit_price"),
}


def write_source(tmp_path: Path, body: str) -> Path:
    return write_csv_source(tmp_path, body, "overflow")


def assert_finite_kpis(lines: pd.DataFrame) -> None:
    assert lines["quantity"].abs().max() <= MAX_QUANTITY
    revenue = lines["quantity"] * lines["unit_price"]
    assert np.isfinite(revenue).all()
    summary = kpi_report(lines)["summary"]
    assert math.isfinite(summary["gross_revenue"]) and summary["gross_revenue"] == pytest.approx(25.0)


def test_overflowing_numbers_in_a_file_are_out_of_range(tmp_path: Path) -> None:
    body = GOOD + "".join(cells + "\n" for cells, _ in OVERFLOWING.values())
    loaded = load(write_source(tmp_path, body))
    assert loaded.accounting.rows_clean == 2 and loaded.accounting.rows_quarantined == len(OVERFLOWING)
    q = loaded.quarantine.frame
    assert set(q["reason"]) == {"out of range"}
    assert {int(r.row): r.column for r in q.itertuples()} == {line: col for line, (_, col) in OVERFLOWING.items()}
    assert q.loc[q["row"] == 4, "value"].iloc[0] == "99999999999999999999"
    assert_finite_kpis(loaded.lines)


def test_overflowing_numbers_posted_as_json_are_out_of_range() -> None:
    """The service builds its frame from JSON numbers (Python ints of any size, finite floats)."""
    good = [
        {"order_id": "1", "order_date": "2024-01-03", "customer_id": "a", "product_id": "p1", "quantity": 2, "unit_price": 10.0},
        {"order_id": "2", "order_date": "2024-01-04", "customer_id": "b", "product_id": "p1", "quantity": 1, "unit_price": 5.0},
    ]
    bad = [
        {"order_id": "3", "order_date": "2024-01-05", "product_id": "p1", "quantity": 99999999999999999999, "unit_price": 1.0},
        {"order_id": "4", "order_date": "2024-01-05", "product_id": "p1", "quantity": 2**63 - 1, "unit_price": 1.0},
        {"order_id": "5", "order_date": "2024-01-05", "product_id": "p1", "quantity": 2, "unit_price": 1e308},
    ]
    loaded = validate_frame(pd.DataFrame(good + bad))
    q = loaded.quarantine.frame
    assert list(q["row"]) == [2, 3, 4] and set(q["reason"]) == {"out of range"}
    assert_finite_kpis(loaded.lines)


def test_overflowing_int64_in_parquet_is_out_of_range(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "order_id": ["1", "2", "3"], "order_date": ["2024-01-03", "2024-01-04", "2024-01-05"],
        "customer_id": ["a", "b", "c"], "product_id": ["p1", "p1", "p1"],
        "quantity": np.array([2, 1, 2**63 - 1], dtype="int64"), "unit_price": [10.0, 5.0, 1.0],
    })
    frame.to_parquet(tmp_path / "lines.parquet")
    cfg = yaml.safe_load(write_source(tmp_path, "").read_text()) | {"format": "parquet", "path": "lines.parquet"}
    (tmp_path / "overflow.yaml").write_text(yaml.safe_dump(cfg))
    loaded = load(tmp_path / "overflow.yaml")
    assert loaded.quarantine.frame[["row", "column", "reason"]].values.tolist() == [[4, "quantity", "out of range"]]
    assert_finite_kpis(loaded.lines)


def test_bounds_themselves_are_clean_and_one_past_is_not() -> None:
    rows = pd.DataFrame({
        "order_id": ["1", "2", "3", "4"], "order_date": ["2024-01-03"] * 4, "product_id": ["p"] * 4,
        "quantity": [MAX_QUANTITY, MAX_QUANTITY + 1, 1, 1], "unit_price": [1.0, 1.0, MAX_AMOUNT, MAX_AMOUNT * 1.001],
    })
    loaded = validate_frame(rows)
    assert loaded.quarantine.frame[["row", "column"]].values.tolist() == [[1, "quantity"], [3, "unit_price"]]
    assert loaded.lines["quantity"].tolist() == [MAX_QUANTITY, 1]


def test_a_sum_over_in_range_lines_stays_finite() -> None:
    """Why the bounds: many lines at the bounds still sum without wrapping or overflowing."""
    quantities = np.full(1000, MAX_QUANTITY, dtype="int64")
    assert int(quantities.sum()) == 1000 * MAX_QUANTITY
    assert math.isfinite(float(np.full(1000, MAX_AMOUNT).sum()))


def test_text_infinity_is_still_not_a_finite_number(tmp_path: Path) -> None:
    loaded = load(write_source(tmp_path, GOOD + "3,2024-01-05,c,p1,1,inf\n"))
    assert loaded.quarantine.frame[["row", "column", "reason"]].values.tolist() == [[4, "unit_price", "not a finite number"]]


def test_data_check_cli_reports_out_of_range(tmp_path: Path) -> None:
    from training.cli import app

    config = write_source(tmp_path, GOOD + OVERFLOWING[4][0] + "\n")
    result = CliRunner().invoke(app, ["data", "check", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "out of range" in result.output and "99999999999999999999" in result.output


def test_a_constant_price_out_of_range_is_caught_through_the_line_value(tmp_path: Path) -> None:
    path = write_source(tmp_path, "1,2024-01-03,a,p1,2,10.0\n")
    cfg = yaml.safe_load(path.read_text())
    del cfg["columns"]["unit_price"]
    path.write_text(yaml.safe_dump(cfg | {"constants": {"unit_price": 1e300}}))
    q = load(path).quarantine.frame
    assert q[["row", "column", "reason"]].values.tolist() == [[2, "quantity x unit_price", "out of range"]]
