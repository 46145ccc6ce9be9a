"""What `ecomlab score` feeds a model: the input columns each family needs, files read in chunks, and
model inputs built from validated order lines the way training built them.

Inputs per family (the columns of the servable's pyfunc `predict`; any other column is passed through):
- segmenter: the model's feature columns (`customer_id` and the rest passed through);
- forecaster: `series_id`, `horizon`, optional `levels` and `exog`;
- recommender: `items` (a list of item labels per basket), optional `k`;
- clv: `frequency`, `recency`, `T`, `monetary`, optional `horizon` and `discount_rate` (`customer_id` passed through).

CSV cells that hold a list (`items`, `levels`) are either JSON lists (`["a b", "c"]`, needed when a
label holds a space) or labels separated by spaces (`a c`); an empty cell is an empty list (`items`) or
no value (`levels`, the model's default). Every other column that the model does not read as a number
is read as text, so ids such as `00123` keep their zeros and a chunk never guesses a different type.

A chunk's index holds the global input row numbers (0-based, the header not counted), so a model's
message about a row names the input row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from features.contract import Loaded

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
CONFIG_SUFFIXES = (".yaml", ".yml")
READ_BUFFER = 1 << 20  # bytes per Parquet column read (see _parquet)


class InputError(ValueError):
    """An input the user can fix: unreadable file, wrong suffix, missing columns, a bad cell."""


@dataclass(frozen=True)
class Needs:
    """The columns a model reads: required, optional, read as numbers, and holding a list per row."""

    required: list[str]
    optional: list[str]
    numeric: list[str]
    lists: list[str]


def needs(family: str, model: Any) -> Needs:
    """The input columns of a servable of `family` (see the module docstring)."""
    if family == "segmenter":
        return Needs(list(model.features), [], list(model.features), [])
    if family == "forecaster":
        return Needs(["series_id", "horizon"], ["levels", "exog"], ["horizon"], ["levels"])
    if family == "recommender":
        return Needs(["items"], ["k"], ["k"], ["items"])
    if family == "clv":
        columns, terms = ["frequency", "recency", "T", "monetary"], ["horizon", "discount_rate"]
        return Needs(columns, terms, [*columns, *terms], [])
    raise InputError(f"ecomlab score does not know the inputs of a {family!r} model")


def check_columns(present: list[str], need: Needs) -> None:
    """One InputError naming every missing column and what the model needs."""
    missing = [c for c in need.required if c not in present]
    if missing:
        raise InputError(f"INPUT lacks column(s) {missing} the model needs {need.required}")


def input_kind(path: Path) -> str:
    """"csv", "parquet" or "config" from the suffix; anything else is an InputError."""
    suffix = path.suffix.lower()
    for kind, suffixes in (("csv", CSV_SUFFIXES), ("parquet", PARQUET_SUFFIXES), ("config", CONFIG_SUFFIXES)):
        if suffix in suffixes:
            return kind
    raise InputError(f"{path}: unknown input type {suffix or '(no suffix)'!r}; give a .csv, .parquet or a data config (.yaml)")


@dataclass(frozen=True)
class Chunk:
    """Rows of the input (index = global row numbers) and how far the reading got (rows or bytes)."""

    frame: pd.DataFrame
    done: int


@dataclass(frozen=True)
class Source:
    """A file read in chunks: its columns, the progress total (rows for Parquet, bytes for CSV) and the chunks."""

    columns: list[str]
    total: int
    unit: str  # "rows" | "bytes"
    chunks: Callable[[], Iterator[Chunk]]


def open_source(path: Path, chunk_size: int, need: Needs) -> Source:
    """A CSV or Parquet input, its header read (and checked against `need`) before any row is scored."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    kind = input_kind(path)
    try:
        source = _parquet(path, chunk_size) if kind == "parquet" else _csv(path, chunk_size, need)
    except InputError:
        raise
    except Exception as exc:  # pyarrow/pandas say why the header cannot be read
        raise InputError(f"{path}: cannot read it as {kind.upper()}: {_first_line(exc)}") from None
    check_columns(source.columns, need)
    return source


def _parquet(path: Path, chunk_size: int) -> Source:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as meta:
        columns, total = list(meta.schema_arrow.names), int(meta.metadata.num_rows)

    def chunks() -> Iterator[Chunk]:
        start = 0
        # pyarrow's default reads (pre-buffered, unbuffered) grew the resident memory with the file, ~35 MB
        # per million rows with pyarrow 25; 1 MiB read buffers and no pre-buffering keep it flat (bench/score.py)
        with pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER) as reader:
            for batch in _unreadable_as_input(path, reader.iter_batches(batch_size=chunk_size)):
                frame = batch.to_pandas()
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                yield Chunk(frame, start)

    return Source(columns, total, "rows", chunks)


