"""Sales KPIs: totals, order values, revenue by category and by channel, engagement by channel.

Sales figures use sales lines (`contract.sales`), returns are reported apart; revenue is
`contract.line_revenue` = quantity * unit_price * (1 - discount).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.counting import distinct_count, order_count
from features.kpis.base import KpiUnavailable, Prepared, prepare


def sales_summary(lines: pd.DataFrame | Prepared) -> dict[str, Any]:
    """Totals. gross revenue = sum of sales-line revenue; returned value = -sum of return-line revenue;
    net revenue = gross - returned; orders = distinct order ids with a sales line."""
    data = prepare(lines)
    sale, ret = data.sale, data.returned
    gross, returned = float(data.revenue[sale].sum()), float(-data.revenue[ret].sum())
    codes = data.customer[0]
    return {
        "lines": len(data.lines),
        "sales_lines": int(sale.sum()),
        "return_lines": int(ret.sum()),
        "orders": order_count(data.order[0][sale]),
        "customers": int(len(pd.unique(codes[sale & (codes >= 0)]))),
        "lines_without_customer": data.lines_without_customer,
        "products": int(len(pd.unique(data.codes_of("product_id")[0][sale]))),
        "gross_revenue": gross,
        "returned_value": returned,
        "net_revenue": gross - returned,
        "units_sold": int(data.quantity[sale].sum()),
        "units_returned": int(-data.quantity[ret].sum()),
        "first_date": str(np.datetime64(int(data.day.min()), "D")),
        "reference_date": data.reference_date,
    }


def order_values(lines: pd.DataFrame | Prepared) -> dict[str, Any]:
    """Average order value AOV = gross sales revenue / orders with a sales line (returns excluded);
    also the median order value, lines and units per order."""
    data = prepare(lines)
    codes, n = data.order
    sale = data.sale
    if not sale.any():
        raise KpiUnavailable("no sales lines")
    value = np.bincount(codes[sale], weights=data.revenue[sale], minlength=n)
    n_lines = np.bincount(codes[sale], minlength=n)
    has = n_lines > 0
    units = np.bincount(codes[sale], weights=data.quantity[sale], minlength=n)
    return {
        "orders": int(has.sum()),
        "average_order_value": float(value[has].mean()),
        "median_order_value": float(np.median(value[has])),
        "lines_per_order": float(n_lines[has].mean()),
        "units_per_order": float(units[has].mean()),
    }


def _by_group(data: Prepared, column: str) -> tuple[pd.DataFrame, int]:
    """Sales revenue, revenue share, orders, customers, units and lines per value of `column`;
    and the count of sales lines where the column is null."""
    codes, values = data.codes_of(column)
    mask = data.sale & (codes >= 0)
    c, n = codes[mask], len(values)
    cust = data.customer[0][mask]
    revenue = np.bincount(c, weights=data.revenue[mask], minlength=n)
    orders = distinct_count(c, data.order[0][mask], n)
    table = pd.DataFrame({
        column: values,
        "revenue": revenue,
        "revenue_share": revenue / revenue.sum() if revenue.sum() else np.nan,
        "orders": orders,
        "customers": distinct_count(c[cust >= 0], cust[cust >= 0], n),
        "units": np.bincount(c, weights=data.quantity[mask], minlength=n).astype(np.int64),
        "lines": np.bincount(c, minlength=n),
        "average_order_value": np.divide(revenue, orders, out=np.full(n, np.nan), where=orders > 0),
    })
    table = table[table["lines"] > 0].sort_values(["revenue", column], ascending=[False, True], ignore_index=True)
    return table, int((data.sale & (codes < 0)).sum())


def category_revenue(lines: pd.DataFrame | Prepared, top_n: int = 10) -> dict[str, Any]:
    """Revenue by category (sales lines), share of total sales revenue, and the `top_n` categories by revenue."""
    data = prepare(lines)
    table, missing = _by_group(data, "category")
    if table.empty or set(table["category"]) == {"all"}:
        raise KpiUnavailable("the data has no categories (every line is 'all')")
    return {
        "categories": len(table),
        "lines_without_category": missing,
        "top_categories": table["category"].head(top_n).tolist(),
        "by_category": table,
    }


def channel_performance(lines: pd.DataFrame | Prepared) -> dict[str, Any]:
    """Revenue, orders, customers and AOV (= channel revenue / channel orders) by the lines' channel."""
    data = prepare(lines)
    table, missing = _by_group(data, "channel")
    if table.empty:
        raise KpiUnavailable("no sales line has a channel")
    return {
        "channels": len(table),
        "sales_lines_without_channel": missing,
        "by_channel": table,
    }


def engagement_by_channel(customers: pd.DataFrame | None, lines: pd.DataFrame | Prepared | None = None) -> dict[str, Any]:
    """Mean and median `engagement_score` of the customers table per acquisition `channel`; with the lines,
    also revenue and orders per customer of each channel (customers without purchases count as 0)."""
    if customers is None:
        raise KpiUnavailable("no customers table (engagement scores come from the customers side table)")
    missing = [c for c in ("customer_id", "channel", "engagement_score") if c not in customers.columns]
    if missing:
        raise KpiUnavailable(f"the customers table lacks column(s) {missing}")
    score = pd.to_numeric(customers["engagement_score"], errors="coerce")
    bad = customers["engagement_score"].notna() & score.isna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise KpiUnavailable(f"customers table: engagement_score is not numeric in {int(bad.sum())} rows (first row {first})")
    usable = customers["channel"].notna() & score.notna()
    if not usable.any():
        raise KpiUnavailable("no customer has both a channel and an engagement score")
    frame = pd.DataFrame({
        "customer_id": customers["customer_id"].astype("string"), "channel": customers["channel"].astype("string"), "score": score,
    })[usable]
    table = frame.groupby("channel").agg(
        customers=("score", "size"), mean_engagement=("score", "mean"), median_engagement=("score", "median"),
    )
    data = prepare(lines) if lines is not None else None
    if data is not None and data.lines_without_customer < len(data.lines) and data.sale.any():
        table = table.join(_value_per_customer(data, frame))
    return {
        "customers": int(len(customers)),
        "customers_without_channel_or_score": int((~usable).sum()),
        "by_channel": table.sort_values("mean_engagement", ascending=False).reset_index(),
    }


def _value_per_customer(data: Prepared, frame: pd.DataFrame) -> pd.DataFrame:
    sales = data.customer_sales.set_index("customer_id")[["orders", "revenue"]]
    joined = frame.join(sales, on="customer_id").fillna({"orders": 0, "revenue": 0.0})
    return joined.groupby("channel").agg(orders_per_customer=("orders", "mean"), revenue_per_customer=("revenue", "mean"))
