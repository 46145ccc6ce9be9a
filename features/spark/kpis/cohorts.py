"""Cohort retention on Spark: `features.kpis.cohorts.cohort_retention` from one job of small tables.

Each customer's cohort is the signup month of the customers table, else the month of the first purchase;
the cohort sizes, the (cohort, month offset) cells of distinct active customers and the count of purchases
before signup are three branches of one union, collected once; numpy shapes the matrix as pandas does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.kpis import KpiUnavailable
from features.kpis.cohorts import _average, _cohort_by, _label as month_label, _wide, signups
from features.spark.kpis.prepared import F, SparkPrepared

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

Frame = pd.DataFrame | None


def _month(col: Column) -> Column:
    """Months since 1970-01 of a date column."""
    f = F()
    return (f.year(col) - 1970) * 12 + f.month(col) - 1


def _month_of_day(day: int) -> int:
    return int(np.datetime64(day, "D").astype("datetime64[M]").astype(np.int64))


def _signups(spark: SparkSession, customers: Frame) -> tuple[DataFrame | None, list[str]]:
    """(customer_id, signup month) of the customers table, and the ids listed without a signup date."""
    if customers is None or "signup_date" not in customers.columns:
        return None, []
    known, missing = signups(customers)
    no_date = missing.astype(object).tolist()
    months = known["date"].to_numpy().astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    rows = list(zip(known["id"].astype(object), months.tolist()))
    return spark.createDataFrame(rows, "customer_id string, signup long"), no_date


def cohort_retention(data: SparkPrepared, customers: Frame) -> dict[str, Any]:
    """`features.kpis.cohorts.cohort_retention` on Spark (module docstring)."""
    f = F()
    data.require_customers()
    spark = data.lines.sparkSession
    last_m = _month_of_day(data.last_day)
    buyers = data.customer_table.select("customer_id", _month(f.date_from_unix_date(f.col("first_day").cast("int"))).alias("first"))
    signup, no_date = _signups(spark, customers)
    if signup is None:
        who = buyers.select("customer_id", f.col("first").alias("cohort"), f.lit(False).alias("has"))
    else:
        who = signup.join(buyers, "customer_id", "full").select(
            "customer_id", f.coalesce("signup", "first").alias("cohort"), f.col("signup").isNotNull().alias("has"))
    months = data.lines.filter(f.col("sale") & f.col("customer_id").isNotNull()).groupBy(
        "customer_id", _month(f.date_from_unix_date(f.col("day").cast("int"))).alias("month")).agg(f.count(f.lit(1)).alias("lines"))
    offsets = months.join(who.select("customer_id", "cohort"), "customer_id").select(
        "cohort", (f.col("month") - f.col("cohort")).alias("offset"), "lines")  # one row per customer and month
    branches = [
        who.groupBy("cohort").agg(f.count(f.lit(1)).alias("n"), f.count_if("has").alias("has")).select(f.lit("size").alias("set"), "*"),
        offsets.filter((f.col("offset") >= 0) & (f.col("cohort") <= last_m)).groupBy("cohort", "offset")
        .agg(f.count(f.lit(1)).alias("n")).select(f.lit("cell").alias("set"), "*"),
        offsets.filter(f.col("offset") < 0).agg(f.sum("lines").alias("n")).select(f.lit("before").alias("set"), "*"),
    ]
    if no_date:  # listed without a signup date and never bought: counted, not placed
        missing = spark.createDataFrame([(i,) for i in no_date], "customer_id string")
        branches.append(missing.join(buyers, "customer_id", "left_anti").agg(f.count(f.lit(1)).alias("n"))
                        .select(f.lit("unplaced").alias("set"), "*"))
    union = branches[0]
    for branch in branches[1:]:
        union = union.unionByName(branch, allowMissingColumns=True)
    rows: dict[str, list[Any]] = {"size": [], "cell": [], "before": [], "unplaced": []}
    for row in union.collect():
        rows[row["set"]].append(row)
    return _matrix(data, rows, last_m)


def _matrix(data: SparkPrepared, rows: dict[str, list[Any]], last_m: int) -> dict[str, Any]:
    first_m = _month_of_day(int(data.stats["first_day"]))
    n_all = sum(int(r["n"]) for r in rows["size"])
    has = sum(int(r["has"]) for r in rows["size"])
    late = sum(int(r["n"]) for r in rows["size"] if r["cohort"] > last_m)
    unplaced = int(rows["unplaced"][0]["n"]) if rows["unplaced"] else 0
    sources = {"signup_date": has, "first_purchase": n_all - has, "no_signup_date_no_purchase": unplaced}
    placed = [r for r in rows["size"] if r["cohort"] <= last_m]
    if not placed:
        raise KpiUnavailable("every customer's signup month is after the last month of the data")
    c0 = min(int(r["cohort"]) for r in placed)
    n = last_m - c0 + 1
    active = np.zeros((n, n), dtype=np.int64)
    for r in rows["cell"]:
        if r["offset"] < n:
            active[r["cohort"] - c0, r["offset"]] = r["n"]
    sizes = np.zeros(n, dtype=np.int64)
    for r in placed:
        sizes[r["cohort"] - c0] = r["n"]
    calendar = c0 + np.arange(n)[:, None] + np.arange(n)[None, :]
    matrix = np.where(calendar <= last_m, active / np.maximum(sizes, 1)[:, None], np.nan)
    matrix[calendar < first_m] = np.nan
    keep = sizes > 0
    return {
        "cohort_by": _cohort_by(sources), "cohort_source": sources, "customers": n_all,
        "lines_without_customer": data.lines_without_customer, "purchases_before_signup": int(rows["before"][0]["n"] or 0),
        "signups_after_data": late, "first_month": month_label(first_m), "last_month": month_label(last_m),
        "matrix": _wide(matrix[keep], sizes[keep], [month_label(c0 + i) for i in np.flatnonzero(keep)]),
        "average_by_month": _average(matrix[keep], sizes[keep]),
    }
