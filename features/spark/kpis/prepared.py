"""The Spark lines as every KPI reads them, and the few passes over them that all KPIs share.

Why this shape: a Spark job costs far more to schedule than its arithmetic on small data, so the figures
are gathered in as few jobs as possible. `SparkPrepared.tables` is ONE job: the totals, the groups by
period, category, channel and discount band, and the order-level summary, as the branches of one union.
`customer_table` is built once (one pass, cached) and `customer_summary` reads every per-customer
scalar from it in one more job. Only those small results reach the driver; the lines are never collected.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.kpis import KpiUnavailable
from features.kpis.base import NEEDED, require_columns

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, Row

MISSING = "\0missing"  # the group key of null categories / channels (no real value holds a NUL)


def F() -> Any:
    """`pyspark.sql.functions`, imported on first use (importing this module does not load pyspark)."""
    from pyspark.sql import functions

    return functions


def in_order(items: Column, sales: bool) -> Column:
    """Sum of `rev` over the sales (or return) lines of a group's `items`, sorted by `_seq`: the local engine's
    line order (np.bincount adds a customer's lines so), so equal customers tie exactly as they do there."""
    f = F()
    return f.aggregate(items, f.lit(0.0), lambda acc, x: acc + f.when(x["sale"] == f.lit(sales), x["rev"]).otherwise(f.lit(0.0)))


def period_start(period: str) -> Column:
    """First day (days since 1970-01-01) of the line's day, ISO week (Monday) or month."""
    f = F()
    day = f.col("day")
    if period == "day":
        return day
    if period == "week":
        return day - f.pmod(day + 3, f.lit(7))  # Monday-start weeks, as features.series.period_start
    return f.datediff(f.trunc("order_date", "month"), f.lit("1970-01-01").cast("date")).cast("long")


def discount_band(edges: list[float]) -> Column:
    """Band 0 is "no discount"; band i holds discounts in (edges[i-1], edges[i]]."""
    f = F()
    band = f.when(f.col("discount") <= 0, f.lit(0))
    for i, edge in enumerate(edges[1:], start=1):
        band = band.when(f.col("discount") <= edge, f.lit(i))
    return band.otherwise(f.lit(len(edges)))


class SparkPrepared:
    """The Spark lines with line revenue, day and sale flag; the shared tables computed once, on demand."""

    def __init__(self, lines: DataFrame, period: str = "month", discount_bands: list[float] | None = None,
                 churn_window_days: int = 90) -> None:
        require_columns(pd.DataFrame(columns=lines.columns), NEEDED, "order lines")
        f = F()
        has_seq = "_seq" in lines.columns
        seq = f.col("_seq") if has_seq else f.monotonically_increasing_id()
        self.lines = lines.select(
            *[f.col(c) for c in NEEDED], seq.alias("_seq"),
            (f.col("quantity") * f.col("unit_price") * (f.lit(1.0) - f.col("discount"))).alias("rev"),
            f.datediff(f.to_date("order_date"), f.lit("1970-01-01").cast("date")).cast("long").alias("day"),
            (~f.col("returned")).alias("sale"),
        )
        # cached input (the loader's lines): the derived columns are cheap projections of it
        self._cached = not (has_seq and lines.is_cached)
        if self._cached:
            self.lines = self.lines.persist()
        self.period = period
        self.edges = discount_bands or [0.0, 0.1, 0.2, 0.3, 0.5, 1.0]
        self.churn_window_days = churn_window_days  # the window `customer_summary` is first asked for
        self._customers: DataFrame | None = None
        if self.stats["lines"] == 0:
            raise KpiUnavailable("no order lines")

    # ---- one job: totals, groups, orders ----

    @cached_property
    def tables(self) -> dict[str, list[Row]]:
        """set name -> rows: "all" (one row of totals), "period", "category", "channel", "band" (a row per key)
        and "orders" (one row of order-level figures). One job: the groups are grouping sets of one aggregate."""
        f = F()
        keyed = self.lines.select("*", period_start(self.period).alias("period"), f.coalesce(f.col("category"), f.lit(MISSING)).alias("cat"),
                                  f.coalesce(f.col("channel"), f.lit(MISSING)).alias("chan"), discount_band(self.edges).alias("band"))
        keys = ["period", "cat", "chan", "band"]
        sets = keyed.groupingSets([[k] for k in keys] + [[]], *keys).agg(f.grouping_id().alias("gid"), *self._aggregates(totals=True))
        names = {0b0111: "period", 0b1011: "category", 0b1101: "channel", 0b1110: "band", 0b1111: "all"}
        key = f.coalesce(*[f.col(k).cast("string") for k in keys])
        products = self.lines.filter("sale").agg(f.count_distinct("product_id").alias("products"))  # a third distinct count
        union = sets.select(f.lit("").alias("set"), key.alias("key"), "*").drop(*keys) \
            .unionByName(self._orders(self.lines), allowMissingColumns=True) \
            .unionByName(products.select(f.lit("products").alias("set"), "*"), allowMissingColumns=True)
        out: dict[str, list[Row]] = {name: [] for name in ("all", "period", "category", "channel", "band", "orders", "products")}
        for row in union.collect():
            out[names[row["gid"]] if row["set"] == "" else row["set"]].append(row)
        return out

    @staticmethod
    def _aggregates(totals: bool = False) -> list[Column]:
        """Sums of a group of lines; with `totals`, also what only the whole data's row is read for."""
        f = F()
        sale, ret, cust = f.col("sale"), f.col("returned"), f.col("customer_id").isNotNull()
        aggs = [
            f.count_if(sale).alias("sales_lines"), f.count_if(ret).alias("return_lines"),
            f.sum(f.when(sale, f.col("rev"))).alias("gross"), f.sum(f.when(ret, -f.col("rev"))).alias("returned"),
            f.sum(f.when(sale, f.col("quantity"))).alias("sold"), (-f.sum(f.when(ret, f.col("quantity")))).alias("back"),
            f.count_distinct(f.when(sale, f.col("order_id"))).alias("orders"),
            f.count_distinct(f.when(sale & cust, f.col("customer_id"))).alias("customers"),
        ]
        if totals:
            flag = f.col("returned").cast("double")
            aggs += [
                f.count(f.lit(1)).alias("lines"), f.count_if(~cust).alias("lines_without_customer"),
                f.min("day").alias("first_day"), f.max("day").alias("last_day"),
                f.min("discount").alias("d_lo"), f.max("discount").alias("d_hi"), f.min(flag).alias("r_lo"), f.max(flag).alias("r_hi"),
                f.corr("discount", flag).alias("d_corr"),
            ]
        return aggs

    def _sums(self, key: Column, name: str) -> list[Row]:
        """The sums of one grouping on its own (a period or discount bands other than the prepared ones): one job."""
        f = F()
        return self.lines.groupBy(key.cast("string").alias("key")).agg(*self._aggregates()).select(f.lit(name).alias("set"), "*").collect()

    def _orders(self, lines: DataFrame) -> DataFrame:
        f = F()
        orders = lines.filter("sale").groupBy("order_id").agg(
            f.sum("rev").alias("value"), f.count(f.lit(1)).alias("n"), f.sum("quantity").alias("units"))
        return orders.agg(f.count(f.lit(1)).alias("n_orders"), f.avg("value").alias("aov"), f.percentile("value", 0.5).alias("median"),
                          f.avg("n").alias("per_order"), f.avg("units").alias("units_per_order")) \
            .select(f.lit("orders").alias("set"), f.lit(None).cast("string").alias("key"), "*")

    @property
    def stats(self) -> dict[str, Any]:
        """The "all" row: totals over every line (sums over no line are 0)."""
        if "_stats" not in self.__dict__:
            row = {**self.tables["all"][0].asDict(), "products": self.tables["products"][0]["products"]}
            keep = {"first_day", "last_day", "d_lo", "d_hi", "r_lo", "r_hi", "d_corr", "key", "set"}
            self.__dict__["_stats"] = {k: (0 if v is None and k not in keep else v) for k, v in row.items()}
        return self.__dict__["_stats"]

    @property
    def last_day(self) -> int:
        return int(self.stats["last_day"])

    @property
    def reference_day(self) -> int:
        return self.last_day + 1  # features.customers.reference_day: the last order date + 1 day

    @property
    def reference_date(self) -> str:
        return str(np.datetime64(self.reference_day, "D"))

    @property
    def lines_without_customer(self) -> int:
        return int(self.stats["lines_without_customer"])

    def require_customers(self) -> None:
        if self.lines_without_customer == self.stats["lines"]:
            raise KpiUnavailable("no line has a customer id")

    # ---- per customer: one cached table, one job of scalars ----

    @property
    def customer_table(self) -> DataFrame:
        """Per customer with a sales line: orders, revenue (sales, in line order), net (sales + returns, in line
        order), units, first and last purchase day. `features.kpis.base.Prepared.customer_sales` and the RFM
        features of `features.customers` in one pass."""
        if self._customers is None:
            f = F()
            sale = f.col("sale")
            table = self.lines.filter(f.col("customer_id").isNotNull()).groupBy("customer_id").agg(
                f.count_distinct(f.when(sale, f.col("order_id"))).alias("orders"),
                f.array_sort(f.collect_list(f.struct("_seq", "rev", "sale"))).alias("items"),
                f.sum(f.when(sale, f.col("quantity"))).cast("double").alias("units"),
                f.min(f.when(sale, f.col("day"))).alias("first_day"), f.max(f.when(sale, f.col("day"))).alias("last_day"),
            ).filter(f.col("orders") > 0)
            revenue, back = in_order(f.col("items"), True), in_order(f.col("items"), False)
            self._customers = table.select("customer_id", "orders", revenue.alias("revenue"), "units", "first_day", "last_day",
                                           (revenue + back).alias("monetary")).persist()
        return self._customers

    def customer_summary(self, churn_window_days: int) -> dict[str, Any]:
        """Every per-customer scalar of orders per customer, churn and CLV for one churn window: one job."""
        key = ("summary", churn_window_days)
        if key not in self.__dict__:
            self.require_customers()
            f = F()
            churned = f.lit(self.reference_day) - f.col("last_day") > churn_window_days
            row = self.customer_table.agg(
                f.count(f.lit(1)).alias("n"), f.sum("orders").alias("orders"), f.avg("orders").alias("mean"),
                f.percentile("orders", 0.5).alias("median"), f.count_if(f.col("orders") == 1).alias("one"),
                f.avg((f.col("orders") > 1).cast("double")).alias("repeat"), f.avg("revenue").alias("mean_revenue"),
                f.sum("revenue").alias("revenue"), f.percentile("revenue", 0.5).alias("median_revenue"),
                f.count_if(churned).alias("churned"),
            ).first().asDict()
            if not row["n"]:
                raise KpiUnavailable("no sales line has a customer id")
            self.__dict__[key] = row
        return self.__dict__[key]

    def release(self) -> None:
        if self._cached:
            self.lines.unpersist()
        if self._customers is not None:
            self._customers.unpersist()
