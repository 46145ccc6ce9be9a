"""Stockout risk on Spark: `features.kpis.stock.stockout_risk` from one job over the lines.

Recent units per inventory key, the first category of each inventoried product (when the inventory
has none) and the count of sold items missing from the inventory are three branches of one union;
the inventory itself is a small side table, joined by broadcast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.kpis.stock import _by_category, _check_inventory
from features.spark.kpis.prepared import F, SparkPrepared

Frame = pd.DataFrame | None


def stockout_risk(data: SparkPrepared, inventory: Frame, demand_window_days: int = 28) -> dict[str, Any]:
    f = F()
    key = _check_inventory(inventory)
    assert inventory is not None
    spark = data.lines.sparkSession
    keys = inventory[key].astype("string")
    side = f.broadcast(spark.createDataFrame([(k,) for k in keys.dropna().astype(object).unique().tolist()], f"{key} string"))
    lines = data.lines.filter(f.col(key).isNotNull())
    recent = lines.filter(f.col("sale") & (f.col("day") > data.last_day - demand_window_days))
    branches = [
        recent.join(side, key).groupBy(f.col(key).alias("key")).agg(f.sum("quantity").cast("double").alias("units"))
        .select(f.lit("units").alias("set"), "*"),
        lines.filter("sale").select(key).distinct().join(side, key, "left_anti").agg(f.count(f.lit(1)).alias("n"))
        .select(f.lit("unlisted").alias("set"), "*"),
    ]
    with_category = key == "product_id" and "category" not in inventory.columns
    if with_category:  # the category of a product's first line, as the local engine takes it
        # each (product, category)'s first line by a hash aggregate (string keys, a long minimum), then the
        # first category per product over those few rows: a min_by over every line would sort them all
        firsts = data.lines.join(side, "product_id").groupBy("product_id", "category").agg(f.min("_seq").alias("_seq"))
        branches.append(firsts.groupBy(f.col("product_id").alias("key"))
                        .agg(f.min_by("category", "_seq").alias("category")).select(f.lit("category").alias("set"), "*"))
    union = branches[0]
    for branch in branches[1:]:
        union = union.unionByName(branch, allowMissingColumns=True)
    rows: dict[str, list[Any]] = {"units": [], "unlisted": [], "category": []}
    for row in union.collect():
        rows[row["set"]].append(row)
    units = {r["key"]: float(r["units"]) for r in rows["units"]}
    table = pd.DataFrame({
        key: keys.to_numpy(dtype=object),
        "stock_on_hand": pd.to_numeric(inventory["stock_on_hand"]).to_numpy(),
        "lead_time_days": pd.to_numeric(inventory["lead_time_days"]).to_numpy(),
    })
    if key == "product_id":
        table.insert(1, "category", _product_category(inventory, {r["key"]: r["category"] for r in rows["category"]}))
    table["daily_demand"] = np.array([units.get(k, 0.0) if isinstance(k, str) else 0.0 for k in table[key]]) / demand_window_days
    demand = table["daily_demand"].to_numpy()
    table["days_of_cover"] = np.divide(table["stock_on_hand"].to_numpy(), demand, out=np.full(len(table), np.nan), where=demand > 0)
    table["at_risk"] = (demand > 0) & (table["days_of_cover"].to_numpy() < table["lead_time_days"].to_numpy())
    out: dict[str, Any] = {
        "reference_date": data.reference_date, "demand_window_days": demand_window_days,
        "rule": "at risk when stock_on_hand / daily demand < lead_time_days", "keyed_by": key,
        "items": len(table), "items_at_risk": int(table["at_risk"].sum()), "share_at_risk": float(table["at_risk"].mean()),
        "items_without_recent_demand": int((table["daily_demand"] == 0).sum()),
        "sold_items_without_inventory": int(rows["unlisted"][0]["n"]),
        "at_risk": table[table["at_risk"]].sort_values(["days_of_cover", key], ignore_index=True),
    }
    if "category" in table.columns and key != "category":
        out["by_category"] = _by_category(table)
    return out


def _product_category(inventory: pd.DataFrame, first: dict[str, str]) -> np.ndarray:
    if "category" in inventory.columns:
        return inventory["category"].astype("string").fillna("(missing)").to_numpy(dtype=object)
    return np.array([first.get(p, "(unknown)") if isinstance(p, str) else "(unknown)"
                     for p in inventory["product_id"].astype("string").astype(object)], dtype=object)
