"""The KPI endpoints' work: posted or uploaded order lines validated like loaded ones, then every KPI.

Pure functions of the request: no model, no registry. A source-level rejection (a CSV without the
contract's columns) is the client's 400; row-level problems (a bad date, a number out of range) are
quarantined and reported: by file line for an upload, by 0-based `index` for posted JSON lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from bentoml.exceptions import InvalidArgument

from features.contract import Loaded, Quarantine
from features.jsonsafe import json_safe
from features.kpis import KPIS, KpiUnavailable, kpi_report, run_kpi
from features.sources import SourceError, validate_frame
from serving.errors import too_large
from serving.schemas import KpiResponse, QuarantinedIndex, QuarantinedRow
from serving.settings import Limits

CSV_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)
FROM_FILE = "ecomlab_from_file"  # marks (in DataFrame.attrs) rows read from an uploaded file: numbered by line


def upload_name(file: Path) -> str:
    """The client's name of an uploaded file: BentoML 1.4 stores it as `tmp` + 8 random characters + that
    name (`tempfile.NamedTemporaryFile(suffix=basename)`, _bentoml_sdk/validators.py)."""
    found = re.fullmatch(r"tmp[a-z0-9_]{8}(.+)", file.name)
    return found.group(1) if found else file.name


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
    raw.attrs[FROM_FILE] = True
    return raw


def validate_lines(raw: pd.DataFrame, source: str, field: str) -> Loaded:
    """The loader's validation of posted or uploaded rows; a source-level rejection is the caller's 400, not a 500."""
    numbering = "line" if raw.attrs.get(FROM_FILE) else "index"
    try:
        return validate_frame(raw, source, numbering=numbering)
    except SourceError as exc:  # e.g. an upload without the contract's columns
        raise InvalidArgument(f"{field}: {exc}") from None


def kpi_response(
    loaded: Loaded, name: str | None, options: dict[str, Any] | None, row_offset: int | None = None
) -> KpiResponse:
    """Every KPI (or the one named) with the accounting and the quarantine report.

    The quarantine carries its own numbering (file lines or request indices), so `row_offset` is
    ignored; it stays only until serving/service.py stops passing it.
    """
    if name is None:
        try:
            report = kpi_report(loaded.lines, options=options)
        except KpiUnavailable as exc:  # every row quarantined: the quarantine report is the answer
            report = {kpi: {"status": "unavailable", "reason": str(exc)} for kpi in KPIS}
    else:
        report = {name: run_kpi(name, loaded.lines, options=options)}
    return KpiResponse(accounting=loaded.accounting.as_dict(), quarantine=quarantined(loaded.quarantine), kpis=json_safe(report))


def quarantined(quarantine: Quarantine) -> list[QuarantinedRow | QuarantinedIndex]:
    """The quarantine as the response shows it: `row` (file line) for an upload, `index` for posted lines."""
    out: list[QuarantinedRow | QuarantinedIndex] = []
    for r in quarantine.frame.to_dict("records"):
        value = None if pd.isna(r["value"]) else str(r["value"])
        detail = {"column": str(r["column"]), "reason": str(r["reason"]), "value": value}
        if quarantine.numbering == "index":
            out.append(QuarantinedIndex(index=int(r["row"]), **detail))
        else:
            out.append(QuarantinedRow(row=int(r["row"]), **detail))
    return out
