"""Customer feature builder: values hand-checked on a tiny frame, exclusions counted, returns optional;
the RFM definitions (scores, grid, reference date, net monetary) shared by the KPI and the segmenter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.customers import FEATURES, build_customer_features, signed_log1p
from features.kpis.rfm import rfm, rfm_table
from features.rfm import SEGMENT_GRID, SEGMENTS, grid_segment, quintile_score


def order_lines(rows: list[tuple]) -> pd.DataFrame:
    """OrderLines from (order_id, date, customer_id, quantity, unit_price, discount, returned) tuples."""
    columns = ["order_id", "order_date", "customer_id", "quantity", "unit_price", "discount", "returned"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["order_date"] = pd.to_datetime(frame["order_date"]).astype("datetime64[ns]")
    for col in ["order_id", "customer_id"]:
        frame[col] = frame[col].astype("string")
    frame["product_id"] = pd.array(["p1"] * len(frame), dtype="string")
    frame["quantity"] = frame["quantity"].astype("int64")
    return frame


@pytest.fixture
def tiny() -> pd.DataFrame:
    return order_lines(
        [
            ("o1", "2024-01-01 09:00", "A", 2, 10.0, 0.0, False),  # 20
            ("o1", "2024-01-01 09:00", "A", 1, 5.0, 0.2, False),  # 4
            ("o2", "2024-01-10 17:45", "A", 1, 30.0, 0.0, False),  # 30
            ("o3", "2024-01-12 12:00", "A", -1, 10.0, 0.0, True),  # -10 (a return)
            ("o4", "2024-01-20 10:30", "B", 5, 2.0, 0.0, False),  # 10
            ("o5", "2024-01-15 08:00", "C", -2, 3.0, 0.0, True),  # -6: C only returned goods
            ("o6", "2024-01-25 23:59", None, 3, 1.0, 0.0, False),  # no customer: the data's last date
            ("o7", "2024-01-02 11:00", None, 1, 1.0, 0.0, False),
        ]
    )


def test_values_hand_checked(tiny: pd.DataFrame) -> None:
    feats = build_customer_features(tiny)
    t = feats.table.set_index("customer_id")
    assert feats.reference_date == pd.Timestamp("2024-01-26")  # last date 2024-01-25 + 1 day
    a, b, c = t.loc["A"], t.loc["B"], t.loc["C"]
    assert (a.recency, a.frequency, a.monetary, a.quantity, a.tenure) == (16, 2, 44, 4, 25)
    assert a.aov == pytest.approx(27.0)  # (24 + 30) sales revenue over 2 orders
    assert a.return_rate == pytest.approx(0.25)  # 1 returned of 4 bought
    assert (b.recency, b.frequency, b.monetary, b.quantity, b.tenure, b.aov, b.return_rate) == (6, 1, 10, 5, 6, 10, 0)
    # returns only: kept, flagged, dated by the return line
    assert (c.recency, c.frequency, c.monetary, c.quantity, c.aov, c.return_rate) == (11, 0, -6, 0, 0, 1)
    assert t["nonpositive_monetary"].tolist() == [False, False, True]
    assert feats.available == FEATURES


def test_lines_without_customer_are_counted(tiny: pd.DataFrame) -> None:
    stats = build_customer_features(tiny).stats
    assert stats["lines_total"] == 8
    assert stats["lines_without_customer"] == 2
    assert stats["lines_used"] == 6
    assert stats["customers"] == 3
    assert stats["customers_nonpositive_monetary"] == 1
    assert stats["customers_only_returns"] == 1
    assert stats["return_lines_used"] == 2


def test_no_returns_omits_return_rate_and_says_why(tiny: pd.DataFrame) -> None:
    feats = build_customer_features(tiny[~tiny["returned"]])
    assert "return_rate" not in feats.available
    assert "return_rate" not in feats.table.columns
    assert "no return lines" in feats.omitted["return_rate"]


def test_reference_date_leaves_later_lines_out_and_counts_them(tiny: pd.DataFrame) -> None:
    feats = build_customer_features(tiny, reference_date="2024-01-11")
    t = feats.table.set_index("customer_id")
    assert list(t.index) == ["A"]
    assert (t.loc["A", "recency"], t.loc["A", "frequency"], t.loc["A", "tenure"]) == (1, 2, 10)
    assert feats.stats["lines_after_reference"] == 3  # A's return, B's order, C's return
    assert feats.stats["lines_used"] + feats.stats["lines_after_reference"] + feats.stats["lines_without_customer"] == 8


def test_return_rate_is_capped_and_counted() -> None:
    lines = order_lines(
        [
            ("o1", "2024-02-01", "A", 1, 10.0, 0.0, False),
            ("o2", "2024-02-02", "A", -3, 10.0, 0.0, True),  # returns goods bought before the window
            ("o3", "2024-02-02", "B", 4, 10.0, 0.0, False),
        ]
    )
    feats = build_customer_features(lines)
    assert feats.table.set_index("customer_id").loc["A", "return_rate"] == 1.0
    assert feats.stats["customers_return_rate_capped"] == 1


def test_candidates_restrict_the_available_features(tiny: pd.DataFrame) -> None:
    feats = build_customer_features(tiny, candidates=["recency", "monetary"])
    assert feats.available == ["recency", "monetary"]
    assert "frequency" in feats.table.columns  # kept for profiles


def test_bad_input_names_the_problem(tiny: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="customer_id"):
        build_customer_features(tiny.drop(columns=["customer_id"]))
    with pytest.raises(ValueError, match="loyalty"):
        build_customer_features(tiny, candidates=["recency", "loyalty"])
    with pytest.raises(ValueError, match="customer id"):
        build_customer_features(tiny[tiny["customer_id"].isna()])


def test_distinct_orders_on_many_lines() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    customers = rng.integers(0, 50, n)
    orders = rng.integers(0, 400, n)
    lines = order_lines(
        [(f"o{o}", "2024-03-01", f"c{c}", 1, 1.0, 0.0, False) for c, o in zip(customers, orders)]
    )
    feats = build_customer_features(lines).table.set_index("customer_id")
    expected = lines.groupby("customer_id")["order_id"].nunique()
    assert (feats["frequency"] == expected.reindex(feats.index).astype(float)).all()
    assert feats["quantity"].sum() == n


def test_signed_log1p_keeps_sign_and_order() -> None:
    x = np.array([-100.0, -1.0, 0.0, 1.0, 100.0])
    y = signed_log1p(x)
    assert np.all(np.diff(y) > 0)
    assert y[2] == 0 and y[0] == -y[4] == pytest.approx(-np.log1p(100))


def test_rfm_kpi_uses_the_customer_features(tiny: pd.DataFrame) -> None:
    """One definition: the KPI's recency (to the last date + 1 day), frequency and NET monetary are the features'."""
    lines = tiny.assign(category="all", channel=pd.array([None] * len(tiny), dtype="string"))
    table = rfm_table(lines).set_index("customer_id")
    feats = build_customer_features(tiny).table.set_index("customer_id")
    assert list(table.index) == ["A", "B"]  # C only returned goods: no purchase to score
    for col in ["recency", "frequency", "monetary"]:
        assert table[col].tolist() == feats.loc[["A", "B"], col].tolist()
    assert table.loc["A", "monetary"] == 44  # 54 bought, 10 returned
    assert rfm(lines)["reference_date"] == "2024-01-26"


def test_quintile_scores_against_a_reference() -> None:
    train = np.arange(10.0)
    assert quintile_score(train, train).tolist() == quintile_score(train).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # new values get the training quintiles; outside the training range they get the end scores
    assert quintile_score(np.array([-5.0, 4.5, 4.0, 100.0]), train).tolist() == [1, 3, 3, 5]


def test_one_vocabulary_of_segment_names() -> None:
    assert set(SEGMENT_GRID.ravel()) == set(SEGMENTS)
    assert grid_segment(np.array([5, 1]), np.array([5, 1]), np.array([4, 1])).tolist() == ["champions", "lost"]
