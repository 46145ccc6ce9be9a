"""Map, parse and check one table's rows onto `OrderLines`: clean rows, and a quarantine entry for every rejected one.

Every rejected row is reported with its file, row number (1-based, as a spreadsheet shows it: the
header is row 1; or a request's 0-based index), column and reason. Parsing is vectorised per column;
nothing is coerced silently, and no number a KPI sum could wrap or overflow gets in ("out of range").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import COLUMNS, MAX_AMOUNT, MAX_QUANTITY, Numbering, Quarantine
from features.readers.dates import parse_dates
from features.readers.files import Reasons, SourceError
from features.source_config import DataSourceConfig

ID_COLUMNS = ["order_id", "customer_id", "product_id"]
TEXT_COLUMNS = ["order_id", "customer_id", "product_id", "product_name", "category", "channel"]
TRUTHY = {"1", "true", "t", "yes", "y", "x"}


@dataclass
class Table:
    """One file's rows while they are parsed: the cells, their stripped text, the mapping and the verdicts so far."""

    raw: pd.DataFrame
    text: pd.DataFrame
    mapping: dict[str, str]  # contract column -> source column
    cfg: DataSourceConfig
    file: str
    alive: pd.Series  # neither blank nor a repeated header
    reasons: Reasons

    def source(self, col: str) -> pd.Series:
        return self.text[self.mapping[col]]


def normalise(
    raw: pd.DataFrame, cfg: DataSourceConfig, file: str, numbering: Numbering = "line"
) -> tuple[pd.DataFrame, Quarantine, int]:
    """Map, parse and check one file's rows: (clean lines, quarantine, exact duplicates dropped).

    `numbering="index"` numbers quarantined rows by their 0-based position (rows posted in a request)."""
    t = _table(raw, cfg, file, numbering)
    out = pd.DataFrame(index=raw.index)
    for col in TEXT_COLUMNS:
        out[col] = _text_column(t, col)
    for col in ("order_id", "product_id"):
        t.reasons.add(t.alive & out[col].isna(), col, "missing value", None)
    for col in ID_COLUMNS:
        out[col] = out[col].str.replace(r"^(\d+)\.0$", r"\1", regex=True)
    out["order_date"] = _parse_dates(t)
    qty = _numeric(t, "quantity", limit=MAX_QUANTITY)
    t.reasons.add(t.alive & qty.notna() & (qty != np.round(qty)), "quantity", "not a whole number", t.text.get(t.mapping.get("quantity")))
    t.reasons.add(t.alive & qty.eq(0), "quantity", "zero quantity", t.source("quantity"))
    discount = _numeric(t, "discount", required=False).fillna(0.0)
    t.reasons.add(t.alive & ((discount < 0) | (discount > 1)), "discount", "discount outside [0, 1]", discount)
    price = _unit_price(t, qty, discount)
    t.reasons.add(t.alive & (price < 0), "unit_price", "negative unit price", price)
    _line_value(t, qty, price)
    out["returned"] = _returned(t, out["order_id"], qty)
    out["quantity"], out["unit_price"], out["discount"] = qty, price, discount
    for name, src in cfg.extra_columns.items():
        out[name] = t.text[src]
    return _clean(out, t)


def _table(raw: pd.DataFrame, cfg: DataSourceConfig, file: str, numbering: Numbering) -> Table:
    """Check the mapping, strip the used columns and mark blank rows and repeated header rows."""
    mapping = _check_mapping(raw, cfg, file)
    first = 0 if numbering == "index" else 2 if cfg.read.header else 1
    reasons = Reasons(file, pd.Series(np.arange(len(raw)) + first, index=raw.index), numbering)
    used = list(dict.fromkeys([*mapping.values(), *cfg.extra_columns.values()]))
    text = raw[used].astype("string").apply(lambda s: s.str.strip())
    blank = text.isna().all(axis=1)
    reasons.add(blank, "*", "blank row", None)
    header = pd.Series(True, index=raw.index)
    for src in [u for u in used if "<-" not in u]:
        header &= text[src].str.lower().eq(src.lower()).fillna(False)
    reasons.add(header & ~blank, "*", "repeated header row", None)
    return Table(raw, text, mapping, cfg, file, ~(blank | header), reasons)


def _clean(out: pd.DataFrame, t: Table) -> tuple[pd.DataFrame, Quarantine, int]:
    """Drop the rejected rows, sign return quantities, default the category and drop exact duplicates."""
    keep = ~t.raw.index.isin(t.reasons.rows())
    clean = out[keep].copy()
    clean["quantity"] = clean["quantity"].astype("int64")
    clean.loc[clean["returned"], "quantity"] = -clean.loc[clean["returned"], "quantity"].abs()
    clean["category"] = clean["category"].fillna("all")
    clean["_raw_key"] = _row_keys(t.raw.loc[keep], [c for c in t.raw.columns if "<-" not in c])
    dropped = 0
    if t.cfg.drop_duplicates:
        dup = clean["_raw_key"].duplicated()
        dropped = int(dup.sum())
        clean = clean[~dup]
    return clean[[*COLUMNS, *t.cfg.extra_columns, "_raw_key"]], t.reasons.quarantine(), dropped


