"""Series building: zero-filled periods, partial edge periods, targets net/gross of returns, groups, exog."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.series import (
    ExogOptions,
    SeriesOptions,
    build_series,
    calendar_exog,
    complete_days,
    future_starts,
    period_start,
)


def lines(rows: list[tuple]) -> pd.DataFrame:
    """Order lines from (order_id, timestamp, quantity, unit_price[, category]) tuples."""
    frame = pd.DataFrame(rows, columns=["order_id", "order_date", "quantity", "unit_price", "category"][: len(rows[0])])
    n = len(frame)
    frame["order_id"] = frame["order_id"].astype("string")
    frame["order_date"] = pd.to_datetime(frame["order_date"]).astype("datetime64[ns]")
    frame["quantity"] = frame["quantity"].astype("int64")
    frame["unit_price"] = frame["unit_price"].astype("float64")
    frame["product_id"] = pd.array(["p"] * n, dtype="string")
    frame["discount"] = 0.0
    frame["returned"] = frame["quantity"] < 0
    if "category" in frame:
        frame["category"] = frame["category"].astype("string")
    return frame


def y_of(feats, uid: str = "total") -> pd.Series:
    s = feats.series(uid)
    return pd.Series(s["y"].to_numpy(), index=s["ds"].dt.strftime("%Y-%m-%d"))


def test_missing_weeks_are_zero_not_skipped():
    data = lines([
        ("a", "2024-01-01", 1, 10.0),  # Monday, week 1
        ("b", "2024-01-07", 2, 10.0),  # Sunday, still week 1
        ("c", "2024-01-22", 3, 10.0),  # week 4; weeks 2 and 3 have no orders
        ("d", "2024-01-28", 1, 10.0),
    ])
    y = y_of(build_series(data, SeriesOptions(freq="W")))
    assert y.to_dict() == {"2024-01-01": 30.0, "2024-01-08": 0.0, "2024-01-15": 0.0, "2024-01-22": 40.0}


def test_partial_last_period_is_dropped_and_reported():
    # every day 2019-01-01 .. 2019-12-31 has orders 09:00-20:00; the extract ends 2020-01-01 05:13
    days = pd.date_range("2019-01-01", "2019-12-31", freq="D")
    rows = [(f"o{i}", d + pd.Timedelta(hours=h), 1, 10.0) for i, d in enumerate(days) for h in (9, 14, 20)]
    rows.append(("late", pd.Timestamp("2020-01-01 05:13"), 1, 10.0))
    data = lines(rows)
    assert complete_days(data["order_date"]) == (pd.Timestamp("2019-01-01"), pd.Timestamp("2019-12-31"))
    monthly = build_series(data, SeriesOptions(freq="M"))
    assert monthly.frame["ds"].max() == pd.Timestamp("2019-12-01")
    assert len(monthly.frame) == 12
    assert monthly.partial.to_dict("records")[0] | {"reason": ""} == {
        "ds": pd.Timestamp("2020-01-01"), "edge": "last", "days_in_period": 31, "days_covered": 0,
        "lines": 1, "y_total": 10.0, "reason": "", "action": "dropped",
    }
    daily = build_series(data, SeriesOptions(freq="D"))
    assert daily.frame["ds"].max() == pd.Timestamp("2019-12-31") and len(daily.frame) == 365
    kept = build_series(data, SeriesOptions(freq="M", partial_periods="keep"))
    assert len(kept.frame) == 13
    assert kept.frame.loc[kept.frame["partial"], "ds"].tolist() == [pd.Timestamp("2020-01-01")]
    assert kept.partial["action"].tolist() == ["kept (flagged)"]


def test_partial_first_week_is_dropped_but_whole_edge_days_count():
    # data from Wednesday 2024-01-03 to Sunday 2024-01-28: the first week misses Mon and Tue
    days = pd.date_range("2024-01-03", "2024-01-28", freq="D")
    data = lines([(f"o{i}", d, 1, 5.0) for i, d in enumerate(days)])  # date-only: edge days are whole
    feats = build_series(data, SeriesOptions(freq="W"))
    assert feats.frame["ds"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-08", "2024-01-15", "2024-01-22"]
    assert feats.partial[["edge", "days_covered", "lines"]].to_dict("records") == [
        {"edge": "first", "days_covered": 5, "lines": 5},
    ]
    assert feats.report()["partial_periods"][0]["ds"].startswith("2024-01-01")


def test_net_and_gross_of_returns():
    data = lines([
        ("1", "2024-01-01", 3, 10.0),
        ("2", "2024-01-02", 2, 10.0),
        ("R1", "2024-01-03", -1, 10.0),  # a return: negative quantity, returned=True
    ])
    options = {"freq": "M", "partial_periods": "keep"}
    assert y_of(build_series(data, SeriesOptions(**options))).tolist() == [40.0]
    assert y_of(build_series(data, SeriesOptions(**options, net_of_returns=False))).tolist() == [50.0]
    assert y_of(build_series(data, SeriesOptions(**options, target="units"))).tolist() == [4.0]
    assert y_of(build_series(data, SeriesOptions(**options, target="units", net_of_returns=False))).tolist() == [5.0]
    assert y_of(build_series(data, SeriesOptions(**options, target="orders"))).tolist() == [1.0]
    assert y_of(build_series(data, SeriesOptions(**options, target="orders", net_of_returns=False))).tolist() == [2.0]


def test_group_by_top_n_keeps_the_biggest_and_reports_the_rest():
    data = lines([
        ("1", "2024-01-01", 1, 100.0, "toys"),
        ("2", "2024-01-01", 1, 50.0, "books"),
        ("3", "2024-01-02", 1, 1.0, "pens"),
        ("4", "2024-01-02", 1, 200.0, "toys"),
        ("5", "2024-01-03", 1, 9.0, None),
    ])
    feats = build_series(data, SeriesOptions(freq="D", group_by="category", top_n=2))
    assert feats.ids == ["toys", "books"]  # largest revenue first
    assert feats.groups_dropped == 2
    assert feats.groups_dropped_share == pytest.approx(10 / 360)
    every = build_series(data, SeriesOptions(freq="D", group_by="category"))
    assert "(missing)" in every.ids and len(every.ids) == 4
    assert every.frame.groupby("unique_id").size().eq(3).all()  # every group spans every day
    assert SeriesOptions(group_by="total").group_by is None


def test_missing_column_and_unknown_option_are_named():
    data = lines([("1", "2024-01-01", 1, 1.0)])
    with pytest.raises(ValueError, match=r"\['country'\]"):
        build_series(data, SeriesOptions(group_by="country"))
    with pytest.raises(ValueError, match=r"\['promo'\]"):
        build_series(data, exog=ExogOptions(columns=["promo"]))
    with pytest.raises(ValidationError, match="frequency"):
        SeriesOptions(frequency="W")


def test_period_starts_and_future_starts():
    dates = pd.Series(pd.to_datetime(["2024-02-29 23:59", "2024-03-03 00:00", "2024-03-04 08:00"]))
    assert period_start(dates, "W").dt.strftime("%Y-%m-%d").tolist() == ["2024-02-26", "2024-02-26", "2024-03-04"]
    assert period_start(dates, "M").dt.strftime("%Y-%m-%d").tolist() == ["2024-02-01", "2024-03-01", "2024-03-01"]
    assert period_start(dates, "D").dt.strftime("%Y-%m-%d").tolist() == ["2024-02-29", "2024-03-03", "2024-03-04"]
    assert future_starts(pd.Timestamp("2024-01-29"), "W", 2).strftime("%Y-%m-%d").tolist() == ["2024-02-05", "2024-02-12"]
    assert future_starts(pd.Timestamp("2024-11-01"), "M", 2).strftime("%Y-%m-%d").tolist() == ["2024-12-01", "2025-01-01"]


def test_calendar_flags_and_line_regressors():
    weeks = pd.date_range("2024-11-18", periods=6, freq="W-MON")
    cal = calendar_exog(weeks, "W", ["black_friday", "december", "christmas"])
    assert cal["black_friday"].tolist() == [0, 1, 0, 0, 0, 0]  # 2024-11-29 falls in the week of 11-25
    assert cal["december"].tolist() == [0, 0, 1, 1, 1, 1]
    assert cal["christmas"].tolist() == [0, 0, 0, 0, 0, 1]  # 2024-12-24 in the week of 12-23
    with pytest.raises(ValueError, match="weekend"):
        calendar_exog(weeks, "W", ["weekend"])
    data = lines([("1", "2024-01-01", 1, 1.0), ("2", "2024-01-02", 1, 1.0), ("3", "2024-01-10", 1, 1.0)])
    data["promo"] = [0, 1, 0]
    feats = build_series(data, SeriesOptions(freq="W", partial_periods="keep"), ExogOptions(columns=["promo"], calendar=["q4"]))
    assert feats.frame[["y", "promo", "q4"]].to_numpy().tolist() == [[2.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    data["promo"] = ["no", "yes", "no"]
    with pytest.raises(ValueError, match="promo.*non-numeric"):
        build_series(data, exog=ExogOptions(columns=["promo"]))


def test_half_a_million_lines_vectorised():
    rng = np.random.default_rng(0)
    n = 500_000
    stamps = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24 * 3600, n), unit="s")
    data = pd.DataFrame({
        "order_id": pd.array(rng.integers(0, 100_000, n).astype(str), dtype="string"),
        "order_date": stamps.astype("datetime64[ns]"),
        "product_id": pd.array(rng.integers(0, 2000, n).astype(str), dtype="string"),
        "quantity": rng.integers(-1, 5, n).astype("int64"),
        "unit_price": rng.uniform(1, 20, n),
        "discount": 0.0,
    })
    data["returned"] = data["quantity"] < 0
    feats = build_series(data, SeriesOptions(freq="D", group_by="product_id", target="orders"))
    assert len(feats.ids) == 2000
    assert feats.frame.groupby("unique_id").size().nunique() == 1
