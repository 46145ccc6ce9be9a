"""Loaders: contract, quarantine with reasons, exact row accounting, clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from features.config_io import ConfigError
from features.contract import Quarantine, validate_schema
from features.source_config import load_source_config
from features.sources import SourceError, load, validate_frame
from tests.helpers import REPO  # noqa: E402

CSV = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
1001,A1,Mug,2,2024-01-03 10:00:00,3.5,17850.0,UK
1001,A2,Plate,1,2024-01-03 10:00:00,5.0,17850.0,UK
1001,A2,Plate,1,2024-01-03 10:00:00,5.0,17850.0,UK
C1002,A1,Mug,-1,2024-01-05 11:00:00,3.5,17850.0,UK
,,,,,,,
InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
1003,A3,Bowl,two,2024-01-06 09:00:00,4.0,,FR
1004,A3,Bowl,1,not a date,4.0,12000,FR
1005,A4,Adjust,1,2024-01-07 09:00:00,-11.0,,UK
1006,A1,Mug,3,2024-01-08 09:00:00,3.5,,UK
"""


def write_config(tmp_path: Path, **overrides) -> Path:
    cfg = {
        "name": "tiny",
        "format": "csv",
        "path": "lines.csv",
        "columns": {
            "order_id": "InvoiceNo",
            "order_date": "InvoiceDate",
            "customer_id": "CustomerID",
            "product_id": "StockCode",
            "product_name": "Description",
            "quantity": "Quantity",
            "unit_price": "UnitPrice",
        },
        "extra_columns": {"country": "Country"},
        "date_format": "%Y-%m-%d %H:%M:%S",
        "returns": {"order_id_prefix": "C", "negative_quantity": True},
    }
    cfg.update(overrides)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    (tmp_path / "lines.csv").write_text(CSV)
    return write_config(tmp_path)


def test_tiny_csv_accounting_and_reasons(tiny: Path) -> None:
    loaded = load(tiny)
    acc = loaded.accounting
    assert acc.rows_read == 10
    assert acc.duplicates_dropped == 1
    assert acc.rows_quarantined == 5
    assert acc.rows_clean == 4
    q = loaded.quarantine.frame
    by_row = {int(r.row): (r.column, r.reason) for r in q.itertuples()}
    # spreadsheet rows: the header is row 1, so the blank line (5th data record) is row 6
    assert by_row[6] == ("*", "blank row")
    assert by_row[7] == ("*", "repeated header row")
    assert by_row[8] == ("quantity", "not a number")
    assert by_row[9] == ("order_date", "unparseable date")
    assert by_row[10] == ("unit_price", "negative unit price")
    assert set(q["file"]) == {"lines.csv"}
    assert q.loc[q["row"] == 8, "value"].iloc[0] == "two"


def test_tiny_csv_returns_and_ids(tiny: Path) -> None:
    lines = load(tiny).lines
    validate_schema(lines)
    ret = lines[lines["returned"]]
    assert list(ret["order_id"]) == ["C1002"]
    assert (ret["quantity"] < 0).all()
    assert lines.loc[lines["order_id"] == "1001", "customer_id"].iloc[0] == "17850"
    assert lines["customer_id"].isna().sum() == 1  # 1006 has no customer and is kept
    assert (lines["category"] == "all").all()
    assert list(lines["country"].unique()) == ["UK"]


def test_keep_duplicates_when_configured(tmp_path: Path) -> None:
    (tmp_path / "lines.csv").write_text(CSV)
    loaded = load(write_config(tmp_path, drop_duplicates=False))
    assert loaded.accounting.duplicates_dropped == 0
    assert loaded.accounting.rows_clean == 5


def test_positive_quantity_on_cancelled_order_is_negated(tmp_path: Path) -> None:
    (tmp_path / "lines.csv").write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "C9,A1,Mug,2,2024-01-03 10:00:00,3.5,1,UK\n"
    )
    lines = load(write_config(tmp_path)).lines
    assert bool(lines["returned"].iloc[0]) and lines["quantity"].iloc[0] == -2


def test_glob_of_several_files_and_row_numbers_per_file(tmp_path: Path) -> None:
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    (tmp_path / "part_a.csv").write_text(header + "1,A,x,1,2024-01-01 00:00:00,1,1,UK\n")
    (tmp_path / "part_b.csv").write_text(header + "2,A,x,1,2024-01-02 00:00:00,1,1,UK\n,,,,,,,\n")
    loaded = load(write_config(tmp_path, path="part_*.csv"))
    assert loaded.accounting.files == 2
    assert loaded.accounting.rows_read == 3 and loaded.accounting.rows_clean == 2
    q = loaded.quarantine.frame
    assert list(q["file"]) == ["part_b.csv"] and list(q["row"]) == [3]


