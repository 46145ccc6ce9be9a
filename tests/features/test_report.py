"""The KPI report as a reader meets it (issue 11, "The KPI report"): no one-bar charts, true cohort labels,
tables that fit the page, and words with thousands separators instead of column names and 1e7."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from features.kpis import kpi_report
from features.plots import cohort_heatmap, dropped_charts, kpi_figures, thousands
from features.report import fmt, render_html
from tests.features.test_kpis import COHORT_CUSTOMERS, COHORT_LINES, SHOP
from tests.helpers import REPO

FLAT = SHOP.assign(category=pd.Series(["all"] * len(SHOP), dtype="string"), discount=0.0)  # UCI-like: no category, no discount


def _drawn(fig: Figure) -> Figure:
    fig.savefig(io.BytesIO(), format="png")  # tick labels and offsets exist only once drawn
    return fig


def test_one_bar_charts_are_dropped_with_a_note():
    report = kpi_report(FLAT)
    assert "return_rates" not in kpi_figures(report)  # before: two panels of one bar each ("all", "0%")
    notes = dropped_charts(report)
    assert set(notes) == {"Return rate by category", "Return rate by discount band"}
    assert "'all'" in notes["Return rate by category"] and "'0%'" in notes["Return rate by discount band"]
    page = render_html(report, {}, "t", {})
    assert "Return rate by category: not drawn" in page and "Return rate by discount band: not drawn" in page


def test_a_present_dimension_keeps_its_panel():
    no_discount = SHOP.assign(discount=0.0)
    fig = kpi_figures(kpi_report(no_discount))["return_rates"]
    assert [ax.get_title() for ax in fig.axes] == ["Return rate by category"]
    assert set(dropped_charts(kpi_report(no_discount))) == {"Return rate by discount band"}
    one_channel = SHOP.assign(channel=pd.Series(["web"] * len(SHOP), dtype="string"))
    report = kpi_report(one_channel)
    assert "channels" not in kpi_figures(report) and "Revenue and orders by channel" in dropped_charts(report)


def test_cohort_axis_names_what_the_cohort_is():
    by_purchase = kpi_report(COHORT_LINES)["cohort_retention"]
    assert by_purchase["cohort_by"] == "first purchase month"
    ax = cohort_heatmap(by_purchase).axes[0]
    assert ax.get_xlabel() == "months since the first purchase month" and "signup" not in ax.get_ylabel()
    by_signup = kpi_report(COHORT_LINES, COHORT_CUSTOMERS)["cohort_retention"]  # E is not in the table
    assert by_signup["cohort_by"] == "signup month (first purchase month where none)"
    assert cohort_heatmap(by_signup).axes[0].get_xlabel() == "months since the signup month"


def test_wide_cohort_table_scrolls_inside_the_page():
    rows = [{"cohort": f"2010-{m:02d}", "customers": 1000 + m, **{f"m{k}": 0.25 for k in range(25)}} for m in range(1, 13)]
    page = render_html({"cohort_retention": {"matrix": rows}}, {}, "t", {})
    tables = re.findall(r'(<div class="[^"]*">)?<table><tr><th>cohort', page)
    assert tables == ['<div class="wide compact">']  # the 27-column matrix sits in a scroll container, in small type
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    assert re.search(r"\.wide\{[^}]*overflow-x:auto", css) and re.search(r"\.compact table\{font-size:", css)


def test_axis_labels_are_words_with_thousands_separators():
    big = SHOP.assign(unit_price=SHOP["unit_price"] * 100_000.0)  # revenue in the millions: matplotlib said "1e7"
    report = kpi_report(big, options={"churn_window_days": 30})
    figures = kpi_figures(report)
    assert {"revenue_by_period", "revenue_by_category", "channels"} <= set(figures)
    for name, fig in figures.items():
        for ax in _drawn(fig).axes:
            for text in (ax.get_xlabel(), ax.get_ylabel()):
                assert "_" not in text, (name, text)
            assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == "", name
    ticks = [t.get_text() for t in figures["revenue_by_period"].axes[0].get_yticklabels()]
    assert any(re.fullmatch(r"\d{1,3}(,\d{3}){2,}", t) for t in ticks), ticks
    assert thousands(12_345_678.0) == "12,345,678" and thousands(0.25) == "0.25"


def test_page_uses_words_and_thousands_separators():
    page = render_html({"summary": {"units_sold": 1234567, "gross_revenue": 15_200_000.0},
                        "categories": {"by_category": [{"category": "toys", "average_order_value": 30.4, "orders": 12345}]}},
                       {}, "t", {"rows_read": 541909})
    assert "<td>units sold</td><td>1,234,567</td>" in page and "<td>gross revenue</td><td>15,200,000</td>" in page
    assert "<th>average order value</th>" in page and "<td>12,345</td>" in page and "<td>rows read</td><td>541,909</td>" in page
    assert "_" not in "".join(re.findall(r"<th>(.*?)</th>", page))
    assert fmt(True) == "yes" and fmt(np.float64(0.5)) == "0.5"


def test_revenue_by_period_has_its_plot():
    figures = kpi_figures(kpi_report(SHOP))
    ax = figures["revenue_by_period"].axes[0]
    assert ax.get_title() == "Revenue by month: best 2024-02 (70)" and ax.get_xlabel() == "month"


@pytest.fixture(scope="module")
def uci_report() -> dict:
    from features.sources import load
    from tests.helpers import shared_dataset

    shared_dataset("uci_online_retail")
    return kpi_report(load(REPO / "configs" / "data" / "uci_online_retail.yaml").lines)


@pytest.mark.realdata
def test_uci_report_best_month_and_no_one_bar_charts(uci_report):
    by_month = uci_report["revenue_by_period"]
    assert by_month["periods"] == 13 and by_month["partial_periods"] == ["2011-12"]  # the extract ends on 9 December
    assert by_month["best_period"]["period"] == "2011-11"
    total = sum(r["revenue"] for r in by_month["by_period"])
    assert total == pytest.approx(uci_report["summary"]["gross_revenue"])
    assert "return_rates" not in kpi_figures(uci_report)  # one bar "all" and one bar "0%" before
    assert set(dropped_charts(uci_report)) == {"Return rate by category", "Return rate by discount band"}
    assert uci_report["cohort_retention"]["cohort_by"] == "first purchase month"


def test_cohort_months_are_not_called_months_since_signup() -> None:
    """Cohorts start at the signup month where there is one, else the first purchase: the column says so."""
    from features.kpis import cohort_retention
    from features.synthetic import generate

    out = cohort_retention(generate(n_customers=60, weeks=20, seed=1).lines)
    assert "months_since_cohort_month" in out["average_by_month"] and "months_since_signup" not in out["average_by_month"]
