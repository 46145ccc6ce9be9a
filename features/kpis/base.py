"""What every KPI calculator shares: options, the "unavailable" signal, and one prepared view of the lines.

Why a prepared view: the report runs a dozen calculators over the same frame; factorising ids,
computing line revenue and per-customer totals once (integer codes + `np.bincount`) keeps the
full report on 1M lines within a couple of seconds. Every calculator also accepts a plain frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, field_validator

from features.config_io import Strict
from features.customers import reference_day
from features.contract import line_revenue
from features.counting import distinct_count

#: the periods revenue is summed over (features.kpis.periods)
Period = Literal["month", "week", "day"]
NEEDED = ["order_id", "order_date", "customer_id", "product_id", "category", "quantity", "unit_price", "discount", "channel", "returned"]


class KpiUnavailable(ValueError):
    """The data lacks what a KPI needs (no customer ids, no inventory table, ...); the report shows the reason."""


class KpiOptions(Strict):
    """Settings of the calculators; an unknown key is an error that names it."""

    churn_window_days: int = Field(90, ge=1, description="no purchase in this many days before the reference date: churned")
    high_value_share: float = Field(0.2, gt=0, le=1, description="top share of customers by CLV called high-value")
    profit_margin: float = Field(1.0, gt=0, le=1, description="CLV margin; 1 = revenue-based (margin-free) CLV")
    demand_window_days: int = Field(28, ge=1, description="recent days whose sales give the daily demand rate")
    revenue_period: Period = Field("month", description="period of the revenue-by-period KPI")
    top_n: int = Field(10, ge=1, description="rows kept in top-k tables (top categories, top customers)")
    discount_bands: list[float] = Field(
        default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.5, 1.0], description="band edges; band 0 is 'no discount'"
    )

    @field_validator("discount_bands")
    @classmethod
    def _edges(cls, v: list[float]) -> list[float]:
        if len(v) < 2 or v[0] != 0 or v[-1] != 1 or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"discount_bands must rise strictly from 0 to 1, got {v}")
        return v

    @classmethod
    def parse(cls, options: KpiOptions | dict[str, Any] | None) -> KpiOptions:
        """Options from a dict (CLI, service, job config) with one readable error line."""
        if isinstance(options, KpiOptions):
            return options
        try:
            return cls(**(options or {}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"KPI options: {problems} (known: {sorted(cls.model_fields)})") from None


def require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lack column(s) {missing}")


def share(part: np.ndarray | float, whole: float) -> np.ndarray | float | None:
    """part / whole, None when the whole is 0 (a share of nothing is undefined, not 0)."""
    if whole == 0:
        return None
    return part / whole


@dataclass(eq=False)
class Prepared:
    """A validated `OrderLines` frame with its codes and per-customer totals computed once, on demand."""

    lines: pd.DataFrame
    _codes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        require_columns(self.lines, NEEDED, "order lines")
        if self.lines.empty:
            raise KpiUnavailable("no order lines")

    @cached_property
    def returned(self) -> np.ndarray:
        return self.lines["returned"].to_numpy(dtype=bool)

    @cached_property
    def sale(self) -> np.ndarray:
        return ~self.returned

    @cached_property
    def revenue(self) -> np.ndarray:
        """Line revenue after discount; negative on return lines."""
        return line_revenue(self.lines).to_numpy(dtype=np.float64)

    @cached_property
    def quantity(self) -> np.ndarray:
        return self.lines["quantity"].to_numpy(dtype=np.float64)

    @cached_property
    def day(self) -> np.ndarray:
        """Calendar day of each line (days since 1970-01-01); times of day are ignored."""
        return self.lines["order_date"].to_numpy().astype("datetime64[D]").astype(np.int64)

    @cached_property
    def last_day(self) -> int:
        """The last order date in the data (any line): where the observation ends."""
        return int(self.day.max())

    @cached_property
    def reference_day(self) -> int:
        """The day recency is counted to (churn, RFM): `features.customers.reference_day`, the one definition."""
        return reference_day(self.day)

    @property
    def reference_date(self) -> str:
        return str(np.datetime64(self.reference_day, "D"))

    @cached_property
    def order(self) -> tuple[np.ndarray, int]:
        codes, uniques = pd.factorize(self.lines["order_id"])
        return codes, len(uniques)

    @property
    def customer(self) -> tuple[np.ndarray, np.ndarray]:
        """Customer codes (-1 where customer_id is null) and the ids, sorted."""
        return self.codes_of("customer_id")

    def codes_of(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Codes (-1 for null) and sorted unique values of a string column, computed once per column."""
        if column not in self._codes:
            self._codes[column] = _factorize(self.lines[column])
        return self._codes[column]

    @cached_property
    def lines_without_customer(self) -> int:
        return int((self.customer[0] < 0).sum())

    @cached_property
    def customer_sales(self) -> pd.DataFrame:
        """Per customer with at least one sales line: orders, revenue, units, first and last purchase day.

        Revenue is sales revenue (after discount, before returns); lines without customer id are left out
        (counted in `lines_without_customer`)."""
        codes, ids = self.customer
        mask = self.sale & (codes >= 0)
        c, n = codes[mask], len(ids)
        if len(c) == 0:
            raise KpiUnavailable("no sales line has a customer id")
        orders = distinct_count(c, self.order[0][mask], n)
        first = np.full(n, np.iinfo(np.int64).max)
        last = np.full(n, np.iinfo(np.int64).min)
        np.minimum.at(first, c, self.day[mask])
        np.maximum.at(last, c, self.day[mask])
        table = pd.DataFrame({
            "customer_id": ids,
            "orders": orders,
            "revenue": np.bincount(c, weights=self.revenue[mask], minlength=n),
            "units": np.bincount(c, weights=self.quantity[mask], minlength=n),
            "first_day": first,
            "last_day": last,
        })
        return table[orders > 0].reset_index(drop=True)


def _factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    return codes, np.asarray(uniques, dtype=object)


def prepare(lines: pd.DataFrame | Prepared) -> Prepared:
    """A `Prepared` view (the same one when given one, so a report prepares once)."""
    return lines if isinstance(lines, Prepared) else Prepared(lines)
