"""Order dates parse row by row: every ISO 8601 form, offsets in the config's one timezone, a declared format.

Issue 11: the first row's format decided how every other date was read; a mix of ISO forms
quarantined valid rows, a `03/01/2024` first row made ISO rows "unparseable", and a bad first row
failed a whole request.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.config_io import ConfigError
from features.readers.dates import parse_dates
from features.source_config import load_source_config
from features.sources import SourceError, load, validate_frame
from tests.helpers import REPO, write_csv_source

ISO_FORMS = {
    "2024-03-01": "2024-03-01 00:00:00",
    "2024-03-02T11:00:00": "2024-03-02 11:00:00",
    "2024-03-03 09:30:00": "2024-03-03 09:30:00",
    "2024-03-04T10:00:00Z": "2024-03-04 10:00:00",
    "2024-03-05T10:00": "2024-03-05 10:00:00",
    "2024-03-06T10:00:00.250": "2024-03-06 10:00:00.250",
    "2024-03-07T10:00:00,5": "2024-03-07 10:00:00.500",
    "2024-03-08T10:00:00.123456+02:00": "2024-03-08 08:00:00.123456",
    "2024-03-09 10:00-0530": "2024-03-09 15:30:00",
    "2024-03-10t10:00:00z": "2024-03-10 10:00:00",
}


def write_source(tmp_path: Path, dates: list[str], **config) -> Path:
    body = "".join(f"{i},\"{d}\",c{i},p,1,2.0\n" for i, d in enumerate(dates, start=1))  # quoted: "10:00:00,5"
    return write_csv_source(tmp_path, body, "dates", **config)


def dates_by_order(loaded) -> dict[str, pd.Timestamp]:
    return dict(zip(loaded.lines["order_id"], loaded.lines["order_date"]))


def test_mixed_iso_forms_in_a_file_all_parse(tmp_path: Path) -> None:
    loaded = load(write_source(tmp_path, list(ISO_FORMS)))
    assert loaded.quarantine.frame.empty, loaded.quarantine.frame
    assert list(loaded.lines["order_date"]) == [pd.Timestamp(v) for v in ISO_FORMS.values()]
    assert str(loaded.lines["order_date"].dtype) == "datetime64[ns]"


def test_non_iso_first_row_does_not_spoil_the_iso_rows(tmp_path: Path) -> None:
    loaded = load(write_source(tmp_path, ["03/01/2024", "2024-03-02T11:00:00", "2024-03-03 09:30:00", "2024-03-04T10:00:00Z"]))
    q = loaded.quarantine.frame
    assert q[["row", "column", "reason", "value"]].values.tolist() == [[2, "order_date", "unparseable date", "03/01/2024"]]
    assert loaded.accounting.rows_clean == 3


def test_bad_first_row_in_a_request_is_quarantined_not_an_error() -> None:
    """The JSON path: one row, no date parses; before, a SourceError (the service's 400)."""
    raw = pd.DataFrame([{"order_id": "1", "order_date": "not a date", "product_id": "p", "quantity": 1, "unit_price": 1.0}])
    loaded = validate_frame(raw)
    assert loaded.accounting.rows_quarantined == 1 and loaded.lines.empty
    assert loaded.quarantine.frame["reason"].tolist() == ["unparseable date"]


def test_dates_beyond_datetime64_ns_are_out_of_range_not_an_error() -> None:
    """9999-12-31 made the old loader raise OutOfBoundsDatetime (a 400 for the whole request)."""
    raw = pd.DataFrame({
        "order_id": ["1", "2", "3", "4"], "order_date": ["9999-12-31", "0001-01-01T00:00:00Z", "2024-01-01", "2262-04-12"],
        "product_id": ["p"] * 4, "quantity": [1] * 4, "unit_price": [1.0] * 4,
    })
    loaded = validate_frame(raw)
    q = loaded.quarantine.frame
    assert q[["row", "reason"]].values.tolist() == [[0, "out of range"], [1, "out of range"], [3, "out of range"]]
    assert loaded.lines["order_id"].tolist() == ["3"]


def test_offsets_move_to_the_configured_timezone(tmp_path: Path) -> None:
    dates = ["2024-07-01T12:00:00Z", "2024-07-01T12:00:00+02:00", "2024-07-01 12:00:00", "2024-01-15T12:00:00Z"]
    loaded = load(write_source(tmp_path, dates, timezone="Europe/London"))
    got = dates_by_order(loaded)
    assert got == {
        "1": pd.Timestamp("2024-07-01 13:00"),  # BST
        "2": pd.Timestamp("2024-07-01 11:00"),
        "3": pd.Timestamp("2024-07-01 12:00"),  # no offset: already London time
        "4": pd.Timestamp("2024-01-15 12:00"),  # GMT
    }


def test_without_a_timezone_offsets_become_utc_and_naive_times_stay(tmp_path: Path) -> None:
    loaded = load(write_source(tmp_path, ["2024-07-01T12:00:00+02:00", "2024-07-01 12:00:00"]))
    assert dates_by_order(loaded) == {"1": pd.Timestamp("2024-07-01 10:00"), "2": pd.Timestamp("2024-07-01 12:00")}


def test_unknown_timezone_names_key_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dates.yaml: timezone: .*unknown timezone 'Mars/Olympus'"):
        load_source_config(write_source(tmp_path, ["2024-01-01"], timezone="Mars/Olympus"))


def test_declared_format_quarantines_rows_that_do_not_match(tmp_path: Path) -> None:
    loaded = load(write_source(tmp_path, ["03/01/24 10:00", "2024-03-02", "12/31/19 23:59"], date_format="%m/%d/%y %H:%M"))
    q = loaded.quarantine.frame
    assert q[["row", "reason", "value"]].values.tolist() == [[3, "unparseable date", "2024-03-02"]]
    assert dates_by_order(loaded) == {"1": pd.Timestamp("2024-03-01 10:00"), "3": pd.Timestamp("2019-12-31 23:59")}


def test_declared_format_that_matches_nothing_names_column_and_format(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"date column 'order_date' does not parse with format %d\.%m\.%Y"):
        load(write_source(tmp_path, ["2024-03-01", "2024-03-02"], date_format="%d.%m.%Y"))


def test_declared_format_with_offset_moves_to_the_timezone(tmp_path: Path) -> None:
    loaded = load(write_source(tmp_path, ["2024-07-01 12:00 +0200"], date_format="%Y-%m-%d %H:%M %z", timezone="UTC"))
    assert dates_by_order(loaded) == {"1": pd.Timestamp("2024-07-01 10:00")}


def test_electronics_config_declares_its_format() -> None:
    """The electronics files write `04/19/19 08:46`, which is no ISO date: their config says so."""
    cfg = load_source_config(REPO / "configs" / "data" / "electronics_2019.yaml")
    assert cfg.date_format == "%m/%d/%y %H:%M"
    dates = parse_dates(pd.Series(["04/19/19 08:46", "Order Date"], dtype="string"), cfg.date_format, cfg.timezone)
    assert dates.values.iloc[0] == pd.Timestamp("2019-04-19 08:46") and bool(dates.unparseable.iloc[1])


def test_parquet_datetimes_with_a_zone_move_to_the_configured_timezone(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "order_id": ["1", "2"], "order_date": pd.to_datetime(["2024-07-01 12:00", "2024-07-02 12:00"]).tz_localize("UTC"),
        "customer_id": ["a", "b"], "product_id": ["p", "p"], "quantity": [1, 1], "unit_price": [1.0, 1.0],
    })
    frame.to_parquet(tmp_path / "lines.parquet")
    path = write_source(tmp_path, [], format="parquet", path="lines.parquet", timezone="Europe/Paris")
    assert dates_by_order(load(path)) == {"1": pd.Timestamp("2024-07-01 14:00"), "2": pd.Timestamp("2024-07-02 14:00")}


def test_dayfirst_is_gone_a_format_says_it(tmp_path: Path) -> None:
    """`dayfirst` only steered pandas' guess; without guessing it would be a silently ignored key."""
    with pytest.raises(ConfigError, match="dayfirst: unknown key"):
        load_source_config(write_source(tmp_path, ["2024-01-01"], dayfirst=True))


@pytest.mark.parametrize(
    "text, reason",
    [("2024-02-30", "unparseable"), ("2024-13-01", "unparseable"), ("01.03.2024", "unparseable"), ("", None), ("9999-01-01T00:00", "out of range")],
)
def test_parse_dates_reasons(text: str, reason: str | None) -> None:
    dates = parse_dates(pd.Series([text or None], dtype="string"))
    assert bool(dates.unparseable.iloc[0]) == (reason == "unparseable")
    assert bool(dates.out_of_range.iloc[0]) == (reason == "out of range")
    assert pd.isna(dates.values.iloc[0])
