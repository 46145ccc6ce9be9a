"""Per-customer summaries (frequency, recency, T, monetary) from `OrderLines`, and the checks a given summary passes.

Conventions (those of lifetimes' `summary_data_from_transaction_data` / `calibration_and_holdout_data`
with `freq="D"`, and `freq_multiplier=7` for weeks): a purchase is a distinct (customer, day) of sales
lines, its value the day's summed line revenue. frequency = purchase days after the first; recency =
last minus first purchase day; T = observation end minus first purchase day; monetary = mean value of
the repeat purchase days (0 without any). Weeks are days / 7, so a week count can be fractional, as
in the published CDNOW summary (30.43 weeks). lifetimes' own `freq="W"` counts distinct calendar weeks
instead (two purchases in one week are one), which loses the day grain: we do not use it.

Holdout: purchase days in (cutoff, end] of the customers first seen on or before the cutoff;
duration_holdout = (end - cutoff) in the unit; monetary_holdout = mean value of those days. (lifetimes
averages holdout *rows*, not days; on data with one row per purchase day the two agree.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from features.btyd.checks import row_problems
from features.contract import Numbering, Quarantine, line_revenue

Unit = Literal["D", "W"]
UNIT_DAYS = {"D": 1, "W": 7}
FIELDS = ["frequency", "recency", "T", "monetary"]
HOLDOUT = ["frequency_holdout", "duration_holdout", "monetary_holdout"]
#: holdout column -> the calibration column whose rules it follows (row_problems judges it under that name)
HOLDOUT_AS = {"frequency_holdout": "frequency", "duration_holdout": "T", "monetary_holdout": "monetary"}
WHOLE = {"frequency", "frequency_holdout"}


@dataclass
class CustomerSummary:
    """`table`: index customer_id; FIELDS, plus HOLDOUT when a holdout exists. `end`: last day observed."""

    table: pd.DataFrame
    unit: str
    cutoff: pd.Timestamp | None
    end: pd.Timestamp
    dropped: dict[str, int] = field(default_factory=dict)


def summarise(
    lines: pd.DataFrame, unit: str = "W", cutoff: date | str | pd.Timestamp | None = None, holdout: float | None = None
) -> CustomerSummary:
    """Summaries of every customer first seen on or before the cutoff (the whole period without one).

    `cutoff`: the last day of the calibration period; `holdout`: its length in units back from the
    last day (rounded to whole days). Returns and lines without a customer are left out and counted
    in `dropped`, as are customers whose first purchase falls after the cutoff."""
    if unit not in UNIT_DAYS:
        raise ValueError(f"unit must be 'D' (days) or 'W' (weeks), got {unit!r}")
    if cutoff is not None and holdout is not None:
        raise ValueError("give either a cutoff or a holdout length, not both")
    if len(lines) == 0:
        raise ValueError("no order lines to summarise")
    days = lines["order_date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    end = int(days.max())
    returned = lines["returned"].to_numpy(dtype=bool)
    guest = lines["customer_id"].isna().to_numpy()
    keep = ~returned & ~guest
    dropped = {"return_lines": int(returned.sum()), "lines_without_customer": int((guest & ~returned).sum())}
    if not keep.any():
        raise ValueError("no sales line with a customer_id: nothing to summarise")
    code, customers = pd.factorize(lines["customer_id"][keep], sort=True)
    purchases = _purchase_days(code, days[keep], line_revenue(lines).to_numpy(dtype=np.float64)[keep])
    cut = _cutoff_day(cutoff, holdout, unit, int(purchases[1].min()), end)
    table, after = _table(purchases, len(customers), cut if cut is not None else end, unit)
    if cut is not None:
        table = table.join(_holdout(purchases, len(customers), cut, end, unit))
    dropped["customers_first_seen_after_cutoff"] = after
    ids = pd.Index(customers, dtype="string", name="customer_id")
    table.index = ids[table.index.to_numpy()]
    cut_ts = None if cut is None else _timestamp(cut)
    return CustomerSummary(table, unit, cut_ts, _timestamp(end), dropped)


def _purchase_days(code: np.ndarray, day: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer code, day, value) of each distinct purchase day, sorted by customer then day."""
    first = day.min()
    span = int(day.max() - first) + 1
    key, where = np.unique(code.astype(np.int64) * span + (day - first), return_inverse=True)
    total = np.bincount(where, weights=value, minlength=len(key))
    return key // span, key % span + first, total


def _cutoff_day(cutoff: date | str | pd.Timestamp | None, holdout: float | None, unit: str, first: int, end: int) -> int | None:
    """The cutoff as a day number; a cutoff that leaves no calibration or no holdout is a ValueError naming the dates."""
    if cutoff is None and holdout is None:
        return None
    if holdout is not None:
        if not holdout > 0:
            raise ValueError(f"holdout must be a positive number of units, got {holdout!r}")
        cut = end - int(round(holdout * UNIT_DAYS[unit]))
        said = f"a holdout of {holdout:g} {unit} before the last day {_timestamp(end).date()} puts the cutoff on {_timestamp(cut).date()}"
    else:
        cut = int(pd.Timestamp(cutoff).to_datetime64().astype("datetime64[D]").astype(np.int64))
        said = f"cutoff {_timestamp(cut).date()}"
    if cut < first:
        raise ValueError(f"{said}, before the first purchase ({_timestamp(first).date()}): no calibration data")
    if cut >= end:
        raise ValueError(f"{said}, on or after the last day of the data ({_timestamp(end).date()}): no holdout data")
    return cut


