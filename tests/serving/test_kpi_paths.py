"""The KPI endpoints' data path over HTTP (issue 11): overflowing numbers, any ISO 8601 date, row numbers.

Posted JSON lines and uploaded CSV files go through the loader's rules: a number a column cannot
hold is quarantined as "out of range", every ISO 8601 form parses row by row and a bad row never
fails the request; the quarantine names a JSON line by its 0-based `index`, a file row by its `row`
(file line, header = 1).
"""

from __future__ import annotations

import json
import math

import httpx
import pytest

from tests.helpers import AUTH
from tests.service_harness import Server

pytestmark = pytest.mark.service

GOOD = [
    {"order_id": "1", "order_date": "2024-01-03", "customer_id": "a", "product_id": "p1", "quantity": 2, "unit_price": 10.0},
    {"order_id": "2", "order_date": "2024-01-04T09:30:00Z", "customer_id": "b", "product_id": "p1", "quantity": 1, "unit_price": 5.0},
]
CSV_HEADER = "order_id,order_date,customer_id,product_id,quantity,unit_price\n"
CSV_GOOD = "1,2024-01-03,a,p1,2,10\n2,2024-01-04T09:30:00Z,b,p1,1,5\n"


def line(order: str, date: str = "2024-01-05", quantity: int = 1, price: float = 1.0) -> dict:
    return {"order_id": order, "order_date": date, "customer_id": "c", "product_id": "p1", "quantity": quantity, "unit_price": price}


def post_json(server: Server, lines: list[dict], path: str = "/kpis") -> httpx.Response:
    # json.dumps, not httpx's json=: the body must carry integers as large as 99999999999999999999 verbatim
    body = json.dumps({"lines": lines})
    return httpx.post(server.url + path, content=body, headers={"content-type": "application/json", **AUTH}, timeout=30)


def upload(server: Server, body: str) -> httpx.Response:
    files = {"file": ("lines.csv", CSV_HEADER + body, "text/csv")}
    return httpx.post(server.url + "/kpis/upload", files=files, headers=AUTH, timeout=30)


def ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


def assert_clean_revenue(body: dict) -> None:
    gross = body["kpis"]["summary"]["gross_revenue"]
    assert gross is not None and math.isfinite(gross) and gross == pytest.approx(25.0)


# ---- numbers that overflow ----


def test_json_overflowing_numbers_are_quarantined_out_of_range(server: Server) -> None:
    bad = [line("3", quantity=99999999999999999999), line("4", quantity=2**63 - 1), line("5", quantity=2, price=1e308)]
    body = ok(post_json(server, GOOD + bad))
    assert [(q["index"], q["reason"]) for q in body["quarantine"]] == [(2, "out of range"), (3, "out of range"), (4, "out of range")]
    assert body["accounting"]["rows_clean"] == 2
    assert_clean_revenue(body)


def test_upload_overflowing_numbers_are_quarantined_out_of_range(server: Server) -> None:
    csv = CSV_GOOD + "3,2024-01-05,c,p1,99999999999999999999,1\n4,2024-01-05,c,p1,9223372036854775807,1\n5,2024-01-05,c,p1,2,1e308\n"
    body = ok(upload(server, csv))
    assert [(q["row"], q["reason"]) for q in body["quarantine"]] == [(4, "out of range"), (5, "out of range"), (6, "out of range")]
    assert_clean_revenue(body)


def test_named_kpi_never_sees_an_overflowing_line(server: Server) -> None:
    body = ok(post_json(server, GOOD + [line("3", quantity=1000, price=1e296)], "/kpis/summary"))
    assert body["quarantine"] == [{"index": 2, "column": "quantity x unit_price", "reason": "out of range", "value": "1000 x 1e+296"}]
    assert_clean_revenue(body)


# ---- dates ----

MIXED = ["2024-03-01", "2024-03-02T11:00:00", "2024-03-03 09:30:00", "2024-03-04T10:00:00Z", "2024-03-05T10:00:00.5+02:00"]


def test_json_mixed_iso_dates_all_parse(server: Server) -> None:
    body = ok(post_json(server, [line(str(i), date) for i, date in enumerate(MIXED)]))
    assert body["quarantine"] == [] and body["accounting"]["rows_clean"] == len(MIXED)


def test_upload_mixed_iso_dates_all_parse(server: Server) -> None:
    body = ok(upload(server, "".join(f"{i},{d},c,p1,1,1\n" for i, d in enumerate(MIXED))))
    assert body["quarantine"] == [] and body["accounting"]["rows_clean"] == len(MIXED)


def test_json_bad_first_row_is_quarantined_not_a_400(server: Server) -> None:
    body = ok(post_json(server, [line("0", "03/01/2024"), *(line(str(i), d) for i, d in enumerate(MIXED, start=1))]))
    assert body["quarantine"] == [{"index": 0, "column": "order_date", "reason": "unparseable date", "value": "03/01/2024"}]
    assert body["accounting"]["rows_clean"] == len(MIXED)


@pytest.mark.parametrize("date, reason", [("not a date", "unparseable date"), ("9999-12-31", "out of range")])
def test_json_request_whose_only_row_is_bad_is_answered(server: Server, date: str, reason: str) -> None:
    """Before, no parseable date at all (or one past 2262) was a 400 for the whole request."""
    for path in ("/kpis", "/kpis/summary"):
        body = ok(post_json(server, [line("1", date)], path))
        assert [(q["index"], q["reason"]) for q in body["quarantine"]] == [(0, reason)], path
        assert body["accounting"]["rows_clean"] == 0


def test_upload_whose_only_row_is_bad_is_answered(server: Server) -> None:
    body = ok(upload(server, "1,not a date,c,p1,1,1\n"))
    assert [(q["row"], q["reason"]) for q in body["quarantine"]] == [(2, "unparseable date")]


# ---- row numbers mean one thing ----


def test_json_quarantine_names_index_and_upload_names_file_line(server: Server) -> None:
    posted = ok(post_json(server, [*GOOD, line("3", "not a date")]))
    assert set(posted["quarantine"][0]) == {"index", "column", "reason", "value"} and posted["quarantine"][0]["index"] == 2
    uploaded = ok(upload(server, CSV_GOOD + "3,not a date,c,p1,1,1\n"))
    assert set(uploaded["quarantine"][0]) == {"row", "column", "reason", "value"} and uploaded["quarantine"][0]["row"] == 4


def test_openapi_documents_row_and_index(server: Server) -> None:
    spec = httpx.get(server.url + "/docs.json", headers=AUTH, timeout=30).json()
    schemas = spec["components"]["schemas"]
    assert "index" in schemas["QuarantinedIndex"]["properties"] and "row" in schemas["QuarantinedRow"]["properties"]
    assert "0-based" in schemas["QuarantinedIndex"]["properties"]["index"]["description"]
