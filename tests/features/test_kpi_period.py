"""Revenue by period (issue 11, "Revenue by period is missing"): hand-worked figures on the `SHOP` lines of test_kpis."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.kpis import KPIS, headline, kpi_report, period_table, revenue_by_period, run_kpi
from features.series import period_start
from tests.features.test_kpis import SHOP, lines_frame

# SHOP by month (revenue per line in test_kpis): January O1 20 + 15 = 35 (the data starts on the 5th: partial);
# February O2 10 + O3 60 = 70, the return of O3 (-30) dated 02-20; March O4 20 (guest) + O5 27 = 47, ends on the 31st.


def test_revenue_by_month_is_a_kpi_with_the_best_month():
    out = revenue_by_period(SHOP)
    table = out["by_period"].set_index("period")
    assert list(table.index) == ["2024-01", "2024-02", "2024-03"]
    assert table["revenue"].tolist() == pytest.approx([35.0, 70.0, 47.0])
    assert table["returned_value"].tolist() == pytest.approx([0.0, 30.0, 0.0])
    assert table["net_revenue"].tolist() == pytest.approx([35.0, 40.0, 47.0])
    assert table["orders"].tolist() == [1, 2, 2]  # O1 | O2, O3 | O4, O5
    assert table["customers"].tolist() == [1, 2, 1]  # A | A, B | C (the guest is no customer)
    assert table["units"].tolist() == [3, 3, 7]
    assert table["partial"].tolist() == [True, False, False]
    assert (table.loc["2024-02", "start"], table.loc["2024-02", "end"]) == ("2024-02-01", "2024-02-29")
    assert out["best_period"] == {"period": "2024-02", "start": "2024-02-01", "end": "2024-02-29", "revenue": 70.0,
                                  "orders": 2, "partial": False}
    assert out["partial_periods"] == ["2024-01"] and out["periods"] == 3
    assert table["revenue"].sum() == pytest.approx(152.0)  # = summary's gross revenue


def test_revenue_by_week_fills_empty_weeks_with_zero():
    out = revenue_by_period(SHOP, "week")
    table = out["by_period"].set_index("period")
    # Monday weeks from 2024-01-01 (O1 on Friday 01-05) to 2024-03-25 (O5 on Sunday 03-31): 13 weeks
    assert out["periods"] == 13 and table.index[0] == "2024-01-01" and table.index[-1] == "2024-03-25"
    assert table.loc["2024-01-08", "revenue"] == 0.0 and table.loc["2024-01-08", "orders"] == 0
    assert table.loc["2024-02-19", "net_revenue"] == pytest.approx(-30.0)  # only the return
    assert out["best_period"]["period"] == "2024-02-12" and out["best_period"]["revenue"] == pytest.approx(60.0)
    assert out["partial_periods"] == ["2024-01-01"]  # 03-31 is a Sunday: the last week is complete
    starts = period_start(SHOP["order_date"], "W").dt.strftime("%Y-%m-%d")
    assert set(starts) <= set(table.index)  # the forecaster's week is the KPI's week


def test_revenue_by_day():
    out = revenue_by_period(SHOP, "day")
    assert out["periods"] == 27 + 29 + 31  # 2024-01-05 .. 2024-03-31, a leap year
    assert out["best_period"]["period"] == "2024-02-15" and out["partial_periods"] == []


def test_best_period_tie_goes_to_the_earliest():
    lines = lines_frame([
        ("T1", "2024-05-03", "A", "P1", "toys", 1, 10.0, 0.0, "email", False),
        ("T2", "2024-06-03", "A", "P1", "toys", 1, 10.0, 0.0, "email", False),
    ])
    assert revenue_by_period(lines)["best_period"]["period"] == "2024-05"


def test_revenue_by_period_is_registered_with_its_option():
    assert "revenue_by_period" in KPIS
    report = kpi_report(SHOP)
    assert report["revenue_by_period"]["best_period"]["period"] == "2024-02"
    assert headline(report)["best_period_revenue"] == pytest.approx(70.0)
    weekly = run_kpi("revenue_by_period", SHOP, options={"revenue_period": "week"})
    assert weekly["period"] == "week" and json.dumps(weekly, allow_nan=False)
    with pytest.raises(ValueError, match="revenue_period"):
        kpi_report(SHOP, options={"revenue_period": "quarter"})
    with pytest.raises(ValueError, match="unknown period 'quarter'"):
        period_table(SHOP, "quarter")  # type: ignore[arg-type]


def test_revenue_by_period_without_sales_is_unavailable():
    returns_only = SHOP[SHOP["returned"]]
    assert run_kpi("revenue_by_period", returns_only) == {
        "status": "unavailable", "reason": "no sales lines: revenue by period needs sales"}


def test_service_kpis_pick_up_revenue_by_period():
    """/kpis and /kpis/<name> answer from `features.kpis.KPIS` through serving.kpis: the new KPI is in both."""
    from features.sources import validate_frame
    from serving.kpis import kpi_response

    raw = pd.DataFrame({
        "order_id": ["1", "2", "3"], "order_date": ["2024-01-05", "2024-02-10", "2024-02-11"],
        "customer_id": ["A", "A", "B"], "product_id": ["P", "P", "P"], "quantity": [1, 2, 3], "unit_price": [10.0, 10.0, 10.0],
    })
    loaded = validate_frame(raw)
    every = kpi_response(loaded, None, None, row_offset=2).kpis
    assert every["revenue_by_period"]["best_period"]["period"] == "2024-02"
    one = kpi_response(loaded, "revenue_by_period", None, row_offset=2).kpis
    assert list(one) == ["revenue_by_period"] and one["revenue_by_period"]["by_period"][1]["revenue"] == 50.0


def test_cli_kpis_report_has_revenue_by_period(tmp_path):
    """`ecomlab kpis --out` runs `kpi_report` and `kpi_figures`: the new KPI and its plot need no CLI change."""
    from features.sources import validate_frame
    from training.cli.kpis import compute_and_write_kpis

    raw = pd.DataFrame({
        "order_id": ["1", "2"], "order_date": ["2024-01-05", "2024-02-10"], "customer_id": ["A", "B"],
        "product_id": ["P", "P"], "quantity": [1, 2], "unit_price": [10.0, 10.0],
    })
    page = compute_and_write_kpis(validate_frame(raw, "cli-test"), tmp_path)
    assert page is not None and (tmp_path / "revenue_by_period.png").exists()
    saved = json.loads((tmp_path / "kpis.json").read_text())
    assert saved["kpis"]["revenue_by_period"]["best_period"]["period"] == "2024-02"
    assert "revenue by period" in page.read_text()


def test_the_period_is_an_option_of_the_cli_and_the_api() -> None:
    """`ecomlab kpis --period week` and `options.revenue_period` / the upload's `revenue_period` field reach the KPI."""
    import inspect

    from serving.schemas import KpiOptionsIn
    from training.cli.kpis import kpis

    assert KpiOptionsIn(revenue_period="week").revenue_period == "week"
    with pytest.raises(ValueError):
        KpiOptionsIn(revenue_period="year")
    assert inspect.signature(kpis).parameters["period"].default.value == "month"
