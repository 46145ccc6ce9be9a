"""Customer KPIs on Spark: orders per customer, churn, CLV and RFM segments.

All read `SparkPrepared.customer_table` (one cached pass over the lines): the scalars come from
`customer_summary` (one job per churn window), the top customers and the high-value cut from one
ranking job, the RFM segments from one scoring job.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.kpis.base import share
from features.rfm import SEGMENT_GRID, SEGMENTS
from features.spark.kpis.prepared import F, SparkPrepared

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

SIGNS = {"recency": -1.0, "frequency": 1.0, "monetary": 1.0}  # recency is scored reversed: recent is good
RULE = ("scores 1-5 by average-rank quintile (recency reversed); FM = ceil((F + M) / 2); segment from the "
        "(R, FM) grid in features.rfm; recency counted to the last order date + 1 day; monetary is net revenue")


def orders_per_customer(data: SparkPrepared) -> dict[str, Any]:
    s = data.customer_summary(data.churn_window_days)
    return {"customers": int(s["n"]), "orders": int(s["orders"]), "orders_per_customer": float(s["mean"]),
            "median_orders": float(s["median"]), "one_time_customers": int(s["one"]),
            "repeat_customer_share": float(s["repeat"]), "revenue_per_customer": float(s["mean_revenue"]),
            "lines_without_customer": data.lines_without_customer}


def churn(data: SparkPrepared, churn_window_days: int = 90) -> dict[str, Any]:
    s = data.customer_summary(churn_window_days)
    n, churned = int(s["n"]), int(s["churned"])
    return {"reference_date": data.reference_date, "churn_window_days": churn_window_days, "customers": n,
            "active_customers": n - churned, "churned_customers": churned, "churn_rate": churned / n,
            "lines_without_customer": data.lines_without_customer}


def _ranked(data: SparkPrepared, k: int, top_n: int) -> tuple[pd.DataFrame, float, float]:
    """The `top_n` customers by (revenue desc, id), and the revenue sum and last revenue of the top `k`: one job."""
    from pyspark.sql import Window

    f = F()
    order = Window.orderBy(f.col("revenue").desc(), f.col("customer_id").asc())
    ranked = data.customer_table.select("customer_id", "orders", "revenue", f.row_number().over(order).alias("rank"))
    row = ranked.filter(f.col("rank") <= max(k, top_n)).agg(
        f.sum(f.when(f.col("rank") <= k, f.col("revenue"))).alias("high"),
        f.min(f.when(f.col("rank") <= k, f.col("revenue"))).alias("last"),  # ranked by revenue, descending
        f.collect_list(f.when(f.col("rank") <= top_n, f.struct("rank", "customer_id", "orders", "revenue"))).alias("top"),
    ).first()
    top = pd.DataFrame([r.asDict() for r in sorted(row["top"], key=lambda r: r["rank"])],
                       columns=["rank", "customer_id", "orders", "revenue"]).drop(columns="rank")
    return top, float(row["high"]), float(row["last"])


def clv(data: SparkPrepared, churn_window_days: int = 90, high_value_share: float = 0.2, profit_margin: float = 1.0,
        top_n: int = 10) -> dict[str, Any]:
    """`features.kpis.customer_value.clv`: the top customers by (revenue, id) collected, everything else aggregated."""
    s = data.customer_summary(churn_window_days)
    n, orders, revenue = int(s["n"]), int(s["orders"]), float(s["revenue"])
    rate = int(s["churned"]) / n
    k = max(1, math.ceil(high_value_share * n))
    top, high_revenue, last = _ranked(data, k, top_n)
    top["customer_id"] = top["customer_id"].astype("string")
    top["orders"] = top["orders"].astype(np.int64)
    top["revenue"] = top["revenue"].astype(np.float64)
    top["clv"] = top["revenue"] * profit_margin / rate if rate > 0 else np.nan
    apv, pf = revenue / orders, orders / n
    return {
        "customers": n, "lines_without_customer": data.lines_without_customer,
        "observation_days": int(data.last_day - data.stats["first_day"]) + 1,
        "average_purchase_value": apv, "purchase_frequency": pf, "churn_rate": rate, "churn_window_days": churn_window_days,
        "expected_lifetime": 1 / rate if rate > 0 else None, "profit_margin": profit_margin,
        "clv_mean": apv * pf * profit_margin / rate if rate > 0 else None,
        "clv_median": float(s["median_revenue"]) * profit_margin / rate if rate > 0 else None,
        "note": None if rate > 0 else "no customer churned: expected lifetime and CLV are unbounded",
        "high_value": {
            "share_of_customers": high_value_share, "customers": k, "revenue_share": share(high_revenue, revenue),
            "clv_threshold": last * profit_margin / rate if rate > 0 else None,
            "revenue_threshold": last,
        },
        "top_customers": top.head(top_n).reset_index(drop=True),
    }


# ---- RFM ----


def _thresholds(table: DataFrame, n: int) -> dict[str, list[tuple[int, float]]]:
    """`features.rfm.quintile_score` of each RFM column against itself, as the least value of each score.

    A value's score (1..5) comes from its average rank, which grows with the value, so a score is a step
    function with at most four steps: one job finds them from the distinct values (a window per column
    over its distinct values, never over the customers) and only those steps reach the driver."""
    from pyspark.sql import Window

    f = F()
    hists = [table.groupBy(f.lit(col[0]).alias("dim"), (f.col(col) * sign).alias("v")).agg(f.count(f.lit(1)).alias("ties"))
             for col, sign in SIGNS.items()]
    hist = hists[0].unionByName(hists[1]).unionByName(hists[2])
    window = Window.partitionBy("dim").orderBy("v").rowsBetween(Window.unboundedPreceding, -1)
    below = f.coalesce(f.sum("ties").over(window), f.lit(0))
    score = f.floor(f.lit(5) * (below + f.col("ties") / 2.0) / f.lit(n)) + 1  # rank - 0.5 = below + ties / 2
    ranked = hist.select("dim", "v", f.least(f.greatest(score, f.lit(1)), f.lit(5)).cast("long").alias("score"))
    steps: dict[str, list[tuple[int, float]]] = {"r": [], "f": [], "m": []}
    for row in ranked.groupBy("dim", "score").agg(f.min("v").alias("least")).collect():
        steps[row["dim"]].append((int(row["score"]), float(row["least"])))
    return steps


def _scored(column: str, steps: list[tuple[int, float]]) -> Column:
    """The score of sign * column: the score of the last step (least value) at or below it."""
    f = F()
    value = f.col(column) * SIGNS[column]
    ordered = sorted(steps)  # scores and their least values rise together
    score = f.lit(ordered[0][0])  # the least value of the lowest score is the least value of all
    for (low, _), (high, least) in zip(ordered, ordered[1:]):
        score = score + (value >= f.lit(least)).cast("long") * (high - low)
    return score


def _segment(r: Column, fm: Column) -> Column:
    f = F()
    expr = None
    for ri in range(5):
        for fi in range(5):
            cond = (r == ri + 1) & (fm == fi + 1)
            expr = f.when(cond, SEGMENT_GRID[ri, fi]) if expr is None else expr.when(cond, SEGMENT_GRID[ri, fi])
    return expr


def rfm(data: SparkPrepared) -> dict[str, Any]:
    """`features.kpis.rfm.rfm`: `features.customers` recency, frequency and net monetary, scored on Spark."""
    f = F()
    n = int(data.customer_summary(data.churn_window_days)["n"])
    table = data.customer_table.select(
        "customer_id", (f.lit(data.reference_day) - f.col("last_day")).cast("double").alias("recency"),
        f.col("orders").cast("double").alias("frequency"), "monetary")
    steps = _thresholds(table, n)
    r, fm = _scored("recency", steps["r"]), ((_scored("frequency", steps["f"]) + _scored("monetary", steps["m"]) + 1) / 2).cast("long")
    rows = table.groupBy(_segment(r, fm).alias("segment")).agg(
        f.count(f.lit(1)).alias("customers"), f.sum("monetary").alias("revenue"), f.avg("recency").alias("mean_recency"),
        f.avg("frequency").alias("mean_frequency"), f.avg("monetary").alias("mean_monetary")).collect()
    grouped = pd.DataFrame([r.asDict() for r in rows]).set_index("segment")
    total = float(grouped["revenue"].sum())
    grouped["customers"] = grouped["customers"].astype(np.int64)
    grouped = grouped.reindex([s for s in SEGMENTS if s in grouped.index])
    grouped.insert(1, "customer_share", grouped["customers"] / n)
    grouped.insert(3, "revenue_share", grouped["revenue"] / total if total else float("nan"))
    return {"reference_date": data.reference_date, "customers": n, "lines_without_customer": data.lines_without_customer,
            "rule": RULE, "segments": grouped.rename_axis("segment").reset_index()}
