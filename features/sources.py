"""Load a configured source into one validated `OrderLines` frame and its quarantine report.

Every rejected row is reported with its file, row number (1-based, as a spreadsheet shows it: the
header is row 1), column and reason; rows read = clean + quarantined + exact duplicates dropped.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import COLUMNS, STRING_COLUMNS, Accounting, Loaded, Quarantine, validate_schema
from features.source_config import DataSourceConfig, load_source_config

ID_COLUMNS = ["order_id", "customer_id", "product_id"]
TRUTHY = {"1", "true", "t", "yes", "y", "x"}


class SourceError(ValueError):
    """A source that cannot be loaded at all (missing file, wrong format, unmapped column, ...)."""


def load(config: str | Path | DataSourceConfig, progress: Callable[[str, int, int], None] | None = None) -> Loaded:
    """Load the source a data config describes; `progress(file, i, n)` is called per file."""
    cfg = config if isinstance(config, DataSourceConfig) else load_source_config(config)
    if cfg.format == "synthetic":
        return _load_synthetic(cfg)
    if cfg.format in ("basket_csv", "basket_dat"):
        from features.baskets import load_basket_source

        return load_basket_source(cfg)
    files = source_files(cfg)
    parts, quarantines, read, dups = [], [], 0, 0
    for i, file in enumerate(files):
        if progress:
            progress(file.name, i, len(files))
        raw = read_file(cfg, file)
        read += len(raw)
        clean, quarantine, dropped = normalise(raw, cfg, file.name)
        parts.append(clean)
        quarantines.append(quarantine)
        dups += dropped
    if progress:
        progress("", len(files), len(files))
    lines = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    if cfg.drop_duplicates:
        lines, cross = _drop_cross_file_duplicates(lines)
        dups += cross
    lines = lines.drop(columns=["_raw_key"], errors="ignore").reset_index(drop=True)
    quarantine = Quarantine.concat(quarantines)
    accounting = Accounting(read, len(lines), quarantine.n_rows, dups, files=len(files))
    accounting.check()
    validate_schema(lines)
    return Loaded(
        lines=lines,
        quarantine=quarantine,
        accounting=accounting,
        name=cfg.name,
        customers=_side_table(cfg, cfg.customers),
        inventory=_side_table(cfg, cfg.inventory),
        source_digest=files_digest(files),
    )


def source_files(cfg: DataSourceConfig) -> list[Path]:
    assert cfg.path is not None
    pattern = cfg.resolve(cfg.path)
    if any(ch in str(pattern) for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(pattern)))
        if not files:
            raise SourceError(f"{cfg.source_file or cfg.name}: no file matches {cfg.path} (resolved to {pattern})")
        return files
    if not pattern.exists():
        raise SourceError(f"{cfg.source_file or cfg.name}: data file not found: {cfg.path} (resolved to {pattern})")
    return [pattern]


def read_file(cfg: DataSourceConfig, file: Path) -> pd.DataFrame:
    """Read one file with every cell as text (parsing happens in `normalise`, row by row)."""
    if file.stat().st_size == 0:
        raise SourceError(f"{file.name}: file is empty")
    opts = cfg.read
    header = 0 if opts.header else None
    try:
        if cfg.format in ("csv", "whitespace"):
            sep = r"\s+" if cfg.format == "whitespace" else (opts.sep or ",")
            frame = pd.read_csv(
                file, sep=sep, dtype=str, keep_default_na=False, na_values=[""], header=header,
                names=opts.names, encoding=opts.encoding, skip_blank_lines=False,
                engine="python" if cfg.format == "whitespace" else "c",
            )
        elif cfg.format == "parquet":
            frame = pd.read_parquet(file)
        elif cfg.format == "excel":
            frame = pd.read_excel(file, sheet_name=opts.sheet, dtype=str, header=header, names=opts.names)
        else:
            raise SourceError(f"{file.name}: format {cfg.format!r} is not a tabular format")
    except SourceError:
        raise
    except pd.errors.EmptyDataError:
        raise SourceError(f"{file.name}: file is empty (no header, no rows)") from None
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError, OSError) as exc:
        raise SourceError(f"{file.name}: cannot be read as {cfg.format}: {str(exc).splitlines()[0]}") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if len(frame) == 0:
        raise SourceError(f"{file.name}: file has a header but no rows")
    return frame


def normalise(raw: pd.DataFrame, cfg: DataSourceConfig, file: str) -> tuple[pd.DataFrame, Quarantine, int]:
    """Map, parse and check one file's rows: (clean lines, quarantine, exact duplicates dropped)."""
    mapping = _check_mapping(raw, cfg, file)
    rows = pd.Series(np.arange(len(raw)) + (2 if cfg.read.header else 1), index=raw.index)
    reasons = _Reasons(file, rows)
    used = list(dict.fromkeys([*mapping.values(), *cfg.extra_columns.values()]))
    text = raw[used].astype("string").apply(lambda s: s.str.strip())
    blank = text.isna().all(axis=1)
    reasons.add(blank, "*", "blank row", None)
    header = pd.Series(True, index=raw.index)
    for src in [u for u in used if "<-" not in u]:
        header &= text[src].str.lower().eq(src.lower()).fillna(False)
    reasons.add(header & ~blank, "*", "repeated header row", None)
    alive = ~(blank | header)

    out = pd.DataFrame(index=raw.index)
    for col in ("order_id", "customer_id", "product_id", "product_name", "category", "channel"):
        out[col] = _text_column(text, mapping, cfg, col)
    for col in ("order_id", "product_id"):
        reasons.add(alive & out[col].isna(), col, "missing value", None)
    for col in ID_COLUMNS:
        out[col] = out[col].str.replace(r"^(\d+)\.0$", r"\1", regex=True)

    out["order_date"] = _parse_dates(raw, text, mapping, cfg, file, alive, reasons)
    qty = _numeric(raw, text, mapping, cfg, "quantity", alive, reasons)
    bad_int = alive & qty.notna() & (qty != np.round(qty))
    reasons.add(bad_int, "quantity", "not a whole number", text.get(mapping.get("quantity")))
    reasons.add(alive & qty.eq(0), "quantity", "zero quantity", None)
    discount = _numeric(raw, text, mapping, cfg, "discount", alive, reasons, required=False).fillna(0.0)
    reasons.add(alive & ((discount < 0) | (discount > 1)), "discount", "discount outside [0, 1]", discount)
    price = _unit_price(raw, text, mapping, cfg, qty, discount, alive, reasons)
    reasons.add(alive & (price < 0), "unit_price", "negative unit price", price)

    returned = _returned(raw, text, mapping, cfg, out["order_id"], qty)
    out["quantity"] = qty
    out["unit_price"] = price
    out["discount"] = discount
    out["returned"] = returned
    for name, src in cfg.extra_columns.items():
        out[name] = text[src]

    rejected = reasons.rows()
    keep = ~raw.index.isin(rejected)
    clean = out[keep].copy()
    clean["quantity"] = clean["quantity"].astype("int64")
    clean.loc[clean["returned"], "quantity"] = -clean.loc[clean["returned"], "quantity"].abs()
    clean["category"] = clean["category"].fillna("all")
    clean["_raw_key"] = _row_keys(raw.loc[keep], [c for c in raw.columns if "<-" not in c])
    dropped = 0
    if cfg.drop_duplicates:
        dup = clean["_raw_key"].duplicated()
        dropped = int(dup.sum())
        clean = clean[~dup]
    clean = clean[[*COLUMNS, *cfg.extra_columns, "_raw_key"]]
    return clean, reasons.quarantine(), dropped


