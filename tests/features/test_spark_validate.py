"""The Spark loader's worker side without Spark: text lines in Arrow-sized batches through `normalise_batches`
give the local reader's clean lines and quarantine, whichever parser (pandas' C parser or the `csv` module)
reads a batch and however the batches are joined into passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features.readers.files import SourceError
from features.source_config import load_source_config
from features.sources import load
from features.spark import validate
from features.spark.validate import Plan, normalise_batches

HEADER = "order,day,customer,sku,qty,price,note"
TRICKY = [
    'A1,2024-01-05,C1,P1,2,3.50,"quoted, with a comma"',
    "A2,2024-01-05,C2,P2,1,2.00",  # short: the note is empty
    "",  # blank
    'A3,2024-01-06,C1,P3,1,4.00,"a ""double"" quote"',
    HEADER,  # repeated header
    "A4,2024-13-40,C2,P2,1,2.00,bad date",
    "A5,2024-01-07,C3,P1,x,2.00,not a number",
    "A1,2024-01-05,C1,P1,2,3.50,no duplicate: another note",
    "A6,2024-01-08,,P1,3,1.25,",
]


def _source(folder: Path, lines: list[str]) -> Path:
    (folder / "a.csv").write_text("\n".join([HEADER, *lines]) + "\n")
    path = folder / "tricky.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tricky", "format": "csv", "path": "a.csv", "date_format": "%Y-%m-%d",
        "columns": {"order_id": "order", "order_date": "day", "customer_id": "customer", "product_id": "sku",
                    "quantity": "qty", "unit_price": "price"},
        "extra_columns": {"note": "note"},
    }))
    return path


def _worker_output(config: Path, batch_rows: int, rows_per_pass: int) -> pd.DataFrame:
    """What the workers send back, from the file's lines cut into batches as Spark's Arrow batches are."""
    cfg = load_source_config(config)
    file = config.parent / "a.csv"
    lines = file.read_text().splitlines()
    plan = Plan(cfg, [file.name], [HEADER.split(",")], list(cfg.extra_columns), False, True, rows_per_pass)
    frame = pd.DataFrame({"_fid": np.int32(0), "_row": np.arange(1, len(lines) + 1, dtype=np.int64), "_text": lines})
    batches = [frame.iloc[i:i + batch_rows] for i in range(0, len(frame), batch_rows)]
    return pd.concat(list(normalise_batches(iter(batches), plan)), ignore_index=True)


def _plain(values: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in values]


def assert_same_as_local(config: Path, out: pd.DataFrame) -> None:
    local = load(config)
    lines = out[out["kind"] == "line"].sort_values("_row")
    assert lines["order_id"].tolist() == local.lines["order_id"].tolist()
    assert _plain(lines["note"]) == _plain(local.lines["note"])
    assert lines["quantity"].tolist() == local.lines["quantity"].tolist()
    q = out[out["kind"] == "q"].sort_values(["_row", "q_column"])
    want = local.quarantine.frame.sort_values(["row", "column"])
    assert q["_row"].tolist() == want["row"].tolist()
    assert q["q_reason"].tolist() == want["reason"].tolist()
    stats = out[out["kind"] == "stat"]
    assert int(stats["n_rows"].sum()) == local.accounting.rows_read == len(TRICKY)


@pytest.mark.parametrize(("batch_rows", "rows_per_pass"), [(10_000, 50_000), (3, 3), (2, 5)])
def test_batches_and_passes_give_the_local_lines_and_quarantine(tmp_path, batch_rows, rows_per_pass) -> None:
    config = _source(tmp_path, TRICKY)
    assert_same_as_local(config, _worker_output(config, batch_rows, rows_per_pass))


def test_passes_join_arrow_batches_up_to_the_pass_size() -> None:
    batches = [pd.DataFrame({"x": range(i * 10, i * 10 + 10)}) for i in range(7)]
    passes = list(validate._gathered(iter(batches), 25))
    assert [len(p) for p in passes] == [30, 30, 10]
    assert pd.concat(passes)["x"].tolist() == list(range(70))


def test_the_c_parser_keeps_one_row_per_line_or_steps_aside() -> None:
    names = HEADER.split(",")
    frame = validate._c_parsed(TRICKY, names, ",")
    assert frame is not None and len(frame) == len(TRICKY) and list(frame.columns) == names
    assert frame.loc[0, "note"] == "quoted, with a comma" and pd.isna(frame.loc[1, "note"])
    assert frame.iloc[2].isna().all()  # the blank line is a row of empty cells, as the local reader reads it
    # an unbalanced quote runs into the next lines, a line wider than the header: the csv module decides
    assert validate._c_parsed(['A1,2024-01-05,C1,P1,2,3.50,"open', "A2,2024-01-05,C2,P2,1,2.00,x"], names, ",") is None
    assert validate._c_parsed(["A1,2024-01-05,C1,P1,2,3.50,x,extra"], names, ",") is None
    assert validate._c_parsed(["A1,2024-01-05,C1,P1,2,3.50,x", "A2,2024-01-05,C2,P2,1,2.00,x,extra"], names, ",") is None


def test_a_line_wider_than_the_header_names_its_file_line(tmp_path) -> None:
    config = _source(tmp_path, [*TRICKY[:3], "A9,2024-01-05,C1,P1,2,3.50,x,one too many"])
    with pytest.raises(SourceError, match=r"a\.csv: cannot be read as csv: Expected 7 fields in line 5, saw 8"):
        _worker_output(config, 2, 4)
