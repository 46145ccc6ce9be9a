"""Customer summaries from order lines: hand-worked cases, the published CDNOW summary, lifetimes' figures, bad rows."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from features.btyd.summary import check_summary, summarise
from tests.helpers import REPO, shared_dataset


def _lines(rows: list[tuple[str, str | None, float, bool]]) -> pd.DataFrame:
    """(timestamp, customer, line value, returned) -> the columns summarise reads."""
    when, who, value, returned = zip(*rows)
    return pd.DataFrame({
        "order_date": pd.to_datetime(list(when)).astype("datetime64[ns]"),
        "customer_id": pd.Series(who, dtype="string"),
        "quantity": [-1 if r else 1 for r in returned],
        "unit_price": list(value),
        "discount": 0.0,
        "returned": list(returned),
    })


@pytest.fixture
def hand() -> pd.DataFrame:
    """A: buys on Jan 1 (three lines in two orders, one at 23:59), Jan 8 and Jan 15, returns on Jan 20.
    B: once, on Jan 10. C: first on Jan 20, then two orders on Jan 22. A guest buys on Jan 29 (the last day)."""
    return _lines([
        ("2024-01-01 09:00", "A", 10.0, False), ("2024-01-01 09:00", "A", 5.0, False), ("2024-01-01 23:59", "A", 5.0, False),
        ("2024-01-08 00:01", "A", 30.0, False), ("2024-01-10 12:00", "B", 7.0, False), ("2024-01-15 18:00", "A", 40.0, False),
        ("2024-01-20 10:00", "A", 30.0, True), ("2024-01-20 11:00", "C", 12.0, False), ("2024-01-22 08:00", "C", 3.0, False),
        ("2024-01-22 20:00", "C", 4.0, False), ("2024-01-29 10:00", None, 9.0, False),
    ])


def _row(table: pd.DataFrame, customer: str) -> dict[str, float]:
    return {k: float(v) for k, v in table.loc[customer].items()}


def test_whole_period_in_days_and_weeks(hand):
    days = summarise(hand, "D")
    assert days.cutoff is None and days.end == pd.Timestamp("2024-01-29") and days.unit == "D"
    assert list(days.table.columns) == ["frequency", "recency", "T", "monetary"]
    assert days.table.index.name == "customer_id" and list(days.table.index) == ["A", "B", "C"]
    # same-day lines and orders are one purchase: A's Jan 1 is worth 20; repeats Jan 8 (30) and Jan 15 (40)
    assert _row(days.table, "A") == {"frequency": 2, "recency": 14, "T": 28, "monetary": 35.0}
    assert _row(days.table, "B") == {"frequency": 0, "recency": 0, "T": 19, "monetary": 0.0}
    assert _row(days.table, "C") == {"frequency": 1, "recency": 2, "T": 9, "monetary": 7.0}
    assert days.dropped == {"return_lines": 1, "lines_without_customer": 1, "customers_first_seen_after_cutoff": 0}
    weeks = summarise(hand, "W").table
    assert _row(weeks, "A") == pytest.approx({"frequency": 2, "recency": 2, "T": 4, "monetary": 35.0})
    assert _row(weeks, "C") == pytest.approx({"frequency": 1, "recency": 2 / 7, "T": 9 / 7, "monetary": 7.0})
    assert days.table["frequency"].dtype == np.int64 and weeks["T"].dtype == np.float64


def test_cutoff_splits_calibration_and_holdout(hand):
    cut = summarise(hand, "D", cutoff="2024-01-10")
    assert cut.cutoff == pd.Timestamp("2024-01-10") and cut.end == pd.Timestamp("2024-01-29")
    assert list(cut.table.index) == ["A", "B"]  # C's first purchase is after the cutoff
    assert cut.dropped["customers_first_seen_after_cutoff"] == 1
    assert _row(cut.table, "A") == {
        "frequency": 1, "recency": 7, "T": 9, "monetary": 30.0,
        "frequency_holdout": 1, "duration_holdout": 19, "monetary_holdout": 40.0,
    }
    assert _row(cut.table, "B") == {  # first seen on the cutoff day: in, with T = 0
        "frequency": 0, "recency": 0, "T": 0, "monetary": 0.0,
        "frequency_holdout": 0, "duration_holdout": 19, "monetary_holdout": 0.0,
    }
    pd.testing.assert_frame_equal(summarise(hand, "D", holdout=19).table, cut.table)


def test_holdout_in_weeks_counts_back_from_the_last_day(hand):
    cut = summarise(hand, "W", holdout=2)
    assert cut.cutoff == pd.Timestamp("2024-01-15")
    assert _row(cut.table, "A") == pytest.approx({
        "frequency": 2, "recency": 2, "T": 2, "monetary": 35.0,
        "frequency_holdout": 0, "duration_holdout": 2, "monetary_holdout": 0.0,
    })
    assert _row(cut.table, "B")["T"] == pytest.approx(5 / 7)


def test_cutoffs_without_calibration_or_holdout_name_the_dates(hand):
    with pytest.raises(ValueError, match=r"cutoff 2023-12-31, before the first purchase \(2024-01-01\): no calibration"):
        summarise(hand, "D", cutoff="2023-12-31")
    with pytest.raises(ValueError, match=r"cutoff 2024-01-29, on or after the last day of the data \(2024-01-29\): no holdout"):
        summarise(hand, "D", cutoff="2024-01-29")
    with pytest.raises(ValueError, match=r"holdout of 5 W .* puts the cutoff on 2023-12-25.*no calibration"):
        summarise(hand, "W", holdout=5)
    with pytest.raises(ValueError, match="either a cutoff or a holdout"):
        summarise(hand, "D", cutoff="2024-01-10", holdout=3)
    with pytest.raises(ValueError, match="unit must be"):
        summarise(hand, "M")
    with pytest.raises(ValueError, match="no sales line with a customer_id"):
        summarise(hand[hand["customer_id"].isna()], "D")


def test_a_million_lines_in_about_a_second():
    rng = np.random.default_rng(0)
    n = 1_000_000
    lines = pd.DataFrame({
        "order_date": (pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 700 * 86400, n), unit="s")).astype("datetime64[ns]"),
        "customer_id": pd.Series(rng.integers(0, 100_000, n)).astype("string"),
        "quantity": 1, "unit_price": rng.uniform(1, 50, n), "discount": 0.0, "returned": rng.random(n) < 0.03,
    })
    t0 = time.perf_counter()
    out = summarise(lines, "W", holdout=26)
    assert time.perf_counter() - t0 < 2.0
    assert out.table["frequency"].sum() + out.table["frequency_holdout"].sum() + len(out.table) <= n


# ---- the published CDNOW summary and lifetimes ----


def _cdnow_sample() -> pd.DataFrame:
    raw = pd.read_csv(
        shared_dataset("cdnow_lifetimes") / "CDNOW_sample.txt", sep=r"\s+", header=None,
        names=["customer", "index", "date", "cds", "value"], dtype={"date": str},
    )
    return pd.DataFrame({
        "order_date": pd.to_datetime(raw["date"], format="%Y%m%d").astype("datetime64[ns]"),
        "customer_id": raw["index"].astype(str).astype("string"),
        "quantity": 1, "unit_price": raw["value"], "discount": 0.0, "returned": False,
    })


@pytest.mark.realdata
def test_cdnow_sample_reproduces_the_published_summary():
    """Fader & Hardie's summary of the 1/10 sample (x, t_x, T in weeks, zbar), printed to 2 decimals."""
    published = pd.read_csv(shared_dataset("cdnow_lifetimes") / "cdnow_customers_summary_with_transactions.csv")
    published.index = published["ID"].astype(str)
    ours = summarise(_cdnow_sample(), "W", cutoff="1997-09-30").table.reindex(published.index)
    assert ours["frequency"].notna().all() and len(ours) == 2357
    assert (ours["frequency"] == published["x"]).all()
    for col, theirs in (("recency", "t_x"), ("T", "T"), ("monetary", "zbar")):
        assert np.abs(ours[col] - published[theirs]).max() <= 0.005 + 1e-9, col


