"""The generated shop as frames: `OrderLines` (plus `country`), customers and inventory; written and read back.

The inventory plants stockout risk: stock = recent daily demand * a cover of 0.3..3 lead times, so
the at-risk products (days of cover < lead time) are known and listed in the truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import COLUMNS, STRING_COLUMNS
from features.synthetic.customers import Arrays
from features.synthetic.planted import CATEGORIES, CHANNELS, COUNTRIES, DEMAND_WINDOW_DAYS, LEAD_TIME_DAYS, SEGMENTS

FILES = ("lines.parquet", "customers.parquet", "inventory.parquet", "truth.json")


@dataclass
class SyntheticData:
    """The generated shop: order lines (contract + `country`), customers, inventory and the planted truth."""

    lines: pd.DataFrame
    customers: pd.DataFrame
    inventory: pd.DataFrame
    truth: dict[str, Any]

    def write(self, dir: Path) -> Path:
        """Write lines/customers/inventory as Parquet and truth.json into `dir` (created); returns `dir`."""
        dir = Path(dir)
        dir.mkdir(parents=True, exist_ok=True)
        self.lines.to_parquet(dir / "lines.parquet", index=False)
        self.customers.to_parquet(dir / "customers.parquet", index=False)
        self.inventory.to_parquet(dir / "inventory.parquet", index=False)
        (dir / "truth.json").write_text(json.dumps(self.truth, indent=2), encoding="utf-8")
        return dir


def read(dir: Path) -> SyntheticData:
    """Read a folder written by `SyntheticData.write`, restoring the contract dtypes."""
    dir = Path(dir)
    missing = [f for f in FILES if not (dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"{dir}: not a generated synthetic data folder, missing {missing}")
    lines = pd.read_parquet(dir / "lines.parquet")
    for col in [*STRING_COLUMNS, "country"]:
        lines[col] = lines[col].astype("string")
    lines["order_date"] = lines["order_date"].astype("datetime64[ns]")
    customers = pd.read_parquet(dir / "customers.parquet")
    for col in ("customer_id", "channel", "true_segment", "country"):
        customers[col] = customers[col].astype("string")
    customers["signup_date"] = customers["signup_date"].astype("datetime64[ns]")
    inventory = pd.read_parquet(dir / "inventory.parquet")
    for col in ("product_id", "category"):
        inventory[col] = inventory[col].astype("string")
    truth = json.loads((dir / "truth.json").read_text(encoding="utf-8"))
    return SyntheticData(lines, customers, inventory, truth)


def ids(prefix: str, numbers: np.ndarray, width: int) -> pd.Series:
    """"P0001"-style ids of non-negative numbers (ids count up from 0 or 1, so 0..max is formatted once, in Arrow, and taken)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    top = int(numbers.max()) + 1 if len(numbers) else 0
    digits = pc.utf8_lpad(pa.array(np.arange(top, dtype=np.int64)).cast(pa.large_string()), width=width, padding="0")
    text = pc.binary_join_element_wise(pa.scalar(prefix, pa.large_string()), digits, pa.scalar("", pa.large_string()))
    return labels(text, numbers)


def labels(values: list[str] | pa.Array, codes: np.ndarray) -> pd.Series:
    """String labels of integer codes, as a pandas string column (Arrow's `take`: no Python object per row)."""
    taken = pa.array(values, type=pa.large_string()).take(pa.array(np.asarray(codes, dtype=np.int64)))
    return pd.Series(pd.arrays.ArrowStringArray(taken))


def lines_frame(lines: Arrays, orders: Arrays, products: Arrays, product_names: pd.Series, start: pd.Timestamp) -> pd.DataFrame:
    """The `OrderLines` frame (plus `country`), sorted by time, order and sales before returns."""
    keep = np.lexsort((lines["returned"], lines["order"], lines["day"] * 86400 + lines["seconds"]))
    ln = {k: v[keep] for k, v in lines.items()}
    order, product = ln["order"], ln["product"]
    customer = orders["customer"][order]
    width = max(5, len(str(customer.max() + 1)))
    stamp = start.to_datetime64().astype("datetime64[ns]") + (ln["day"] * 86400 + ln["seconds"]).astype("timedelta64[s]")
    frame = pd.DataFrame({
        "order_id": ids("O", order + 1, max(7, len(str(order.max() + 1)))),
        "order_date": pd.Series(stamp.astype("datetime64[ns]")),
        "customer_id": ids("C", customer + 1, width).mask(customer < 0),
        "product_id": ids("P", product + 1, 4),
        "product_name": product_names.iloc[product].reset_index(drop=True),
        "category": labels(list(CATEGORIES), products["category"][product]),
        "quantity": ln["quantity"].astype(np.int64),
        "unit_price": products["price"][product].astype(np.float64),
        "discount": ln["discount"].astype(np.float64),
        "channel": labels(CHANNELS, orders["channel"][order]),
        "returned": ln["returned"].astype(bool),
        "country": labels(COUNTRIES[0], orders["country"][order]),
    })
    return frame[[*COLUMNS, "country"]]


def customers_frame(cust: Arrays, start: pd.Timestamp) -> pd.DataFrame:
    """The customers side table, with each customer's planted segment (`true_segment`)."""
    n = len(cust["segment"])
    return pd.DataFrame({
        "customer_id": ids("C", np.arange(1, n + 1), max(5, len(str(n)))),
        "signup_date": pd.Series(start.to_datetime64().astype("datetime64[ns]") + cust["signup"].astype("timedelta64[D]")),
        "channel": labels(CHANNELS, cust["channel"]),
        "engagement_score": cust["engagement"].astype(np.float64),
        "country": labels(COUNTRIES[0], cust["country"]),
        "true_segment": labels([s.name for s in SEGMENTS], cust["segment"]),
    })


def inventory_frame(rng: np.random.Generator, frame: pd.DataFrame, products: Arrays, product_ids: pd.Series) -> tuple[pd.DataFrame, list[str]]:
    """Stock = recent daily demand * a planted cover (0.3..3 lead times); at risk: cover < lead time.

    Recent demand = sales units in the `DEMAND_WINDOW_DAYS` days ending on the last order date (the
    stockout KPI's default), so the KPI recovers `at_risk` exactly."""
    n = len(products["category"])
    days = frame["order_date"].to_numpy().astype("datetime64[D]")
    recent = (days > days.max() - np.timedelta64(DEMAND_WINDOW_DAYS, "D")) & ~frame["returned"].to_numpy()
    code = frame["product_id"].str.slice(1).astype("int64").to_numpy() - 1
    rate = np.bincount(code[recent], weights=frame["quantity"].to_numpy()[recent], minlength=n) / DEMAND_WINDOW_DAYS
    lead = np.array([LEAD_TIME_DAYS[c] for c in CATEGORIES])[products["category"]] + rng.integers(-2, 3, size=n)
    cover = lead * rng.uniform(0.3, 3.0, size=n)
    stock = np.where(rate > 0, np.round(rate * cover), rng.integers(0, 50, size=n)).astype(np.int64)
    at_risk = (rate > 0) & (stock < rate * lead)
    inventory = pd.DataFrame({
        "product_id": product_ids,
        "category": labels(list(CATEGORIES), products["category"]),
        "stock_on_hand": stock,
        "lead_time_days": lead.astype(np.int64),
    })
    return inventory, sorted(product_ids[at_risk].tolist())
