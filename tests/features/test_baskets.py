"""Basket building: returns excluded, order/customer level, item choice, pruning counts, basket-only files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.baskets import build_baskets, prune_items
from features.contract import validate_schema
from features.readers.baskets import read_basket_file
from features.sources import load
from tests.helpers import REPO  # noqa: E402


def order_lines(rows: list[tuple]) -> pd.DataFrame:
    """Contract frame from (order_id, customer_id, product_id, product_name, category, quantity) rows."""
    text = ["order_id", "customer_id", "product_id", "product_name", "category"]
    frame = pd.DataFrame(rows, columns=[*text, "quantity"])
    for col in text:
        frame[col] = frame[col].astype("string")
    frame["order_date"] = pd.Timestamp("2024-01-01")
    frame["quantity"] = frame["quantity"].astype("int64")
    frame["unit_price"] = 1.0
    frame["discount"] = 0.0
    frame["channel"] = pd.array([pd.NA] * len(frame), dtype="string")
    frame["returned"] = frame["quantity"] < 0
    return frame


LINES = order_lines(
    [
        ("o1", "c1", "A", "apple", "fruit", 1),
        ("o1", "c1", "B", "bread", "bakery", 2),
        ("o1", "c1", "B", "bread", "bakery", 1),  # the same product twice in one order: one basket item
        ("o2", "c1", "C", "cheese", "dairy", 1),
        ("o2", "c1", "A", "apple", "fruit", -1),  # a return: never in a basket
        ("o3", "c2", "A", "apple", "fruit", 3),
        ("o3", "c2", "D", None, "dairy", 1),  # no product name
        ("o4", None, "B", "bread", "bakery", 1),  # no customer
        ("o5", "c3", "E", "eggs", "dairy", -2),  # an order of returns only
    ]
)


def rows_of(baskets) -> dict[str, list[str]]:
    return dict(zip(baskets.ids, baskets.as_lists()))


def test_order_baskets_exclude_returns_and_collapse_repeats():
    b = build_baskets(LINES)
    assert rows_of(b) == {"o1": ["A", "B"], "o2": ["C"], "o3": ["A", "D"], "o4": ["B"]}
    assert list(b.items) == ["A", "B", "C", "D"]  # E only appears in a return
    assert b.matrix.dtype == bool and b.matrix.nnz == 6
    assert b.stats["return_lines_excluded"] == 2
    assert b.stats["lines_used"] == 7
    assert b.item_counts().tolist() == [2, 2, 1, 1]


def test_customer_baskets_union_orders_and_count_missing_customers():
    b = build_baskets(LINES, level="customer")
    assert rows_of(b) == {"c1": ["A", "B", "C"], "c2": ["A", "D"]}
    assert b.stats["lines_without_customer_id"] == 1
    assert b.stats["return_lines_excluded"] == 2


def test_item_by_name_counts_missing_names_and_by_category():
    by_name = build_baskets(LINES, item="product_name")
    assert rows_of(by_name)["o3"] == ["apple"]
    assert by_name.stats["lines_without_product_name"] == 1
    by_category = build_baskets(LINES, item="category")
    expected = {"o1": ["bakery", "fruit"], "o2": ["dairy"], "o3": ["dairy", "fruit"], "o4": ["bakery"]}
    assert rows_of(by_category) == expected


def test_pruning_drops_rare_items_keeps_rows_and_counts():
    b = build_baskets(LINES, min_item_count=2)
    assert list(b.items) == ["A", "B"]
    assert rows_of(b) == {"o1": ["A", "B"], "o2": [], "o3": ["A"], "o4": ["B"]}
    assert b.n_baskets == 4  # the emptied basket stays: supports keep their denominator
    assert b.stats["items_pruned"] == 2
    assert b.stats["item_occurrences_pruned"] == 2
    assert b.stats["baskets_empty_after_pruning"] == 1
    assert prune_items(b, 3).stats["items_pruned"] == 2


def test_subset_keeps_vocabulary():
    b = build_baskets(LINES)
    sub = b.subset(np.array([2, 0]))
    assert list(sub.ids) == ["o3", "o1"] and list(sub.items) == list(b.items)
    assert sub.transactions() == [[0, 3], [0, 1]]


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="product_name"):
        build_baskets(LINES.drop(columns="product_name"), item="product_name")
    with pytest.raises(ValueError, match="basket level"):
        build_baskets(LINES, level="week")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no sales line"):
        build_baskets(LINES[LINES["returned"]])


# ---- basket-only files ----


def test_read_basket_file_keeps_inner_spaces_and_handles_crlf(tmp_path: Path):
    f = tmp_path / "b.csv"
    f.write_bytes(b"cream cheese ,milk\r\n\r\nroll products ,bread,milk\n")
    assert read_basket_file(f, "basket_csv") == [["cream cheese ", "milk"], [], ["roll products ", "bread", "milk"]]
    d = tmp_path / "b.dat"
    d.write_text("1 2 3 \n4  5\n")
    assert read_basket_file(d, "basket_dat") == [["1", "2", "3"], ["4", "5"]]
    with pytest.raises(ValueError, match="basket_csv or basket_dat"):
        read_basket_file(f, "csv")


def write_config(tmp_path: Path, fmt: str, data: str, name: str) -> Path:
    (tmp_path / name).write_text(data)
    cfg = tmp_path / "source.yaml"
    cfg.write_text(f"name: t\nformat: {fmt}\npath: {name}\nconstants:\n  order_date: '2024-05-01'\n")
    return cfg


def test_basket_source_quarantines_blank_lines_and_empty_items(tmp_path: Path):
    cfg = write_config(tmp_path, "basket_csv", "a,b\n\na,,c\nb,b,c\n", "baskets.csv")
    loaded = load(cfg)
    acc = loaded.accounting
    assert (acc.rows_read, acc.rows_clean, acc.rows_quarantined) == (4, 2, 2)
    q = loaded.quarantine.frame
    assert q[["row", "column"]].values.tolist() == [[2, "*"], [3, "product_id"]]
    lines = loaded.lines
    validate_schema(lines)
    rows = lines[["order_id", "product_id", "quantity"]].values.tolist()
    assert rows == [["1", "a", 1], ["1", "b", 1], ["4", "b", 2], ["4", "c", 1]]  # "b" twice in line 4: quantity 2
    assert (lines["order_date"] == pd.Timestamp("2024-05-01")).all()
    assert not lines["returned"].any() and (lines["category"] == "all").all()
    assert rows_of(build_baskets(lines)) == {"1": ["a", "b"], "4": ["b", "c"]}


def test_basket_source_dat(tmp_path: Path):
    cfg = write_config(tmp_path, "basket_dat", "10 20 \n20 30 40\n", "retail.dat")
    b = build_baskets(load(cfg).lines)
    assert rows_of(b) == {"1": ["10", "20"], "2": ["20", "30", "40"]}


# ---- the public basket data sets (counts from their SOURCE.txt) ----


@pytest.mark.realdata
def test_groceries_counts(shared_data):
    shared_data("groceries")
    loaded = load(REPO / "configs" / "data" / "groceries.yaml")
    b = build_baskets(loaded.lines)
    assert (b.n_baskets, b.n_items, b.matrix.nnz) == (9835, 169, 43367)
    assert loaded.accounting.rows_read == 9835 and loaded.quarantine.n_rows == 0
    assert {"cream cheese ", "roll products "} <= set(b.items)
    counts = dict(zip(b.items, b.item_counts()))
    top = ["whole milk", "other vegetables", "rolls/buns", "soda", "yogurt"]
    assert [counts[i] for i in top] == [2513, 1903, 1809, 1715, 1372]
    assert b.matrix.nnz / (b.n_baskets * b.n_items) == pytest.approx(0.02609146, abs=1e-8)


@pytest.mark.realdata
def test_fimi_retail_counts(shared_data):
    shared_data("fimi_retail")
    b = build_baskets(load(REPO / "configs" / "data" / "fimi_retail.yaml").lines)
    assert (b.n_baskets, b.n_items) == (88162, 16470)
    assert b.sizes().max() == 76
    assert b.sizes().mean() == pytest.approx(10.3058, abs=1e-4)
