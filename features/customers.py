"""Customer features (recency, frequency, monetary, ...) from `OrderLines`, one row per customer.

Used by the segmenter at training time, by the service to turn raw order lines into model inputs
and by the RFM KPI (`features.kpis.rfm`), so all of them compute recency, frequency and monetary
the same way. Vectorised with integer codes and `np.bincount` (1M lines ~1 s).

Definitions (days are calendar days, times of day ignored), the only ones in the project:
- reference date (`reference_day`): the configured one, else the data's last order date + 1 day, so
  a customer who bought on the last day has recency 1; lines dated after it are left out and counted
  (`lines_after_reference`).
- recency: days from the customer's last purchase (sales line) to the reference date.
- frequency: distinct orders with at least one sales line.
- monetary: NET revenue, `contract.line_revenue` summed over sales lines plus return lines
  (returns are negative; `aov` is the gross one, per order), so a customer who only returned goods
  in the window has a negative monetary value: kept, flagged in `nonpositive_monetary` and counted,
  never dropped.
- quantity: units bought (sales lines).
- tenure: days from the first purchase to the reference date.
- aov: sales revenue (before returns) per order; 0 for a customer without orders.
- return_rate: returned units / bought units, capped to [0, 1] (returns of goods bought before the
  window can exceed purchases; capped customers are counted); 1 for a customer with returns only.
  Only built when the data has return lines; otherwise omitted and reported in `omitted`.
Customers without any sales line (returns only) take recency and tenure from their return lines.
Lines without a customer id are excluded and counted (`lines_without_customer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from features.contract import line_revenue
from features.counting import distinct_count

FEATURES = ["recency", "frequency", "monetary", "quantity", "tenure", "aov", "return_rate"]
NEEDED_COLUMNS = ["order_id", "order_date", "customer_id", "quantity", "unit_price", "discount", "returned"]
FLAG = "nonpositive_monetary"


@dataclass
class CustomerFeatures:
    """The feature table (one row per customer) with what was left out and why."""

    table: pd.DataFrame  # customer_id, every built feature (float64), nonpositive_monetary
    available: list[str]  # the feature columns usable as model candidates (configured and built)
    omitted: dict[str, str] = field(default_factory=dict)  # feature -> reason it is not available
    stats: dict[str, int] = field(default_factory=dict)
    reference_date: pd.Timestamp | None = None

    def subset(self, rows: np.ndarray) -> CustomerFeatures:
        """The same features for a subset of customers (positional rows), e.g. a train/holdout split."""
        table = self.table.iloc[rows].reset_index(drop=True)
        return CustomerFeatures(table, list(self.available), dict(self.omitted), dict(self.stats), self.reference_date)


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """log1p that keeps the sign: safe for negative monetary values (returns only) and monotone.

    Registered segmenters pickle a reference to this function (their pipeline's transform), so it
    stays here, in a module that imports only numpy and pandas, where every served model finds it.
    """
    return np.sign(x) * np.log1p(np.abs(x))


def build_customer_features(
    lines: pd.DataFrame,
    reference_date: date | pd.Timestamp | str | None = None,
    candidates: list[str] | None = None,
) -> CustomerFeatures:
    """Customer features from validated order lines; `candidates` restricts the feature columns."""
    missing = [c for c in NEEDED_COLUMNS if c not in lines.columns]
    if missing:
        raise ValueError(f"order lines lack column(s) needed for customer features: {missing}")
    unknown = [c for c in candidates or [] if c not in FEATURES]
    if unknown:
        raise ValueError(f"unknown customer feature(s) {unknown}; known: {FEATURES}")
    if lines.empty:
        raise ValueError("no order lines: cannot build customer features")
    days = lines["order_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    ref = reference_day(days, reference_date)
    has_customer = lines["customer_id"].notna().to_numpy()
    in_window = days <= ref
    used = has_customer & in_window
    if not used.any():
        raise ValueError("no order line has a customer id (on or before the reference date): no customer features")
    table, counts = _aggregate(lines[used], days[used], ref)
    stats = {
        "lines_total": len(lines),
        "lines_used": int(used.sum()),
        "lines_without_customer": int((~has_customer).sum()),
        "lines_after_reference": int((has_customer & ~in_window).sum()),
        "customers": len(table),
        **counts,
    }
    wanted = candidates or FEATURES
    omitted = {}
    if counts["return_lines_used"] == 0:
        omitted["return_rate"] = "the data has no return lines (with a customer id)"
    available = [f for f in FEATURES if f in wanted and f not in omitted]
    built = [f for f in FEATURES if f not in omitted]  # every feature stays in the table for profiles
    table = table[["customer_id", *built, FLAG]]
    return CustomerFeatures(table, available, omitted, stats, pd.Timestamp(np.datetime64(ref, "D")))


def reference_day(days: np.ndarray, reference_date: date | pd.Timestamp | str | None = None) -> int:
    """The day recency and tenure count to (days since 1970-01-01): the given date, else last day + 1."""
    if reference_date is None:
        return int(days.max()) + 1
    return int(np.datetime64(pd.Timestamp(reference_date).date(), "D").astype(np.int64))


def _aggregate(lines: pd.DataFrame, days: np.ndarray, ref: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Per-customer sums, distinct orders and first/last days via integer codes and bincount."""
    codes, customers = pd.factorize(lines["customer_id"], sort=True)
    n = len(customers)
    qty = lines["quantity"].to_numpy(dtype=np.float64)
    revenue = line_revenue(lines).to_numpy(dtype=np.float64)
    is_return = lines["returned"].to_numpy(dtype=bool)
    sale = ~is_return

    def total(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask], weights=values[mask], minlength=n)

    bought, returned_units = total(sale, qty), total(is_return, -qty)
    sales_revenue = total(sale, revenue)
    monetary = sales_revenue + total(is_return, revenue)
    frequency = distinct_count(codes[sale], pd.factorize(lines["order_id"])[0][sale], n)
    has_sale = np.bincount(codes[sale], minlength=n) > 0
    first, last = _first_last(codes, days, sale, has_sale, n)
    return_rate, capped = _return_rate(bought, returned_units)
    table = pd.DataFrame(
        {
            "customer_id": pd.array(customers, dtype="string"),
            "recency": (ref - last).astype(np.float64),
            "frequency": frequency.astype(np.float64),
            "monetary": monetary,
            "quantity": bought,
            "tenure": (ref - first).astype(np.float64),
            "aov": np.divide(sales_revenue, frequency, out=np.zeros(n), where=frequency > 0),
            "return_rate": return_rate,
            FLAG: monetary <= 0,
        }
    )
    counts = {
        "customers_nonpositive_monetary": int((monetary <= 0).sum()),
        "customers_only_returns": int((~has_sale).sum()),
        "customers_return_rate_capped": capped,
        "return_lines_used": int(is_return.sum()),
    }
    return table, counts


def _first_last(codes, days, sale, has_sale, n) -> tuple[np.ndarray, np.ndarray]:
    """First/last purchase day; customers with returns only fall back to their return lines."""
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, codes[sale], days[sale])
    np.maximum.at(last, codes[sale], days[sale])
    if not has_sale.all():
        fallback = ~has_sale[codes]
        np.minimum.at(first, codes[fallback], days[fallback])
        np.maximum.at(last, codes[fallback], days[fallback])
    return first, last


def _return_rate(bought: np.ndarray, returned: np.ndarray) -> tuple[np.ndarray, int]:
    raw = np.divide(returned, bought, out=np.where(returned > 0, 1.0, 0.0), where=bought > 0)
    capped = int(((raw > 1) | (raw < 0)).sum())
    return np.clip(raw, 0.0, 1.0), capped
