"""Stockout risk: days of stock cover against supplier lead time, per product and per category.

- daily demand = units sold (sales lines) in the `demand_window_days` calendar days ending on the
  reference date (the last order date, included) / demand_window_days
- days of cover = stock_on_hand / daily demand (None without recent demand: nothing runs out)
- at risk when days of cover < lead_time_days
Per category: products, products at risk, stock, demand and cover = total stock / total demand.
The inventory table is keyed by product_id (category taken from it, else from the lines) or, when
it has no product_id, by category.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.kpis.base import KpiUnavailable, Prepared, prepare


def _check_inventory(inventory: pd.DataFrame | None) -> str:
    """The key column ("product_id" or "category"); bad tables raise `KpiUnavailable` naming the problem."""
    if inventory is None:
        raise KpiUnavailable("no inventory table")
    key = "product_id" if "product_id" in inventory.columns else "category" if "category" in inventory.columns else None
    missing = [c for c in ("stock_on_hand", "lead_time_days") if c not in inventory.columns]
    if key is None or missing:
        raise KpiUnavailable(f"the inventory table lacks column(s) {missing + ([] if key else ['product_id or category'])}")
    for col in ("stock_on_hand", "lead_time_days"):
        values = pd.to_numeric(inventory[col], errors="coerce")
        bad = np.flatnonzero((values.isna() | (values < 0)).to_numpy())
        if len(bad):
            raise KpiUnavailable(
                f"inventory table: {col} is missing, not numeric or negative in {len(bad)} rows (first rows {bad[:5].tolist()})"
            )
    dup = np.flatnonzero(inventory[key].duplicated().to_numpy())
    if len(dup):
        raise KpiUnavailable(f"inventory table: {key} repeated in {len(dup)} rows (first rows {dup[:5].tolist()})")
    return key


def stock_cover(lines: pd.DataFrame | Prepared, inventory: pd.DataFrame | None, demand_window_days: int = 28) -> pd.DataFrame:
    """One row per inventory row: key, category, stock, lead time, daily demand, days of cover, at_risk."""
    data = prepare(lines)
    key = _check_inventory(inventory)
    codes, values = data.codes_of(key)
    recent = data.sale & (data.day > data.last_day - demand_window_days) & (codes >= 0)
    units = np.bincount(codes[recent], weights=data.quantity[recent], minlength=len(values))
    table = pd.DataFrame({
        key: inventory[key].astype("string").to_numpy(dtype=object),
        "stock_on_hand": pd.to_numeric(inventory["stock_on_hand"]).to_numpy(),
        "lead_time_days": pd.to_numeric(inventory["lead_time_days"]).to_numpy(),
    })
    if key == "product_id":
        table.insert(1, "category", _product_category(data, inventory, table[key]))
    pos = pd.Index(values).get_indexer(table[key])
    table["daily_demand"] = np.where(pos >= 0, units[pos], 0.0) / demand_window_days
    demand = table["daily_demand"].to_numpy()
    table["days_of_cover"] = np.divide(table["stock_on_hand"].to_numpy(), demand, out=np.full(len(table), np.nan), where=demand > 0)
    table["at_risk"] = (demand > 0) & (table["days_of_cover"].to_numpy() < table["lead_time_days"].to_numpy())
    return table


def _product_category(data: Prepared, inventory: pd.DataFrame, products: pd.Series) -> np.ndarray:
    if "category" in inventory.columns:
        return inventory["category"].astype("string").fillna("(missing)").to_numpy(dtype=object)
    first = data.lines.drop_duplicates("product_id").set_index("product_id")["category"]
    return first.reindex(products.to_numpy()).astype("string").fillna("(unknown)").to_numpy(dtype=object)


def stockout_risk(lines: pd.DataFrame | Prepared, inventory: pd.DataFrame | None, demand_window_days: int = 28) -> dict[str, Any]:
    """Rows at risk (lowest cover first), counts and the per-category roll-up (module docstring)."""
    data = prepare(lines)
    table = stock_cover(data, inventory, demand_window_days)
    key = table.columns[0]
    codes, values = data.codes_of(key)
    sold = values[np.bincount(codes[data.sale & (codes >= 0)], minlength=len(values)) > 0]
    out: dict[str, Any] = {
        "reference_date": data.reference_date,
        "demand_window_days": demand_window_days,
        "rule": "at risk when stock_on_hand / daily demand < lead_time_days",
        "keyed_by": key,
        "items": len(table),
        "items_at_risk": int(table["at_risk"].sum()),
        "share_at_risk": float(table["at_risk"].mean()),
        "items_without_recent_demand": int((table["daily_demand"] == 0).sum()),
        "sold_items_without_inventory": int((~pd.Index(sold).isin(table[key])).sum()),
        "at_risk": table[table["at_risk"]].sort_values(["days_of_cover", key], ignore_index=True),
    }
    if "category" in table.columns and key != "category":
        out["by_category"] = _by_category(table)
    return out


def _by_category(table: pd.DataFrame) -> pd.DataFrame:
    grouped = table.groupby("category").agg(
        products=("product_id", "size"), products_at_risk=("at_risk", "sum"),
        stock_on_hand=("stock_on_hand", "sum"), daily_demand=("daily_demand", "sum"),
    )
    grouped["share_at_risk"] = grouped["products_at_risk"] / grouped["products"]
    demand = grouped["daily_demand"].to_numpy()
    grouped["days_of_cover"] = np.divide(grouped["stock_on_hand"].to_numpy(), demand, out=np.full(len(grouped), np.nan), where=demand > 0)
    return grouped.sort_values("share_at_risk", ascending=False).reset_index()
