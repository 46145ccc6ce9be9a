"""Tabular sources (CSV, whitespace-separated text, Parquet, Excel): every file read as text, then normalised.

Rows read = clean + quarantined + exact duplicates dropped (within a file and across files).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.contract import COLUMNS, Accounting, Loaded, Quarantine, validate_schema
from features.readers.files import SourceError, files_digest, read_checked, read_side_table, source_files
from features.readers.normalise import normalise
from features.source_config import DataSourceConfig

Progress = Callable[[str, int, int], None]  # (file name, files done, files in all)


def load_tabular(cfg: DataSourceConfig, progress: Progress | None = None) -> Loaded:
    """Every file of a tabular source, normalised and concatenated, with its side tables."""
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
        dup = lines["_raw_key"].duplicated()
        lines, dups = lines[~dup], dups + int(dup.sum())
    lines = lines.drop(columns=["_raw_key"], errors="ignore").reset_index(drop=True)
    quarantine = Quarantine.concat(quarantines)
    accounting = Accounting(read, len(lines), quarantine.n_rows, dups, files=len(files))
    accounting.check()
    validate_schema(lines)
    return Loaded(
        lines=lines, quarantine=quarantine, accounting=accounting, name=cfg.name,
        customers=read_side_table(cfg, cfg.customers), inventory=read_side_table(cfg, cfg.inventory),
        source_digest=files_digest(files),
    )


def read_file(cfg: DataSourceConfig, file: Path) -> pd.DataFrame:
    """Read one file with every cell as text (parsing happens in `normalise`, row by row)."""
    return read_checked(file, cfg.format, lambda: _read(cfg, file))


def _read(cfg: DataSourceConfig, file: Path) -> pd.DataFrame:
    opts = cfg.read
    header = 0 if opts.header else None
    if cfg.format in ("csv", "whitespace"):
        sep = r"\s+" if cfg.format == "whitespace" else (opts.sep or ",")
        return pd.read_csv(
            file, sep=sep, dtype=str, keep_default_na=False, na_values=[""], header=header,
            names=opts.names, encoding=opts.encoding, skip_blank_lines=False,
            engine="python" if cfg.format == "whitespace" else "c",
        )
    if cfg.format == "parquet":
        return pd.read_parquet(file)
    if cfg.format == "excel":
        return pd.read_excel(file, sheet_name=opts.sheet, dtype=str, header=header, names=opts.names)
    raise SourceError(f"{file.name}: format {cfg.format!r} is not a tabular format")
