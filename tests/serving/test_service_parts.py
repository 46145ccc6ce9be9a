"""The service's parts without a server: handlers on stand-in servable models, the store's loading
rules, the middleware, URI redaction. Fast; the real `bentoml serve` is in test_service*.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from types import SimpleNamespace
from typing import Any, ClassVar

import anyio
import httpx
import numpy as np
import pandas as pd
import pytest
from bentoml.exceptions import InvalidArgument
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from serving.errors import TooLarge
from serving.middleware import FormGuard, ModelGate
from serving.models.base import BasketRecommendation, SeriesForecast
from serving.models.registry import FAMILIES
from serving.schemas import Basket, ClvCustomer, CustomerRow, ForecastQuery
from serving.settings import ServeSettings
from serving.store import ModelStore, ModelUnavailable, Served
from serving.tracking_uri import default_tracking_uri, redact, resolve_tracking_uri, scrub

# ---- stand-in servable models: each implements its family's Protocol and nothing more ----


class Servable:
    family: ClassVar[str] = ""

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        raise AssertionError("the service calls the Protocol's methods, not predict")


class Segmenter(Servable):
    family = "segmenter"

    def __init__(self) -> None:
        self.features = ["monetary", "recency"]  # not the schema's order: the model's order is what counts
        self.names = {0: "low", 1: "high"}
        self.seen: list[np.ndarray] = []

    def assign(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(x)
        return (x[:, 0] > 100).astype(np.int64)


class Forecaster(Servable):
    family = "forecaster"

    def __init__(self) -> None:
        self.series_ids = ["a"]
        self.default_levels = [90]
        self.freq = "W"
        self.calls: list[tuple] = []

    def forecast(self, series_id: str, horizon: int, levels: list[int] | None = None, exog: Any = None) -> SeriesForecast:
        self.calls.append((series_id, horizon, levels, exog))
        if series_id not in self.series_ids:
            raise ValueError(f"unknown series {series_id!r}; known: {self.series_ids}")
        starts = pd.date_range("2024-01-01", periods=horizon, freq="W-MON")
        mean = np.arange(horizon, dtype=float)
        lo, hi = mean - 1, mean + 1
        lo[0] = np.nan  # no interval at the first step
        return SeriesForecast(series_id, "naive", starts, mean, {lv: (lo, hi) for lv in levels or self.default_levels})

    def series_specs(self) -> dict[str, dict[str, Any]]:
        return {"a": {"method": "naive"}}


class Recommender(Servable):
    family = "recommender"

    def __init__(self) -> None:
        self.default_k = 2
        self.max_k = 3
        self.calls: list[tuple] = []

    def recommend(self, baskets: list[list[str]], k: list[int]) -> list[BasketRecommendation]:
        self.calls.append((baskets, k))
        return [
            BasketRecommendation(["x"][:n], [0.5][:n], [["a -> x"]][:n], [i for i in b if i != "a"])
            for b, n in zip(baskets, k, strict=True)
        ]


class Lifetime(Servable):
    family = "clv"

    def __init__(self) -> None:
        self.unit = "W"
        self.default_horizon = 52.0
        self.default_discount_rate = 0.1
        self.max_horizon = 104.0
        self.calls: list[tuple] = []

    def check_terms(self, horizon: Any, discount_rate: Any) -> tuple[float, float]:
        h = self.default_horizon if horizon is None else horizon
        if not 0 < h <= self.max_horizon:
            raise ValueError(f"horizon: {h!r} is not a number in (0, {self.max_horizon:g}] weeks")
        return float(h), self.default_discount_rate if discount_rate is None else float(discount_rate)

    def expected_purchases(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, t: Any) -> np.ndarray:
        return frequency / np.maximum(T, 1) * t

    def value(self, frequency, recency, T, monetary, horizon, discount_rate) -> dict[str, np.ndarray]:
        self.calls.append((frequency, recency, T, monetary, horizon, discount_rate))
        purchases = self.expected_purchases(frequency, recency, T, horizon)
        return {"expected_purchases": purchases, "p_alive": np.full(len(frequency), 0.5), "expected_value": monetary,
                "clv": purchases * monetary}


MODELS = {"segmenter": Segmenter, "forecaster": Forecaster, "recommender": Recommender, "clv": Lifetime}


def settings(**limits: int) -> ServeSettings:
    models = [{"family": f, "name": f"ecomlab-{f}"} for f in MODELS]
    return ServeSettings.model_validate({"models": models, "reload_interval_s": 0, "limits": limits})


class FakeStore:
    def __init__(self, cfg: ServeSettings, models: dict[str, Any]) -> None:
        self.settings = cfg
        self.models = models

    def get(self, family: str) -> Served:
        if family not in self.models:
            raise ModelUnavailable(f"no {family} here")
        return Served(family, f"ecomlab-{family}", "champion", "7", "run", self.models[family], {}, 0.0)


def service(**limits: int) -> Any:
    """The service's handlers on stand-in models, without BentoML's runtime (no __init__: no registry)."""
    from serving.drift import DriftMonitor
    from serving.service import EcomlabService

    svc = EcomlabService.inner.__new__(EcomlabService.inner)
    svc.settings = settings(**limits)
    svc.store = FakeStore(svc.settings, {f: cls() for f, cls in MODELS.items()})
    svc.metrics = SimpleNamespace(observe=lambda served, rows: nullcontext())
    svc.drift = DriftMonitor(svc.settings.drift)  # the stand-ins carry no reference profile: nothing is recorded
    return svc


# ---- handlers call the Protocols ----


def test_segment_uses_the_models_feature_order() -> None:
    svc = service()
    rows = [CustomerRow(customer_id="c1", recency=3.0, monetary=500.0), CustomerRow(customer_id="c2", recency=9.0, monetary=5.0)]
    out = svc._segment(rows)
    assert [(s.customer_id, s.segment_id, s.segment_name) for s in out.segments] == [("c1", 1, "high"), ("c2", 0, "low")]
    assert out.model == "ecomlab-segmenter" and out.version == "7"
    np.testing.assert_array_equal(svc.store.models["segmenter"].seen[0], [[500.0, 3.0], [5.0, 9.0]])


def test_segment_names_a_missing_feature_and_an_oversize_batch() -> None:
    svc = service(max_batch=2)
    with pytest.raises(InvalidArgument, match=r"customers\[1\]\.monetary"):
        svc._segment([CustomerRow(recency=1.0, monetary=1.0), CustomerRow(recency=1.0)])
    with pytest.raises(TooLarge, match="limit is 2"):
        svc._segment([CustomerRow(recency=1.0, monetary=1.0)] * 3)


def test_forecast_defaults_levels_and_drops_missing_bounds() -> None:
    svc = service()
    (fc,) = svc._forecast([ForecastQuery(series_id="a", horizon=3)]).forecasts
    assert svc.store.models["forecaster"].calls == [("a", 3, [90], None)]
    assert fc.model == "naive" and [p.ds for p in fc.points] == ["2024-01-01", "2024-01-08", "2024-01-15"]
    assert fc.points[0].intervals == {} and fc.points[2].intervals == {"90": [1.0, 3.0]}


def test_forecast_value_error_is_400_naming_the_row() -> None:
    svc = service(max_horizon=5)
    with pytest.raises(InvalidArgument, match=r"queries\[1\]: unknown series 'zz'.*known"):
        svc._forecast([ForecastQuery(series_id="a", horizon=2), ForecastQuery(series_id="zz", horizon=2)])
    with pytest.raises(InvalidArgument, match=r"queries\[0\]\.horizon: 6 is over the limit of 5"):
        svc._forecast([ForecastQuery(series_id="a", horizon=6)])


def test_recommend_k_from_basket_request_or_model() -> None:
    svc = service(max_k=10)
    out = svc._recommend([Basket(items=["a", "new"]), Basket(items=["a"], k=1)], None)
    assert svc.store.models["recommender"].calls == [([["a", "new"], ["a"]], [2, 1])]
    first = out.results[0]
    assert [r.item for r in first.recommendations] == ["x"] and first.recommendations[0].rules == ["a -> x"]
    assert first.unknown_items == ["new"]
    with pytest.raises(InvalidArgument, match=r"^k: 4 is over the limit of 3"):  # the model's max_k is below the service's
        svc._recommend([Basket(items=["a"])], 4)
    with pytest.raises(InvalidArgument, match=r"baskets\[0\]\.k"):
        svc._recommend([Basket(items=["a"], k=9)], None)


def test_clv_passes_arrays_and_terms_and_names_bad_rows() -> None:
    svc = service(max_batch=3)
    rows = [ClvCustomer(customer_id="a", frequency=2.0, recency=5.0, T=10.0, monetary=20.0),
            ClvCustomer(frequency=0.0, recency=0.0, T=4.0, monetary=0.0)]
    out = svc._clv(rows, 26.0, None)
    model = svc.store.models["clv"]
    frequency, recency, T, monetary, horizon, rate = model.calls[0]
    assert frequency.tolist() == [2.0, 0.0] and T.tolist() == [10.0, 4.0] and (horizon, rate) == (26.0, 0.1)
    assert (out.unit, out.horizon, out.discount_rate, out.version) == ("W", 26.0, 0.1, "7")
    assert [c.customer_id for c in out.customers] == ["a", None] and out.customers[0].clv == pytest.approx(2 / 10 * 26 * 20)
    assert svc._clv(rows[:1], None, None).horizon == 52.0  # the model's default
    bad = [(dict(recency=12.0), r"customers\[0\]\.recency: 12 is greater than T"),
           (dict(frequency=0.0, recency=1.0), r"customers\[0\]\.recency: .*without repeat purchases"),
           (dict(monetary=0.0), r"customers\[0\]\.monetary: 0 is zero spend"),
           (dict(frequency=1.5), r"customers\[0\]\.frequency: 1.5 is not a whole number")]
    for change, message in bad:
        with pytest.raises(InvalidArgument, match=message):
            svc._clv([rows[0].model_copy(update=change)], None, None)
    with pytest.raises(InvalidArgument, match=r"^horizon: 200.0 is over the limit of 104.0 weeks"):
        svc._clv(rows, 200.0, None)
    with pytest.raises(InvalidArgument, match=r"^horizon: 0.0 is not a number"):
        svc._clv(rows, 0.0, None)
    with pytest.raises(TooLarge, match="limit is 3"):
        svc._clv(rows * 2, None, None)


# ---- the store: only servable models serve; the previous version keeps serving ----


class FakeClient:
    def __init__(self) -> None:
        self.version = "1"

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        return SimpleNamespace(version=self.version, run_id="r1")

    def get_run(self, run_id: str) -> Any:
        return SimpleNamespace(data=SimpleNamespace(metrics={"best_score": 0.5, "other": 1.0}))


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[tuple[ModelStore, FakeClient, dict[str, Any]]]:
    import importlib

    pyfunc = importlib.import_module("mlflow.pyfunc")  # the module itself, not mlflow's lazy stand-in
    client, registered = FakeClient(), {}
    monkeypatch.setattr(pyfunc, "load_model", lambda uri: SimpleNamespace(unwrap_python_model=lambda: registered[uri]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'unused.db'}")  # nothing may reach a real store
    cfg = ServeSettings.model_validate({"models": [{"family": "segmenter", "name": "seg"}], "reload_interval_s": 0})
    st = ModelStore(cfg)
    yield st, client, registered


def test_store_keeps_the_servable(store: tuple[ModelStore, FakeClient, dict[str, Any]]) -> None:
    st, client, registered = store
    registered["models:/seg/1"] = model = Segmenter()
    st._refresh_one(client, st.settings.models[0])
    served = st.get("segmenter")
    assert served.model is model and served.version == "1" and served.metrics == {"best_score": 0.5}


def test_a_model_that_is_not_servable_leaves_the_previous_serving(store: tuple[ModelStore, FakeClient, dict[str, Any]]) -> None:
    st, client, registered = store
    registered["models:/seg/1"] = Segmenter()
    registered["models:/seg/2"] = Forecaster()  # another family's model under the segmenter's name
    st._refresh_one(client, st.settings.models[0])
    client.version = "2"
    with pytest.raises(TypeError, match="not a servable segmenter"):
        st._refresh_one(client, st.settings.models[0])
    registered.pop("models:/seg/2")  # the rejected version is not loaded again (a load would fail with KeyError)
    with pytest.raises(TypeError, match="version 2: .*not a servable segmenter"):
        st._refresh_one(client, st.settings.models[0])
    assert st.get("segmenter").version == "1"


def test_not_servable_with_nothing_before_is_unavailable(
    store: tuple[ModelStore, FakeClient, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    st, client, registered = store
    registered["models:/seg/1"] = object()
    monkeypatch.setattr("mlflow.tracking.MlflowClient", lambda *a: client)
    st.refresh()
    st.refresh()  # the same reason each round
    assert st.describe()[0]["error"].startswith("NotServable: version 1: the model is a builtins.object")
    with pytest.raises(ModelUnavailable, match="not a servable segmenter"):
        st.get("segmenter")
    ok, reasons = st.ready()
    assert not ok and "not a servable segmenter" in reasons[0]


# ---- middleware ----


class Http:
    """Requests straight into an ASGI app (no server, no socket)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test") as client:
                return await client.request(method, path, **kwargs)

        return anyio.run(go)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def app_with(store: Any) -> Http:
    """FormGuard and ModelGate (in the service's order) around routes that answer "through"."""

    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("through")

    routes = [Route(p, ok, methods=["GET", "POST"]) for p in ("/segment", "/forecast", "/readyz", "/kpis/upload")]
    ModelGate.store = store
    return Http(FormGuard(ModelGate(Starlette(routes=routes))))