class _Reasons:
    """Collects (row, column, reason, value) for rejected rows, vectorised."""

    def __init__(self, file: str, rows: pd.Series) -> None:
        self.file, self.rows_of, self.parts = file, rows, []

    def add(self, mask: pd.Series, column: str, reason: str, values: pd.Series | None) -> None:
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        idx = mask[mask].index
        shown = values.loc[idx].astype("string") if values is not None else pd.Series(pd.NA, index=idx, dtype="string")
        self.parts.append(pd.DataFrame({"idx": idx, "column": column, "reason": reason, "value": shown.to_numpy()}))

    def rows(self) -> pd.Index:
        if not self.parts:
            return pd.Index([])
        return pd.Index(pd.concat(self.parts)["idx"].unique())

    def quarantine(self) -> Quarantine:
        if not self.parts:
            return Quarantine()
        frame = pd.concat(self.parts, ignore_index=True)
        frame.insert(0, "row", self.rows_of.loc[frame["idx"]].to_numpy().astype("int64"))
        frame.insert(0, "file", self.file)
        frame = frame.drop(columns="idx").sort_values(["row"], kind="stable", ignore_index=True)
        for col in ("file", "column", "reason", "value"):
            frame[col] = frame[col].astype("string")
        return Quarantine(frame)


def _check_mapping(raw: pd.DataFrame, cfg: DataSourceConfig, file: str) -> dict[str, str]:
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


