"""Issue 11, "The API", without a server: the one error shape, one-line logs of client mistakes, 415s,
unknown regressor names, GET /models, rejections on /metrics and the OpenAPI header. Fast; the same
over a real `bentoml serve` is in test_api_service.py.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import version
from typing import Any

import pandas as pd
import pytest
from bentoml.exceptions import InvalidArgument
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from serving.auth import OPEN_PATHS, TokenAuth, open_paths
from serving.errors import ApiError, ClientErrorFilter, answers_errors, reshape
from serving.middleware import ErrorShape, MediaTypeGuard, ModelGate
from serving.models.series_model import parse_exog
from serving.schemas import ErrorResponse
from serving.settings import ServeSettings, load_settings
from tests.serving.test_service_parts import MODELS, FakeStore, Http, settings


def shaped(body: Any) -> dict[str, Any]:
    """The body (JSON bytes or parsed), checked against the one error shape (ErrorResponse, no other keys in `error`)."""
    if isinstance(body, bytes):
        return ErrorResponse.model_validate_json(body).model_dump()["error"]
    return ErrorResponse.model_validate(body).model_dump()["error"]


# ---- bullet 2: one error shape ----


class Strict(BaseModel):
    recency: float


def validation_body() -> bytes:
    """What BentoML answers for a pydantic ValidationError (api_endpoint_wrapper)."""
    import json

    try:
        Strict.model_validate({"recency": "x", "colour": 1})
    except ValidationError as exc:
        detail = [{**e, "loc": ["customers", 0, *e["loc"]]} for e in exc.errors(include_context=False, include_input=False)]
        return json.dumps({"error": f"{exc.error_count()} validation error for Strict", "detail": detail}).encode()
    raise AssertionError("no validation error")


@pytest.mark.parametrize(
    "status, body, code, fields, text",
    [
        (400, validation_body(), "invalid_input", ["customers[0].recency"], "customers[0].recency"),
        (400, b'[{"error": "lines: no order_date parses"}]', "invalid_input", ["lines"], "no order_date parses"),  # a BentoMLException
        (500, b'{"error": "An unexpected error has occurred, please check the server log."}', "internal_error", [], "unexpected"),
        (404, b"Not Found", "not_found", [], "Not Found"),  # Starlette's routing
        (405, b"Method Not Allowed", "method_not_allowed", [], "Method Not Allowed"),
        (503, b'{"detail": "Runners are not ready."}', "unavailable", [], "not ready"),
    ],
)
def test_bentomls_and_starlettes_error_bodies_take_the_one_shape(status: int, body: bytes, code: str, fields: list[str], text: str) -> None:
    error = shaped(reshape(status, body))
    assert error["code"] == code and [f["field"] for f in error["fields"]] == fields and text in error["message"]


def test_our_errors_name_their_fields_and_codes() -> None:
    from serving.errors import bad_input, over_limit, too_large

    assert shaped(too_large("customers", 51, 50).response().body) == {
        "code": "too_large", "message": "customers: 51 items, the limit is 50 (configs/serve.yaml limits)",
        "fields": [{"field": "customers", "message": "51 items, the limit is 50 (configs/serve.yaml limits)"}],
    }
    assert shaped(over_limit("queries[0].horizon", 31, 30).response().body)["code"] == "over_limit"
    error = shaped(bad_input("queries[2]", ValueError("unknown series_id 'x'\nmore")).response().body)
    assert error["fields"] == [{"field": "queries[2]", "message": "unknown series_id 'x'"}]
    assert isinstance(bad_input("x", ValueError("y")), InvalidArgument)  # counted as bad input per model


def test_a_handlers_bentoml_exception_is_answered_in_the_shape() -> None:
    @answers_errors
    def handler() -> None:
        raise InvalidArgument("lines: every row quarantined")

    @answers_errors
    async def unavailable() -> None:
        raise ApiError("forecaster model unavailable: gone", status=503, code="model_unavailable")

    import anyio

    resp = handler()
    assert resp.status_code == 400 and shaped(resp.body)["fields"] == [{"field": "lines", "message": "every row quarantined"}]
    resp = anyio.run(unavailable)
    assert resp.status_code == 503 and shaped(resp.body)["message"] == "forecaster model unavailable: gone"


def error_app() -> Http:
    """ErrorShape around routes that answer like BentoML and Starlette do."""

    async def validation(request: Any) -> JSONResponse:
        return JSONResponse(__import__("json").loads(validation_body()), 400)

    async def boom(request: Any) -> JSONResponse:
        return JSONResponse({"error": "An unexpected error has occurred, please check the server log."}, 500)

    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("fine")

    routes = [Route("/segment", validation, methods=["POST"]), Route("/kpis", boom, methods=["POST"]), Route("/models", ok)]
    return Http(ErrorShape(Starlette(routes=routes), endpoints=frozenset({"/segment", "/kpis", "/models"})))


def test_error_shape_middleware_reshapes_and_leaves_answers_alone() -> None:
    http = error_app()
    assert shaped(http.post("/segment").json())["fields"][0]["field"] == "customers[0].recency"
    assert shaped(http.get("/nowhere").json())["code"] == "not_found"
    assert shaped(http.post("/models").json())["code"] == "method_not_allowed"
    ok = http.get("/models")
    assert ok.status_code == 200 and ok.text == "fine"


# ---- bullet 1: client mistakes in one line, server faults at ERROR ----


def test_client_mistakes_log_one_warning_line_and_server_faults_an_error(caplog: pytest.LogCaptureFixture) -> None:
    http = error_app()
    with caplog.at_level(logging.INFO, logger="ecomlab.serving"):
        for _ in range(3):
            http.post("/segment")
        http.post("/kpis")
    ours = [r for r in caplog.records if r.name == "ecomlab.serving"]
    assert [r.levelno for r in ours] == [logging.WARNING] * 3 + [logging.ERROR]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in ours)
    assert ours[0].getMessage().startswith("rejected POST /segment: 400 invalid_input: 1 invalid field(s): customers[0].recency: ")


def test_bentomls_traceback_of_a_client_mistake_is_dropped_a_fault_kept() -> None:
    def record(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:
            info = sys.exc_info()
        return logging.LogRecord("bentoml._internal.server.http_app", logging.ERROR, __file__, 1, "Exception on %s", ("/x",), info)

    try:
        Strict.model_validate({})
    except ValidationError as exc:
        invalid = exc
    keep = ClientErrorFilter().filter
    assert not keep(record(invalid)) and not keep(record(InvalidArgument("bad")))
    assert keep(record(RuntimeError("a bug"))) and keep(record(ApiError("gone", status=503)))


# ---- bullet 3: a body the route cannot read is 415 ----


def test_media_type_guard() -> None:
    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("through")

    app = Starlette(routes=[Route(p, ok, methods=["GET", "POST"]) for p in ("/segment", "/kpis/upload", "/healthz")])
    http = Http(MediaTypeGuard(app, json_routes=frozenset({"/segment"}), form_routes=frozenset({"/kpis/upload"})))
    text = http.post("/segment", content=b'{"customers": []}', headers={"content-type": "text/plain"})
    assert text.status_code == 415 and shaped(text.json())["code"] == "unsupported_media_type" and "text/plain" in text.text
    assert http.post("/segment", json={}).text == "through"
    assert http.post("/segment", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}).text == "through"
    assert http.post("/segment", content=b"{}", headers={"content-type": "application/merge-patch+json"}).text == "through"
    assert http.post("/kpis/upload", json={"file": "x"}).status_code == 415
    assert http.post("/kpis/upload", files={"file": ("x.csv", b"a\n", "text/csv")}).text == "through"
    assert http.get("/segment").text == "through"


@pytest.mark.parametrize("needed, known", [(["promo"], None), ([], ["promo"]), (["promo"], ["promo"])])
def test_unknown_exog_names_are_rejected_by_name(needed: list[str], known: list[str] | None) -> None:
    with pytest.raises(ValueError, match=r"unknown regressor\(s\) \['promp'\]; the model uses regressor\(s\) \['promo'\]"):
        parse_exog({"promo": [1.0, 2.0], "promp": [0.0, 0.0]}, needed, 2, "s", known=known)
    with pytest.raises(ValueError, match=r"unknown regressor\(s\) \['price'\]; the model uses no regressors"):
        parse_exog({"price": [1.0]}, [], 1, "s", known=[])
    out = parse_exog({"promo": [1.0, 2.0]}, needed, 2, "s", known=known)
    assert (out is None) == (not needed)
    assert parse_exog({}, [], 2, "s", known=[]) is None and parse_exog(None, [], 2, "s", known=["promo"]) is None


def test_zero_quantity_line_is_quarantined_with_value_0() -> None:
    """The value of a zero-quantity line in the quarantine report is its quantity, 0, not null (fixed in features/readers)."""
    from serving import kpis

    raw = pd.DataFrame([{"order_id": "1", "order_date": "2024-01-03", "product_id": "p", "quantity": q, "unit_price": 2.0} for q in (1, 0)])
    body = kpis.kpi_response(kpis.validate_lines(raw, "request", "lines"), None, None)
    (row,) = body.quarantine
    assert row.column == "quantity" and row.reason == "zero quantity" and row.value == "0"


# ---- bullet 4: GET /models and each model's detail ----


class DescribedStore(FakeStore):
    uri = "sqlite:///mlflow.db"
    registry_error = None

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"family": f, "name": f"ecomlab-{f}", "alias": "champion", "version": "7" if f in self.models else None, "run_id": "run",
             "metrics": {}, "loaded_at": 0.0, "status": "serving" if f in self.models else "unavailable", "error": None}
            for f in MODELS
        ]


def test_get_models_and_each_models_detail() -> None:
    store = DescribedStore(settings(), {f: cls() for f, cls in MODELS.items() if f != "recommender"})
    ModelGate.store = store
    try:
        http = Http(ModelGate(Starlette()))
        listed = http.get("/models")
        assert listed.status_code == 200 and [m["family"] for m in listed.json()["models"]] == list(MODELS)
        fc = http.get("/models/forecaster").json()
        assert fc["series_ids"] == ["a"] and fc["default_levels"] == [90] and fc["version"] == "7" and fc["features"] is None
        seg = http.get("/models/segmenter").json()
        assert seg["features"] == ["monetary", "recency"] and seg["segments"] == {"0": "low", "1": "high"}
        rec = http.get("/models/recommender").json()
        assert rec["status"] == "unavailable" and rec["default_k"] is None
        missing = http.get("/models/churn")
        assert missing.status_code == 404 and "family" in shaped(missing.json())["fields"][0]["field"]
        assert "forecaster" in missing.json()["error"]["message"]
    finally:
        ModelGate.store = None


def test_readyz_503_carries_the_error_shape_beside_its_detail() -> None:
    store = DescribedStore(settings(), {})
    store.ready = lambda: (False, ["segmenter: gone"])
    resp = ModelGate.readiness(store)
    import json

    body = json.loads(resp.body)
    assert resp.status_code == 503 and shaped({"error": body["error"]})["code"] == "not_ready" and body["reasons"] == ["segmenter: gone"]


# ---- bullet 5: rejections counted by endpoint and reason; /metrics may be open ----


class Counted:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def reject(self, endpoint: str, reason: str, status: int) -> None:
        self.seen.append((endpoint, reason, status))


def test_every_rejection_is_counted_by_endpoint_and_reason() -> None:
    counted = Counted()
    ErrorShape.metrics = counted  # type: ignore[assignment]
    try:
        http = error_app()
        http.post("/segment")
        http.post("/kpis")
        http.get("/no/such/path")
        http.get("/models")  # a 200 is no rejection
    finally:
        ErrorShape.metrics = None
    assert counted.seen == [("/segment", "invalid_input", 400), ("/kpis", "internal_error", 500), ("other", "not_found", 404)]


def test_metrics_may_be_open_while_the_api_needs_the_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("through")

    monkeypatch.setenv("SVC_TEST_TOKEN", "t0ken")
    app = Starlette(routes=[Route(p, ok, methods=["GET", "POST"]) for p in ("/metrics", "/segment")])
    closed = Http(TokenAuth(app, token_env="SVC_TEST_TOKEN"))
    assert closed.get("/metrics").status_code == 401 and shaped(closed.get("/metrics").json())["code"] == "unauthorized"
    opened = Http(TokenAuth(app, token_env="SVC_TEST_TOKEN", open_paths=open_paths(True)))
    assert opened.get("/metrics").text == "through" and opened.post("/segment").status_code == 401
    assert open_paths(False) == OPEN_PATHS
    config = tmp_path / "serve.yaml"
    config.write_text("metrics_open: true\n")
    assert load_settings(config).metrics_open is True and ServeSettings().metrics_open is False


# ---- bullet 6: the OpenAPI header is ours; every operation documents the one error shape ----


def test_openapi_header_and_error_responses() -> None:
    from serving.service import EcomlabService

    spec = EcomlabService.openapi_spec.asdict()
    assert spec["info"]["version"] == version("ecomlab") != "None"
    assert spec["info"]["description"].startswith("ecomlab's model service") and "BentoML" not in spec["info"]["description"]
    assert "ErrorResponse" in spec["components"]["schemas"] and "InvalidArgument" not in spec["components"]["schemas"]
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path in ("/segment", "/forecast", "/kpis", "/kpis/upload"):
        responses = spec["paths"][path]["post"]["responses"]
        assert all(responses[s]["content"]["application/json"]["schema"] == ref for s in (400, 401, 413, 415, 500)), path
    assert 503 in spec["paths"]["/forecast"]["post"]["responses"]
    assert spec["paths"]["/models"]["get"]["responses"][200] and spec["paths"]["/models"]["post"]["deprecated"] is True
    detail = spec["paths"]["/models/{family}"]["get"]
    assert detail["parameters"][0]["schema"]["enum"] == sorted(MODELS) and 404 in detail["responses"]
    assert "ModelDetail" in spec["components"]["schemas"]
