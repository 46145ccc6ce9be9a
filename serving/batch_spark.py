"""Batch scoring on Spark (`ecomlab score ... --engine spark`): the registered model through `mlflow.pyfunc.spark_udf`.

The model URI is resolved and loaded once on the driver (`serving.batch.load_scoring_model`: the
same checks and one-line errors as the local engine); its family tells the input columns, and the
model's output on the input's first rows tells the output columns and their Spark types. The
executors then load the same registered version (`spark_udf(..., env_manager="local")`: the
interpreter Spark runs, which needs this package's `serving` and `features` only) and score the
input read by Spark (CSV: every column as text, the model's numeric columns cast to double, a cell
that is not a number an error naming its column; Parquet: as typed). The output has the columns of
the local engine's output, in its order, with `model_name` and `model_version` in every row.

Spark writes Parquet parts to a temporary folder beside `--out`; they are then copied, a row group at
a time, into the one `--out` file by the local engine's writer (`serving.batch.OutputWriter`: the same
CSV list cells, the same atomic rename), so both engines write the same file.

Which families: the segmenter and the clv model (one output row per input row, flat columns). Not
the forecaster (one input row asks for `horizon` output rows; a Spark UDF returns one row per input
row) nor the recommender (its `rules` column is a list of lists per basket, a type `spark_udf`
cannot return): those are scored by the local engine, and `--engine spark` says so in one line.

pyspark is imported inside the functions only: importing this module imports no Spark.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from serving.batch import NAME_COLUMNS, OutputWriter, Scored, ScoringModel, load_scoring_model
from serving.batch_inputs import InputError, Needs, check_columns, input_kind, needs

SPARK_FAMILIES = ("segmenter", "clv")
WHY_NOT = {
    "forecaster": "a forecaster returns `horizon` rows per input row and a Spark UDF returns one row per input row",
    "recommender": "its `rules` output is a list of lists per basket, a type mlflow.pyfunc.spark_udf cannot return",
}
SIGNATURE_TYPES = {"string": "string", "double": "double", "float": "float", "long": "long", "integer": "int", "boolean": "boolean"}
SAMPLE_ROWS = 20  # input rows the output columns are read from, on the driver


def score_spark(spark: Any, model_uri: str, input_path: Path, out: Path, tracking_uri: str,
                fill: dict[str, Any] | None = None) -> tuple[Scored, str, str]:
    """Score INPUT on Spark with the registered model; (rows in and out, parts), the model's name and version."""
    kind = input_kind(input_path)
    if kind == "config":
        raise InputError(f"{input_path}: --engine spark scores a CSV or Parquet file; a data config is scored by the local engine")
    if not input_path.exists():
        raise InputError(f"{input_path}: no such file")
    OutputWriter(out)  # a bad --out is told before anything loads
    scoring = load_scoring_model(model_uri, tracking_uri)
    if scoring.family not in SPARK_FAMILIES:
        why = WHY_NOT.get(scoring.family, "not a family Spark scores")
        raise InputError(f"{scoring.uri}: a {scoring.family} model is not scored with --engine spark ({why}); score it without --engine spark")
    need = needs(scoring.family, scoring.model)
    frame = read_input(spark, input_path, kind, need)
    check_columns(frame.columns, need)
    if scoring.family == "clv":  # the terms of the value, for the rows that do not give their own
        frame = _filled(frame, fill or {})
    scored = _scored(frame, scoring, need, tracking_uri)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.spark-", dir=out.parent) as folder:
        parts = Path(folder) / "parts"
        scored.write.parquet(str(parts))
        rows_out, files = _gather(parts, out)
    return Scored(rows_out, rows_out, files), scoring.name, scoring.version


def read_input(spark: Any, path: Path, kind: str, need: Needs) -> Any:
    """INPUT as a Spark DataFrame; CSV text cells of the model's numeric columns cast to double (a bad cell is an InputError)."""
    from pyspark.sql import functions as F

    try:
        if kind == "parquet":
            return spark.read.parquet(str(path))
        frame = spark.read.csv(str(path), header=True, inferSchema=False, mode="FAILFAST")
    except Exception as exc:  # AnalysisException, a malformed file: one line naming it
        raise InputError(f"{path}: unreadable: {_first_line(exc)}") from None
    for column in [c for c in need.numeric if c in frame.columns]:
        text = F.trim(F.col(column))
        bad = frame.filter((text != "") & text.try_cast("double").isNull()).select(column).limit(1).collect()
        if bad:
            raise InputError(f"{path}: column {column!r}: {bad[0][0]!r} is not a number")
        frame = frame.withColumn(column, F.when(text == "", None).otherwise(text.try_cast("double")))
    return frame