def test_model_gate_routes_are_the_registry() -> None:
    assert ModelGate.ROUTES == {e.route: e.name for e in FAMILIES.values()}


def test_model_gate_503_with_reason_and_readyz_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = settings()
    store = FakeStore(cfg, {"segmenter": Segmenter()})
    store.ready = lambda: (False, ["forecaster: gone"])
    store.registry_error = None
    row = {"family": "forecaster", "name": "f", "alias": "champion", "version": None, "status": "unavailable", "error": "gone"}
    store.describe = lambda: [row]
    try:
        http = app_with(store)
        assert http.post("/segment").text == "through"
        resp = http.post("/forecast")
        assert resp.status_code == 503 and resp.json()["error"]["message"] == "forecaster model unavailable: no forecaster here"
        assert resp.json()["error"]["code"] == "model_unavailable"
        assert resp.headers["retry-after"] == "30"
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["reasons"] == ["forecaster: gone"]
    finally:
        ModelGate.store = None


def test_form_guard_rejects_a_text_file_field_and_replays_good_forms() -> None:
    http = app_with(None)
    bad = http.post("/kpis/upload", data={"file": "http://example.invalid/x.csv"})
    assert bad.status_code == 400 and "file: must be an uploaded file part" in bad.text
    good = http.post("/kpis/upload", files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})
    assert good.status_code == 200 and good.text == "through"


