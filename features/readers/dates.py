"""Order dates parsed row by row: ISO 8601 in any of its shapes, or the one format a data config declares.

Why row by row: pandas infers one format from the first value, so a column that mixed `2024-03-01`
and `2024-03-02T11:00:00Z` lost its valid rows, and a bad first row failed a whole request. Here
each value is judged alone. Times with an offset (or `Z`) are converted to the config's `timezone`
(UTC when it names none); times without one are taken as already written in it. The result is the
contract's naive `datetime64[ns]`; a value it cannot hold (before 1677 or after 2262) is "out of range".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: an ISO time that carries its own offset: a time after `T` or a space, then `Z` or +hh[[:]mm]
ISO_OFFSET = r"[Tt ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
NS_MIN, NS_MAX = pd.Timestamp.min, pd.Timestamp.max
PY_MIN, PY_MAX = NS_MIN.ceil("us").to_pydatetime(), NS_MAX.floor("us").to_pydatetime()


@dataclass
class Dates:
    """Parsed dates (naive datetime64[ns], NaT where a row failed) and why each failed row failed."""

    values: pd.Series
    unparseable: pd.Series
    out_of_range: pd.Series


def parse_dates(column: pd.Series, date_format: str | None = None, timezone: str | None = None) -> Dates:
    """Every value of `column` parsed on its own (see the module docstring); missing values stay NaT, unflagged."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return _typed(column, timezone)
    text = column.astype("string").str.strip()
    if date_format:
        zoned = "%z" in date_format or "%Z" in date_format
        parsed = pd.to_datetime(text, format=date_format, errors="coerce", utc=zoned)
        values = _to_zone(parsed, timezone) if zoned else parsed
    else:
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        values = _iso_local(parsed, text, timezone)
    return _finish(values, text, date_format, timezone)


def _iso_local(parsed_utc: pd.Series, text: pd.Series, timezone: str | None) -> pd.Series:
    """ISO values read as UTC back to wall time in `timezone`: only values with an offset move."""
    naive = parsed_utc.dt.tz_localize(None)
    if timezone is None:  # naive values were read as UTC, which is what they are taken to be
        return naive
    # Arrow's RE2 directly: pandas' str.contains runs this pattern through Python's re, ten times slower
    found = pc.fill_null(pc.match_substring_regex(pa.array(text.array), ISO_OFFSET), False)
    offset = pd.Series(np.asarray(found), index=text.index)
    if not offset.any():
        return naive
    local = parsed_utc.dt.tz_convert(timezone).dt.tz_localize(None)
    return naive.where(~offset, local)


def _to_zone(parsed: pd.Series, timezone: str | None) -> pd.Series:
    return parsed.dt.tz_convert(timezone or "UTC").dt.tz_localize(None)


def _typed(column: pd.Series, timezone: str | None) -> Dates:
    """A column that is already datetime (Parquet): aware values move to `timezone`, then the ns bounds."""
    values = _to_zone(column, timezone) if getattr(column.dt, "tz", None) is not None else column
    beyond = _beyond_ns(values)
    none = pd.Series(False, index=column.index)
    return Dates(values.mask(beyond).astype("datetime64[ns]"), none, beyond)


def _finish(values: pd.Series, text: pd.Series, date_format: str | None, timezone: str | None) -> Dates:
    """Bound the pandas result to datetime64[ns]; give the values pandas refused a second, exact look."""
    beyond = _beyond_ns(values)
    values = values.mask(beyond).astype("datetime64[ns]")
    failed = text.notna() & values.isna() & ~beyond
    unparseable = pd.Series(False, index=text.index)
    if failed.any():
        idx = failed[failed].index
        second = [_one(s, date_format, timezone) for s in text.loc[idx].tolist()]
        got = pd.Series([d if isinstance(d, datetime) else pd.NaT for d in second], index=idx, dtype="datetime64[ns]")
        values.loc[idx] = got
        beyond.loc[idx] = [d == "out of range" for d in second]
        unparseable.loc[idx] = [d is None for d in second]
    return Dates(values, unparseable, beyond)


def _one(value: str, date_format: str | None, timezone: str | None) -> datetime | str | None:
    """One value pandas refused: a naive datetime, "out of range", or None when it is no date of that format.

    Python's own parsers take ISO forms pandas does not (a comma before the fraction, a lower-case
    `t`/`z`, week dates) and tell a real date outside the ns bounds from a malformed one.
    """
    try:
        parsed = datetime.strptime(value, date_format) if date_format else datetime.fromisoformat(value.upper())
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(ZoneInfo(timezone or "UTC")).replace(tzinfo=None)
    except ValueError:
        return None
    except OverflowError:  # an offset that moves year 1 or 9999 off the calendar
        return "out of range"
    if not PY_MIN <= parsed <= PY_MAX:
        return "out of range"
    return parsed


def _beyond_ns(values: pd.Series) -> pd.Series:
    """Values datetime64[ns] cannot hold (pandas 3 parses to µs, which reaches years 1 .. 9999).

    Compared in the values' own unit with numpy (pandas' comparison across units is ~30x slower here)."""
    raw = values.to_numpy()
    unit = np.datetime_data(raw.dtype)[0]
    if unit == "ns":
        return pd.Series(False, index=values.index)
    low = np.datetime64(NS_MIN.ceil(unit).to_datetime64(), unit)
    high = np.datetime64(NS_MAX.floor(unit).to_datetime64(), unit)
    return pd.Series((raw < low) | (raw > high), index=values.index)
