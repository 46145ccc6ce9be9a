"""The pandas engine refuses a source too large for this process before reading it, in one line (features/readers/capacity.py).

Small files only: the limit is monkeypatched (ECOMLAB_MEMORY_LIMIT, rlimits, cgroup files), never reached.
"""

from __future__ import annotations

import gzip
import resource
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.readers import capacity
from features.readers.capacity import ENV_LIMIT, check_capacity, estimate_bytes, estimate_lines, memory_limit, parse_size
from features.readers.files import SourceError
from features.source_config import load_source_config
from features.sources import load
from tests.helpers import write_csv_source

PHRASE = "too large for the local engine; use engine: spark"


def _rows(n: int) -> str:
    return "".join(f"O{i // 3},2024-01-{1 + i % 28:02d} 10:00:00,C{i % 97},P{i % 13},{1 + i % 4},{2.5 + i % 7}\n" for i in range(n))


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(ENV_LIMIT, raising=False)
    return write_csv_source(tmp_path, _rows(3000), "cap")


def test_too_large_is_one_line_naming_the_file_the_estimate_and_the_limit(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LIMIT, "100k")
    with pytest.raises(SourceError) as err:
        load(source)
    message = str(err.value)
    assert PHRASE in message and "\n" not in message
    assert str(source) in message and "lines.csv" in message
    lines = estimate_lines("csv", source.parent / "lines.csv")
    need = estimate_bytes([lines])
    assert abs(lines - 3001) <= 30  # the header is a line too
    assert f"~{lines:,} lines need ~{need / 2**20:.0f} MiB in pandas, 100 KiB is available ({ENV_LIMIT})" in message


def test_a_source_that_fits_loads_and_off_skips_the_check(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LIMIT, "1g")
    assert load(source).accounting.rows_read == 3000
    monkeypatch.setenv(ENV_LIMIT, "off")
    assert len(load(source).lines) == 3000


def test_the_check_happens_before_reading(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused sources are never read: the reader is not called at all."""
    import features.readers.tabular as tabular

    def boom(*_a, **_k):
        raise AssertionError("the file was read")

    monkeypatch.setattr(tabular, "read_file", boom)
    monkeypatch.setenv(ENV_LIMIT, "1k")
    with pytest.raises(SourceError, match="too large"):
        load(source)


def test_kpis_cli_prints_one_line_and_exits_2(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.cli import app

    result = CliRunner().invoke(app, ["kpis", str(source)], env={ENV_LIMIT: "64k", "COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and PHRASE in lines[0] and "Traceback" not in result.output


def test_the_smallest_detected_headroom_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_LIMIT, raising=False)
    limit_file, usage_file = tmp_path / "memory.max", tmp_path / "memory.current"
    limit_file.write_text(str(3 * 2**30))
    usage_file.write_text(str(2**30))
    monkeypatch.setattr(capacity, "CGROUP_FILES", ((str(limit_file), str(usage_file), "cgroup memory.max"),))
    monkeypatch.setattr(capacity, "_available", lambda: capacity.Limit(64 * 2**30, "available RAM"))
    monkeypatch.setattr(capacity, "_rlimit", lambda kind, name, field: None)
    assert memory_limit() == capacity.Limit(2 * 2**30, "cgroup memory.max")
    limit_file.write_text("max")
    assert memory_limit() == capacity.Limit(64 * 2**30, "available RAM")


def test_rlimit_as_headroom_is_the_limit_minus_the_address_space_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    real = resource.getrlimit
    cap = 8 * 2**30
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (cap, cap) if kind == resource.RLIMIT_AS else real(kind))
    got = capacity._rlimit(resource.RLIMIT_AS, "RLIMIT_AS", "vms")
    assert got is not None and got.source == "RLIMIT_AS"
    in_use = cap - got.bytes * capacity.AS_PER_RSS  # address space grows faster than RSS: its headroom counts less
    assert in_use > 0 and abs(in_use - capacity._process_bytes("vms")) < 64 * 2**20
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert capacity._rlimit(resource.RLIMIT_AS, "RLIMIT_AS", "vms") is None


def test_a_real_rlimit_refuses_a_source(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No override: the detected limit (here an RLIMIT_DATA seen as nearly exhausted) decides."""
    monkeypatch.setattr(capacity, "_cgroup", lambda: None)
    monkeypatch.setattr(capacity, "_available", lambda: None)
    used = capacity._process_bytes("data")
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (used + 4096, resource.RLIM_INFINITY)
                        if kind == resource.RLIMIT_DATA else (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    with pytest.raises(SourceError, match=r"too large for the local engine; use engine: spark.*\(RLIMIT_DATA;"):
        load(source)


@pytest.mark.parametrize(("text", "expected"), [("2g", 2 * 2**30), ("1.5GB", 3 * 2**29), ("512m", 512 * 2**20), ("1000", 1000)])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_a_bad_override_names_the_variable(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LIMIT, "lots")
    with pytest.raises(SourceError, match=f"{ENV_LIMIT}='lots': not a size"):
        load(source)


def test_lines_are_estimated_without_reading(tmp_path: Path) -> None:
    body = "order_id,order_date,customer_id,product_id,quantity,unit_price\n" + _rows(40_000)
    plain = tmp_path / "lines.csv"
    plain.write_text(body)
    packed = tmp_path / "lines.csv.gz"
    packed.write_bytes(gzip.compress(body.encode()))
    zipped = tmp_path / "lines.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("lines.csv", body)
    parquet = tmp_path / "lines.parquet"
    pd.DataFrame({"order_id": [f"O{i}" for i in range(12_345)]}).to_parquet(parquet)
    assert estimate_lines("parquet", parquet) == 12_345
    for file in (plain, packed, zipped):  # the header is a line too; text estimates within 5 %
        assert estimate_lines("csv", file) == pytest.approx(40_001, rel=0.05), file.name
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    assert estimate_lines("csv", broken) == 0  # left to the reader, which names the file and the problem


def test_several_files_count_every_line_and_the_largest_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i, n in enumerate((1000, 3000)):
        pd.DataFrame({"order_id": [f"O{j}" for j in range(n)]}).to_parquet(tmp_path / f"part-{i}.parquet")
    cfg_file = tmp_path / "parts.yaml"
    cfg_file.write_text("name: parts\nformat: parquet\npath: part-*.parquet\ncolumns: {order_id: a, order_date: b, "
                        "product_id: c, quantity: d, unit_price: e}\n")
    cfg = load_source_config(cfg_file)
    files = sorted(tmp_path.glob("part-*.parquet"))
    need = capacity.PER_LINE * 4000 + capacity.PER_LINE_PARSED * 3000
    assert estimate_bytes([1000, 3000]) == need
    monkeypatch.setenv(ENV_LIMIT, str(need))
    check_capacity(cfg, files)  # exactly enough
    monkeypatch.setenv(ENV_LIMIT, str(need - 1))
    with pytest.raises(SourceError, match=r"part-\*\.parquet \(2 files\) is too large.*~4,000 lines"):
        check_capacity(cfg, files)
