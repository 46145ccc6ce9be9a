"""Baskets for rule mining: `OrderLines` -> a sparse boolean basket x item matrix, and basket-only files.

`build_baskets` makes one row per order (or per customer, `level="customer"`) and one column per
item (product id, product name or category). Only sales lines count: return lines are excluded
(a returned product is not evidence that it was wanted with the rest of the basket). Lines without
the basket key or the item (a null customer id or product name) are excluded. Items found in
fewer than `min_item_count` baskets are dropped before mining. Every exclusion is counted in
`Baskets.stats`; a basket left empty by pruning stays as an empty row, so supports keep the true
number of baskets as their denominator.

`load_basket_source` reads the formats that hold baskets only (`basket_csv`: one basket per line,
items separated by `read.sep`, default ","; `basket_dat`: items separated by whitespace, FIMI
style) into `OrderLines`: one line per (basket, item), quantity = times the item appears in the
basket. Each line of the file loses only its newline before it is split, so item names keep
trailing spaces (the Groceries data has two such names). For these formats a row of the
accounting is a line of the file, i.e. a basket: rows read = baskets kept + lines quarantined
(blank lines, empty items).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.contract import COLUMNS, Accounting, Loaded, Quarantine, validate_schema
from features.source_config import DataSourceConfig
from features.sources import SourceError, files_digest, source_files

Level = Literal["order", "customer"]
ItemColumn = Literal["product_id", "product_name", "category"]
LEVEL_KEY = {"order": "order_id", "customer": "customer_id"}
EPOCH = "1970-01-01"  # order date of basket-only data when the config gives no `constants.order_date`


@dataclass
class Baskets:
    """Baskets x items as a CSR boolean matrix (sorted column indices), with labels and counts."""

    matrix: sp.csr_matrix
    items: np.ndarray  # column j is items[j] (str); sorted, so code order is label order
    ids: np.ndarray  # row i is basket ids[i] (order or customer id, str)
    level: str = "order"
    item: str = "product_id"
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def n_baskets(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    def item_counts(self) -> np.ndarray:
        """Baskets that hold each item (the item's absolute support)."""
        return np.bincount(self.matrix.indices, minlength=self.n_items).astype(np.int64)

    def sizes(self) -> np.ndarray:
        return np.diff(self.matrix.indptr)

    def subset(self, rows: np.ndarray) -> Baskets:
        """The same item vocabulary for a subset of baskets (positional rows), e.g. a split."""
        rows = np.asarray(rows)
        stats = {**self.stats, "baskets": len(rows)}
        return Baskets(self.matrix[rows], self.items, self.ids[rows], self.level, self.item, stats)

    def transactions(self) -> list[list[int]]:
        """Item codes per non-empty basket, as plain lists (the input pyFIM and pure-Python miners take)."""
        flat = self.matrix.indices.tolist()
        bounds = self.matrix.indptr.tolist()
        return [flat[a:b] for a, b in pairwise(bounds) if b > a]

    def as_lists(self) -> list[list[str]]:
        """Item labels per basket (empty baskets included)."""
        flat = self.items[self.matrix.indices].tolist()
        bounds = self.matrix.indptr.tolist()
        return [flat[a:b] for a, b in pairwise(bounds)]


def basket_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Boolean CSR from (row, column) pairs; repeated pairs collapse to one True."""
    data = np.ones(len(rows), dtype=np.int32)
    m = sp.csr_matrix((data, (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.sort_indices()
    m.data = np.ones(len(m.data), dtype=bool)
    return m


def build_baskets(
    lines: pd.DataFrame, level: Level = "order", item: ItemColumn = "product_id", min_item_count: int = 1
) -> Baskets:
    """Baskets from validated order lines (see the module docstring for what is excluded and counted)."""
    if level not in LEVEL_KEY:
        raise ValueError(f"basket level must be one of {sorted(LEVEL_KEY)}, got {level!r}")
    if item not in ("product_id", "product_name", "category"):
        raise ValueError(f"basket item must be product_id, product_name or category, got {item!r}")
    if min_item_count < 1:
        raise ValueError(f"min_item_count must be >= 1, got {min_item_count}")
    key = LEVEL_KEY[level]
    missing = [c for c in dict.fromkeys([key, item, "returned"]) if c not in lines.columns]
    if missing:
        raise ValueError(f"order lines lack column(s) needed for baskets: {missing}")
    returned = lines["returned"].to_numpy(dtype=bool)
    no_key = lines[key].isna().to_numpy()
    no_item = lines[item].isna().to_numpy()
    used = ~returned & ~no_key & ~no_item
    stats = {
        "lines_total": len(lines),
        "return_lines_excluded": int(returned.sum()),
        f"lines_without_{key}": int((~returned & no_key).sum()),
        f"lines_without_{item}": int((~returned & ~no_key & no_item).sum()),
        "lines_used": int(used.sum()),
    }
    if not used.any():
        raise ValueError(f"no sales line has both a {key} and a {item}: no baskets")
    basket_codes, ids = pd.factorize(lines.loc[used, key], sort=True)
    item_codes, items = pd.factorize(lines.loc[used, item], sort=True)
    matrix = basket_matrix(basket_codes, item_codes, (len(ids), len(items)))
    baskets = Baskets(matrix, _labels(items), _labels(ids), level, item, stats)
    return prune_items(baskets, min_item_count)


def _labels(values: pd.Index) -> np.ndarray:
    return np.asarray(values.astype(str), dtype=object)


def prune_items(baskets: Baskets, min_count: int) -> Baskets:
    """Drop the items held by fewer than `min_count` baskets; rows stay (an emptied basket is counted)."""
    counts = baskets.item_counts()
    keep = counts >= min_count
    matrix = baskets.matrix[:, np.flatnonzero(keep)] if not keep.all() else baskets.matrix
    sizes_before = baskets.sizes()
    sizes_after = np.diff(matrix.indptr)
    stats = {
        **baskets.stats,
        "baskets": baskets.n_baskets,
        "items_before_pruning": baskets.n_items,
        "items_pruned": int((~keep).sum()),
        "item_occurrences_pruned": int(counts[~keep].sum()),
        "baskets_empty_after_pruning": int(((sizes_before > 0) & (sizes_after == 0)).sum()),
        "items": int(keep.sum()),
        "min_item_count": int(min_count),
    }
    return Baskets(matrix.tocsr(), baskets.items[keep], baskets.ids, baskets.level, baskets.item, stats)


# ---- basket-only files ----


def read_basket_file(path: str | Path, fmt: str, sep: str | None = None, encoding: str = "utf-8") -> list[list[str]]:
    """One list of item tokens per line of the file (blank lines give []; empty tokens are kept as '').

    `basket_csv` splits on `sep` (default ","), `basket_dat` on `sep` or, by default, any whitespace.
    Only the newline ("\\n" or "\\r\\n") is removed before splitting: items keep their other spaces.
    """
    if fmt not in ("basket_csv", "basket_dat"):
        raise ValueError(f"basket file format must be basket_csv or basket_dat, got {fmt!r}")
    text = Path(path).read_text(encoding=encoding)
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    out = []
    for line in raw:
        line = line.removesuffix("\r")
        if fmt == "basket_dat" and sep is None:
            out.append(line.split())
        elif line == "":
            out.append([])
        else:
            out.append(line.split(sep or ","))
    return out


def load_basket_source(cfg: DataSourceConfig) -> Loaded:
    """A basket-only source as `OrderLines` (see the module docstring for how rows are counted)."""
    files = source_files(cfg)
    frames, quarantines, read = [], [], 0
    for file in files:
        if file.stat().st_size == 0:
            raise SourceError(f"{file.name}: file is empty")
        try:
            baskets = read_basket_file(file, cfg.format, cfg.read.sep, cfg.read.encoding)
        except UnicodeDecodeError as exc:
            raise SourceError(f"{file.name}: cannot be read as {cfg.read.encoding} text: {exc}") from None
        read += len(baskets)
        prefix = f"{file.name}:" if len(files) > 1 else ""
        frame, quarantine = _basket_lines(baskets, file.name, prefix)
        frames.append(frame)
        quarantines.append(quarantine)
    lines = _contract_lines(pd.concat(frames, ignore_index=True), cfg)
    quarantine = Quarantine.concat(quarantines)
    kept = read - quarantine.n_rows
    accounting = Accounting(read, kept, quarantine.n_rows, 0, files=len(files))
    accounting.check()
    validate_schema(lines)
    return Loaded(lines, quarantine, accounting, cfg.name, source_digest=files_digest(files))


def _basket_lines(baskets: list[list[str]], file: str, prefix: str) -> tuple[pd.DataFrame, Quarantine]:
    """(order_id, product_id, quantity) per distinct item of each usable basket; bad lines quarantined."""
    sizes = np.fromiter((len(b) for b in baskets), dtype=np.int64, count=len(baskets))
    row_numbers = np.arange(1, len(baskets) + 1)
    blank = sizes == 0
    empty_item = np.fromiter(("" in b for b in baskets), dtype=bool, count=len(baskets))
    problems = []
    if blank.any():
        problems.append(_quarantine_rows(file, row_numbers[blank], "*", "blank line (no items)"))
    if empty_item.any():
        reason = "empty item (two separators in a row?)"
        problems.append(_quarantine_rows(file, row_numbers[empty_item], "product_id", reason))
    good = ~blank & ~empty_item
    tokens = [t for b, ok in zip(baskets, good) if ok for t in b]
    order = np.repeat(row_numbers[good], sizes[good]).astype(str)
    frame = pd.DataFrame({"order_id": np.char.add(prefix, order) if prefix else order, "product_id": tokens})
    frame = frame.groupby(["order_id", "product_id"], sort=False).size().rename("quantity").reset_index()
    return frame, Quarantine.concat(problems)


def _quarantine_rows(file: str, rows: np.ndarray, column: str, reason: str) -> Quarantine:
    n = len(rows)
    return Quarantine(
        pd.DataFrame(
            {
                "file": pd.array([file] * n, dtype="string"),
                "row": rows.astype("int64"),
                "column": pd.array([column] * n, dtype="string"),
                "reason": pd.array([reason] * n, dtype="string"),
                "value": pd.array([pd.NA] * n, dtype="string"),
            }
        )
    )


def _contract_lines(frame: pd.DataFrame, cfg: DataSourceConfig) -> pd.DataFrame:
    """Fill the contract columns the basket files do not have from `constants` (or neutral values)."""
    const = cfg.constants
    n = len(frame)

    def text(col: str, default: str | None) -> pd.Series:
        value = const.get(col, default)
        return pd.Series(pd.NA if value is None else str(value), index=frame.index, dtype="string")

    out = pd.DataFrame(index=frame.index)
    out["order_id"] = frame["order_id"].astype("string")
    out["order_date"] = pd.Series(pd.Timestamp(str(const.get("order_date", EPOCH))), index=frame.index).astype(
        "datetime64[ns]"
    )
    out["customer_id"] = text("customer_id", None)
    out["product_id"] = frame["product_id"].astype("string")
    out["product_name"] = out["product_id"].copy()
    out["category"] = text("category", "all")
    out["quantity"] = frame["quantity"].astype("int64")
    out["unit_price"] = np.full(n, float(const.get("unit_price", 0.0)))
    out["discount"] = np.full(n, float(const.get("discount", 0.0)))
    out["channel"] = text("channel", None)
    out["returned"] = np.zeros(n, dtype=bool)
    return out[COLUMNS].reset_index(drop=True)
