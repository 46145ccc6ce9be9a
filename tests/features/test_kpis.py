"""KPI calculators on tiny hand-built frames; every expected value is worked out by hand in the comments."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from features.contract import COLUMNS, STRING_COLUMNS, validate_schema
from features.kpis import (
    KPIS,
    KpiUnavailable,
    category_revenue,
    channel_performance,
    churn,
    clv,
    cohort_retention,
    customer_clv,
    engagement_by_channel,
    headline,
    json_safe,
    kpi_report,
    order_values,
    orders_per_customer,
    return_rates,
    rfm,
    rfm_table,
    run_kpi,
    sales_summary,
    stock_cover,
    stockout_risk,
)
from features.kpis.rfm import quintile_score
from features.plots import kpi_figures
from features.report import render_html, write_report

FIELDS = ["order_id", "order_date", "customer_id", "product_id", "category", "quantity", "unit_price", "discount", "channel", "returned"]


def lines_frame(rows: list[tuple]) -> pd.DataFrame:
    """A contract-valid OrderLines frame from (order, date, customer, product, category, qty, price, discount, channel, returned)."""
    df = pd.DataFrame(rows, columns=FIELDS)
    df["product_name"] = None
    for col in STRING_COLUMNS:
        df[col] = df[col].astype("string")
    df["order_date"] = pd.to_datetime(df["order_date"]).astype("datetime64[ns]")
    df["quantity"] = df["quantity"].astype("int64")
    df["unit_price"] = df["unit_price"].astype("float64")
    df["discount"] = df["discount"].astype("float64")
    df["returned"] = df["returned"].astype(bool)
    return validate_schema(df[COLUMNS])


# revenue per line = qty * price * (1 - discount), written at the end of each row
SHOP = lines_frame([
    ("O1", "2024-01-05", "A", "P1", "toys", 2, 10.0, 0.0, "email", False),  # 20
    ("O1", "2024-01-05", "A", "P2", "home", 1, 30.0, 0.5, "email", False),  # 15
    ("O2", "2024-02-10", "A", "P1", "toys", 1, 10.0, 0.0, "email", False),  # 10
    ("O3", "2024-02-15", "B", "P2", "home", 2, 30.0, 0.0, "search", False),  # 60
    ("O3", "2024-02-20", "B", "P2", "home", -1, 30.0, 0.0, "search", True),  # -30 (return of 1 unit)
    ("O4", "2024-03-01", None, "P3", "toys", 4, 5.0, 0.0, None, False),  # 20 (guest, no channel)
    ("O5", "2024-03-31", "C", "P1", "toys", 3, 10.0, 0.1, "social", False),  # 27
])
# last order date 2024-03-31 (recency reference 2024-04-01); customers A (O1, O2: 45, last 02-10), B (O3: 60, last 02-15), C (O5: 27, last 03-31)


def test_sales_summary_totals():
    out = sales_summary(SHOP)
    assert (out["lines"], out["sales_lines"], out["return_lines"]) == (7, 6, 1)
    assert out["orders"] == 5 and out["customers"] == 3 and out["lines_without_customer"] == 1
    assert out["gross_revenue"] == pytest.approx(152.0)  # 20 + 15 + 10 + 60 + 20 + 27
    assert out["returned_value"] == pytest.approx(30.0)
    assert out["net_revenue"] == pytest.approx(122.0)
    assert (out["units_sold"], out["units_returned"]) == (13, 1)  # 2+1+1+2+4+3 sold
    assert out["reference_date"] == "2024-04-01"  # recency counts to the day after the last order (one definition)


def test_order_values():
    out = order_values(SHOP)
    # order values: O1 35, O2 10, O3 60, O4 20, O5 27 (the return is not a sale)
    assert out["orders"] == 5
    assert out["average_order_value"] == pytest.approx(152 / 5)  # 30.4
    assert out["median_order_value"] == pytest.approx(27.0)
    assert out["lines_per_order"] == pytest.approx(6 / 5)
    assert out["units_per_order"] == pytest.approx(13 / 5)


def test_orders_per_customer_excludes_guest_lines():
    out = orders_per_customer(SHOP)
    # A 2 orders, B 1, C 1 -> 4 / 3; the guest order O4 is excluded and its line counted
    assert out["orders_per_customer"] == pytest.approx(4 / 3)
    assert out["one_time_customers"] == 2 and out["repeat_customer_share"] == pytest.approx(1 / 3)
    assert out["revenue_per_customer"] == pytest.approx((45 + 60 + 27) / 3)
    assert out["lines_without_customer"] == 1


def test_churn_from_inactivity_window():
    # recency to the reference date 2024-04-01 (last order date + 1 day, as RFM counts it): A 51, B 46, C 1
    out = churn(SHOP, churn_window_days=30)
    assert (out["churned_customers"], out["active_customers"]) == (2, 1)
    assert out["churn_rate"] == pytest.approx(2 / 3)
    assert churn(SHOP, churn_window_days=46)["churned_customers"] == 1  # only A: 51 > 46, B: 46 is not > 46
    assert churn(SHOP, churn_window_days=51)["churn_rate"] == 0.0


def test_clv_textbook_formula():
    out = clv(SHOP, churn_window_days=30, high_value_share=0.2, top_n=2)
    # APV = (45 + 60 + 27) / 4 orders = 33; PF = 4 orders / 3 customers; churn 2/3
    assert out["average_purchase_value"] == pytest.approx(33.0)
    assert out["purchase_frequency"] == pytest.approx(4 / 3)
    assert out["expected_lifetime"] == pytest.approx(1.5)
    # CLV = 33 * 4/3 / (2/3) = 66 = mean of per-customer 45*1.5, 60*1.5, 27*1.5 = (67.5 + 90 + 40.5) / 3
    assert out["clv_mean"] == pytest.approx(66.0)
    assert out["clv_median"] == pytest.approx(67.5)
    # top 20% of 3 customers -> ceil(0.6) = 1 customer: B with 60 of 132
    assert out["high_value"]["customers"] == 1
    assert out["high_value"]["revenue_share"] == pytest.approx(60 / 132)
    assert out["high_value"]["clv_threshold"] == pytest.approx(90.0)
    assert [r for r in out["top_customers"]["customer_id"]] == ["B", "A"]
    wider = clv(SHOP, churn_window_days=30, high_value_share=0.34)
    assert wider["high_value"]["revenue_share"] == pytest.approx(105 / 132)  # ceil(1.02) = 2: B and A


def test_clv_with_margin_and_without_churn():
    assert clv(SHOP, churn_window_days=30, profit_margin=0.5)["clv_mean"] == pytest.approx(33.0)  # 66 * 0.5
    out = clv(SHOP, churn_window_days=51)  # nobody churned: lifetime unbounded
    assert out["clv_mean"] is None and out["expected_lifetime"] is None and "unbounded" in out["note"]
    per_customer = customer_clv(SHOP, churn_window_days=30)
    assert per_customer.set_index("customer_id")["clv"].to_dict() == pytest.approx({"A": 67.5, "B": 90.0, "C": 40.5})


def test_revenue_by_category():
    out = category_revenue(SHOP, top_n=1)
    table = out["by_category"].set_index("category")
    # toys: 20 + 10 + 20 + 27 = 77 over O1, O2, O4, O5; home: 15 + 60 = 75 over O1, O3
    assert table.loc["toys", "revenue"] == pytest.approx(77.0)
    assert table.loc["home", "revenue"] == pytest.approx(75.0)
    assert table.loc["toys", "revenue_share"] == pytest.approx(77 / 152)
    assert (table.loc["toys", "orders"], table.loc["home", "orders"]) == (4, 2)
    assert (table.loc["toys", "customers"], table.loc["toys", "units"]) == (2, 10)  # A, C (guest excluded); 2+1+4+3
    assert out["top_categories"] == ["toys"]


def test_categories_unavailable_when_all():
    flat = SHOP.assign(category=pd.Series(["all"] * len(SHOP), dtype="string"))
    with pytest.raises(KpiUnavailable, match="no categories"):
        category_revenue(flat)


def test_revenue_and_orders_by_channel():
    out = channel_performance(SHOP)
    table = out["by_channel"].set_index("channel")
    # email: O1 + O2 = 45 over 2 orders -> AOV 22.5; search 60; social 27; the guest line has no channel
    assert table.loc["email", "revenue"] == pytest.approx(45.0)
    assert table.loc["email", "orders"] == 2 and table.loc["email", "average_order_value"] == pytest.approx(22.5)
    assert table.loc["search", "revenue"] == pytest.approx(60.0)
    assert list(table.index) == ["search", "email", "social"]  # by revenue
    assert out["sales_lines_without_channel"] == 1


def test_engagement_by_channel_from_customers_table():
    customers = pd.DataFrame({
        "customer_id": ["A", "B", "C", "D"],
        "channel": ["email", "search", "email", "social"],
        "engagement_score": [80.0, 40.0, 60.0, None],
    })
    out = engagement_by_channel(customers, SHOP)
    table = out["by_channel"].set_index("channel")
    assert table.loc["email", "customers"] == 2 and table.loc["email", "mean_engagement"] == pytest.approx(70.0)  # (80 + 60) / 2
    assert table.loc["email", "orders_per_customer"] == pytest.approx(1.5)  # A 2, C 1
    assert table.loc["email", "revenue_per_customer"] == pytest.approx(36.0)  # (45 + 27) / 2
    assert table.loc["search", "mean_engagement"] == pytest.approx(40.0)
    assert out["customers_without_channel_or_score"] == 1  # D has no score
    with pytest.raises(KpiUnavailable, match="no customers table"):
        engagement_by_channel(None, SHOP)


def test_return_rates_and_discount_correlation():
    lines = lines_frame([
        ("R1", "2024-01-01", "A", "P1", "toys", 10, 1.0, 0.0, "email", False),
        ("R2", "2024-01-02", "B", "P2", "home", 10, 1.0, 0.5, "email", False),
        ("R2", "2024-01-09", "B", "P2", "home", -5, 1.0, 0.5, "email", True),
    ])
    out = return_rates(lines)
    assert out["return_rate"] == pytest.approx(5 / 20)  # returned units / sold units
    assert out["return_line_share"] == pytest.approx(1 / 2)  # return lines / sales lines
    assert out["returned_value_share"] == pytest.approx(2.5 / 15)  # 5 * 0.5 of 10 + 5
    # discount (0, .5, .5) vs returned (0, 0, 1): cov = 1/18, var d = 1/18, var r = 2/9 -> r = (1/18) / (1/9) = 0.5
    assert out["discount_correlation"] == pytest.approx(0.5)
    bands = out["by_discount_band"].set_index("discount_band")["return_rate"]
    assert bands.to_dict() == pytest.approx({"0%": 0.0, "(30%, 50%]": 0.5})
    cats = out["by_category"].set_index("category")["return_rate"]
    assert cats.to_dict() == pytest.approx({"home": 0.5, "toys": 0.0})


def test_return_rates_without_returns():
    out = return_rates(SHOP[~SHOP["returned"]])
    assert out["return_rate"] == 0.0 and out["discount_correlation"] is None and "no return lines" in out["note"]


def test_empty_lines_are_a_clear_error():
    with pytest.raises(KpiUnavailable, match="no order lines"):
        kpi_report(SHOP.iloc[:0])


def test_rfm_quintile_scores():
    assert quintile_score(np.array([5, 1, 4, 2, 3])).tolist() == [5, 1, 4, 2, 3]
    assert quintile_score(np.arange(10)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # ties share the average rank: the four 1s rank 2.5 -> floor(5 * 2 / 5) + 1 = 3; the 2 ranks 5 -> 5
    assert quintile_score(np.array([1, 1, 1, 1, 2])).tolist() == [3, 3, 3, 3, 5]


def _rfm_lines() -> pd.DataFrame:
    """Customer E{i} (i = 1..5): i orders of 10 each, the last on January 26 + i (E5 buys on the reference date)."""
    rows = []
    for i in range(1, 6):
        for k in range(i):
            day = 26 + i if k == i - 1 else 1 + k
            rows.append((f"E{i}-{k}", f"2024-01-{day:02d}", f"E{i}", "P1", "toys", 1, 10.0, 0.0, "email", False))
    return lines_frame(rows)


def test_rfm_segments_follow_the_grid():
    table = rfm_table(_rfm_lines()).set_index("customer_id")
    # recency counts to the last order date + 1 day (features.customers): E5 bought on the last day
    assert table["recency"].to_dict() == {"E1": 5, "E2": 4, "E3": 3, "E4": 2, "E5": 1}
    # R = F = M = i, FM = ceil((i + i) / 2) = i -> the grid's diagonal
    assert table[["r", "f", "m", "fm"]].to_numpy().tolist() == [[i] * 4 for i in range(1, 6)]
    assert table["segment"].to_dict() == {"E1": "lost", "E2": "hibernating", "E3": "need attention", "E4": "loyal", "E5": "champions"}
    out = rfm(_rfm_lines())
    seg = out["segments"].set_index("segment")
    assert seg.loc["champions", "revenue_share"] == pytest.approx(50 / 150)
    assert seg["customers"].sum() == 5 and seg.loc["loyal", "customer_share"] == pytest.approx(0.2)


def test_rfm_identical_customers_same_segment():
    twin = _rfm_lines()
    copy = twin[twin["customer_id"] == "E3"].copy()
    copy["customer_id"] = pd.Series("X3", index=copy.index, dtype="string")
    copy["order_id"] = "X" + copy["order_id"]
    table = rfm_table(pd.concat([twin, copy], ignore_index=True)).set_index("customer_id")
    assert table.loc["E3"].drop(["segment"]).equals(table.loc["X3"].drop(["segment"]))
    assert table.loc["E3", "segment"] == table.loc["X3", "segment"]


COHORT_LINES = lines_frame([
    ("A1", "2024-01-15", "A", "P1", "toys", 1, 10.0, 0.0, "email", False),
    ("A2", "2024-02-03", "A", "P1", "toys", 1, 10.0, 0.0, "email", False),
    ("A3", "2024-03-01", "A", "P1", "toys", 1, 10.0, 0.0, "email", False),
    ("B1", "2024-01-25", "B", "P1", "toys", 1, 10.0, 0.0, "email", False),
    ("B2", "2024-03-10", "B", "P1", "toys", 1, 10.0, 0.0, "email", False),
    ("C0", "2024-01-30", "C", "P1", "toys", 1, 10.0, 0.0, "email", False),  # before C's February signup
    ("C1", "2024-02-06", "C", "P1", "toys", 1, 10.0, 0.0, "email", False),
    ("C2", "2024-02-20", "C", "P1", "toys", 1, 10.0, 0.0, "email", False),
    ("C3", "2024-03-02", "C", "P1", "toys", 1, 10.0, 0.0, "email", False),
    ("E1", "2024-03-05", "E", "P1", "toys", 1, 10.0, 0.0, "email", False),  # not in the customers table
])
COHORT_CUSTOMERS = pd.DataFrame({
    "customer_id": ["A", "B", "C", "D"],
    "signup_date": pd.to_datetime(["2024-01-10", "2024-01-20", "2024-02-05", "2024-02-10"]),  # D never buys
})


def test_cohort_retention_matrix():
    out = cohort_retention(COHORT_LINES, COHORT_CUSTOMERS)
    matrix = out["matrix"].set_index("cohort")
    # January (A, B): m0 both, m1 A, m2 both; February (C, D): m0 C, m1 C, m2 = April not observed; March (E): m0
    assert matrix.loc["2024-01"].tolist() == [2, 1.0, 0.5, 1.0]
    assert matrix.loc["2024-02", ["customers", "m0", "m1"]].tolist() == [2, 0.5, 0.5]
    assert np.isnan(matrix.loc["2024-02", "m2"])
    assert matrix.loc["2024-03", ["customers", "m0"]].tolist() == [1, 1.0] and np.isnan(matrix.loc["2024-03", "m1"])
    assert out["cohort_source"] == {"signup_date": 4, "first_purchase": 1, "no_signup_date_no_purchase": 0}
    assert out["purchases_before_signup"] == 1
    # size-weighted: m0 = (2*1 + 2*0.5 + 1*1) / 5, m1 = (2*0.5 + 2*0.5) / 4, m2 = 2*1 / 2
    assert out["average_by_month"]["retention"].tolist() == pytest.approx([0.8, 0.5, 1.0])
    assert json.dumps(run_kpi("cohort_retention", COHORT_LINES, COHORT_CUSTOMERS), allow_nan=False)


def test_cohort_signup_dates_are_checked_and_gaps_counted():
    table = pd.DataFrame({"customer_id": ["A", "Z"], "signup_date": ["2024-01-10", None]})  # Z: no date, no purchase
    assert cohort_retention(COHORT_LINES, table)["cohort_source"]["no_signup_date_no_purchase"] == 1
    with pytest.raises(KpiUnavailable, match=r"signup_date is not a date in 1 rows \(first rows \[1\]\)"):
        cohort_retention(COHORT_LINES, pd.DataFrame({"customer_id": ["A", "B"], "signup_date": ["2024-01-10", "soon"]}))


def test_cohorts_by_first_purchase_and_signup_before_the_data():
    out = cohort_retention(COHORT_LINES)  # no table: cohort = first purchase month (C: January, via C0)
    matrix = out["matrix"].set_index("cohort")
    assert matrix.loc["2024-01"].tolist() == [3, 1.0, 2 / 3, 1.0]  # A, B, C; m1: A, C; m2: A, B, C
    early = pd.DataFrame({"customer_id": ["A"], "signup_date": pd.to_datetime(["2023-11-20"])})
    matrix = cohort_retention(COHORT_LINES, early)["matrix"].set_index("cohort")
    assert np.isnan(matrix.loc["2023-11", "m0"]) and np.isnan(matrix.loc["2023-11", "m1"])  # before the data
    assert matrix.loc["2023-11", ["m2", "m3", "m4"]].tolist() == [1.0, 1.0, 1.0]


STOCK_LINES = lines_frame([
    ("S1", "2024-03-01", "A", "P1", "toys", 100, 1.0, 0.0, "email", False),  # outside the 10-day window
    ("S2", "2024-03-25", "A", "P1", "toys", 20, 1.0, 0.0, "email", False),
    ("S3", "2024-03-26", "B", "P2", "toys", 10, 1.0, 0.0, "email", False),
    ("S3", "2024-03-28", "B", "P1", "toys", -5, 1.0, 0.0, "email", True),  # a return is not demand
    ("S4", "2024-03-01", "C", "P3", "home", 7, 1.0, 0.0, "email", False),
    ("S5", "2024-03-31", "C", "P4", "home", 1, 1.0, 0.0, "email", False),  # not stocked
])
INVENTORY = pd.DataFrame({"product_id": ["P1", "P2", "P3"], "category": ["toys", "toys", "home"],
                          "stock_on_hand": [10, 30, 5], "lead_time_days": [7, 14, 3]})


def test_stock_cover_and_risk():
    table = stock_cover(STOCK_LINES, INVENTORY, demand_window_days=10).set_index("product_id")
    # window = March 22..31: P1 20 units -> 2/day, cover 10/2 = 5 < 7; P2 1/day, cover 30 >= 14; P3 none
    assert table["daily_demand"].to_dict() == pytest.approx({"P1": 2.0, "P2": 1.0, "P3": 0.0})
    assert table.loc["P1", "days_of_cover"] == pytest.approx(5.0) and np.isnan(table.loc["P3", "days_of_cover"])
    assert table["at_risk"].to_dict() == {"P1": True, "P2": False, "P3": False}
    out = stockout_risk(STOCK_LINES, INVENTORY, demand_window_days=10)
    assert (out["items_at_risk"], out["items_without_recent_demand"], out["sold_items_without_inventory"]) == (1, 1, 1)
    cats = out["by_category"].set_index("category")
    assert cats.loc["toys", "days_of_cover"] == pytest.approx(40 / 3)  # (10 + 30) / (2 + 1)
    assert cats.loc["toys", "share_at_risk"] == pytest.approx(0.5)


def test_stock_cover_by_category_inventory():
    by_cat = pd.DataFrame({"category": ["toys", "home"], "stock_on_hand": [12, 1], "lead_time_days": [5, 5]})
    table = stock_cover(STOCK_LINES, by_cat, demand_window_days=10).set_index("category")
    # toys: 20 + 10 units in the window -> 3/day, cover 4 < 5; home: P4's 1 unit -> 0.1/day, cover 10
    assert table["days_of_cover"].to_dict() == pytest.approx({"toys": 4.0, "home": 10.0})
    assert table["at_risk"].to_dict() == {"toys": True, "home": False}


def test_bad_inventory_names_the_column_and_rows():
    bad = INVENTORY.assign(stock_on_hand=[10, -1, 5])
    with pytest.raises(KpiUnavailable, match=r"stock_on_hand .* 1 rows \(first rows \[1\]\)"):
        stock_cover(STOCK_LINES, bad)
    with pytest.raises(KpiUnavailable, match="repeated"):
        stock_cover(STOCK_LINES, pd.concat([INVENTORY, INVENTORY.head(1)], ignore_index=True))


def test_missing_inputs_are_reported_and_the_rest_still_runs():
    anonymous = SHOP.assign(customer_id=pd.Series([None] * len(SHOP), dtype="string"),
                            channel=pd.Series([None] * len(SHOP), dtype="string"))
    report = kpi_report(anonymous)
    unavailable = {k for k, v in report.items() if v.get("status") == "unavailable"}
    assert unavailable == {"orders_per_customer", "churn", "clv", "cohort_retention", "rfm", "channels", "engagement", "stockout_risk"}
    assert "customer id" in report["clv"]["reason"] and "inventory" in report["stockout_risk"]["reason"]
    assert report["summary"]["gross_revenue"] == pytest.approx(152.0)
    assert report["returns"]["return_rate"] == pytest.approx(1 / 13)
    assert report["categories"]["top_categories"] == ["toys", "home"]
    assert json.dumps(report, allow_nan=False)
    assert "churn_rate" not in headline(report) and headline(report)["orders"] == 5


def test_full_report_is_json_and_every_kpi_runs():
    customers = pd.DataFrame({"customer_id": ["A", "B", "C"], "signup_date": pd.to_datetime(["2024-01-01"] * 3),
                              "channel": ["email", "search", "social"], "engagement_score": [1.0, 2.0, 3.0]})
    inventory = pd.DataFrame({"product_id": ["P1", "P2", "P3"], "stock_on_hand": [1, 1, 1], "lead_time_days": [9, 9, 9]})
    report = kpi_report(SHOP, customers, inventory, {"churn_window_days": 30})
    assert set(report) == set(KPIS)
    assert all(v.get("status") != "unavailable" for v in report.values()), report
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert headline(report)["churn_rate"] == pytest.approx(2 / 3)
    assert report["stockout_risk"]["by_category"]  # category taken from the lines
    figures = kpi_figures(report)
    assert set(figures) == {"revenue_by_period", "cohort_retention", "revenue_by_category", "channels", "return_rates", "rfm_segments"}
    assert all(isinstance(f, Figure) for f in figures.values())


def test_figures_skip_unavailable_sections():
    report = kpi_report(SHOP.assign(customer_id=pd.Series([None] * len(SHOP), dtype="string")))
    assert set(kpi_figures(report)) == {"revenue_by_period", "revenue_by_category", "channels", "return_rates"}


def test_bad_options_and_names_are_clear_errors():
    with pytest.raises(ValueError, match="churn_days"):
        kpi_report(SHOP, options={"churn_days": 30})
    with pytest.raises(ValueError, match="discount_bands"):
        kpi_report(SHOP, options={"discount_bands": [0.2, 1.0]})
    with pytest.raises(KeyError, match="known"):
        run_kpi("lifetime", SHOP)
    with pytest.raises(ValueError, match="returned"):
        sales_summary(SHOP.drop(columns=["returned"]))


def test_registry_entries_are_json_ready():
    out = KPIS["clv"](SHOP, options={"churn_window_days": 30})
    assert out["clv_mean"] == pytest.approx(66.0) and isinstance(out["top_customers"], list)
    with pytest.raises(KpiUnavailable):
        KPIS["stockout_risk"](SHOP)


def test_html_report_escapes_values_and_cuts_long_tables(tmp_path):
    report = {
        "odd": {"status": "unavailable", "reason": "<script>alert(1)</script>"},
        "long": {"note": "a & b", "rows": [{"i": i, "x": float("nan") if i == 0 else i / 3} for i in range(40)]},
    }
    page = write_report(report, {}, tmp_path, "KPIs <of> shop", {"data": "x"})
    text = page.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text and "KPIs &lt;of&gt; shop" in text
    assert text.count("<tr><td>") >= 25 and "15 more rows in kpis.json" in text
    saved = json.loads((tmp_path / "kpis.json").read_text())
    assert saved["kpis"]["long"]["rows"][0]["x"] is None  # NaN is not JSON
    assert render_html(report, {"p": "AAAA"}, "t", {}).count("data:image/png;base64,AAAA") == 1


def test_one_json_safe_conversion():
    frame = pd.DataFrame({"a": [1.0, np.nan], "d": pd.to_datetime(["2024-01-02", None])})
    assert json_safe({1: frame, "n": np.int64(3), "inf": np.inf, "na": pd.NA}) == {
        "1": [{"a": 1.0, "d": "2024-01-02T00:00:00"}, {"a": None, "d": None}], "n": 3, "inf": None, "na": None,
    }
