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

Which families: the segmenter and the clv model through `spark_udf` (one output row per input row, flat
columns). The forecaster (one input row asks for `horizon` output rows, where a Spark UDF returns one row
per input row) and the recommender (list cells in and out, and the basket ids it passes through) are scored
with `mapInPandas`: each partition runs the local engine's own per-chunk code (`serving.batch.score_frame`:
list cells decoded, the model called, its columns and stamps) on the model the driver loaded from the
registry, shipped with the task, so both engines give the same rows. A row the model refuses is named by its
values (Spark does not number a file's rows).

pyspark is imported inside the functions only: importing this module imports no Spark.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from serving.batch import NAME_COLUMNS, OutputWriter, Scored, ScoringModel, load_scoring_model, score_frame
from serving.batch_inputs import InputError, Needs, check_columns, decode_csv, input_kind, needs

UDF_FAMILIES = ("segmenter", "clv")  # mlflow.pyfunc.spark_udf: one flat output row per input row
MAPPED_FAMILIES = ("forecaster", "recommender")  # mapInPandas with the local per-chunk code
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
    if scoring.family not in (*UDF_FAMILIES, *MAPPED_FAMILIES):
        raise InputError(f"{scoring.uri}: a {scoring.family} model is not scored with --engine spark; score it without --engine spark")
    need = needs(scoring.family, scoring.model)
    frame = read_input(spark, input_path, kind, need)
    check_columns(frame.columns, need)
    if scoring.family == "clv":  # the terms of the value, for the rows that do not give their own
        frame = _filled(frame, fill or {})
    if scoring.family in UDF_FAMILIES:
        scored = _scored(frame, scoring, need, tracking_uri)
    else:
        scored = _mapped(frame, scoring, need, text_lists=kind != "parquet")
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.spark-", dir=out.parent) as folder:
        parts = Path(folder) / "parts"
        try:
            scored.write.parquet(str(parts))
        except Exception as exc:  # a row the model refused on an executor: its one line, not Spark's trace
            refused = _executor_input_error(exc)
            if refused is None:
                raise
            raise InputError(f"{input_path}: {refused}") from None
        rows_in = frame.count() if scoring.family == "forecaster" else None
        rows_out, files = _gather(parts, out, list_columns(scored))
    return Scored(rows_in if rows_in is not None else rows_out, rows_out, files), scoring.name, scoring.version


def read_input(spark: Any, path: Path, kind: str, need: Needs) -> Any:
    """INPUT as a Spark DataFrame; CSV text cells of the model's numeric columns cast to double (a bad cell is an InputError)."""
    from pyspark.sql import functions as F

    try:
        if kind == "parquet":
            return spark.read.parquet(str(path))
        # a quote inside a quoted cell is doubled (RFC 4180, as pandas writes and reads it), not backslashed
        frame = spark.read.csv(str(path), header=True, inferSchema=False, mode="FAILFAST", escape='"')
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


def _mapped(frame: Any, scoring: ScoringModel, need: Needs, text_lists: bool) -> Any:
    """The local engine's output, partition by partition (`mapInPandas`): `score_frame` on each batch with the
    model the driver loaded (pickled into the task); the output schema is that of its output on the first rows."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    from serving.batch import _typed

    sample = _decoded(frame.limit(SAMPLE_ROWS).toPandas(), need, text_lists)
    try:
        local = score_frame(scoring, sample, need)
    except InputError as exc:
        raise InputError(_named_row(str(exc), sample, need)) from None
    arrow = pa.schema([_typed(f) for f in pa.Schema.from_pandas(local, preserve_index=False)])
    schema = from_arrow_schema(pa.schema([pa.field(f.name, _small(f.type)) for f in arrow]))
    columns = list(local.columns)

    def score_batches(batches: Any) -> Any:
        for batch in batches:
            rows = _decoded(batch, need, text_lists)
            try:
                out = score_frame(scoring, rows, need)
            except InputError as exc:  # "input row N" counts within this batch: name the row by its values
                raise InputError(_named_row(str(exc), rows, need)) from None
            extra = [c for c in out.columns if c not in columns]
            if extra:  # as the local engine's writer says it of a later chunk
                raise InputError(f"some rows' output has column(s) {extra} the first {SAMPLE_ROWS} rows' has not: "
                                 "ask for the same levels in every row")
            out = out.reindex(columns=columns)
            # pandas 3's text columns are Arrow-backed (chunked): pyspark 4's conversion takes plain objects
            yield out.astype({c: object for c in out.columns if isinstance(out[c].dtype, pd.StringDtype)})

    return frame.mapInPandas(score_batches, schema)


def _decoded(rows: Any, need: Needs, text_lists: bool) -> Any:
    """A batch as the local engine reads it: list cells of a CSV decoded (Parquet lists come as arrays)."""
    rows = rows.reset_index(drop=True)
    return decode_csv(rows, Needs([], [], [], need.lists)) if text_lists else rows


def _small(kind: Any) -> Any:
    """Arrow's large strings and lists as the plain ones Spark's schema speaks of."""
    import pyarrow as pa

    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(_small(kind.value_type))
    return kind


ROW_NUMBER = re.compile(r"^input rows? (\d+)(?:-(\d+))?: ")


def _named_row(message: str, rows: Any, need: Needs) -> str:
    """"input row 3: why" within a batch as "input row with series_id='x', horizon=2.0: why"."""
    found = ROW_NUMBER.match(message)
    if found is None:
        return message
    row = rows.iloc[int(found.group(1))]
    named = ", ".join(f"{c}={_cell_text(row[c])}" for c in need.required if c in rows.columns)
    return f"input row with {named}: {message[found.end():]}"


def _cell_text(value: Any) -> str:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return repr(value)


def _executor_input_error(exc: BaseException) -> str | None:
    """The InputError line inside an executor's failure (Spark wraps it in its own trace), or None."""
    text = str(exc)
    lines = [line for line in text.splitlines() if "InputError: " in line]
    return lines[-1].split("InputError: ", 1)[1].strip() if lines else None


def list_columns(scored: Any) -> list[str]:
    return [f.name for f in scored.schema.fields if f.dataType.typeName() == "array"]


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


def _gather(parts: Path, out: Path, lists: list[str] = ()) -> tuple[int, int]:
    """Spark's Parquet parts, in order, into the one `out` file (row group by row group); (rows, parts).
    List cells are written as the local engine writes them (Python lists, not numpy arrays)."""
    import pyarrow.parquet as pq

    files = sorted(parts.glob("part-*.parquet"))
    rows = 0
    with OutputWriter(out) as writer:
        for file in files:
            for batch in pq.ParquetFile(file).iter_batches():
                frame = batch.to_pandas()
                for name in NAME_COLUMNS:
                    frame[name] = frame[name].astype("string")
                for name in lists:
                    frame[name] = [_as_list(v) for v in frame[name].tolist()]
                writer.write(frame)
                rows += len(frame)
        if rows == 0 and files:  # no rows: the output's columns still
            writer.write(pq.read_table(files[0]).to_pandas())
    shutil.rmtree(parts, ignore_errors=True)
    return rows, len(files)


def _as_list(value: Any) -> Any:
    """A Parquet list cell (numpy arrays, nested) as plain lists; None stays None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [_as_list(v) for v in value] if isinstance(value, list) else value


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