def _text_column(text: pd.DataFrame, mapping: dict[str, str], cfg: DataSourceConfig, col: str) -> pd.Series:
    if col in mapping:
        return text[mapping[col]].astype("string")
    value = cfg.constants.get(col)
    return pd.Series(pd.NA if value is None else str(value), index=text.index, dtype="string")


def _parse_dates(raw, text, mapping, cfg, file, alive, reasons) -> pd.Series:
    if "order_date" not in mapping:
        return pd.Series(pd.Timestamp(str(cfg.constants["order_date"])), index=raw.index).astype("datetime64[ns]")
    src = mapping["order_date"]
    column = raw[src]
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    else:
        parsed = pd.to_datetime(text[src], format=cfg.date_format, dayfirst=cfg.dayfirst, errors="coerce")
    parsed = parsed.dt.tz_localize(None) if getattr(parsed.dt, "tz", None) is not None else parsed
    parsed = parsed.astype("datetime64[ns]")
    candidates = alive & text[src].notna()
    if candidates.any() and parsed[candidates].isna().all():
        example = text.loc[candidates, src].iloc[0]
        fmt = cfg.date_format or "(inferred)"
        raise SourceError(f"{file}: date column {src!r} does not parse with format {fmt}: e.g. {example!r}")
    reasons.add(alive & text[src].isna(), "order_date", "missing value", None)
    reasons.add(alive & text[src].notna() & parsed.isna(), "order_date", "unparseable date", text[src])
    return parsed


def _numeric(raw, text, mapping, cfg, col, alive, reasons, required: bool = True) -> pd.Series:
    if col not in mapping:
        if col in cfg.constants:
            return pd.Series(float(cfg.constants[col]), index=raw.index)
        return pd.Series(np.nan, index=raw.index)
    src = mapping[col]
    values = pd.to_numeric(raw[src] if pd.api.types.is_numeric_dtype(raw[src]) else text[src], errors="coerce")
    values = values.astype("float64")
    if required:
        reasons.add(alive & text[src].isna(), col, "missing value", None)
    reasons.add(alive & text[src].notna() & values.isna(), col, "not a number", text[src])
    reasons.add(alive & np.isinf(values), col, "not a finite number", text[src])
    return values


def _unit_price(raw, text, mapping, cfg, qty, discount, alive, reasons) -> pd.Series:
    if "unit_price" in mapping or "unit_price" in cfg.constants:
        return _numeric(raw, text, mapping, cfg, "unit_price", alive, reasons)
    amount = _numeric(raw, text, mapping, cfg, "amount", alive, reasons)
    full = (1.0 - discount).where(discount < 1.0, np.nan)
    return (amount / qty / full).abs().where(qty.ne(0))


