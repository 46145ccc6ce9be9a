"""The Spark loader's verdicts on whole files, from the workers' output rows: few jobs, small results.

One aggregate (`summarise`) gives the rows read per file, the file-wide date check, the quarantine counts
per reason and the clean lines before de-duplication; one more collects the quarantine sample; one
drops exact duplicates across all rows (keeping the first by file and line, as the local loader does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from features.contract import COLUMNS, Quarantine
from features.readers.files import SourceError
from features.spark.validate import Plan

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

#: a line's place in the source, one sortable number: file index * FILE_STRIDE + line (the local order)
FILE_STRIDE = 1 << 40
#: duplicated keys up to this many are collected and broadcast; more take the full grouping
BROADCAST_KEYS = 200_000


@dataclass
class Tally:
    read: int  # rows read (clean + quarantined + duplicates)
    lines: int  # clean lines before duplicates are dropped
    quarantined: int
    counts: pd.DataFrame  # column, reason, rows: `Quarantine.summary()` over every rejected row


def summarise(rows: DataFrame, plan: Plan, files: list[Path]) -> Tally:
    """Rows read, clean lines and quarantine counts in one job; a file whose every date fails the declared
    format is the local loader's SourceError (with the first failing value as its example)."""
    from pyspark.sql import functions as F

    q = F.col("kind") == "q"
    got = rows.groupBy("kind", "_fid", "q_column", "q_reason").agg(
        F.sum("n_rows").alias("rows"), F.sum("n_dates").alias("dates"), F.sum("n_unparseable").alias("bad"),
        F.sum("n_lines").alias("lines"), F.count_if(q & F.col("q_first")).alias("first"),
    ).collect()  # sums and counts only: a hash aggregate (a string min_by here made it a sort of every row,
    # whose spill readers ran a 2 GB driver out of heap at 19M lines)
    stats = {r["_fid"]: r for r in got if r["kind"] == "stat"}
    fmt = plan.cfg.date_format
    for fid, file in enumerate(files):
        stat = stats.get(fid)
        if fmt and stat is not None and stat["dates"] > 0 and stat["bad"] >= stat["dates"]:
            first = (rows.filter(q & (F.col("_fid") == fid) & (F.col("q_reason") == "unparseable date"))
                     .orderBy("_row").select("q_value").first())
            example = first["q_value"] if first else None
            src = plan.cfg.columns.order_date
            raise SourceError(f"{file.name}: date column {src!r} does not parse with format {fmt}: e.g. {example!r}")
    per_reason: dict[tuple[str, str], int] = {}
    for r in got:
        if r["kind"] == "q" and r["first"]:
            key = (r["q_column"], r["q_reason"])
            per_reason[key] = per_reason.get(key, 0) + int(r["first"])
    counts = pd.DataFrame([(c, why, n) for (c, why), n in per_reason.items()], columns=["column", "reason", "rows"])
    counts = counts.sort_values("rows", ascending=False, ignore_index=True)
    return Tally(int(sum(s["rows"] for s in stats.values())), int(sum(s["lines"] for s in stats.values())),
                 int(counts["rows"].sum()), counts)


def quarantine_sample(rows: DataFrame, plan: Plan, tally: Tally, sample_rows: int) -> Quarantine:
    """The first `sample_rows` rejected rows by file and line, every entry of each: one job when all fit."""
    from pyspark.sql import functions as F

    if tally.quarantined == 0:
        return Quarantine()
    q = rows.filter(F.col("kind") == "q")
    if tally.quarantined > sample_rows:  # find the last row shown, then take every entry up to it
        last = q.filter("q_first").orderBy("_fid", "_row").select("_fid", "_row").offset(sample_rows - 1).first()
        q = q.filter((F.col("_fid") < last["_fid"]) | ((F.col("_fid") == last["_fid"]) & (F.col("_row") <= last["_row"])))
    entries = q.select("_fid", "_row", "q_column", "q_reason", "q_value").toPandas()
    entries = entries.sort_values(["_fid", "_row"], kind="stable", ignore_index=True)
    return Quarantine(pd.DataFrame({
        "file": pd.array([plan.names[i] for i in entries["_fid"]], dtype="string"),
        "row": entries["_row"].astype("int64"),
        "column": entries["q_column"].astype("string"),
        "reason": entries["q_reason"].astype("string"),
        "value": entries["q_value"].astype("string"),
    }))


def dedupe(rows: DataFrame, plan: Plan, tally: Tally) -> tuple[DataFrame, int, int]:
    """Clean lines with `_seq` (file, line), cached; exact duplicates dropped keeping the first, as the local
    loader does: (lines, duplicates dropped, lines kept).

    The duplicated keys are found on two narrow columns (key, place); when they are few (the usual case) they
    are broadcast and the lines filtered where they lie, else each key's first line is kept by a full grouping."""
    from pyspark.sql import functions as F

    cols = [*COLUMNS, *plan.extras]
    lines = rows.filter(F.col("kind") == "line").select(
        *[F.col(f"`{c}`") for c in cols], "_raw_key", (F.col("_fid").cast("long") * FILE_STRIDE + F.col("_row")).alias("_seq"))
    if not plan.cfg.drop_duplicates:
        kept = lines.drop("_raw_key").persist()
        kept.count()  # fill the cache while the rows are cached
        return kept, 0, tally.lines
    repeated = lines.groupBy("_raw_key").agg(F.count(F.lit(1)).alias("n"), F.min("_seq").alias("_first")).filter("n > 1")
    found = repeated.limit(BROADCAST_KEYS + 1).collect()
    if len(found) <= BROADCAST_KEYS:
        dropped = sum(int(r["n"]) - 1 for r in found)
        spark = rows.sparkSession
        firsts = spark.createDataFrame([(r["_raw_key"], r["_first"]) for r in found], "_raw_key long, _first long")
        kept = lines.join(F.broadcast(firsts), "_raw_key", "left").filter(F.col("_first").isNull() | (F.col("_seq") == F.col("_first")))
        kept = kept.select(*[F.col(f"`{c}`") for c in cols], "_seq").persist()
        kept.count()
        return kept, dropped, tally.lines - dropped
    firsts = lines.groupBy("_raw_key").agg(F.min(F.struct("_seq", *[F.col(f"`{c}`") for c in cols])).alias("r"))
    kept = firsts.select(*[F.col("r").getField(c).alias(c) for c in cols], F.col("r._seq").alias("_seq")).persist()
    after = kept.count()
    return kept, tally.lines - after, after
