"""Load a configured source into one validated `OrderLines` frame and its quarantine report.

This module dispatches on the data config's `format` to a reader in `features.readers`; every reader
reports each rejected row with its file, row number, column and reason, and keeps the accounting
rows read = clean + quarantined + exact duplicates dropped.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.contract import COLUMNS, REQUIRED, Accounting, Loaded, Numbering
from features.readers.baskets import load_basket_source
from features.readers.capacity import check_capacity
from features.readers.files import SourceError, source_files
from features.readers.normalise import normalise
from features.readers.summary import load_summary_source
from features.readers.synthetic import load_synthetic
from features.readers.tabular import Progress, load_tabular
from features.source_config import ColumnMap, DataSourceConfig, load_source_config

__all__ = ["CONTRACT_MAPPING", "SourceError", "load", "validate_frame"]

CONTRACT_MAPPING = {c: c for c in COLUMNS}  # rows posted to the service are named like the contract


def load(config: str | Path | DataSourceConfig, progress: Progress | None = None) -> Loaded:
    """Load the source a data config describes; `progress(file, i, n)` is called per file."""
    cfg = config if isinstance(config, DataSourceConfig) else load_source_config(config)
    if cfg.format == "synthetic":
        return load_synthetic(cfg)
    if cfg.format in ("basket_csv", "basket_dat"):
        return load_basket_source(cfg)
    if cfg.format == "customer_summary":
        return load_summary_source(cfg)
    check_capacity(cfg, source_files(cfg))  # too large for pandas: one line naming the file, before any reading
    return load_tabular(cfg, progress)


def validate_frame(
    raw: pd.DataFrame, name: str = "request", date_format: str | None = None, timezone: str | None = None,
    numbering: Numbering = "index",
) -> Loaded:
    """Validate rows already named like the contract (e.g. posted to the service) with the loader's rules.

    Rows posted as JSON are quarantined by their 0-based index; pass `numbering="line"` for rows read
    from a CSV with a header, so the quarantine names file lines as the CLI does."""
    present = {k: v for k, v in CONTRACT_MAPPING.items() if k in raw.columns}
    missing = [c for c in REQUIRED if c not in present]
    if missing:
        raise SourceError(f"{name}: required contract column(s) {missing} missing; columns given: {list(raw.columns)}")
    cfg = DataSourceConfig(
        name=name, format="csv", path=name, columns=ColumnMap(**present), date_format=date_format, timezone=timezone,
        returns={"negative_quantity": True}, drop_duplicates=False,
    )
    frame = raw.reset_index(drop=True).astype(object).where(raw.notna().reset_index(drop=True), None)
    frame = frame.map(lambda v: None if v is None else str(v))
    clean, quarantine, _ = normalise(frame, cfg, name, numbering)
    lines = clean.drop(columns=["_raw_key"]).reset_index(drop=True)
    accounting = Accounting(len(raw), len(lines), quarantine.n_rows, 0)
    accounting.check()
    return Loaded(lines, quarantine, accounting, name)
