"""Does a tabular source fit in the pandas engine? Checked before reading, so data too large for this process
stops with one line that names the file and says to use Spark, not with an out-of-memory kill halfway through.

Why an estimate: the local engine holds every line in memory (every cell read as text, then parsed and
checked, then the KPI working set), so its peak grows with the number of lines. Lines are counted cheaply
before reading: exactly from Parquet metadata, else from the file size over the bytes per line of the first
MiB (decompressed for .gz/.bz2/.xz; a zip's own size table). Peak RSS of `load` + `kpi_report` over the
RSS after imports, measured from a fresh process: bench/spark.py's synthetic shop (11 columns) in Parquet
peaked at 822 B/line for 1M lines in one file and 520 B/line for 4.1M lines in four files (the parse of one
file is transient, the parsed lines and the KPI working set stay); as CSV, 841 B/line for 1M lines in one
file; UCI Online Retail (CSV.gz, 8 columns, 537k clean lines) at 1,008 B/line. So the estimate is
`PER_LINE` x all lines + `PER_LINE_PARSED` x the largest file's lines, above every measurement
(1,100 B/line for one file, 720 B/line for four): the check refuses only what would not fit.

The limit is the smallest headroom this process has: the cgroup's memory limit minus its usage (v2
`memory.max`, v1 `memory.limit_in_bytes`), `RLIMIT_AS` minus the address space in use (divided by
`AS_PER_RSS`: the address space grew 1.53x as fast as RSS here, 1,551 vs 1,012 MiB for 1.3M Parquet lines and
3,216 vs 2,056 MiB for 4.1M; without it a 2 GiB RLIMIT_AS passed the check and failed in numpy), `RLIMIT_DATA` minus
the data segment, and the RAM available (psutil, else /proc/meminfo). `ECOMLAB_MEMORY_LIMIT` (e.g. `2g`,
`512m`, bytes) replaces the detected limit: lower it to reserve memory for other work, raise it to try
anyway, `off` skips the check.
"""

from __future__ import annotations

import bz2
import lzma
import os
import re
import resource
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from features.readers.files import SourceError
from features.source_config import DataSourceConfig

ENV_LIMIT = "ECOMLAB_MEMORY_LIMIT"
#: peak bytes of `load` + `kpi_report` per order line, and per line of the largest file while it is parsed (module docstring)
PER_LINE, PER_LINE_PARSED = 600, 500
AS_PER_RSS = 1.6  # address space per byte of RSS while loading (module docstring)
SAMPLE = 1 << 20  # bytes of text sampled for the bytes per line
EXCEL_MAX_ROWS = 1_048_576
UNLIMITED = 1 << 60
#: (limit, usage, name) of cgroup v2, then v1
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "cgroup memory.max"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
                 "cgroup memory.limit_in_bytes"))
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30, "t": 2**40, "tb": 2**40}


@dataclass(frozen=True)
class Limit:
    """The memory the local engine may still use, and where that figure comes from."""

    bytes: int
    source: str


def check_capacity(cfg: DataSourceConfig, files: list[Path]) -> None:
    """Raise a SourceError when the source's estimated peak in the local engine exceeds this process's headroom."""
    if os.environ.get(ENV_LIMIT, "").strip().lower() == "off":
        return
    limit = memory_limit()
    if limit is None:
        return
    per_file = [estimate_lines(cfg.format, f) for f in files]
    lines, need = sum(per_file), estimate_bytes(per_file)
    if need <= limit.bytes:
        return
    where = cfg.source_file or cfg.name
    data = files[0].name if len(files) == 1 else f"{cfg.path} ({len(files)} files)"
    raise SourceError(
        f"{where}: {data} is too large for the local engine; use engine: spark (or --engine spark): "
        f"~{lines:,} lines need ~{_gib(need)} in pandas, {_gib(limit.bytes)} is available ({limit.source}"
        + (")" if limit.source == ENV_LIMIT else f"; {ENV_LIMIT} overrides)")
    )


def estimate_bytes(lines_per_file: list[int]) -> int:
    """The local engine's estimated peak for files of these many lines (module docstring)."""
    return PER_LINE * sum(lines_per_file) + PER_LINE_PARSED * max(lines_per_file, default=0)


