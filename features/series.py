"""Order lines -> long-format sales series (`unique_id`, `ds`, `y`) for the forecaster.

Periods are labelled by their start (`ds`): the day, the Monday of a Monday-Sunday week, or the
first of the month. Every series spans the same complete periods: a period without sales is a
zero, never a gap. A period at the edge of the data that the data only partly covers (orders of
2020-01-01 05:13 at the end of a 2019 extract) would read as a sales collapse, so it is dropped
(or kept and flagged), and the report says which periods and how much was in them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from features.config_io import Strict
from features.contract import line_revenue

Freq = Literal["D", "W", "M"]
#: pandas frequency of the period starts, per configured frequency
RANGE_FREQ = {"D": "D", "W": "W-MON", "M": "MS"}
#: default season length per frequency: a week of days, a year of weeks, a year of months
SEASON_LENGTH = {"D": 7, "W": 52, "M": 12}
DEFAULT_HORIZON = {"D": 14, "W": 4, "M": 3}  # periods a backtest (and a batch forecast) looks ahead by default
CALENDAR = ("december", "q4", "black_friday", "christmas", "weekend")
TOTAL = "total"
MISSING_GROUP = "(missing)"


class ExogOptions(Strict):
    """Regressors beside `y`: line columns aggregated per period, and calendar flags built from `ds`."""

    columns: list[str] = Field(default_factory=list, description="extra line columns (e.g. a promotion flag)")
    agg: Literal["max", "mean", "sum"] = "max"
    calendar: list[Literal["december", "q4", "black_friday", "christmas", "weekend"]] = Field(default_factory=list)


class SeriesOptions(Strict):
    """Which series to build: frequency, grouping, target and how to treat partial edge periods."""

    freq: Freq = "W"
    group_by: str | None = Field(None, description="None or 'total' for one series; else a line column")
    top_n: int | None = Field(None, ge=1, description="keep the n groups with the most revenue")
    target: Literal["revenue", "units", "orders"] = "revenue"
    net_of_returns: bool = True
    partial_periods: Literal["drop", "keep"] = "drop"

    @field_validator("group_by")
    @classmethod
    def _total_is_none(cls, value: str | None) -> str | None:
        return None if value in (None, "", TOTAL) else value


@dataclass
class SeriesSet:
    """The long frame plus what building it left out, so nothing disappears unreported."""

    frame: pd.DataFrame
    freq: Freq
    exog_columns: list[str] = field(default_factory=list)
    calendar: list[str] = field(default_factory=list)
    partial: pd.DataFrame = field(default_factory=pd.DataFrame)
    groups_dropped: int = 0
    groups_dropped_share: float = 0.0

    @property
    def ids(self) -> list[str]:
        return list(pd.unique(self.frame["unique_id"]))

    def series(self, unique_id: str) -> pd.DataFrame:
        return self.frame[self.frame["unique_id"] == unique_id]

    def report(self) -> dict[str, object]:
        """Counts for logging: series, periods, partial periods dropped or flagged, groups cut by top_n."""
        return {
            "series": len(self.ids),
            "periods": int(self.frame["ds"].nunique()),
            "freq": self.freq,
            "partial_periods": [
                {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
                for row in self.partial.to_dict("records")
            ],
            "groups_dropped_by_top_n": self.groups_dropped,
            "groups_dropped_revenue_share": round(self.groups_dropped_share, 6),
        }


def build_series(lines: pd.DataFrame, options: SeriesOptions | None = None, exog: ExogOptions | None = None) -> SeriesSet:
    """Aggregate order lines into one zero-filled series per group over the complete periods.

    Series come largest revenue first; every series spans the same periods (a group without sales
    in a period gets 0, also before its first sale).
    """
    options = options or SeriesOptions()
    exog = exog or ExogOptions()
    _check_columns(lines, options, exog)
    if lines.empty:
        raise ValueError("no order lines to build series from")
    used = lines if options.net_of_returns else lines[~lines["returned"]]
    groups = _group_labels(used, options.group_by)
    keep, n_dropped, share = _top_groups(used, groups, options.top_n)
    used, groups = used[groups.isin(keep)], groups[groups.isin(keep)]
    starts = period_start(used["order_date"], options.freq)
    values = _target(used, groups, starts, options).unstack("unique_id", fill_value=0.0)
    first, last = complete_days(lines["order_date"])
    periods = pd.date_range(period_start(lines["order_date"].min(), options.freq),
                            period_start(lines["order_date"].max(), options.freq), freq=RANGE_FREQ[options.freq])
    values = values.reindex(index=periods, columns=keep, fill_value=0.0)
    partial = _partial_periods(periods, options.freq, first, last, values, lines, starts)
    if options.partial_periods == "drop":
        values = values.drop(index=partial["ds"])
    frame = _long(values)
    if options.partial_periods == "keep":
        frame["partial"] = frame["ds"].isin(partial["ds"])
    frame = _add_exog(frame, used, groups, starts, exog, options.freq)
    partial["action"] = "dropped" if options.partial_periods == "drop" else "kept (flagged)"
    return SeriesSet(frame, options.freq, list(exog.columns), list(exog.calendar), partial, n_dropped, share)


def _check_columns(lines: pd.DataFrame, options: SeriesOptions, exog: ExogOptions) -> None:
    needed = {"order_id", "order_date", "quantity", "unit_price", "discount", "returned"}
    needed |= {options.group_by} if options.group_by else set()
    needed |= set(exog.columns)
    missing = sorted(needed - set(lines.columns))
    if missing:
        raise ValueError(f"order lines lack column(s) {missing} needed for the series (have {sorted(lines.columns)})")


def period_start(dates: pd.Series | pd.Timestamp, freq: Freq) -> pd.Series | pd.Timestamp:
    """Start of the period each date falls in (vectorised with numpy datetime units, no Period objects)."""
    scalar = isinstance(dates, pd.Timestamp)
    days = np.asarray(pd.Series([dates]) if scalar else dates, dtype="datetime64[ns]").astype("datetime64[D]")
    if freq == "D":
        out = days
    elif freq == "W":
        weekday = (days.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        out = days - weekday.astype("timedelta64[D]")
    elif freq == "M":
        out = days.astype("datetime64[M]").astype("datetime64[D]")
    else:
        raise ValueError(f"unknown frequency {freq!r}; use one of D, W, M")
    out = out.astype("datetime64[ns]")
    return pd.Timestamp(out[0]) if scalar else pd.Series(out, index=dates.index)


def period_end(starts: pd.DatetimeIndex, freq: Freq) -> pd.DatetimeIndex:
    """Last day of each period."""
    return starts.shift(1, freq=RANGE_FREQ[freq]) - pd.Timedelta(days=1)


def future_starts(last: pd.Timestamp, freq: Freq, horizon: int) -> pd.DatetimeIndex:
    """The `horizon` period starts after `last`."""
    return pd.date_range(last, periods=horizon + 1, freq=RANGE_FREQ[freq])[1:]


def complete_days(dates: pd.Series, max_missing_share: float = 0.1) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day the data covers completely.

    Date-only data covers its first and last day. With times of day, an edge day counts when the
    hours it misses usually hold at most `max_missing_share` of a day's orders: an extract that
    stops at 05:13 misses 95% of a usual day, one that starts at 03:07 misses 4%.
    """
    days = dates.dt.normalize()
    first, last = days.min(), days.max()
    tod = dates - days
    if not bool((tod > pd.Timedelta(0)).any()):
        return first, last
    if float((tod < tod[days == first].min()).mean()) > max_missing_share:
        first += pd.Timedelta(days=1)
    if float((tod > tod[days == last].max()).mean()) > max_missing_share:
        last -= pd.Timedelta(days=1)
    return first, last


