"""The rules a customer summary row obeys, one place for files (quarantine) and requests (a 400).

frequency is a whole number of repeat purchases >= 0; recency and T are >= 0 with recency <= T; a
customer without repeat purchases has recency 0; monetary (mean repeat spend) is > 0 where frequency
> 0 (Gamma-Gamma's support) and >= 0 otherwise. Every value is a finite number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FIELDS = ["frequency", "recency", "T", "monetary"]


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    col = frame[column]
    if col.dtype == np.float64:  # the common case, and a request's: no conversion
        return col.to_numpy()
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _values(frame: pd.DataFrame, fields: list[str]) -> dict[str, np.ndarray]:
    missing = [c for c in fields if c not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; a customer summary needs {fields}")
    return {c: _numbers(frame, c) for c in fields}


def _broken(values: dict[str, np.ndarray]) -> list[tuple[np.ndarray, str, str]]:
    """(mask of rows breaking it, column, reason) for every rule, in the order a row's first problem is told."""
    found: list[tuple[np.ndarray, str, str]] = []
    for c, v in values.items():
        found.append((~np.isfinite(v), c, "not a finite number"))
        found.append((np.isfinite(v) & (v < 0), c, "negative"))
    f, r, t = values.get("frequency"), values.get("recency"), values.get("T")
    if f is not None:
        found.append((np.isfinite(f) & (f >= 0) & (f != np.floor(f)), "frequency", "not a whole number of purchases"))
    if r is not None and t is not None:
        found.append((np.isfinite(r) & np.isfinite(t) & (r > t), "recency", "greater than T"))
    if f is not None and r is not None:
        found.append(((f == 0) & np.isfinite(r) & (r > 0), "recency", "greater than 0 for a customer without repeat purchases"))
    m = values.get("monetary")
    if f is not None and m is not None:
        found.append(((f > 0) & np.isfinite(m) & (m == 0), "monetary", "zero spend for a customer with repeat purchases"))
    return found


def row_problems(frame: pd.DataFrame, fields: list[str] | None = None) -> pd.DataFrame:
    """One row per (row position, column, reason) that breaks a rule; empty when all rows are valid.

    A missing column is a ValueError naming it (no row can be judged without it)."""
    found = _broken(_values(frame, FIELDS if fields is None else fields))
    rows = [
        pd.DataFrame({"position": np.flatnonzero(mask), "column": col, "reason": reason})
        for mask, col, reason in found if mask.any()
    ]
    if not rows:
        return pd.DataFrame({"position": pd.Series(dtype=np.int64), "column": pd.Series(dtype=str), "reason": pd.Series(dtype=str)})
    out = pd.concat(rows, ignore_index=True)
    return out.sort_values("position", kind="stable").drop_duplicates("position").reset_index(drop=True)


def first_problem(values: dict[str, np.ndarray]) -> tuple[int, str, str, int] | None:
    """(row position, column, reason, rows with any problem) of the first bad row, or None: the request
    path's check, with no DataFrame built (a valid request costs microseconds)."""
    found = _broken(values)
    bad = np.zeros(len(next(iter(values.values()))), dtype=bool)
    for mask, _, _ in found:
        bad |= mask
    if not bad.any():
        return None
    first = int(np.argmax(bad))
    column, reason = next((col, why) for mask, col, why in found if mask[first])
    return first, column, reason, int(bad.sum())


def customer_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """frequency, recency, T and monetary as float64 arrays, or a ValueError naming the first bad row,
    its column and the rule it breaks (the row's label in `frame`)."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a DataFrame of customer summary rows, got {type(frame).__name__}")
    values = _values(frame, FIELDS)
    problem = first_problem(values)
    if problem is not None:
        pos, col, reason, n_bad = problem
        raw = frame[col].iloc[pos]
        shown = raw.item() if isinstance(raw, np.generic) else raw
        raise ValueError(f"row {frame.index[pos]!r} column {col!r}: {shown!r} is {reason} ({n_bad} bad row(s) in all)")
    return tuple(values[c] for c in FIELDS)  # type: ignore[return-value]