@pytest.mark.realdata
def test_cdnow_master_agrees_with_lifetimes():
    """Reference figures from lifetimes 0.11.3, produced by
        uv run --no-project --python 3.11 --with lifetimes==0.11.3 --with 'pandas<3' --with 'numpy<2' python ref.py CDNOW_master.txt
    where ref.py reads the file with pandas (customer_id as text, date %Y%m%d) and calls
        summary_data_from_transaction_data(tx, "customer_id", "date", monetary_value_col="dollar_value", freq="D", freq_multiplier=7)
        calibration_and_holdout_data(tx, "customer_id", "date", calibration_period_end="1997-09-30",
            observation_period_end="1998-06-30", monetary_value_col="dollar_value", freq="D", freq_multiplier=7)
    the latter on rows summed per (customer, day) for monetary_value_holdout (lifetimes averages holdout rows)."""
    from features.sources import load

    shared_dataset("cdnow_lifetimes")  # skip (or fail under CI) before the config points at a missing file
    lines = load(REPO / "configs" / "data" / "cdnow.yaml").lines
    whole = summarise(lines, "W").table
    assert len(whole) == 23570
    assert whole[["frequency", "recency", "T", "monetary"]].sum().to_dict() == pytest.approx(
        {"frequency": 44021.0, "recency": 454133.14285714284, "T": 1690620.857142857, "monetary": 414282.3843972235}, rel=1e-12)
    cut = summarise(lines, "W", cutoff="1997-09-30")
    assert len(cut.table) == 23570 and cut.end == pd.Timestamp("1998-06-30")
    assert cut.table.sum().to_dict() == pytest.approx({
        "frequency": 24337.0, "recency": 161377.71428571426, "T": 771390.857142857, "monetary": 336714.28743822424,
        "frequency_holdout": 19684.0, "duration_holdout": 919230.0, "monetary_holdout": 265814.3940302582,
    }, rel=1e-12)
    lifetimes_whole = {
        "00003": (5, 73.0, 77.71428571428571, 27.14), "14048": (170, 70.85714285714286, 70.85714285714286, 52.77376470588236),
        "00100": (2, 67.71428571428571, 77.85714285714286, 20.735),
    }
    lifetimes_cut = {
        "00005": (7, 36.714285714285715, 38.857142857142854, 33.12571428571429, 3, 39.0, 41.46666666666667),
        "07592": (80, 34.714285714285715, 34.857142857142854, 101.939875, 65, 39.0, 88.65430769230768),
        "00100": (0, 0.0, 38.857142857142854, 0.0, 2, 39.0, 20.735),
    }
    for customer, expected in lifetimes_whole.items():
        assert tuple(whole.loc[customer]) == pytest.approx(expected, rel=1e-12), customer
    for customer, expected in lifetimes_cut.items():
        assert tuple(cut.table.loc[customer]) == pytest.approx(expected, rel=1e-12), customer