def _group_labels(lines: pd.DataFrame, group_by: str | None) -> pd.Series:
    if group_by is None:
        return pd.Series(TOTAL, index=lines.index, dtype="string")
    return lines[group_by].astype("string").fillna(MISSING_GROUP)


def _top_groups(lines: pd.DataFrame, groups: pd.Series, top_n: int | None) -> tuple[list[str], int, float]:
    """Groups kept (largest revenue first), how many top_n cut, and the revenue share they had."""
    revenue = line_revenue(lines).groupby(groups).sum().sort_values(ascending=False, kind="stable")
    keep = list(revenue.index[:top_n]) if top_n else list(revenue.index)
    total = float(revenue.abs().sum())
    cut = revenue.iloc[len(keep):]
    return [str(k) for k in keep], len(cut), (float(cut.abs().sum()) / total if total else 0.0)


def _target(lines: pd.DataFrame, groups: pd.Series, starts: pd.Series, options: SeriesOptions) -> pd.Series:
    keys = [groups.rename("unique_id"), starts.rename("ds")]
    if options.target == "revenue":
        return line_revenue(lines).groupby(keys).sum()
    if options.target == "units":
        return lines["quantity"].astype("float64").groupby(keys).sum()
    signed = lines["order_id"].where(~lines["returned"]).groupby(keys).nunique()
    if options.net_of_returns:  # a return order counts minus one
        signed = signed.sub(lines["order_id"].where(lines["returned"]).groupby(keys).nunique(), fill_value=0)
    return signed.astype("float64")