def test_parquet_and_excel_loaders(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "InvoiceNo": ["1", "2", "C3"],
            "StockCode": ["A", "B", "A"],
            "Description": ["a", "b", "a"],
            "Quantity": [1, 2, -1],
            "InvoiceDate": ["2024-01-01 00:00:00"] * 3,
            "UnitPrice": [1.0, 2.0, 1.0],
            "CustomerID": [1.0, None, 1.0],
            "Country": ["UK"] * 3,
        }
    )
    frame.to_parquet(tmp_path / "lines.parquet")
    frame.to_excel(tmp_path / "lines.xlsx", index=False)
    for fmt, name in (("parquet", "lines.parquet"), ("excel", "lines.xlsx")):
        loaded = load(write_config(tmp_path, format=fmt, path=name))
        assert loaded.accounting.rows_clean == 3, fmt
        assert loaded.lines["returned"].sum() == 1, fmt
        assert loaded.lines["customer_id"].isna().sum() == 1, fmt


def test_amount_column_gives_unit_price_before_discount(tmp_path: Path) -> None:
    (tmp_path / "lines.csv").write_text("o,d,p,q,sales,disc\n1,01/02/2024,X,2,80,0.2\n")
    cfg = write_config(
        tmp_path,
        columns={"order_id": "o", "order_date": "d", "product_id": "p", "quantity": "q", "amount": "sales", "discount": "disc"},
        extra_columns={},
        date_format="%m/%d/%Y",
    )
    lines = load(cfg).lines
    assert lines["unit_price"].iloc[0] == pytest.approx(50.0)  # 80 / 2 / (1 - 0.2)
    assert lines["discount"].iloc[0] == pytest.approx(0.2)


# ---- quarantine row numbers: file lines for files, 0-based indices for requests (issue 11) ----

REQUEST_ROWS = pd.DataFrame({
    "order_id": ["1", "2", "3"], "order_date": ["2024-01-03", "not a date", "2024-01-05"],
    "product_id": ["p", "p", "p"], "quantity": [1, 1, "x"], "unit_price": [1.0, 1.0, 1.0],
})


def test_request_rows_are_quarantined_by_their_0_based_index() -> None:
    q = validate_frame(REQUEST_ROWS).quarantine
    assert q.numbering == "index"
    assert q.frame[["row", "column"]].values.tolist() == [[1, "order_date"], [2, "quantity"]]


def test_rows_read_from_a_file_are_quarantined_by_file_line() -> None:
    q = validate_frame(REQUEST_ROWS, "upload", numbering="line").quarantine
    assert q.numbering == "line"
    assert q.frame[["row", "column"]].values.tolist() == [[3, "order_date"], [4, "quantity"]]


def test_loaded_sources_number_by_file_line(tiny: Path) -> None:
    q = load(tiny).quarantine
    assert q.numbering == "line" and q.frame["row"].min() == 6  # the blank line: header + 4 records + 1


def test_concat_keeps_the_numbering() -> None:
    parts = [validate_frame(REQUEST_ROWS).quarantine, validate_frame(REQUEST_ROWS.iloc[:1]).quarantine]
    assert Quarantine.concat(parts).numbering == "index"
    assert Quarantine.concat([]).numbering == "line"


# ---- bad input: one clear error that names the problem ----


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="data file not found: lines.csv"):
        load(write_config(tmp_path))


def test_missing_glob_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no file matches part_\*\.csv"):
        load(write_config(tmp_path, path="part_*.csv"))


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "lines.csv").write_text("")
    with pytest.raises(SourceError, match="lines.csv: file is empty"):
        load(write_config(tmp_path))


def test_header_only_file(tmp_path: Path) -> None:
    (tmp_path / "lines.csv").write_text(CSV.splitlines()[0] + "\n")
    with pytest.raises(SourceError, match="header but no rows"):
        load(write_config(tmp_path))


def test_unreadable_format(tmp_path: Path) -> None:
    (tmp_path / "lines.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(SourceError, match="cannot be read as parquet"):
        load(write_config(tmp_path, format="parquet", path="lines.parquet"))


def test_mapped_column_missing_names_it_and_lists_columns(tiny: Path, tmp_path: Path) -> None:
    cfg = yaml.safe_load(tiny.read_text())
    cfg["columns"]["quantity"] = "Qty"
    tiny.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SourceError) as err:
        load(tiny)
    assert "['Qty']" in str(err.value) and "InvoiceNo" in str(err.value) and "Quantity" in str(err.value)


def test_date_column_that_does_not_parse(tmp_path: Path) -> None:
    (tmp_path / "lines.csv").write_text(CSV)
    with pytest.raises(SourceError, match="date column 'InvoiceDate' does not parse with format %d.%m.%Y"):
        load(write_config(tmp_path, date_format="%d.%m.%Y"))


def test_config_typo_names_key_and_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, colums={})
    with pytest.raises(ConfigError, match=r"tiny.yaml: colums: unknown key"):
        load_source_config(path)


def test_config_without_required_mapping(tmp_path: Path) -> None:
    path = write_config(tmp_path, columns={"order_id": "InvoiceNo"})
    with pytest.raises(ConfigError, match="required contract column"):
        load_source_config(path)


# ---- the shipped configs on the real data sets (counts from each SOURCE.txt) ----


