"""Customer-summary sources (`format: customer_summary`): one row per customer, as published with CDNOW.

Why a source of its own: BG/NBD and Gamma-Gamma need only frequency, recency, T and monetary per
customer, and some data sets ship nothing else. Columns are mapped by `summary_columns` (the names of
`features.btyd.summary` by default), every row is judged by `check_summary`, and a rejected row is
quarantined with its file line, column and reason: rows read = clean + quarantined. The result has
no order lines (an empty contract frame); the table is `Loaded.summary`, its unit `Loaded.summary_unit`.
CSV, or Parquet when the file name ends in .parquet / .pq.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.btyd.summary import check_summary
from features.contract import ORDER_LINES_SCHEMA, Accounting, Loaded, Quarantine
from features.readers.files import SourceError, files_digest, read_checked, source_files
from features.source_config import TIME_UNITS, DataSourceConfig, SummaryColumns

PARQUET = (".parquet", ".pq")


def load_summary_source(cfg: DataSourceConfig) -> Loaded:
    """Every file of the source read, mapped and checked; the clean rows indexed by customer_id."""
    files = source_files(cfg)
    mapping = (cfg.summary_columns or SummaryColumns()).model_dump(exclude_none=True)  # ours -> the file's
    parts, quarantines, read = [], [], 0
    for file in files:
        raw = _read(cfg, file)
        missing = [f"{src!r} (for {ours})" for ours, src in mapping.items() if src not in raw.columns]
        if missing:
            raise SourceError(f"{file}: mapped column(s) {', '.join(missing)} not found; columns in the file: {list(raw.columns)}")
        frame = raw[list(mapping.values())].set_axis(list(mapping), axis=1)
        clean, quarantine = check_summary(frame, file.name, numbering="line")
        if not cfg.read.header:  # no header line: the first row is line 1
            quarantine.frame["row"] -= 1
        read += len(raw)
        parts.append(clean)
        quarantines.append(quarantine)
    table = pd.concat(parts, ignore_index=True)
    table["customer_id"] = table["customer_id"].astype("string").str.strip()
    twice = table["customer_id"].duplicated()
    if twice.any():
        raise SourceError(f"{cfg.source_file or cfg.name}: customer_id {table.loc[twice, 'customer_id'].iloc[0]!r} appears in more than one file")
    quarantine = Quarantine.concat(quarantines)
    accounting = Accounting(read, len(table), quarantine.n_rows, 0, files=len(files))
    accounting.check()
    return Loaded(
        lines=empty_lines(), quarantine=quarantine, accounting=accounting, name=cfg.name,
        source_digest=files_digest(files), summary=table.set_index("customer_id"), summary_unit=TIME_UNITS[cfg.time_unit or "weeks"],
    )


def empty_lines() -> pd.DataFrame:
    """An `OrderLines` frame with no rows and the contract's dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=str(col.dtype)) for name, col in ORDER_LINES_SCHEMA.columns.items()})


def _read(cfg: DataSourceConfig, file: Path) -> pd.DataFrame:
    """One file with every CSV cell as text (check_summary parses the numbers and names what it cannot)."""
    if file.suffix.lower() in PARQUET:
        return read_checked(file, "a customer summary", lambda: pd.read_parquet(file))
    opts = cfg.read
    return read_checked(file, "a customer summary", lambda: pd.read_csv(
        file, sep=opts.sep or ",", dtype=str, keep_default_na=False, na_values=[""], encoding=opts.encoding,
        header=0 if opts.header else None, names=opts.names, skip_blank_lines=False,
    ))