def _table(purchases: tuple[np.ndarray, ...], n: int, end: int, unit: str) -> tuple[pd.DataFrame, int]:
    """Calibration columns of the customers first seen by `end`; also how many were first seen after it."""
    code, day, value = purchases
    inside = day <= end
    code, day, value = code[inside], day[inside], value[inside]
    who, start, count = np.unique(code, return_index=True, return_counts=True)
    first, last = day[start], day[start + count - 1]
    repeat = count - 1
    repeat_value = np.bincount(code, weights=value, minlength=n)[who] - value[start]
    scale = UNIT_DAYS[unit]
    table = pd.DataFrame(
        {
            "frequency": repeat.astype(np.int64),
            "recency": (last - first) / scale,
            "T": (end - first) / scale,
            "monetary": np.divide(repeat_value, repeat, out=np.zeros(len(who)), where=repeat > 0),
        },
        index=who,
    )
    return table, n - len(who)


def _holdout(purchases: tuple[np.ndarray, ...], n: int, cut: int, end: int, unit: str) -> pd.DataFrame:
    """Holdout purchase days and their mean value; every calibration customer gets a row (0 without any)."""
    code, day, value = purchases
    later = day > cut
    count = np.bincount(code[later], minlength=n)
    total = np.bincount(code[later], weights=value[later], minlength=n)
    return pd.DataFrame(
        {
            "frequency_holdout": count.astype(np.int64),
            "duration_holdout": np.full(n, (end - cut) / UNIT_DAYS[unit]),
            "monetary_holdout": np.divide(total, count, out=np.zeros(n), where=count > 0),
        }
    )


def _timestamp(day: int) -> pd.Timestamp:
    return pd.Timestamp(np.datetime64(int(day), "D"))


def check_summary(frame: pd.DataFrame, name: str, numbering: Numbering = "index") -> tuple[pd.DataFrame, Quarantine]:
    """Valid summary rows (numbers as int64/float64) and a quarantine naming each rejected row, column and reason.

    The rules of a row are `features.btyd.checks` (one place for files and requests); the holdout
    columns, where present, follow their calibration twins' (frequency_holdout a whole number, ...).
    A customer_id column, where present, must be filled and unique. `numbering="line"` numbers rows
    as file lines (header = line 1), "index" by their 0-based position."""
    missing = [c for c in FIELDS if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: customer summary column(s) {missing} missing; columns given: {list(frame.columns)}")
    holdout = [c for c in HOLDOUT if c in frame.columns]
    if holdout and not {"frequency_holdout", "duration_holdout"} <= set(holdout):
        need = [c for c in ("frequency_holdout", "duration_holdout") if c not in holdout]
        raise ValueError(f"{name}: holdout column(s) {need} missing: a holdout needs frequency_holdout and duration_holdout")
    problems = [_positions(row_problems(frame, FIELDS), {})]
    if holdout:
        renamed = frame[holdout].rename(columns=HOLDOUT_AS)
        problems.append(_positions(row_problems(renamed, [HOLDOUT_AS[c] for c in holdout]), {v: k for k, v in HOLDOUT_AS.items()}))
    if "customer_id" in frame.columns:
        ids = frame["customer_id"].astype("string").str.strip()
        problems.append(_flagged(ids.isna() | ids.eq(""), "customer_id", "missing value"))
        problems.append(_flagged(ids.notna() & ids.duplicated(), "customer_id", "duplicate customer_id"))
    found = pd.concat(problems, ignore_index=True).sort_values("position", kind="stable")
    found = found.drop_duplicates("position", ignore_index=True)
    quarantine = _quarantine(frame, found, name, numbering)
    clean = frame.iloc[np.setdiff1d(np.arange(len(frame)), found["position"].to_numpy())].copy()
    for col in [*FIELDS, *holdout]:
        numbers = pd.to_numeric(clean[col], errors="raise").astype(np.float64)
        clean[col] = numbers.astype(np.int64) if col in WHOLE else numbers
    return clean, quarantine


def _positions(found: pd.DataFrame, rename: dict[str, str]) -> pd.DataFrame:
    found = found[["position", "column", "reason"]].copy()
    found["column"] = found["column"].map(lambda c: rename.get(c, c))
    return found


def _flagged(mask: pd.Series, column: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"position": np.flatnonzero(mask.fillna(False).to_numpy(dtype=bool)), "column": column, "reason": reason})


def _quarantine(frame: pd.DataFrame, found: pd.DataFrame, name: str, numbering: Numbering) -> Quarantine:
    if found.empty:
        return Quarantine(numbering=numbering)
    pos = found["position"].to_numpy(dtype=np.int64)
    values = [frame[c].iloc[p] for p, c in zip(pos, found["column"])]
    out = pd.DataFrame(
        {
            "file": pd.Series(name, index=found.index, dtype="string"),
            "row": pos + (2 if numbering == "line" else 0),
            "column": found["column"].astype("string"),
            "reason": found["reason"].astype("string"),
            "value": pd.Series([None if pd.isna(v) else str(v) for v in values], index=found.index, dtype="string"),
        }
    )
    return Quarantine(out, numbering)