def _filled(frame: Any, fill: dict[str, Any]) -> Any:
    """Rows without their own value of a term (clv: horizon, discount_rate) get the command line's."""
    from pyspark.sql import functions as F

    for column, value in fill.items():
        given = F.col(column) if column in frame.columns else F.lit(None).cast("double")
        frame = frame.withColumn(column, F.coalesce(given, F.lit(float(value))))
    return frame


def _scored(frame: Any, scoring: ScoringModel, need: Needs, tracking_uri: str) -> Any:
    """The input with the model's outputs (one `spark_udf` struct, unpacked), in the local engine's column order."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    inputs = [c for c in (*need.required, *need.optional) if c in frame.columns]
    sample = frame.limit(SAMPLE_ROWS).toPandas()
    local = scoring.model.predict(None, sample)  # what the local engine writes, on a few rows
    own = scoring.model.predict(None, sample[inputs])
    outputs = [c for c in own.columns if c not in inputs]
    struct = ", ".join(f"`{c}` {_spark_type(own[c])}" for c in outputs)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    predict = mlflow.pyfunc.spark_udf(frame.sparkSession, scoring.uri, result_type=struct, env_manager="local")
    scored = frame.withColumn("__scores", predict(F.struct(*_signature_columns(scoring.uri, frame, inputs))))
    columns = [F.col(f"__scores.`{c}`").alias(c) if c in outputs else F.col(f"`{c}`") for c in local.columns]
    stamps = [F.lit(value).cast("string").alias(name) for name, value in zip(NAME_COLUMNS, (scoring.name, scoring.version), strict=True)]
    return scored.select(*columns, *stamps)


def _signature_columns(uri: str, frame: Any, inputs: list[str]) -> list[Any]:
    """The columns the UDF is given: every input of the model's signature, which MLflow enforces on the
    executors. The signature may name pass-through columns of the logged example (`customer_id`) that
    the model does not read and the local engine does not need: absent ones are given as empty text or
    zeros (the outputs taken from the UDF never depend on them), present ones cast to the signature's type."""
    from mlflow.models import get_model_info
    from pyspark.sql import functions as F

    signature = get_model_info(uri).signature
    if signature is None or signature.inputs is None:
        return [F.col(f"`{c}`") for c in inputs]
    columns, named = [], set()
    for spec in signature.inputs.inputs:
        name, kind = getattr(spec, "name", None), SIGNATURE_TYPES.get(str(getattr(getattr(spec, "type", None), "name", "")))
        if name is None:
            continue
        named.add(name)
        if name in frame.columns:
            columns.append(F.col(f"`{name}`").cast(kind).alias(name) if kind and name not in inputs else F.col(f"`{name}`"))
        elif kind is not None and getattr(spec, "required", True):
            columns.append(F.lit("" if kind == "string" else 0).cast(kind).alias(name))
    dropped = [c for c in inputs if c not in named]
    if dropped:  # MLflow would drop them on the executors, where the local engine reads them
        raise InputError(f"{uri}: column(s) {dropped} are not in the model's signature, so spark_udf would not pass "
                         "them to the model; score without --engine spark")
    return columns


def _spark_type(column: pd.Series) -> str:
    kind = column.dtype.kind
    if kind in "iu":
        return "long"
    if kind == "f":
        return "double"
    if kind == "b":
        return "boolean"
    return "string"


def _gather(parts: Path, out: Path) -> tuple[int, int]:
    """Spark's Parquet parts, in order, into the one `out` file (row group by row group); (rows, parts)."""
    import pyarrow.parquet as pq

    files = sorted(parts.glob("part-*.parquet"))
    rows = 0
    with OutputWriter(out) as writer:
        for file in files:
            for batch in pq.ParquetFile(file).iter_batches():
                frame = batch.to_pandas()
                for name in NAME_COLUMNS:
                    frame[name] = frame[name].astype("string")
                writer.write(frame)
                rows += len(frame)
        if rows == 0 and files:  # no rows: the output's columns still
            writer.write(pq.read_table(files[0]).to_pandas())
    shutil.rmtree(parts, ignore_errors=True)
    return rows, len(files)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
