"""The Spark loader's validation on the workers: the local normaliser, batch by batch (`mapInPandas`).

Each batch of raw rows (text lines, or Parquet / Excel cells) becomes three kinds of output rows: clean
lines ("line"), quarantine entries ("q") and one tally per batch and file ("stat": rows read, dates
seen, dates unparseable, lines kept), so the driver judges whole files from one small aggregate.
Rows arrive with their file and line number (`features.spark.read`), in any order and any partition.
Arrow's batches are joined into passes of `ROWS_PER_PASS` rows, CSV lines are split by pandas' C parser
(the local reader's), and clean Arrow strings go back to Spark as Arrow: on UCI Online Retail that took
the Python side from 14.6 to 3.9 s of CPU and the whole load from 31 to 24 s (`local[2]`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from features.contract import COLUMNS, Quarantine
from features.readers.files import SourceError
from features.readers.normalise import normalise
from features.source_config import DataSourceConfig

STRING_OUT = ["order_id", "customer_id", "product_id", "product_name", "category", "channel"]
DATE_ERROR = "does not parse with format"
ROWS_PER_PASS = 50_000


@dataclass(frozen=True)
class Plan:
    """What the workers need: the config, each file's name and columns, and where text blocks start."""

    cfg: DataSourceConfig
    names: list[str]
    columns: list[list[str]]
    extras: list[str]
    typed: bool  # Parquet / Excel columns, else one text line per row
    header: bool
    rows_per_pass: int = ROWS_PER_PASS  # Arrow batches are joined up to this many rows per normaliser call


def out_schema(plan: Plan) -> str:
    cols = ["kind string", "_fid int", "_row long", "order_id string", "order_date timestamp_ntz", "customer_id string",
            "product_id string", "product_name string", "category string", "quantity long", "unit_price double",
            "discount double", "channel string", "returned boolean"]
    cols += [f"`{c}` string" for c in plan.extras]
    cols += ["_raw_key long", "q_column string", "q_reason string", "q_value string", "q_first boolean",
             "n_rows long", "n_dates long", "n_unparseable long", "n_lines long"]
    return ", ".join(cols)


def _names(schema: str) -> list[str]:
    """The column names of a DDL schema string (names in backquotes may hold commas)."""
    parts, current, quoted = [], "", False
    for ch in schema:
        if ch == "`":
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [p.split(" ")[0].strip("`") for p in [*parts, current.strip()]]


def normalise_batches(batches: Iterator[pd.DataFrame], plan: Plan) -> Iterator[pd.DataFrame]:
    """`mapInPandas` body: normalise each file's rows of the batch."""
    cfg = plan.cfg.model_copy(update={"drop_duplicates": False})  # duplicates are dropped globally, afterwards
    names = _names(out_schema(plan))
    for batch in _gathered(batches, plan.rows_per_pass):
        for fid, part in batch.groupby("_fid", sort=False):
            for out in _normalise_part(part, int(fid), plan, cfg):
                for col in names:  # every output row kind carries every column (null where it has none)
                    if col not in out.columns:
                        out[col] = pd.Series([None] * len(out), index=out.index, dtype=object)
                yield out[names]


