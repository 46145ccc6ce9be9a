"""Customer-summary sources: the shipped CDNOW config, mapped columns, quarantined rows and config mistakes."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from features.config_io import ConfigError
from features.readers.files import SourceError
from features.source_config import load_source_config
from features.sources import load
from tests.helpers import REPO, shared_dataset

MAPPING = {"customer_id": "ID", "frequency": "x", "recency": "t_x", "T": "T", "monetary": "zbar"}


def _source(folder, body: str, header: str = "ID,x,t_x,T,zbar", file: str = "summary.csv", **config) -> str:
    (folder / file).write_text(f"{header}\n{body}")
    cfg = {"name": "mine", "format": "customer_summary", "path": file, "time_unit": "weeks", "summary_columns": MAPPING, **config}
    path = folder / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.realdata
def test_cdnow_summary_config_reads_every_customer():
    """SOURCE.txt: 2357 rows (ID, x, t_x, T, zbar in weeks); the table equals the file, named our way."""
    raw = pd.read_csv(shared_dataset("cdnow_lifetimes") / "cdnow_customers_summary_with_transactions.csv")
    loaded = load(REPO / "configs" / "data" / "cdnow_summary.yaml")
    assert loaded.accounting.as_dict() == {"rows_read": 2357, "rows_clean": 2357, "rows_quarantined": 0, "duplicates_dropped": 0, "files": 1}
    assert loaded.summary_unit == "W" and loaded.lines.empty and loaded.quarantine.frame.empty
    table = loaded.summary
    assert table.index.name == "customer_id" and list(table.columns) == ["frequency", "recency", "T", "monetary"]
    assert list(table.index) == raw["ID"].astype(str).tolist()
    for ours, theirs in (("frequency", "x"), ("recency", "t_x"), ("T", "T"), ("monetary", "zbar")):
        assert table[ours].to_numpy().tolist() == raw[theirs].tolist(), ours
    assert table["frequency"].dtype == "int64"


def test_bad_rows_are_quarantined_with_their_file_line(tmp_path):
    body = "1,2,30.43,38.86,22.35\n2,1,40,38.86,11.77\n3,0,0,38.86,0\n4,x,0,38.86,0\n\n5,1,2,38.86,0\n"
    loaded = load(_source(tmp_path, body))
    assert loaded.accounting.as_dict() == {"rows_read": 6, "rows_clean": 2, "rows_quarantined": 4, "duplicates_dropped": 0, "files": 1}
    assert list(loaded.summary.index) == ["1", "3"]
    q = loaded.quarantine.frame
    assert loaded.quarantine.numbering == "line" and set(q["file"]) == {"summary.csv"}
    assert q[["row", "column"]].values.tolist() == [[3, "recency"], [5, "frequency"], [6, "frequency"], [7, "monetary"]]
    assert q.loc[0, "value"] == "40" and "T" in q.loc[0, "reason"]


def test_holdout_columns_and_days_come_through(tmp_path):
    mapping = {**MAPPING, "frequency_holdout": "x_star", "duration_holdout": "T_star"}
    body = "a,2,3,10,5.5,1,7\nb,0,0,4,0,-1,7\n"
    loaded = load(_source(tmp_path, body, header="ID,x,t_x,T,zbar,x_star,T_star", time_unit="days", summary_columns=mapping))
    assert loaded.summary_unit == "D" and list(loaded.summary.index) == ["a"]
    assert loaded.summary.loc["a"].to_dict() == {"frequency": 2, "recency": 3.0, "T": 10.0, "monetary": 5.5,
                                                 "frequency_holdout": 1, "duration_holdout": 7.0}
    assert loaded.quarantine.frame[["row", "column"]].values.tolist() == [[3, "frequency_holdout"]]


def test_parquet_files_are_read_too(tmp_path):
    frame = pd.DataFrame({"ID": [7, 8], "x": [1, 0], "t_x": [2.0, 0.0], "T": [5.0, 5.0], "zbar": [3.0, 0.0]})
    frame.to_parquet(tmp_path / "summary.parquet")
    path = tmp_path / "pq.yaml"
    path.write_text(yaml.safe_dump({"name": "pq", "format": "customer_summary", "path": "summary.parquet", "time_unit": "weeks",
                                    "summary_columns": MAPPING}))
    loaded = load(path)
    assert list(loaded.summary.index) == ["7", "8"] and loaded.summary["frequency"].tolist() == [1, 0]


def test_a_missing_mapped_column_is_one_error_naming_file_and_column(tmp_path):
    path = _source(tmp_path, "1,2,30.43,38.86\n", header="ID,x,t_x,T")
    with pytest.raises(SourceError, match=r"summary\.csv: mapped column\(s\) 'zbar' \(for monetary\) not found"):
        load(path)


def test_config_mistakes_name_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "format": "customer_summary", "path": "s.csv"}))
    with pytest.raises(ConfigError, match="time_unit"):
        load_source_config(path)
    path.write_text(yaml.safe_dump({"name": "s", "format": "customer_summary", "path": "s.csv", "time_unit": "months"}))
    with pytest.raises(ConfigError, match=r"time_unit: Input should be 'weeks' or 'days'"):
        load_source_config(path)
    path.write_text(yaml.safe_dump({"name": "s", "format": "customer_summary", "path": "s.csv", "time_unit": "weeks",
                                    "summary_columns": {"frequency": "x", "recncy": "t_x"}}))
    with pytest.raises(ConfigError, match=r"summary_columns.recncy: unknown key"):
        load_source_config(path)
    path.write_text(yaml.safe_dump({"name": "s", "format": "synthetic", "time_unit": "weeks"}))
    with pytest.raises(ConfigError, match="time_unit belong to format 'customer_summary' only"):
        load_source_config(path)
