"""Batch scoring (`ecomlab score`): a registered model over a file of inputs, chunk by chunk.

Memory is bounded by the chunk size: each chunk is read, scored with the servable's pyfunc `predict`
(the same model code the service answers from) and written before the next is read. The output goes
to a temporary file beside `--out` and is renamed over it only when every row is scored, so a failure
never leaves a half-written output. Every output row carries `model_name` and `model_version`: the
registered name and the version number resolved before loading (an alias is resolved once, so the
version written is the one scored); for `runs:/RUN/PATH`, the name is PATH and the version `run:RUN`.

The first chunk's output fixes the output columns: a later chunk lacking one gets nulls (e.g. a
forecast interval level no row of that chunk asked for); a later chunk adding one is an error that
says to ask for the same levels in every row or to use a larger chunk.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.batch_inputs import Chunk, InputError, Needs, check_columns, needs
from serving.models.registry import NotServable, unwrap
from serving.store import is_unreachable  # importing serving.store also bounds MLflow's HTTP retries and timeout
from serving.tracking_uri import StoreUnreachable, redact, scrub

NAME_COLUMNS = ("model_name", "model_version")
URI_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH"
_LOCAL_ROW = re.compile(r"^(request )?row \d+: ")


class ModelNotFound(LookupError):
    """The URI names no model, version, alias or run in the store; the message says which."""


@dataclass(frozen=True)
class ScoringModel:
    """A loaded servable and where it came from (what every output row is stamped with)."""

    name: str
    version: str
    family: str
    model: Any
    uri: str  # the URI loaded (an alias resolved to its version)
    fill: dict[str, Any] = field(default_factory=dict)  # column -> value for rows that give none (clv: horizon, discount_rate)


@dataclass(frozen=True)
class Scored:
    rows_in: int
    rows_out: int
    chunks: int


def parse_model_uri(uri: str) -> tuple[str, str, str]:
    """("models", NAME, VERSION) / ("alias", NAME, ALIAS) / ("runs", RUN_ID, PATH); InputError otherwise."""
    if uri.startswith("models:/"):
        rest = uri.removeprefix("models:/")
        if "@" in rest and "/" not in rest:
            name, alias = rest.split("@", 1)
            if name and alias:
                return "alias", name, alias
        parts = rest.split("/")
        if len(parts) == 2 and parts[0] and parts[1].isdigit():
            return "models", parts[0], parts[1]
    if uri.startswith("runs:/"):
        run, _, path = uri.removeprefix("runs:/").partition("/")
        if run and path:
            return "runs", run, path.strip("/")
    raise InputError(f"model URI {uri!r}: expected {URI_FORMS}")


def load_scoring_model(uri: str, tracking_uri: str) -> ScoringModel:
    """Resolve `uri` in the store at `tracking_uri`, load it and check it is a servable of its family."""
    import mlflow
    from mlflow.tracking import MlflowClient

    kind, first, second = parse_model_uri(uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri, tracking_uri)
    store = f"tracking store {redact(tracking_uri)}"
    with _store_errors(f"cannot resolve {uri} in {store}", store, tracking_uri):
        if kind == "alias":
            name, version = first, str(client.get_model_version_by_alias(first, second).version)
        elif kind == "models":
            name, version = first, str(client.get_model_version(first, second).version)
        else:
            client.get_run(first)
            name, version = second, f"run:{first}"
    resolved = f"models:/{name}/{version}" if kind != "runs" else uri
    with _store_errors(f"cannot load {resolved}", f"the artifacts of {resolved}", tracking_uri):
        loaded = mlflow.pyfunc.load_model(resolved)
    try:
        inner = loaded.unwrap_python_model()
    except Exception as exc:  # another flavour: no python model inside
        raise InputError(f"{resolved}: not an ecomlab model: {_first_line(exc)}") from None
    family = getattr(type(inner), "family", None)  # the servable's ClassVar: which Protocol to check it against
    try:
        model = unwrap(loaded, str(family))
    except NotServable as exc:
        raise InputError(f"{resolved}: {exc}") from None
    return ScoringModel(name, version, str(family), model, resolved)


@contextmanager
def _store_errors(doing: str, store: str, tracking_uri: str) -> Iterator[None]:
    """MLflow's errors while resolving or loading, as one line: StoreUnreachable naming `store`, or
    ModelNotFound saying what could not be done."""
    try:
        yield
    except Exception as exc:
        text = scrub(_first_line(exc), tracking_uri)
        if is_unreachable(exc):
            raise StoreUnreachable(f"{store} unreachable: {text}") from None
        code = str(getattr(exc, "error_code", ""))  # MlflowException's code; other errors have none
        if "RESOURCE_DOES_NOT_EXIST" in code or "INVALID_PARAMETER_VALUE" in code or isinstance(exc, OSError):
            raise ModelNotFound(f"{doing}: {text}") from None
        raise


def score_chunks(scoring: ScoringModel, chunks: Iterable[Chunk], out: Path, on_chunk: Callable[[int, int], None] | None = None) -> Scored:
    """Score each chunk and write it to `out` (.parquet or .csv) atomically; `on_chunk(rows_scored, done)`."""
    need = needs(scoring.family, scoring.model)
    rows_in = rows_out = count = 0
    with OutputWriter(out) as writer:
        for chunk in chunks:
            if count == 0:
                check_columns(list(chunk.frame.columns), need)
            scored = score_frame(scoring, chunk.frame, need)
            writer.write(scored)
            rows_in, rows_out, count = rows_in + len(chunk.frame), rows_out + len(scored), count + 1
            if on_chunk is not None:
                on_chunk(rows_in, chunk.done)
        if count == 0:  # an input without rows still gives a file with the output's columns
            writer.write(score_frame(scoring, pd.DataFrame(columns=[*need.required]), need))
    return Scored(rows_in, rows_out, count)


def frame_chunks(frame: pd.DataFrame, chunk_size: int) -> Iterator[Chunk]:
    """An in-memory input (built from a data config) as chunks with global row numbers."""
    frame = frame.reset_index(drop=True)
    for start in range(0, len(frame), chunk_size):
        part = frame.iloc[start : start + chunk_size]
        yield Chunk(part, start + len(part))


def score_frame(scoring: ScoringModel, frame: pd.DataFrame, need: Needs) -> pd.DataFrame:
    """The model's output for one chunk, input columns it does not return passed through (one row per
    input row), stamped with the model's name and version; a bad row is named by its input row number."""
    if scoring.fill:
        frame = frame.assign(**{c: frame[c].fillna(v) if c in frame.columns else v for c, v in scoring.fill.items()})
    try:
        out = scoring.model.predict(None, frame)
    except ValueError as exc:
        raise InputError(_bad_row(scoring, frame, exc)) from None
    if len(out) == len(frame) and scoring.family == "recommender":  # one row per basket: keep the basket's ids
        kept = frame[[c for c in frame.columns if c not in (*need.required, *need.optional)]]
        out = pd.concat([kept.reset_index(drop=True), out.reset_index(drop=True)], axis=1)
    out = out.reset_index(drop=True)
    for column, value in zip(NAME_COLUMNS, (scoring.name, scoring.version), strict=True):
        out[column] = pd.array([value] * len(out), dtype="string")
    return out


