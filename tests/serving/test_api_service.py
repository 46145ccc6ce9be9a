"""Issue 11, "The API", over a real `bentoml serve` (the session `server`, with the API token set):
one-line logs of client mistakes, one error shape, 415s, GET /models with each model's detail,
rejections on /metrics, an open /metrics when the settings say so, and our OpenAPI header.
"""

from __future__ import annotations

import json
import re
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.schemas import ErrorResponse
from tests.helpers import AUTH, TOKEN
from tests.service_harness import Server, start, write_serve_config

pytestmark = pytest.mark.service

CUSTOMER = {"recency": 12.0, "frequency": 9.0, "monetary": 850.0, "quantity": 40.0, "tenure": 400.0, "aov": 94.4, "return_rate": 0.02}
JSON = {"content-type": "application/json", **AUTH}


def series_id() -> str:
    """A series the session forecaster knows (a category of the synthetic shop the registry fixture trains on)."""
    from features.synthetic import generate

    return str(generate(n_customers=50, weeks=10, seed=3).lines["category"].iloc[0])


def call(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("headers", AUTH)
    return httpx.request(method, server.url + path, timeout=30, **kwargs)


def error_of(resp: httpx.Response) -> dict[str, Any]:
    """The response's error, checked against the one shape."""
    return ErrorResponse.model_validate(resp.json()).model_dump()["error"]


#: (method, path, request kwargs, status, code, a field the error must name or None)
BAD = [
    ("POST", "/segment", {"json": {"customers": [dict(CUSTOMER, recency="7")]}}, 400, "invalid_input", "customers[0].recency"),
    ("POST", "/segment", {"json": {"customers": [dict(CUSTOMER, colour="red")]}}, 400, "invalid_input", "customers[0].colour"),
    ("POST", "/segment", {"content": "{not json", "headers": JSON}, 400, "invalid_input", "body"),
    ("POST", "/segment", {"json": {"customers": [{"recency": 1.0}]}}, 400, "invalid_input", None),  # the model needs more features
    ("POST", "/forecast", {"json": {"queries": [{"series_id": "no-such-series", "horizon": 2}]}}, 400, "invalid_input", "queries[0]"),
    ("POST", "/forecast", {"json": {"queries": [{"series_id": "x", "horizon": 31}]}}, 400, "over_limit", "queries[0].horizon"),
    ("POST", "/recommend", {"json": {"baskets": [{"items": ["a"]}], "k": 11}}, 400, "over_limit", "k"),
    ("POST", "/kpis", {"json": {"lines": []}}, 400, "invalid_input", "lines"),
    ("POST", "/kpis/upload", {"files": {"file": ("x.csv", "a,b\n1,2\n", "text/csv")}}, 400, "invalid_input", "file"),
    ("POST", "/segment", {"json": {"customers": [CUSTOMER] * 51}}, 413, "too_large", "customers"),
    ("POST", "/segment", {"content": b"x" * 300_000, "headers": JSON}, 413, "too_large", None),
    ("POST", "/segment", {"json": {"customers": [CUSTOMER]}, "headers": {}}, 401, "unauthorized", None),
    ("POST", "/segment", {"content": '{"customers": []}', "headers": {"content-type": "text/plain", **AUTH}}, 415, "unsupported_media_type", None),
    ("GET", "/no-such-path", {}, 404, "not_found", None),
    ("GET", "/models/churn", {}, 404, "not_found", "family"),
    ("PUT", "/segment", {"json": {}}, 405, "method_not_allowed", None),
]


@pytest.mark.parametrize("method, path, kwargs, status, code, field", BAD, ids=[f"{b[0]} {b[1]} {b[3]} {b[4]}" for b in BAD])
def test_every_error_has_the_one_shape(server: Server, method: str, path: str, kwargs: dict, status: int, code: str, field: str | None) -> None:
    resp = call(server, method, path, **kwargs)
    assert resp.status_code == status, resp.text
    error = error_of(resp)
    assert error["code"] == code and error["message"], error
    if field is not None:
        assert field in [f["field"] for f in error["fields"]], error


def test_bad_requests_log_one_line_each_and_no_traceback(server: Server) -> None:
    """40 bad requests: 40 one-line WARNINGs in the service log, no traceback (there were 37)."""
    before = len(server.log.read_text(errors="replace"))
    sent = 0
    for _ in range(3):
        for method, path, kwargs, *_ in BAD[:13]:
            call(server, method, path, **kwargs)
            sent += 1
    call(server, "POST", "/segment", json={"customers": []})
    sent += 1
    assert sent == 40
    deadline = time.time() + 15
    while True:
        new = server.log.read_text(errors="replace")[before:]
        rejected = [line for line in new.splitlines() if "rejected " in line]
        if len(rejected) >= sent or time.time() > deadline:
            break
        time.sleep(0.3)
    assert len(rejected) == sent, new[-3000:]
    assert "Traceback" not in new and "Exception on" not in new, new[-3000:]
    assert all("WARNING" in line for line in rejected), rejected[:3]


def test_a_text_plain_body_is_415(server: Server) -> None:
    body = json.dumps({"customers": [CUSTOMER]})
    assert call(server, "POST", "/segment", content=body, headers=JSON).status_code == 200
    for path in ("/segment", "/kpis", "/models"):
        resp = call(server, "POST", path, content=body, headers={"content-type": "text/plain", **AUTH})
        assert resp.status_code == 415 and "application/json" in error_of(resp)["message"], (path, resp.text)
    upload = call(server, "POST", "/kpis/upload", json={"file": "x"})
    assert upload.status_code == 415 and "multipart/form-data" in upload.text


def test_a_zero_quantity_lines_value_is_0(server: Server) -> None:
    line = {"order_id": "1", "order_date": "2024-01-03", "customer_id": "a", "product_id": "p1", "unit_price": 10.0}
    resp = call(server, "POST", "/kpis", json={"lines": [dict(line, quantity=2), dict(line, order_id="2", quantity=0)]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["quarantine"] == [{"index": 1, "column": "quantity", "reason": "zero quantity", "value": "0"}]


def test_unknown_exog_name_is_400_naming_it(server: Server) -> None:
    query = {"series_id": series_id(), "horizon": 2, "exog": {"promo": [1.0, 0.0]}}
    resp = call(server, "POST", "/forecast", json={"queries": [query]})
    assert resp.status_code == 400 and "promo" in error_of(resp)["message"], resp.text


def test_get_models_and_the_forecasters_series_ids(server: Server) -> None:
    listed = call(server, "GET", "/models")
    assert listed.status_code == 200, listed.text
    assert [m["family"] for m in listed.json()["models"]] == ["segmenter", "forecaster", "recommender", "clv"]
    assert call(server, "POST", "/models", json={}).json()["models"] == listed.json()["models"]  # kept for older clients
    forecaster = call(server, "GET", "/models/forecaster").json()
    assert series_id() in forecaster["series_ids"] and forecaster["default_levels"] and forecaster["version"]
    segmenter = call(server, "GET", "/models/segmenter").json()
    assert "recency" in segmenter["features"] and segmenter["segments"]
    recommender = call(server, "GET", "/models/recommender").json()
    assert 1 <= recommender["default_k"] <= recommender["max_k"]
    assert call(server, "GET", "/models", headers={}).status_code == 401


SAMPLE = re.compile(r'^ecomlab_rejections_total\{endpoint="([^"]*)",reason="([^"]*)",status="(\d+)"\} ([0-9.e+]+)$', re.M)


def rejections(server: Server) -> dict[tuple[str, str, str], float]:
    text = call(server, "GET", "/metrics").text
    return {m[:3]: float(m[3]) for m in SAMPLE.findall(text)}


def test_every_rejection_is_counted_by_endpoint_and_reason(server: Server) -> None:
    """10 rejected model requests count 10 (1 did); each under its endpoint and reason."""
    before = rejections(server)
    for _ in range(4):
        call(server, "POST", "/segment", json={"customers": [dict(CUSTOMER, recency="x")]})
    for _ in range(3):
        call(server, "POST", "/forecast", json={"queries": [{"series_id": "no-such-series", "horizon": 2}]})
    for _ in range(2):
        call(server, "POST", "/recommend", json={"baskets": [{"items": ["a"]}], "k": 11})
    call(server, "POST", "/segment", json={"customers": [CUSTOMER]}, headers={})
    after = rejections(server)
    wanted = {
        ("/segment", "invalid_input", "400"): 4, ("/forecast", "invalid_input", "400"): 3,
        ("/recommend", "over_limit", "400"): 2, ("/segment", "unauthorized", "401"): 1,
    }
    got = {k: after.get(k, 0) - before.get(k, 0) for k in wanted}
    assert got == wanted, after


def test_metrics_may_stay_open_while_the_api_needs_the_token(registry: tuple[Path, str], tmp_path: Path) -> None:
    _, uri = registry
    config = write_serve_config(tmp_path, [{"family": "segmenter", "name": "ecomlab-segmenter"}], metrics_open=True)
    srv = start(tmp_path, config, uri, env={"ECOMLAB_API_TOKEN": TOKEN})
    try:
        assert httpx.post(srv.url + "/segment", json={"customers": [CUSTOMER]}).status_code == 401
        scraped = httpx.get(srv.url + "/metrics")
        assert scraped.status_code == 200 and "ecomlab_rejections_total" in scraped.text, scraped.text[:500]
        assert httpx.get(srv.url + "/models").status_code == 401
    finally:
        srv.stop()


def test_openapi_header_is_ours(server: Server) -> None:
    spec = call(server, "GET", "/docs.json").json()
    assert spec["info"]["version"] == version("ecomlab")
    assert spec["info"]["description"].startswith("ecomlab's model service") and "BentoML" not in spec["info"]["description"]
    assert spec["paths"]["/segment"]["post"]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert "get" in spec["paths"]["/models"] and "get" in spec["paths"]["/models/{family}"]
