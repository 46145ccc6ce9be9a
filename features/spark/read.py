"""Load a tabular source (CSV, whitespace text, Parquet, Excel) into Spark: clean `OrderLines` and the quarantine.

Why this shape: the validation rules live once, in `features.readers.normalise`. Spark reads the raw rows
(text lines, or Parquet's typed columns) with their file and line number; each batch of rows goes through
that very normaliser on the workers (`mapInPandas`), so every reason and row number is the local engine's.
What needs the whole file is decided globally afterwards: exact duplicates are dropped across all rows,
keeping the first by (file, line) as the local loader does, and a declared `date_format` that no value of a
file matches is still the one-line `SourceError`. Rows read = clean + quarantined + duplicates dropped.
The workers' side is `features.spark.validate`, the whole-file verdicts `features.spark.tally`: a load is
a counting pass (text), one validating pass (cached), one summary, the quarantine sample and the dedupe.

Limits: CSV lines are split one physical line at a time (a quoted value spanning lines is not supported),
text must be UTF-8, and Excel files are read on the driver (they are small by nature).
pyspark is imported inside functions: importing this module does not load it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.contract import Accounting, Quarantine
from features.readers.files import SourceError, files_digest, read_checked, read_side_table, source_files
from features.readers.normalise import _check_mapping
from features.readers.tabular import read_file
from features.source_config import DataSourceConfig, load_source_config
from features.spark.tally import dedupe, quarantine_sample, summarise
from features.spark.validate import ROWS_PER_PASS, Plan, normalise_batches, out_schema

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

TABULAR = ("csv", "whitespace", "parquet", "excel")
UTF8 = {"utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig", "ascii"}
SAMPLE_ROWS = 1000


@dataclass
class SparkLoaded:
    """`features.contract.Loaded` for Spark: the lines stay a Spark DataFrame (with `_seq`, the local row order);
    the quarantine is a bounded sample (first rows by file and line) plus the counts of every rejected row."""

    lines: DataFrame
    quarantine: Quarantine
    quarantine_counts: pd.DataFrame  # column, reason, rows: `Quarantine.summary()` over every rejected row
    accounting: Accounting
    name: str = ""
    customers: pd.DataFrame | None = None
    inventory: pd.DataFrame | None = None
    source_digest: str = ""


def load_spark(spark: SparkSession, config: str | Path | DataSourceConfig, sample_rows: int = SAMPLE_ROWS,
               rows_per_pass: int = ROWS_PER_PASS) -> SparkLoaded:
    """Read, validate and de-duplicate a tabular source on Spark (module docstring). `rows_per_pass`: how many
    rows the workers' normaliser takes at a time (Arrow's batches are joined up to it)."""
    cfg = config if isinstance(config, DataSourceConfig) else load_source_config(config)
    if cfg.format not in TABULAR:
        raise SourceError(f"{cfg.source_file or cfg.name}: format {cfg.format!r} is not read by the Spark engine "
                          f"(it reads {', '.join(TABULAR)}); use engine: pandas")
    files = source_files(cfg)
    raw, plan = _raw_rows(spark, cfg, files)
    plan = replace(plan, rows_per_pass=rows_per_pass)
    rows = _spread(spark, raw).mapInPandas(lambda batches: normalise_batches(batches, plan), out_schema(plan)).persist()
    try:
        tally = summarise(rows, plan, files)  # runs the validation once, filling the cache
        quarantine = quarantine_sample(rows, plan, tally, sample_rows)
        lines, dups, clean = dedupe(rows, plan, tally)  # fills the lines' cache while the rows are cached
    except Exception as exc:  # a worker's SourceError reaches the driver wrapped in Spark's exception
        message = spark_error_line(exc)
        if message is None:
            raise
        raise SourceError(message) from None
    finally:
        rows.unpersist()
    accounting = Accounting(tally.read, clean, tally.quarantined, dups, files=len(files))
    accounting.check()
    return SparkLoaded(lines, quarantine, tally.counts, accounting, cfg.name, read_side_table(cfg, cfg.customers),
                       read_side_table(cfg, cfg.inventory), files_digest(files))


def _spread(spark: SparkSession, raw: DataFrame) -> DataFrame:
    """One gzip file or one small file is one partition: spread its rows over the cores, so the Python
    validation runs on all of them (rows carry their line numbers, their order does not matter)."""
    if type(spark).__module__.startswith("pyspark.sql.connect"):  # Spark Connect: no RDDs; the server partitions
        return raw
    cores = spark.sparkContext.defaultParallelism
    return raw.repartition(cores) if raw.rdd.getNumPartitions() < cores else raw


# ---- reading: raw rows with their file index and line number ----


def _raw_rows(spark: SparkSession, cfg: DataSourceConfig, files: list[Path]) -> tuple[DataFrame, Plan]:
    names = [f.name for f in files]
    extras = list(cfg.extra_columns)
    if cfg.format == "parquet":
        columns = [_parquet_columns(cfg, f) for f in files]
        return _parquet_rows(spark, cfg, files, columns), Plan(cfg, names, columns, extras, True, cfg.read.header)
    if cfg.format == "excel":
        frames = [read_file(cfg, f) for f in files]
        columns = [_checked(cfg, f, list(frame.columns)) for f, frame in zip(files, frames)]
        return _excel_rows(spark, cfg, frames), Plan(cfg, names, columns, extras, True, cfg.read.header)
    if cfg.read.encoding.lower() not in UTF8:
        raise SourceError(f"{cfg.source_file or cfg.name}: the Spark engine reads UTF-8 text, not {cfg.read.encoding}; "
                          "convert the files to UTF-8 or use engine: pandas")
    if cfg.format == "csv" and len(cfg.read.sep or ",") != 1:
        raise SourceError(f"{cfg.source_file or cfg.name}: the Spark engine splits CSV on one character, not {cfg.read.sep!r}")
    columns = [_checked(cfg, f, list(read_checked(f, cfg.format, lambda f=f: _head(cfg, f)).columns)) for f in files]
    return _text_rows(spark, cfg, files), Plan(cfg, names, columns, extras, False, cfg.read.header)


def _head(cfg: DataSourceConfig, file: Path) -> pd.DataFrame:
    """The file's first row read as the local reader reads it: the column names are the local ones."""
    opts = cfg.read
    sep = r"\s+" if cfg.format == "whitespace" else (opts.sep or ",")
    return pd.read_csv(file, sep=sep, dtype=str, nrows=1, header=0 if opts.header else None, names=opts.names,
                       encoding=opts.encoding, engine="python" if cfg.format == "whitespace" else "c")