def _returned(raw, text, mapping, cfg, order_id: pd.Series, qty: pd.Series) -> pd.Series:
    rules = cfg.returns
    flag = pd.Series(False, index=raw.index)
    if rules.order_id_prefix:
        flag |= order_id.str.startswith(rules.order_id_prefix).fillna(False)
    if rules.negative_quantity:
        flag |= (qty < 0).fillna(False)
    if rules.flag_column:
        flag |= text[rules.flag_column].str.lower().isin(TRUTHY).fillna(False)
    if "returned" in mapping:
        flag |= text[mapping["returned"]].str.lower().isin(TRUTHY).fillna(False)
    return flag.astype(bool)


def _row_keys(raw: pd.DataFrame, used: list[str]) -> pd.Series:
    """A hash of each row's source values (every column of the file): exact duplicates share it."""
    return pd.util.hash_pandas_object(raw[used].astype("string"), index=False)


def _drop_cross_file_duplicates(lines: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    dup = lines["_raw_key"].duplicated()
    return lines[~dup], int(dup.sum())


def _side_table(cfg: DataSourceConfig, table) -> pd.DataFrame | None:
    if table is None:
        return None
    path = cfg.resolve(table.path)
    if not path.exists():
        raise SourceError(f"{cfg.source_file or cfg.name}: side table not found: {table.path}")
    return pd.read_parquet(path) if table.format == "parquet" else pd.read_csv(path)


def files_digest(files: list[Path]) -> str:
    """Content digest (size + first and last MiB of each file): two different data sets are told apart."""
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), 2)
                h.update(fh.read())
    return h.hexdigest()[:16]


def _load_synthetic(cfg: DataSourceConfig) -> Loaded:
    """Synthetic data from a generated folder (`ecomlab data generate`) or generated in memory."""
    from features import synthetic

    if cfg.path:
        folder = cfg.resolve(cfg.path)
        if not (folder / "lines.parquet").exists():
            raise SourceError(f"{cfg.source_file}: no generated data in {cfg.path}; run `ecomlab data generate --out {cfg.path}`")
        data = synthetic.read(folder)
        digest = files_digest(sorted(folder.glob("*.parquet")))
    else:
        data = synthetic.generate(**cfg.synthetic)
        digest = hashlib.sha256(repr(sorted(cfg.synthetic.items())).encode()).hexdigest()[:16]
    lines = data.lines.reset_index(drop=True)
    quarantine = Quarantine()
    for col in STRING_COLUMNS:
        lines[col] = lines[col].astype("string")
    validate_schema(lines)
    accounting = Accounting(len(lines), len(lines), 0, 0, files=1)
    return Loaded(lines, quarantine, accounting, cfg.name, data.customers, data.inventory, digest)


CONTRACT_MAPPING = {c: c for c in ("order_id", "order_date", "customer_id", "product_id", "product_name",
                                   "category", "quantity", "unit_price", "discount", "channel", "returned")}


def validate_frame(raw: pd.DataFrame, name: str = "request", date_format: str | None = None) -> Loaded:
    """Validate rows already named like the contract (e.g. posted to the service) with the loader's rules."""
    from features.source_config import ColumnMap

    present = {k: v for k, v in CONTRACT_MAPPING.items() if k in raw.columns}
    missing = [c for c in ("order_id", "order_date", "product_id", "quantity", "unit_price") if c not in present]
    if missing:
        raise SourceError(f"{name}: required contract column(s) {missing} missing; columns given: {list(raw.columns)}")
    cfg = DataSourceConfig(
        name=name, format="csv", path=name, columns=ColumnMap(**present), date_format=date_format,
        returns={"negative_quantity": True}, drop_duplicates=False,
    )
    frame = raw.reset_index(drop=True).astype(object).where(raw.notna().reset_index(drop=True), None)
    frame = frame.map(lambda v: None if v is None else str(v))
    clean, quarantine, _ = normalise(frame, cfg, name)
    lines = clean.drop(columns=["_raw_key"]).reset_index(drop=True)
    accounting = Accounting(len(raw), len(lines), quarantine.n_rows, 0)
    accounting.check()
    return Loaded(lines, quarantine, accounting, name)