def _check_mapping(raw: pd.DataFrame, cfg: DataSourceConfig, file: str) -> dict[str, str]:
    """Contract column -> source column; composed columns are added to `raw` as "target<-a+b"."""
    mapping = {k: v for k, v in cfg.columns.model_dump().items() if v}
    wanted = list(mapping.values()) + list(cfg.extra_columns.values())
    wanted += [src for sources in cfg.compose.values() for src in sources]
    if cfg.returns.flag_column:
        wanted.append(cfg.returns.flag_column)
    missing = [c for c in dict.fromkeys(wanted) if c not in raw.columns]
    if missing:
        raise SourceError(
            f"{file}: mapped column(s) {missing} not in the file ({cfg.source_file or cfg.name}); "
            f"columns that exist: {list(raw.columns)}"
        )
    for target, sources in cfg.compose.items():
        name = f"{target}<-" + "+".join(sources)
        joined = raw[sources[0]].astype("string")
        for src in sources[1:]:
            joined = joined + "-" + raw[src].astype("string")
        raw[name] = joined
        mapping[target] = name
    return mapping


def _text_column(t: Table, col: str) -> pd.Series:
    if col in t.mapping:
        return t.source(col).astype("string")
    value = t.cfg.constants.get(col)
    return pd.Series(pd.NA if value is None else str(value), index=t.text.index, dtype="string")


def _parse_dates(t: Table) -> pd.Series:
    """Each date on its own (ISO 8601, or the config's `date_format`); a declared format no value matches is a SourceError."""
    if "order_date" not in t.mapping:
        return pd.Series(pd.Timestamp(str(t.cfg.constants["order_date"])), index=t.raw.index).astype("datetime64[ns]")
    src = t.mapping["order_date"]
    column, text = t.raw[src], t.text[src]
    dates = parse_dates(column if pd.api.types.is_datetime64_any_dtype(column) else text, t.cfg.date_format, t.cfg.timezone)
    candidates = t.alive & text.notna()
    fmt = t.cfg.date_format
    if fmt and candidates.any() and dates.unparseable[candidates].all():
        example = text[candidates].iloc[0]
        raise SourceError(f"{t.file}: date column {src!r} does not parse with format {fmt}: e.g. {example!r}")
    t.reasons.add(t.alive & text.isna(), "order_date", "missing value", None)
    t.reasons.add(t.alive & dates.unparseable, "order_date", "unparseable date", text)
    t.reasons.add(t.alive & dates.out_of_range, "order_date", "out of range", text)
    return dates.values


def _numeric(t: Table, col: str, required: bool = True, limit: float = MAX_AMOUNT) -> pd.Series:
    """A numeric column; beyond `limit` (or an overflowing literal such as 1e400) is "out of range"."""
    if col not in t.mapping:
        if col in t.cfg.constants:
            return pd.Series(float(t.cfg.constants[col]), index=t.raw.index)
        return pd.Series(np.nan, index=t.raw.index)
    src = t.mapping[col]
    text = t.text[src]
    values = pd.to_numeric(t.raw[src] if pd.api.types.is_numeric_dtype(t.raw[src]) else text, errors="coerce")
    values = values.astype("float64")
    if required:
        t.reasons.add(t.alive & text.isna(), col, "missing value", None)
    t.reasons.add(t.alive & text.notna() & values.isna(), col, "not a number", text)
    infinite = np.isinf(values)
    overflow = ~infinite & (values.abs() > limit)
    if infinite.any():  # "1e400" overflowed while parsing; "inf" was written as such
        overflow |= infinite & text.str.contains(r"\d", regex=True).fillna(False).astype(bool)
    t.reasons.add(t.alive & overflow, col, "out of range", text)
    t.reasons.add(t.alive & infinite & ~overflow, col, "not a finite number", text)
    return values


def _line_value(t: Table, qty: pd.Series, price: pd.Series) -> None:
    """Quantity and price each in range can still multiply past what a KPI sum holds: "out of range" too.

    Rows already rejected (e.g. a price out of range on its own) are not reported twice; a constant
    price from the config is checked here, through the product."""
    pending = pd.Series(~t.raw.index.isin(t.reasons.rows()), index=t.raw.index)
    beyond = t.alive & pending & qty.notna() & price.notna() & ~((qty * price).abs() <= MAX_AMOUNT)
    if beyond.any():
        shown = qty[beyond].map("{:.0f}".format) + " x " + price[beyond].map("{:g}".format)
        t.reasons.add(beyond, "quantity x unit_price", "out of range", shown)


def _unit_price(t: Table, qty: pd.Series, discount: pd.Series) -> pd.Series:
    """The mapped unit price, else the line amount / quantity / (1 - discount)."""
    if "unit_price" in t.mapping or "unit_price" in t.cfg.constants:
        return _numeric(t, "unit_price")
    amount = _numeric(t, "amount")
    full = (1.0 - discount).where(discount < 1.0, np.nan)
    return (amount / qty / full).abs().where(qty.ne(0))


def _returned(t: Table, order_id: pd.Series, qty: pd.Series) -> pd.Series:
    """A return when any configured rule matches: order id prefix, negative quantity, a flag column."""
    rules = t.cfg.returns
    flag = pd.Series(False, index=t.raw.index)
    if rules.order_id_prefix:
        flag |= order_id.str.startswith(rules.order_id_prefix).fillna(False)
    if rules.negative_quantity:
        flag |= (qty < 0).fillna(False)
    if rules.flag_column:
        flag |= t.text[rules.flag_column].str.lower().isin(TRUTHY).fillna(False)
    if "returned" in t.mapping:
        flag |= t.source("returned").str.lower().isin(TRUTHY).fillna(False)
    return flag.astype(bool)


def _row_keys(raw: pd.DataFrame, used: list[str]) -> pd.Series:
    """A hash of each row's source values (every column of the file): exact duplicates share it."""
    return pd.util.hash_pandas_object(raw[used].astype("string"), index=False)
