"""The `OrderLines` data contract: one row per order line, the frame every part of ecomlab relies on.

Columns and their meaning are in DESIGN.md. Loaders map a source's columns onto these names
(the mapping lives in the data config), then `validate` splits rows into clean and quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from features.spark.guard import without_pyspark

with without_pyspark():  # pandera's package init imports pyspark.pandas whenever pyspark is installed
    import pandera.pandas as pa

REQUIRED = ["order_id", "order_date", "product_id", "quantity", "unit_price"]
OPTIONAL = ["customer_id", "product_name", "category", "discount", "channel", "returned"]
COLUMNS = [
    "order_id",
    "order_date",
    "customer_id",
    "product_id",
    "product_name",
    "category",
    "quantity",
    "unit_price",
    "discount",
    "channel",
    "returned",
]
#: columns a source may carry along beyond the contract (e.g. country) are kept as extra columns
STRING_COLUMNS = ["order_id", "customer_id", "product_id", "product_name", "category", "channel"]

#: A column holds a value safely when a sum of this many such values (a KPI over every line) can
#: neither wrap nor overflow; beyond that a value is quarantined as "out of range".
MAX_SUMMED_LINES = 2**32
MAX_QUANTITY = 2**63 // MAX_SUMMED_LINES - 1  # 2**31 - 1 units in one line: int64 sums cannot wrap
#: the bound of |unit price| and of |quantity x unit price|: float64 sums stay finite
MAX_AMOUNT = float(np.finfo(np.float64).max) / MAX_SUMMED_LINES

#: how a quarantine numbers its rows: "line" is the file line (the header is line 1), "index" the
#: 0-based position of a row in a request (JSON has no lines)
Numbering = Literal["line", "index"]

ORDER_LINES_SCHEMA = pa.DataFrameSchema(
    {
        "order_id": pa.Column("string", nullable=False),
        "order_date": pa.Column("datetime64[ns]", nullable=False),
        "customer_id": pa.Column("string", nullable=True),
        "product_id": pa.Column("string", nullable=False),
        "product_name": pa.Column("string", nullable=True),
        "category": pa.Column("string", nullable=False),
        "quantity": pa.Column("int64", nullable=False),
        "unit_price": pa.Column("float64", pa.Check.ge(0), nullable=False),
        "discount": pa.Column("float64", pa.Check.in_range(0, 1), nullable=False),
        "channel": pa.Column("string", nullable=True),
        "returned": pa.Column("bool", nullable=False),
    },
    strict=False,
    coerce=False,
)


@dataclass
class Quarantine:
    """Rows that could not be used, one entry per (row, column, reason), so nothing is lost silently.

    `row` means what `numbering` says: a file line, or a request's 0-based index."""

    frame: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {
                "file": pd.Series(dtype="string"),
                "row": pd.Series(dtype="int64"),
                "column": pd.Series(dtype="string"),
                "reason": pd.Series(dtype="string"),
                "value": pd.Series(dtype="string"),
            }
        )
    )
    numbering: Numbering = "line"

    @property
    def n_rows(self) -> int:
        """Distinct rejected rows (a row may fail on several columns)."""
        if self.frame.empty:
            return 0
        return int(self.frame[["file", "row"]].drop_duplicates().shape[0])

    def summary(self) -> pd.DataFrame:
        """Counts of rejected rows per (column, reason), largest first."""
        if self.frame.empty:
            return pd.DataFrame(columns=["column", "reason", "rows"])
        first = self.frame.drop_duplicates(["file", "row"])
        out = first.groupby(["column", "reason"], dropna=False).size().rename("rows").reset_index()
        return out.sort_values("rows", ascending=False, ignore_index=True)

    @staticmethod
    def concat(parts: list["Quarantine"]) -> "Quarantine":
        numbering = parts[0].numbering if parts else "line"
        frames = [p.frame for p in parts if not p.frame.empty]
        if not frames:
            return Quarantine(numbering=numbering)
        return Quarantine(pd.concat(frames, ignore_index=True), numbering)


@dataclass
class Accounting:
    """Row accounting of one load: read = clean + quarantined + duplicates dropped, always."""

    rows_read: int
    rows_clean: int
    rows_quarantined: int
    duplicates_dropped: int
    files: int = 1

    def check(self) -> None:
        total = self.rows_clean + self.rows_quarantined + self.duplicates_dropped
        if total != self.rows_read:
            raise AssertionError(
                f"row accounting broken: read {self.rows_read} != clean {self.rows_clean} "
                f"+ quarantined {self.rows_quarantined} + duplicates {self.duplicates_dropped}"
            )

    def as_dict(self) -> dict[str, int]:
        return {
            "rows_read": self.rows_read,
            "rows_clean": self.rows_clean,
            "rows_quarantined": self.rows_quarantined,
            "duplicates_dropped": self.duplicates_dropped,
            "files": self.files,
        }


@dataclass
class Loaded:
    """What every loader returns: the clean `OrderLines` frame, its quarantine and the accounting.

    A customer-summary source has no lines (an empty contract frame): its per-customer table
    (index customer_id; frequency, recency, T, monetary, ...) is `summary`, in `summary_unit` ("D"/"W")."""

    lines: pd.DataFrame
    quarantine: Quarantine
    accounting: Accounting
    name: str = ""
    customers: pd.DataFrame | None = None
    inventory: pd.DataFrame | None = None
    source_digest: str = ""
    summary: pd.DataFrame | None = None
    summary_unit: str | None = None


def validate_schema(lines: pd.DataFrame) -> pd.DataFrame:
    """Check a frame against the contract with pandera (raises `pandera.errors.SchemaError`)."""
    return ORDER_LINES_SCHEMA.validate(lines, lazy=True)


def sales(lines: pd.DataFrame) -> pd.DataFrame:
    """Sales lines: everything that is not a return."""
    return lines[~lines["returned"]]


def returns(lines: pd.DataFrame) -> pd.DataFrame:
    """Return lines (negative quantity or cancelled order)."""
    return lines[lines["returned"]]


def line_revenue(lines: pd.DataFrame) -> pd.Series:
    """Revenue of each line after discount; returns come out negative because their quantity is."""
    return lines["quantity"] * lines["unit_price"] * (1.0 - lines["discount"])