def _checked(cfg: DataSourceConfig, file: Path, columns: list[Any]) -> list[str]:
    """Column names as `read_checked` leaves them, and the mapping checked against them (one SourceError line)."""
    names = [str(c).strip().lstrip("\ufeff") for c in columns]
    _check_mapping(pd.DataFrame(columns=names, dtype="string"), cfg, file.name)
    return names


def _parquet_columns(cfg: DataSourceConfig, file: Path) -> list[str]:
    import pyarrow.parquet as pq

    if file.stat().st_size == 0:
        raise SourceError(f"{file.name}: file is empty")
    import pyarrow as pa

    try:
        schema = pq.read_schema(file)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise SourceError(f"{file.name}: cannot be read as parquet: {str(exc).splitlines()[0]}") from None
    nanos = [f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"]
    if nanos:
        raise SourceError(f"{file.name}: column(s) {nanos} hold nanosecond timestamps, which Spark cannot read; "
                          "write them in microseconds (pandas: to_parquet(..., coerce_timestamps='us')) or use engine: pandas")
    names = schema.names
    return _checked(cfg, file, [n for n in names if not n.startswith("__index_level_")])


def _file_ids(spark: SparkSession, files: list[Path]) -> Any:
    """A Spark map from the reader's file path (a URI) to the file's index in `files`."""
    from pyspark.sql import functions as F

    pairs = [x for i, f in enumerate(files) for x in (F.lit(os.path.abspath(f)), F.lit(i))]
    return F.create_map(*pairs)


def _path_of(uri_column: Any) -> Any:
    """The local path of `_metadata.file_path` ("file:/a/b%20c.csv" -> "/a/b c.csv")."""
    from pyspark.sql import functions as F

    return F.url_decode(F.regexp_replace(uri_column, r"^file:(//)?", ""))


def _parquet_rows(spark: SparkSession, cfg: DataSourceConfig, files: list[Path], columns: list[list[str]]) -> DataFrame:
    from pyspark.sql import functions as F

    if any(c != columns[0] for c in columns):
        raise SourceError(f"{cfg.source_file or cfg.name}: the Spark engine needs the same columns in every Parquet file")
    frame = spark.read.parquet(*[os.path.abspath(f) for f in files])
    first = 2 if cfg.read.header else 1
    fid = _file_ids(spark, files)[_path_of(F.col("_metadata.file_path"))]
    data = [F.col(f"`{c}`").alias(name) for c, name in zip(frame.columns, columns[0])]
    return frame.select(fid.cast("int").alias("_fid"), (F.col("_metadata.row_index") + first).alias("_row"), *data)


def _excel_rows(spark: SparkSession, cfg: DataSourceConfig, frames: list[pd.DataFrame]) -> DataFrame:
    first = 2 if cfg.read.header else 1
    parts = []
    for i, frame in enumerate(frames):
        part = frame.astype(object).where(frame.notna(), None).map(lambda v: None if v is None else str(v))
        part.columns = [str(c).strip().lstrip("\ufeff") for c in part.columns]
        part.insert(0, "_row", np.arange(len(frame), dtype=np.int64) + first)
        part.insert(0, "_fid", np.int32(i))
        parts.append(part)
    whole = pd.concat(parts, ignore_index=True)
    schema = "_fid int, _row long, " + ", ".join(f"`{c}` string" for c in whole.columns[2:])
    return spark.createDataFrame(whole, schema=schema)


def _text_rows(spark: SparkSession, cfg: DataSourceConfig, files: list[Path]) -> DataFrame:
    """One row per physical line with its file and 1-based line number. A counting pass gives each file
    block's line count and the id (`monotonically_increasing_id`, the same for the same scan) of its first
    line, so a line's number is its block's first line + its id - that first id: no Python, no order kept."""
    from pyspark.sql import functions as F

    text = spark.read.text([os.path.abspath(f) for f in files]).select(
        _file_ids(spark, files)[_path_of(F.col("_metadata.file_path"))].cast("int").alias("_fid"),
        F.col("_metadata.file_block_start").alias("_block"), F.monotonically_increasing_id().alias("_id"), F.col("value").alias("_text"),
    )
    counted = text.groupBy("_fid", "_block").agg(F.count(F.lit(1)).alias("n"), F.min("_id").alias("first")).collect()
    if any(r["_fid"] is None for r in counted):
        raise RuntimeError("Spark read a file outside the source's list")
    offsets, seen = [], {}
    for r in sorted(counted, key=lambda r: (r["_fid"], r["_block"])):
        offsets += [F.lit(f"{r['_fid']}:{r['_block']}"), F.lit(seen.get(r["_fid"], 0) + 1 - r["first"]).cast("long")]
        seen[r["_fid"]] = seen.get(r["_fid"], 0) + r["n"]
    for i, f in enumerate(files):
        if f.stat().st_size == 0:
            raise SourceError(f"{f.name}: file is empty")
        if seen.get(i, 0) <= int(cfg.read.header):
            raise SourceError(f"{f.name}: file has a header but no rows")
    offset = F.create_map(*offsets)[F.concat_ws(":", F.col("_fid").cast("string"), F.col("_block").cast("string"))]
    return text.select("_fid", (F.col("_id") + offset).alias("_row"), "_text")


def spark_error_line(exc: BaseException) -> str | None:
    """The `SourceError` message a worker raised, out of the Python traceback Spark wraps it in."""
    text = str(exc)
    marker = "SourceError: "
    if marker not in text:
        return None
    return text.rsplit(marker, 1)[1].strip().splitlines()[0]

