"""The KPI endpoints' work: posted or uploaded order lines validated like loaded ones, then every KPI.

Pure functions of the request: no model, no registry. A source-level rejection (no date parses, a CSV
without the contract's columns) is the client's 400; row-level problems are quarantined and reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from bentoml.exceptions import InvalidArgument

from features.jsonsafe import json_safe
from features.kpis import KPIS, KpiUnavailable, kpi_report, run_kpi
from features.sources import SourceError, validate_frame
from serving.errors import too_large
from serving.schemas import KpiResponse, QuarantinedRow
from serving.settings import Limits

CSV_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)


def read_upload(file: Path, limits: Limits) -> pd.DataFrame:
    """An uploaded CSV as strings (the loader parses them), within the byte and row limits."""
    size = file.stat().st_size
    if size > limits.max_body_bytes:
        raise too_large("file (bytes)", size, limits.max_body_bytes)
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False)
    except CSV_ERRORS as exc:
        raise InvalidArgument(f"file: not a readable CSV: {str(exc).splitlines()[0]}") from None
    if len(raw) > limits.max_kpi_rows:
        raise too_large("file (rows)", len(raw), limits.max_kpi_rows)
    return raw


def validate_lines(raw: pd.DataFrame, source: str, field: str) -> Any:
    """The loader's validation of posted rows; a source-level rejection is the caller's 400, not a 500."""
    try:
        return validate_frame(raw, source)
    except SourceError as exc:  # e.g. no order_date parses at all
        raise InvalidArgument(f"{field}: {exc}") from None
    except (pd.errors.OutOfBoundsDatetime, OverflowError) as exc:  # e.g. 9999-12-31 does not fit datetime64[ns]
        raise InvalidArgument(f"{field}: order_date out of the supported range: {str(exc).splitlines()[0]}") from None


def kpi_response(loaded: Any, name: str | None, options: dict[str, Any] | None, row_offset: int) -> KpiResponse:
    """Every KPI (or the one named) with the accounting and the quarantine report.

    `row_offset` turns the loader's row numbers (CSV rows, header = 1) into the request's: 2 for posted
    lines (0-based indices), 0 for an uploaded CSV.
    """
    if name is None:
        try:
            report = kpi_report(loaded.lines, options=options)
        except KpiUnavailable as exc:  # every row quarantined: the quarantine report is the answer
            report = {kpi: {"status": "unavailable", "reason": str(exc)} for kpi in KPIS}
    else:
        report = {name: run_kpi(name, loaded.lines, options=options)}
    quarantine = [
        QuarantinedRow(
            row=int(r["row"]) - row_offset, column=str(r["column"]), reason=str(r["reason"]),
            value=None if pd.isna(r["value"]) else str(r["value"]),
        )
        for r in loaded.quarantine.frame.to_dict("records")
    ]
    return KpiResponse(accounting=loaded.accounting.as_dict(), quarantine=quarantine, kpis=json_safe(report))
