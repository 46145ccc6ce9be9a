"""What every reader shares: finding a source's files, telling data sets apart, side tables and `SourceError`."""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.contract import Numbering, Quarantine
from features.source_config import DataSourceConfig, SideTable


class SourceError(ValueError):
    """A source that cannot be loaded at all (missing file, wrong format, unmapped column, ...)."""


def source_files(cfg: DataSourceConfig) -> list[Path]:
    """The files a config's `path` names (a file or a glob), sorted; none found is a SourceError naming the config."""
    if cfg.path is None:
        raise SourceError(f"{cfg.source_file or cfg.name}: no path given for format {cfg.format!r}")
    pattern = cfg.resolve(cfg.path)
    if any(ch in str(pattern) for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(pattern)))
        if not files:
            raise SourceError(f"{cfg.source_file or cfg.name}: no file matches {cfg.path} (resolved to {pattern})")
        return files
    if not pattern.exists():
        raise SourceError(f"{cfg.source_file or cfg.name}: data file not found: {cfg.path} (resolved to {pattern})")
    return [pattern]


def files_digest(files: list[Path]) -> str:
    """Content digest (size + first and last MiB of each file): two different data sets are told apart."""
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with f.open("rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), 2)
                h.update(fh.read())
    return h.hexdigest()[:16]


def read_side_table(cfg: DataSourceConfig, table: SideTable | None) -> pd.DataFrame | None:
    """A customers or inventory table beside the lines, or None when the config names none."""
    if table is None:
        return None
    path = cfg.resolve(table.path)
    if not path.exists():
        raise SourceError(f"{cfg.source_file or cfg.name}: side table not found: {table.path}")
    return pd.read_parquet(path) if table.format == "parquet" else pd.read_csv(path)


class Reasons:
    """Collects (row, column, reason, value) for rejected rows, vectorised: every reader's quarantine is built here.

    `rows` maps the frame's index to the row number a user sees: the file line (1-based) or, for rows
    posted in a request, their 0-based index; `numbering` says which."""

    def __init__(self, file: str, rows: pd.Series, numbering: Numbering = "line") -> None:
        self.file, self.rows_of, self.numbering, self.parts = file, rows, numbering, []

    def add(self, mask: pd.Series, column: str, reason: str, values: pd.Series | None) -> None:
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        idx = mask[mask].index
        shown = values.loc[idx].astype("string") if values is not None else pd.Series(pd.NA, index=idx, dtype="string")
        self.parts.append(pd.DataFrame({"idx": idx, "column": column, "reason": reason, "value": shown.to_numpy()}))

    def rows(self) -> pd.Index:
        if not self.parts:
            return pd.Index([])
        return pd.Index(pd.concat(self.parts)["idx"].unique())

    def quarantine(self) -> Quarantine:
        if not self.parts:
            return Quarantine(numbering=self.numbering)
        frame = pd.concat(self.parts, ignore_index=True)
        frame.insert(0, "row", self.rows_of.loc[frame["idx"]].to_numpy().astype("int64"))
        frame.insert(0, "file", self.file)
        frame = frame.drop(columns="idx").sort_values(["row"], kind="stable", ignore_index=True)
        for col in ("file", "column", "reason", "value"):
            frame[col] = frame[col].astype("string")
        return Quarantine(frame, self.numbering)


def read_checked(file: Path, what: str, read: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """`read()` of one file, its failures as one SourceError line naming the file; header names stripped
    (and a BOM); an empty file or a header without rows is an error too."""
    if file.stat().st_size == 0:
        raise SourceError(f"{file.name}: file is empty")
    try:
        frame = read()
    except SourceError:
        raise
    except pd.errors.EmptyDataError:
        raise SourceError(f"{file.name}: file is empty (no header, no rows)") from None
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError, OSError) as exc:
        raise SourceError(f"{file.name}: cannot be read as {what}: {str(exc).splitlines()[0]}") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if len(frame) == 0:
        raise SourceError(f"{file.name}: file has a header but no rows")
    return frame