def _csv(path: Path, chunk_size: int, need: Needs) -> Source:
    columns = list(pd.read_csv(path, nrows=0).columns)
    text = {c: "string" for c in columns if c not in need.numeric}

    def chunks() -> Iterator[Chunk]:
        with path.open("rb") as handle:
            frames = pd.read_csv(handle, chunksize=chunk_size, dtype=text, keep_default_na=False, na_values=[""])
            for frame in _unreadable_as_input(path, frames):
                yield Chunk(decode_csv(frame, need), handle.tell())

    return Source(columns, path.stat().st_size, "bytes", chunks)


def _unreadable_as_input(path: Path, items: Iterator[Any]) -> Iterator[Any]:
    """A file that breaks part-way (a malformed CSV line, a corrupt row group) as one InputError naming it."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except (ValueError, OSError) as exc:  # pandas' ParserError and pyarrow's ArrowInvalid are ValueErrors
            raise InputError(f"{path}: unreadable: {_first_line(exc)}") from None
        yield item


def decode_csv(frame: pd.DataFrame, need: Needs) -> pd.DataFrame:
    """Numbers checked (a bad cell names its row and column), list cells decoded."""
    for col in need.numeric:
        if col in frame.columns:
            frame[col] = _numbers(frame[col], col)
    for col in need.lists:
        if col in frame.columns:
            frame[col] = [_list_cell(v, col, i) for i, v in zip(frame.index, frame[col].tolist(), strict=True)]
    return frame


def _numbers(column: pd.Series, name: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        row = bad.idxmax()
        raise InputError(f"input row {row}: column {name!r}: {column[row]!r} is not a number")
    return values.astype("float64")


def _list_cell(value: Any, name: str, row: int) -> list[Any] | None:
    """A JSON list or space-separated labels; None for an empty `levels` cell, [] for an empty `items` cell."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value) or not str(value).strip():
        return [] if name == "items" else None
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"input row {row}: column {name!r}: not a JSON list ({exc.msg})") from None
        if not isinstance(parsed, list):
            raise InputError(f"input row {row}: column {name!r}: not a JSON list")
        return parsed
    parts = text.split()
    return parts if name == "items" else [_level(p, row) for p in parts]


def _level(text: str, row: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"input row {row}: column 'levels': {text!r} is not a number") from None


# ---- inputs from a data config: the way training built them ----


@dataclass(frozen=True)
class LinesOptions:
    """What the model does not carry but training's config set: defaults are the shipped configs'."""

    reference_date: str | None = None  # segmenter: recency/tenure count to it (default: last day + 1)
    horizon: float | None = None  # forecaster: default DEFAULT_HORIZON of the model's frequency
    basket_level: str = "order"  # recommender
    item: str = "product_id"  # recommender


def inputs_from_loaded(family: str, model: Any, loaded: Loaded | None, options: LinesOptions) -> pd.DataFrame:
    """The model's input rows built from a loaded data config (the forecaster needs none: it scores its series);
    data the builders refuse (no customer ids, no sales lines, ...) is an InputError saying why."""
    try:
        return _inputs(family, model, loaded, options)
    except InputError:
        raise
    except ValueError as exc:
        name = f"{loaded.name}: " if loaded is not None and loaded.name else ""
        raise InputError(f"{name}cannot build {family} inputs: {_first_line(exc)}") from None


def _inputs(family: str, model: Any, loaded: Loaded | None, options: LinesOptions) -> pd.DataFrame:
    if family == "forecaster":
        from features.series import DEFAULT_HORIZON

        horizon = options.horizon or DEFAULT_HORIZON[model.freq]
        ids = [str(s) for s in model.series_ids]
        return pd.DataFrame({"series_id": pd.array(ids, dtype="string"), "horizon": [horizon] * len(ids)})
    if loaded is None:
        raise InputError(f"a {family} model needs the data config's rows")
    if family == "clv":
        return _clv_summary(model, loaded)
    lines = loaded.lines
    if family == "segmenter":
        from features.customers import build_customer_features

        feats = build_customer_features(lines, options.reference_date)
        missing = [f for f in model.features if f not in feats.table.columns]
        if missing:
            raise InputError(f"the data cannot give feature(s) {missing} the model needs: {feats.omitted}")
        return feats.table[["customer_id", *model.features]]
    if family == "recommender":
        from features.baskets import build_baskets

        baskets = build_baskets(lines, options.basket_level, options.item)  # type: ignore[arg-type]
        return pd.DataFrame({"basket_id": pd.array(baskets.ids.astype(str), dtype="string"), "items": baskets.as_lists()})
    raise InputError(f"ecomlab score cannot build {family!r} inputs from order lines")


def _clv_summary(model: Any, loaded: Loaded) -> pd.DataFrame:
    """A summary source as given (in the model's unit), else the whole-period summary of the order lines."""
    if loaded.summary is not None:
        if loaded.summary_unit != model.unit:
            raise InputError(
                f"the data config's customer summary is in unit {loaded.summary_unit!r} but the model counts in {model.unit!r}"
            )
        table = loaded.summary
    else:
        from features.btyd.summary import summarise

        table = summarise(loaded.lines, unit=model.unit).table
    return table[["frequency", "recency", "T", "monetary"]].rename_axis("customer_id").reset_index()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