def test_token_auth_and_body_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.auth import BodyLimit, TokenAuth

    async def inner(scope: Any, receive: Any, send: Any) -> None:  # a bare app: what fails in it reaches BodyLimit
        body = await Request(scope, receive).body()
        await PlainTextResponse(str(len(body)))(scope, receive, send)

    monkeypatch.setenv("SVC_TEST_TOKEN", "t0ken")
    http = Http(TokenAuth(BodyLimit(inner, max_bytes=1024), token_env="SVC_TEST_TOKEN"))
    denied = http.post("/segment", content=b"{}")
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer" and "API token" in denied.json()["error"]["message"]
    assert http.get("/healthz").status_code == 200
    auth = {"Authorization": "Bearer t0ken"}
    assert http.post("/segment", content=b"x" * 10, headers=auth).text == "10"
    big = http.post("/segment", content=b"x" * 2000, headers=auth)
    assert big.status_code == 413 and "over the limit of 1024" in big.json()["error"]["message"]

    async def chunks():
        for _ in range(3):
            yield b"x" * 600  # no content-length: counted while read

    streamed = http.post("/segment", content=chunks(), headers=auth)
    assert streamed.status_code == 413 and "1200 read" in streamed.json()["error"]["message"]


# ---- tracking URI: one definition, credentials never shown ----