def memory_limit() -> Limit | None:
    """The smallest headroom of: ECOMLAB_MEMORY_LIMIT (alone, when set), cgroup, rlimits, available RAM."""
    env = os.environ.get(ENV_LIMIT, "").strip()
    if env:
        return Limit(parse_size(env), ENV_LIMIT)
    found = [x for x in (_cgroup(), _rlimit(resource.RLIMIT_AS, "RLIMIT_AS", "vms"),
                         _rlimit(getattr(resource, "RLIMIT_DATA", None), "RLIMIT_DATA", "data"), _available())
             if x is not None]
    return min(found, key=lambda x: x.bytes) if found else None


def parse_size(text: str) -> int:
    """`2g`, `1.5GB`, `512m`, `1000000` -> bytes; anything else is a SourceError naming the variable."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise SourceError(f"{ENV_LIMIT}={text!r}: not a size; use e.g. 2g, 512m, a number of bytes, or off")
    return int(float(match.group(1)) * _UNITS[unit])


def estimate_lines(fmt: str, file: Path) -> int:
    """Lines in one file, without reading it: Parquet metadata, an xlsx sheet's dimension, else size / bytes per line."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_metadata(file).num_rows
        except Exception:  # not Parquet after all: the reader says so in its own words
            return 0
    if fmt == "excel":
        return _excel_rows(file)
    try:
        size, sample = _text_size(file)
    except Exception:  # a broken archive or unreadable file: the reader reports it in its own words
        return 0
    newlines = sample.count(b"\n")
    if not sample:
        return 0
    per_line = len(sample) / newlines if newlines else len(sample)
    return max(1, round(size / per_line))


def _text_size(file: Path) -> tuple[int, bytes]:
    """(uncompressed size, first uncompressed MiB) of a text file, compressed or not (pandas infers by suffix)."""
    size, suffix = file.stat().st_size, file.suffix.lower()
    if suffix == ".zip":
        with zipfile.ZipFile(file) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            with zf.open(infos[0]) as fh:
                return sum(i.file_size for i in infos), fh.read(SAMPLE)
    decompressor = {".gz": lambda: zlib.decompressobj(47), ".bz2": bz2.BZ2Decompressor, ".xz": lzma.LZMADecompressor}
    with file.open("rb") as fh:
        if suffix not in decompressor:
            return size, fh.read(SAMPLE)
        dec, out, used = decompressor[suffix](), b"", 0
        while len(out) < SAMPLE:
            block = fh.read(1 << 16)
            if not block:
                break
            used += len(block)
            out += dec.decompress(block)
    ratio = len(out) / used if used else 1.0
    return (len(out) if used >= size else round(size * ratio)), out[:SAMPLE]


def _excel_rows(file: Path) -> int:
    if file.suffix.lower() in (".xlsx", ".xlsm"):
        try:
            import openpyxl

            book = openpyxl.load_workbook(file, read_only=True)
            try:
                rows = max((ws.max_row or 0) for ws in book.worksheets)
            finally:
                book.close()
            if rows:
                return rows
        except Exception:  # unreadable here: the reader reports it; estimate from the size instead
            pass
    return min(EXCEL_MAX_ROWS, file.stat().st_size // 16)


def _cgroup() -> Limit | None:
    for limit_file, usage_file, name in CGROUP_FILES:
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text == "max" or int(text) >= UNLIMITED:
            return None
        try:
            used = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            used = 0
        return Limit(max(0, int(text) - used), name)
    return None


def _rlimit(kind: int | None, name: str, field: str) -> Limit | None:
    if kind is None:
        return None
    soft, _ = resource.getrlimit(kind)
    if soft == resource.RLIM_INFINITY or soft >= UNLIMITED:
        return None
    headroom = max(0, soft - _process_bytes(field))
    return Limit(int(headroom / AS_PER_RSS) if field == "vms" else headroom, name)


def _process_bytes(field: str) -> int:
    """This process's address space ("vms") or data segment ("data"), from /proc/self/statm or psutil."""
    try:
        parts = Path("/proc/self/statm").read_text().split()
        return int(parts[0 if field == "vms" else 5]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, field, info.vms))
    except Exception:
        return 0


def _available() -> Limit | None:
    try:
        import psutil

        return Limit(int(psutil.virtual_memory().available), "available RAM")
    except Exception:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return Limit(int(line.split()[1]) * 1024, "available RAM")
    except (OSError, ValueError):
        pass
    return None


def _gib(n: int) -> str:
    if n >= 2**28:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"