def _partial_periods(
    periods: pd.DatetimeIndex, freq: Freq, first: pd.Timestamp, last: pd.Timestamp,
    values: pd.DataFrame, lines: pd.DataFrame, starts_used: pd.Series,
) -> pd.DataFrame:
    """Edge periods the data does not cover completely, with what they held (for the report)."""
    ends = period_end(periods, freq)
    rows = []
    edges = [(periods[0], ends[0], "first")] + ([(periods[-1], ends[-1], "last")] if len(periods) > 1 else [])
    for ds, end, edge in edges:
        if ds >= first and end <= last:
            continue
        covered_from, covered_to = max(ds, first), min(end, last)
        days = max((covered_to - covered_from).days + 1, 0)
        in_period = (lines["order_date"] >= ds) & (lines["order_date"] < end + pd.Timedelta(days=1))
        rows.append({
            "ds": ds, "edge": edge, "days_in_period": (end - ds).days + 1, "days_covered": days,
            "lines": int(in_period.sum()), "y_total": float(values.loc[ds].sum()),
            "reason": f"the data covers {first.date()} .. {last.date()}",
        })
    return pd.DataFrame(rows, columns=["ds", "edge", "days_in_period", "days_covered", "lines", "y_total", "reason"])


def _long(values: pd.DataFrame) -> pd.DataFrame:
    values = values.rename_axis(index="ds", columns="unique_id")
    frame = values.T.stack().rename("y").reset_index()
    frame["unique_id"] = frame["unique_id"].astype("string")
    frame["ds"] = frame["ds"].astype("datetime64[ns]")
    frame["y"] = frame["y"].astype("float64")
    return frame  # series in column order (largest revenue first), periods in time order


def _add_exog(
    frame: pd.DataFrame, lines: pd.DataFrame, groups: pd.Series, starts: pd.Series, exog: ExogOptions, freq: Freq
) -> pd.DataFrame:
    for col in exog.columns:
        numeric = pd.to_numeric(lines[col].astype("object"), errors="coerce")
        bad = int(numeric.isna().sum() - lines[col].isna().sum())
        if bad:
            raise ValueError(f"exog column {col!r} has {bad} non-numeric value(s); regressors must be numbers or flags")
        agg = numeric.astype("float64").groupby([groups.rename("unique_id"), starts.rename("ds")]).agg(exog.agg)
        frame = frame.merge(agg.rename(col).reset_index(), on=["unique_id", "ds"], how="left")
        frame[col] = frame[col].fillna(0.0)
    if exog.calendar:
        cal = calendar_exog(pd.DatetimeIndex(frame["ds"]), freq, list(exog.calendar))
        frame = pd.concat([frame, cal.set_index(frame.index)], axis=1)
    return frame


def calendar_exog(starts: pd.DatetimeIndex, freq: Freq, names: list[str]) -> pd.DataFrame:
    """Calendar flags of each period, known in advance (so forecasts need no user input for them)."""
    ends = period_end(starts, freq)
    mid = starts + (ends - starts) / 2
    out = {}
    for name in names:
        if name == "december":
            out[name] = mid.month == 12
        elif name == "q4":
            out[name] = mid.month >= 10
        elif name == "black_friday":
            out[name] = _contains(starts, ends, _black_friday)
        elif name == "christmas":
            out[name] = _contains(starts, ends, lambda year: pd.Timestamp(year=year, month=12, day=24))
        elif name == "weekend":
            if freq != "D":
                raise ValueError("calendar flag 'weekend' needs daily series (freq: D)")
            out[name] = starts.day_of_week >= 5
        else:
            raise ValueError(f"unknown calendar flag {name!r}; known: {list(CALENDAR)}")
    return pd.DataFrame({k: np.asarray(v, dtype="float64") for k, v in out.items()}, index=starts)


def _black_friday(year: int) -> pd.Timestamp:
    """The day after the fourth Thursday of November."""
    nov1 = pd.Timestamp(year=year, month=11, day=1)
    thursday = nov1 + pd.Timedelta(days=(3 - nov1.day_of_week) % 7 + 21)
    return thursday + pd.Timedelta(days=1)


def _contains(starts: pd.DatetimeIndex, ends: pd.DatetimeIndex, day_of) -> np.ndarray:
    years = np.unique(np.concatenate([starts.year, ends.year]))
    days = pd.DatetimeIndex([day_of(int(y)) for y in years])
    return np.array([bool(((days >= s) & (days <= e)).any()) for s, e in zip(starts, ends)])