def test_default_and_resolved_tracking_uri(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert resolve_tracking_uri(None) == default_tracking_uri()
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "sqlite:///elsewhere.db"


@pytest.mark.parametrize(
    "uri, shown",
    [
        ("postgresql://user:p%40ss@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
        ("https://token@host/path?x=1", "https://***@host/path?x=1"),
        ("postgresql+psycopg://u:a@b@db/mlflow", "postgresql+psycopg://***@db/mlflow"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("mlruns", "mlruns"),
    ],
)
def test_redact(uri: str, shown: str) -> None:
    assert redact(uri) == shown


def test_scrub_hides_raw_and_decoded_credentials() -> None:
    uri = "postgresql://user:p%40ss@db/mlflow"
    text = "could not connect: password p@ss rejected for postgresql://user:p%40ss@db/mlflow"
    assert scrub(text, uri) == "could not connect: password *** rejected for postgresql://***@db/mlflow"
    assert scrub("nothing secret", "http://127.0.0.1:5000") == "nothing secret"


# ---- the guards as one layer, and the model counters ----


def guarded(store: Any, max_bytes: int = 1024) -> tuple[Http, Http]:
    """Guards around routes that answer "through", and the same seven guards as separate layers."""
    from serving.auth import BodyLimit, TokenAuth
    from serving.dashboard.routes import DashboardData, DashboardPage
    from serving.middleware import Guards, MediaTypeGuard

    async def app(scope: Any, receive: Any, send: Any) -> None:  # a bare app: what fails in it reaches BodyLimit
        body = await Request(scope, receive).body()
        await PlainTextResponse(f"through {scope['method']} {scope['path']} {len(body)}")(scope, receive, send)

    json_routes, form_routes = frozenset({"/segment", "/forecast", "/kpis"}), frozenset({"/kpis/upload"})
    ModelGate.store = store
    layers = DashboardPage(TokenAuth(MediaTypeGuard(BodyLimit(FormGuard(ModelGate(DashboardData(app))), max_bytes),
                                                    json_routes, form_routes), "SVC_TEST_TOKEN"))
    one = Guards(app, token_env="SVC_TEST_TOKEN", open_paths=frozenset({"/healthz", "/livez", "/readyz"}),
                 json_routes=json_routes, form_routes=form_routes, max_bytes=max_bytes)
    return Http(one), Http(layers)


def test_guards_answer_as_the_seven_layers_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path of a JSON POST and the full path of everything else give the layered answers:
    token, media type, body limit (declared and streamed), no model, form checks, the open dashboard page."""
    monkeypatch.setenv("SVC_TEST_TOKEN", "t0ken")
    auth = {"Authorization": "Bearer t0ken"}

    async def chunks():
        for _ in range(3):
            yield b"x" * 600

    requests = [
        ("POST", "/segment", {"json": {"customers": []}, "headers": auth}),
        ("POST", "/segment", {"json": {"customers": []}}),  # no token
        ("POST", "/segment", {"content": b"{}", "headers": {**auth, "content-type": "text/plain"}}),
        ("POST", "/segment", {"data": {"file": "x"}, "headers": auth}),  # a form body on a JSON route: 415 first
        ("POST", "/segment", {"content": b"x" * 2000, "headers": {**auth, "content-type": "application/json"}}),
        ("POST", "/segment", {"content": chunks, "headers": {**auth, "content-type": "application/json"}}),
        ("POST", "/forecast", {"json": {}, "headers": auth}),  # no forecaster: 503
        ("POST", "/kpis", {"json": {}, "headers": {**auth, "content-type": "application/vnd.x+json"}}),
        ("POST", "/kpis/upload", {"data": {"file": "http://example.invalid/x.csv"}, "headers": auth}),  # not multipart
        ("POST", "/kpis/upload", {"data": {"file": "http://example.invalid/x.csv"}, "files": {"other": ("y.csv", b"1", "text/csv")},
                                  "headers": auth}),  # a text value in the file field: FormGuard's 400
        ("POST", "/kpis/upload", {"files": {"file": ("x.csv", b"a,b\n1,2\n", "text/csv")}, "headers": auth}),
        ("POST", "/kpis/upload", {"json": {}, "headers": auth}),
        ("GET", "/readyz", {}),
        ("GET", "/other", {"headers": auth}),
        ("GET", "/other", {}),
        ("GET", "/", {}),
    ]
    store = FakeStore(settings(), {"segmenter": Segmenter()})
    store.ready = lambda: (True, [])
    store.registry_error = None
    store.describe = lambda: []
    try:
        one, layers = guarded(store)
        answers = []
        for method, path, kwargs in requests:
            kw = {k: (v() if k == "content" and callable(v) else v) for k, v in kwargs.items()}
            a = one.request(method, path, **kw)
            kw = {k: (v() if k == "content" and callable(v) else v) for k, v in kwargs.items()}
            b = layers.request(method, path, **kw)
            assert (a.status_code, a.content) == (b.status_code, b.content), (method, path)
            answers.append(a.status_code)
    finally:
        ModelGate.store = None
    assert answers == [200, 401, 415, 415, 413, 413, 503, 200, 415, 400, 200, 415, 200, 200, 401, 200]


def test_model_counters_count_requests_rows_and_errors_apart() -> None:
    import prometheus_client

    from serving.metrics import Metrics

    registry = prometheus_client.CollectorRegistry()
    metrics = Metrics.__new__(Metrics)
    labels = ["family", "model", "version"]
    metrics.requests = prometheus_client.Counter("t_requests", "", labels, registry=registry)
    metrics.predictions = prometheus_client.Counter("t_rows", "", labels, registry=registry)
    metrics.errors = prometheus_client.Counter("t_errors", "", [*labels, "kind"], registry=registry)
    flushed = []
    metrics.gc = SimpleNamespace(flush=lambda: flushed.append(1))
    metrics._children = {}
    served = Served("segmenter", "seg", "champion", "3", "run", None, {}, 0.0)
    with metrics.observe(served, 5):
        pass
    for exc in (InvalidArgument("bad"), RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), metrics.observe(served, 7):
            raise exc
    value = registry.get_sample_value
    one = {"family": "segmenter", "model": "seg", "version": "3"}
    assert value("t_requests_total", one) == 4 and value("t_rows_total", one) == 5  # rows of answered requests only
    assert value("t_errors_total", {**one, "kind": "bad_input"}) == 1 and value("t_errors_total", {**one, "kind": "failure"}) == 1
    assert len(flushed) == 4  # the GC notes flushed after every model request
