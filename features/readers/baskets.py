"""Basket-only sources (`basket_csv`, `basket_dat`) as `OrderLines`.

`basket_csv`: one basket per line, items separated by `read.sep` (default ","); `basket_dat`: items
separated by whitespace, FIMI style. Each becomes one line per (basket, item), quantity = times the
item appears in the basket. Each line of the file loses only its newline before it is split, so
item names keep trailing spaces (the Groceries data has two such names). For these formats a row of
the accounting is a line of the file, i.e. a basket: rows read = baskets kept + lines quarantined
(blank lines, empty items).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import COLUMNS, Accounting, Loaded, Quarantine, validate_schema
from features.readers.files import Reasons, SourceError, files_digest, source_files
from features.source_config import DataSourceConfig

EPOCH = "1970-01-01"  # order date of basket-only data when the config gives no `constants.order_date`


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
    reasons = Reasons(file, pd.Series(row_numbers))
    reasons.add(pd.Series(blank), "*", "blank line (no items)", None)
    reasons.add(pd.Series(empty_item), "product_id", "empty item (two separators in a row?)", None)
    good = ~blank & ~empty_item
    tokens = [t for b, ok in zip(baskets, good) if ok for t in b]
    order = np.repeat(row_numbers[good], sizes[good]).astype(str)
    frame = pd.DataFrame({"order_id": np.char.add(prefix, order) if prefix else order, "product_id": tokens})
    frame = frame.groupby(["order_id", "product_id"], sort=False).size().rename("quantity").reset_index()
    return frame, reasons.quarantine()


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