def _gathered(batches: Iterator[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """Arrow's batches (10,000 rows by default) joined to at least `rows`: the normaliser's cost per call is
    paid per pass, and a pass of 50,000 rows takes about half the CPU of five of 10,000."""
    held: list[pd.DataFrame] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += len(batch)
        if count >= rows:
            yield held[0] if len(held) == 1 else pd.concat(held, ignore_index=True)
            held, count = [], 0
    if held:
        yield held[0] if len(held) == 1 else pd.concat(held, ignore_index=True)


def _raw_frame(part: pd.DataFrame, fid: int, plan: Plan) -> pd.DataFrame:
    """The rows of one file as the local reader holds them: the file's columns, text where it reads text."""
    names = plan.columns[fid]
    if plan.typed:
        return part[names].reset_index(drop=True)
    lines = part["_text"].tolist()
    if plan.cfg.read.encoding.lower().replace("_", "-") == "utf-8-sig":
        lines = [s.lstrip("\ufeff") if r == 1 else s for s, r in zip(lines, part["_row"].tolist())]
    if plan.cfg.format == "csv":
        frame = _c_parsed(lines, names, plan.cfg.read.sep or ",")
        if frame is not None:
            return frame
    return _python_parsed(lines, part["_row"].tolist(), names, fid, plan)


def _c_parsed(lines: list[str], names: list[str], sep: str) -> pd.DataFrame | None:
    """The batch's lines through pandas' C parser, as the local reader reads a file (about 6x faster than
    the `csv` module here). None when that parser cannot keep one row per line of at most the file's width
    (an unbalanced quote, a line wider than the first): the line-by-line reader then decides, and words the error."""
    try:
        frame = pd.read_csv(io.StringIO("\n".join(lines) + "\n"), sep=sep, header=None, dtype=str, keep_default_na=False,
                            na_values=[""], skip_blank_lines=False, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
        return None
    if len(frame) != len(lines) or frame.shape[1] > len(names):
        return None
    for i in range(frame.shape[1], len(names)):  # every line shorter than the header: the missing cells are empty
        frame[i] = None
    frame.columns = names
    return frame


def _python_parsed(lines: list[str], rows: list[int], names: list[str], fid: int, plan: Plan) -> pd.DataFrame:
    if plan.cfg.format == "whitespace":
        cells = [s.split() for s in lines]
    else:
        cells = list(csv.reader(lines, delimiter=plan.cfg.read.sep or ","))
    width = len(names)
    for fields, row in zip(cells, rows):
        if len(fields) > width:
            raise SourceError(f"{plan.names[fid]}: cannot be read as {plan.cfg.format}: "
                              f"Expected {width} fields in line {row}, saw {len(fields)}")
    padded = [[None if v == "" else v for v in fields] + [None] * (width - len(fields)) for fields in cells]
    return pd.DataFrame(padded, columns=names, dtype=object)


def _normalise_part(part: pd.DataFrame, fid: int, plan: Plan, cfg: DataSourceConfig) -> Iterator[pd.DataFrame]:
    if not plan.typed and plan.header:
        part = part[part["_row"] > 1]  # line 1 is the header
    if part.empty:
        return
    rows = part["_row"].to_numpy(dtype=np.int64)
    raw = _raw_frame(part, fid, plan)
    clean, quarantine = _normalise_rows(raw, cfg, plan.names[fid])
    first = 2 if cfg.read.header else 1
    q = quarantine.frame
    qrows = rows[q["row"].to_numpy(dtype=np.int64) - first] if len(q) else np.array([], dtype=np.int64)
    yield _lines_out(clean, fid, rows[clean.index.to_numpy()], plan)
    if len(q):
        yield pd.DataFrame({
            "kind": "q", "_fid": np.int32(fid), "_row": qrows, "q_column": q["column"].astype(object),
            "q_reason": q["reason"].astype(object), "q_value": q["value"].astype(object).where(q["value"].notna(), None),
            "q_first": ~pd.Series(qrows).duplicated().to_numpy(),
        })
    yield _stats(raw, q, fid, plan, len(clean))


def _normalise_rows(raw: pd.DataFrame, cfg: DataSourceConfig, file: str) -> tuple[pd.DataFrame, Quarantine]:
    """`normalise` on one batch. Its "no value matches the declared date format" is a verdict on a whole file,
    so a batch whose dates all fail is normalised with one valid date appended (and removed after); the
    file-wide check is the driver's (`features.spark.tally`)."""
    try:
        clean, quarantine, _ = normalise(raw, cfg, file)
        return clean, quarantine
    except SourceError as exc:
        if DATE_ERROR not in str(exc) or not cfg.date_format:
            raise
    sentinel = pd.DataFrame([{c: None for c in raw.columns}], index=[len(raw)], dtype=object)
    sentinel[cfg.columns.order_date] = datetime(2000, 1, 1, tzinfo=timezone.utc).strftime(cfg.date_format)
    clean, quarantine, _ = normalise(pd.concat([raw, sentinel]), cfg, file)
    last_row = len(raw) + (2 if cfg.read.header else 1)
    q = quarantine.frame
    return clean.drop(index=len(raw), errors="ignore"), Quarantine(q[q["row"] != last_row].reset_index(drop=True), quarantine.numbering)


def _lines_out(clean: pd.DataFrame, fid: int, rows: np.ndarray, plan: Plan) -> pd.DataFrame:
    out = pd.DataFrame({"kind": "line", "_fid": np.int32(fid), "_row": rows})
    for col in [*COLUMNS, *plan.extras]:
        column = clean[col]
        if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
            # Arrow strings go to Spark as they are (no Python objects on the way), in one chunk: pyspark 4.3
            # builds its record batch with `RecordBatch.from_arrays`, which takes no multi-chunk array
            out[col] = pd.arrays.ArrowStringArray(column.array.__arrow_array__().combine_chunks())
        elif col in STRING_OUT or col in plan.extras:
            out[col] = column.astype(object).where(column.notna(), None).to_numpy()
        else:
            out[col] = column.to_numpy()
    out["order_date"] = pd.to_datetime(clean["order_date"]).to_numpy().astype("datetime64[ns]")
    out["_raw_key"] = clean["_raw_key"].to_numpy(dtype=np.uint64).view(np.int64)
    return out


def _stats(raw: pd.DataFrame, q: pd.DataFrame, fid: int, plan: Plan, lines: int) -> pd.DataFrame:
    """Rows read, non-empty dates, unparseable dates and clean lines of this batch: the driver judges whole files."""
    src = plan.cfg.columns.order_date
    dated = 0
    if src and src in raw.columns:
        text = raw[src].astype("string").str.strip()
        skipped = q.loc[q["reason"] == "repeated header row", "row"].nunique() if len(q) else 0
        dated = int(text.notna().sum()) - int(skipped)
    bad = int((q["reason"] == "unparseable date").sum()) if len(q) else 0
    return pd.DataFrame({"kind": ["stat"], "_fid": [np.int32(fid)], "n_rows": [len(raw)], "n_dates": [dated],
                         "n_unparseable": [bad], "n_lines": [lines]})