def real(name: str, shared_data, folder: str):
    shared_data(folder)
    return load(REPO / "configs" / "data" / f"{name}.yaml")


@pytest.mark.realdata
def test_uci_online_retail(shared_data) -> None:
    loaded = real("uci_online_retail", shared_data, "uci_online_retail")
    acc = loaded.accounting
    acc.check()
    assert acc.rows_read == 541909
    assert acc.rows_quarantined == 2  # the two "Adjust bad debt" lines with a negative price
    assert set(loaded.quarantine.frame["reason"]) == {"negative unit price"}
    lines = loaded.lines
    assert lines["order_date"].min() == pd.Timestamp("2010-12-01 08:26")
    assert lines["order_date"].max() == pd.Timestamp("2011-12-09 12:50")
    cancelled = lines["order_id"].str.startswith("C")
    assert lines.loc[cancelled, "returned"].all() and (lines.loc[cancelled, "quantity"] < 0).all()
    assert lines["country"].nunique() == 38
    # 541,909 read = 536,639 clean + 2 quarantined + 5,268 exact duplicates
    assert (acc.rows_clean, acc.duplicates_dropped) == (536639, 5268)


@pytest.mark.realdata
def test_uci_online_retail_ii(shared_data) -> None:
    loaded = real("uci_online_retail_ii", shared_data, "uci_online_retail_ii")
    acc = loaded.accounting
    acc.check()
    assert acc.rows_read == 525461
    lines = loaded.lines
    assert lines["order_id"].str.startswith("C").sum() > 0
    assert lines["country"].nunique() == 40
    assert lines["order_date"].min() == pd.Timestamp("2009-12-01 07:45")


@pytest.mark.realdata
def test_electronics_2019(shared_data) -> None:
    loaded = real("electronics_2019", shared_data, "keithgalli_sales_2019")
    acc = loaded.accounting
    assert acc.files == 12
    assert acc.rows_read == 186850
    summary = loaded.quarantine.summary().set_index("reason")["rows"].to_dict()
    assert summary == {"blank row": 545, "repeated header row": 355}
    assert acc.duplicates_dropped == 264
    assert acc.rows_clean == 185686
    lines = loaded.lines
    assert lines["order_id"].nunique() == 178437
    assert lines["customer_id"].nunique() == 140787
    assert lines["product_id"].nunique() == 19
    assert lines["order_date"].max() == pd.Timestamp("2020-01-01 05:13")


@pytest.mark.realdata
def test_superstore(shared_data) -> None:
    loaded = real("superstore", shared_data, "sample_superstore")
    acc = loaded.accounting
    assert (acc.rows_read, acc.rows_clean, acc.rows_quarantined, acc.duplicates_dropped) == (9994, 9994, 0, 0)
    lines = loaded.lines
    assert lines["order_id"].nunique() == 5009
    assert lines["customer_id"].nunique() == 793
    assert lines["product_id"].nunique() == 1862
    assert set(lines["category"]) == {"Furniture", "Office Supplies", "Technology"}
    assert lines["discount"].max() > 0
    revenue = (lines["quantity"] * lines["unit_price"] * (1 - lines["discount"])).sum()
    assert revenue == pytest.approx(2297200.8603, rel=1e-9)


@pytest.mark.realdata
def test_cdnow(shared_data) -> None:
    loaded = real("cdnow", shared_data, "cdnow_lifetimes")
    acc = loaded.accounting
    assert (acc.rows_read, acc.rows_clean) == (69659, 69659)
    lines = loaded.lines
    assert lines["customer_id"].nunique() == 23570
    assert lines["quantity"].sum() == 167881
    assert (lines["quantity"] * lines["unit_price"]).sum() == pytest.approx(2500315.63, rel=1e-9)
    assert lines["order_date"].min() == pd.Timestamp("1997-01-01")
    assert lines["order_date"].max() == pd.Timestamp("1998-06-30")


# ---- the package's shape ----


def test_no_import_cycles_among_features_modules() -> None:
    """Every `features` import, module level or inside a function, forms a graph without cycles."""
    graph = feature_imports(REPO / "features")
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def feature_imports(root: Path) -> dict[str, set[str]]:
    import ast

    modules = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("features"):
                edges |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names}
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("features")}
        graph[name] = {e for e in edges | _packages_run_first(edges, name) if e in modules and e != name}
    return graph


def _packages_run_first(edges: set[str], importer: str) -> set[str]:
    """Importing `a.b.c` runs package `a.b` first, unless the importer lives inside `a.b` (then it already runs)."""
    parents = {".".join(e.split(".")[:i]) for e in edges for i in range(2, e.count(".") + 1)}
    return {p for p in parents if not importer.startswith(p + ".")}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_a_zero_quantity_line_reports_its_value_not_null() -> None:
    rows = pd.DataFrame({"order_id": ["1"], "order_date": ["2024-01-03"], "product_id": ["p"], "quantity": [0], "unit_price": [2.5]})
    q = validate_frame(rows).quarantine
    assert q.frame[["column", "reason", "value"]].values.tolist() == [["quantity", "zero quantity", "0"]]