def _bad_row(model: ScoringModel, frame: pd.DataFrame, exc: ValueError) -> str:
    """"input row N: why" for the first row the model refuses, found by halving the chunk (~2 passes over it)."""
    lo, hi = 0, len(frame)  # frame[lo:hi] fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _refused(model, frame.iloc[lo:mid]) is not None:
            hi = mid
        elif _refused(model, frame.iloc[mid:hi]) is not None:
            lo = mid
        else:  # the rows are refused only together: name the span
            return f"input rows {frame.index[lo]}-{frame.index[hi - 1]}: {_first_line_text(str(exc))}"
    why = _refused(model, frame.iloc[lo:hi]) if hi > lo else None
    if why is None:
        return _first_line_text(str(exc))
    return f"input row {frame.index[lo]}: {_LOCAL_ROW.sub('', _first_line_text(why))}"


def _refused(model: ScoringModel, rows: pd.DataFrame) -> str | None:
    """The model's ValueError message for `rows`, or None when it scores them."""
    try:
        model.model.predict(None, rows)
    except ValueError as exc:
        return str(exc)
    return None


class OutputWriter:
    """Chunks appended to a temporary file beside `out`, renamed over `out` on a clean exit, removed otherwise."""

    def __init__(self, out: Path) -> None:
        suffix = out.suffix.lower()
        if suffix not in (".parquet", ".pq", ".csv"):
            raise InputError(f"--out {out}: unknown output type {suffix or '(no suffix)'!r}; give a .parquet or .csv file")
        if not out.parent.is_dir():
            raise InputError(f"--out {out}: folder {out.parent} does not exist")
        self.out, self.parquet = out, suffix != ".csv"
        self.tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        self.columns: list[str] | None = None
        self._writer: Any = None  # Parquet: the open writer and the schema every chunk is cast to
        self._schema: Any = None
        self._rows_written = False  # CSV: the header goes with the first chunk only

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if self._writer is not None:
            self._writer.close()
        if exc is None:
            os.replace(self.tmp, self.out)
        else:
            self.tmp.unlink(missing_ok=True)

    def write(self, frame: pd.DataFrame) -> None:
        frame = self._aligned(frame)
        if self.parquet:
            self._write_parquet(frame)
        else:
            as_text = {c: frame[c].map(_json_cell) for c in frame.columns if frame[c].dtype == object and _has_lists(frame[c])}
            first = not self._rows_written
            frame.assign(**as_text).to_csv(self.tmp, mode="w" if first else "a", header=first, index=False)
            self._rows_written = True

    def _aligned(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.columns is None:
            self.columns = list(frame.columns)
            return frame
        extra = [c for c in frame.columns if c not in self.columns]
        if extra:
            raise InputError(
                f"a later chunk's output has column(s) {extra} the first chunk's has not: ask for the same "
                "levels in every row, or score with a larger --chunk-size"
            )
        return frame.reindex(columns=self.columns)

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._schema is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = pa.schema([_typed(f) for f in table.schema])
            self._writer = pq.ParquetWriter(self.tmp, self._schema)
        self._writer.write_table(pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False))


def _typed(field: Any) -> Any:
    """A field whose type the first chunk could not tell (all null, or lists all empty) as text."""
    import pyarrow as pa

    def fix(t: Any) -> Any:
        if pa.types.is_null(t):
            return pa.string()
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return pa.list_(fix(t.value_type))
        return t

    return pa.field(field.name, fix(field.type))


def _has_lists(column: pd.Series) -> bool:
    return any(isinstance(v, (list, tuple, np.ndarray)) for v in column.head(50))


def _json_cell(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def _first_line(exc: BaseException) -> str:
    return _first_line_text(getattr(exc, "message", None) or str(exc)) or type(exc).__name__


def _first_line_text(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""