# ---- check_summary ----


def _summary_rows() -> pd.DataFrame:
    rows = [  # customer_id, frequency, recency, T, monetary, frequency_holdout, duration_holdout, monetary_holdout
        ("ok1", 2, 30.43, 38.86, 22.35, 1, 39, 10.0),
        ("ok2", 0, 0, 38.86, 0, 0, 39, 0),
        ("nan", None, 0, 38.86, 0, 0, 39, 0),
        ("neg", 1, -1, 38.86, 5, 0, 39, 0),
        ("frac", 1.5, 3, 38.86, 5, 0, 39, 0),
        ("late", 1, 40, 38.86, 5, 0, 39, 0),
        ("still", 0, 2, 38.86, 0, 0, 39, 0),
        ("free", 2, 3, 38.86, 0, 0, 39, 0),
        ("text", "two", 3, 38.86, 5, 0, 39, 0),
        ("ok1", 1, 3, 38.86, 5, 0, 39, 0),
        (None, 1, 3, 38.86, 5, 0, 39, 0),
        ("hfrac", 1, 3, 38.86, 5, 0.5, 39, 4),
        ("hdur", 1, 3, 38.86, 5, 0, -39, 0),
        ("hfree", 1, 3, 38.86, 5, 2, 39, 0),
        ("ok3", 3, 12.5, 20, 14.5, 0, 39, 0),
    ]
    cols = ["customer_id", "frequency", "recency", "T", "monetary", "frequency_holdout", "duration_holdout", "monetary_holdout"]
    return pd.DataFrame(rows, columns=cols)


def test_check_summary_quarantines_each_bad_row_and_keeps_the_rest():
    frame = _summary_rows()
    clean, quarantine = check_summary(frame, "request")
    assert list(clean["customer_id"]) == ["ok1", "ok2", "ok3"]
    assert clean["frequency"].dtype == np.int64 and clean["frequency_holdout"].dtype == np.int64
    assert clean["recency"].dtype == np.float64 and clean.loc[14, "T"] == 20.0
    q = quarantine.frame.set_index("row")
    assert quarantine.numbering == "index" and quarantine.n_rows == 12 == len(q) and set(q["file"]) == {"request"}
    expected = {  # row -> (column, words the reason holds)
        2: ("frequency", "finite"), 3: ("recency", "negative"), 4: ("frequency", "whole"), 5: ("recency", "T"),
        6: ("recency", "without repeat"), 7: ("monetary", "zero"), 8: ("frequency", "finite"), 9: ("customer_id", "duplicate"),
        10: ("customer_id", "missing"), 11: ("frequency_holdout", "whole"), 12: ("duration_holdout", "negative"),
        13: ("monetary_holdout", "zero"),
    }
    for row, (column, words) in expected.items():
        assert q.loc[row, "column"] == column, row
        assert words in q.loc[row, "reason"], (row, q.loc[row, "reason"])
    assert q.loc[8, "value"] == "two" and q.loc[5, "value"] == "40.0"


def test_check_summary_numbers_file_lines_and_names_missing_columns():
    frame = _summary_rows().drop(columns=["frequency_holdout", "duration_holdout", "monetary_holdout"])
    _, quarantine = check_summary(frame, "summary.csv", numbering="line")
    assert quarantine.numbering == "line" and quarantine.frame["row"].min() == 4  # position 2 is file line 4
    with pytest.raises(ValueError, match=r"\['monetary'\] missing"):
        check_summary(frame.drop(columns="monetary"), "summary.csv")
    with pytest.raises(ValueError, match="duration_holdout"):
        check_summary(_summary_rows().drop(columns="duration_holdout"), "summary.csv")
