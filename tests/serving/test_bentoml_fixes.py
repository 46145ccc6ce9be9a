"""serving/bentoml_fixes.py: what it works around is still there in the BentoML we pin (these fail when an
upgrade changes it, so the work-around is revisited), and the replacements keep BentoML's behaviour."""

from __future__ import annotations

import asyncio
import functools
import gc
import io
import json
import logging
import re

import bentoml
import prometheus_client
import pytest
from starlette.middleware import Middleware

from serving import bentoml_fixes
from serving.bentoml_fixes import BoundedTimeout, rework
from serving.metrics import GcPauses

SCOPE = {"type": "http", "method": "POST", "path": "/segment", "headers": []}
IN_REQUEST_SOURCE = "17f83b1eb008"  # sha256 prefix of bentoml 1.4.39's ServiceContext.in_request


def tiny_service():
    """A one-endpoint BentoML service with a traffic timeout, as BentoML builds its app."""

    @bentoml.service(name="tiny", traffic={"timeout": 5})
    class Tiny:
        @bentoml.api
        def echo(self, text: str) -> str:
            return text

    return Tiny


def pending_timers(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    return [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]


async def call(app, scope=SCOPE) -> list[dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent


async def answer(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_bentoml_timeout_middleware_still_leaks_its_timer() -> None:
    """Upstream behaviour worked around (bentoml 1.4.39): a timer per request, alive for the whole timeout.
    If this fails, BentoML cancels it now: drop BoundedTimeout from serving/bentoml_fixes.py."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    async def run() -> int:
        loop = asyncio.get_running_loop()
        app = TimeoutMiddleware(answer, timeout=60)
        for _ in range(5):
            assert (await call(app))[0]["status"] == 200
        return len(pending_timers(loop))

    assert asyncio.run(run()) == 5, f"bentoml {bentoml.__version__} no longer leaves a timer per request"


def test_bounded_timeout_keeps_nothing_per_request() -> None:
    """One watchdog timer per app whatever the traffic, nothing kept of a request once answered, and the
    watchdog stops once no request waits."""

    async def run() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        app = BoundedTimeout(answer, timeout=0.5)
        for _ in range(500):
            sent = await call(app)
            assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok"
        timers, kept = len(pending_timers(loop)), len(app.waiting) + len(app.expired)
        await asyncio.sleep(app.tick * 1.5)  # the sweep finds nothing waiting and does not come back
        return timers, kept, len(pending_timers(loop))

    assert asyncio.run(run()) == (1, 0, 0)


def test_bounded_timeout_times_out_each_of_many_slow_requests_once() -> None:
    """Concurrent slow requests each get one 504 within a tick of the timeout; fast ones beside them are untouched."""

    async def slow_or_fast(scope, receive, send) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(30)
        await answer(scope, receive, send)

    async def run() -> tuple[list[int], float, BoundedTimeout]:
        app = BoundedTimeout(slow_or_fast, timeout=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = await asyncio.gather(*(call(app, {**SCOPE, "path": "/slow" if i % 2 else "/fast"}) for i in range(20)))
        return [m[0]["status"] for m in sent], loop.time() - started, app

    statuses, took, app = asyncio.run(run())
    assert statuses == [200, 504] * 10
    assert 0.2 <= took < 10  # each slow one cut at its timeout (a tick late at most), not after its 30 s
    assert not app.waiting and not app.expired


def test_bounded_timeout_answers_504_and_cancels_a_slow_request() -> None:
    cancelled = []

    async def slow(scope, receive, send) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def run() -> list[dict]:
        return await call(BoundedTimeout(slow, timeout=0.05))

    sent = asyncio.run(run())
    assert sent[0]["status"] == 504 and cancelled == [True]
    error = json.loads(sent[1]["body"])["error"]
    assert error["code"] == "timeout" and "0.05 s" in error["message"]


def test_bounded_timeout_lets_a_started_response_finish() -> None:
    """Like BentoML's: the timeout covers the wait for the response to start, not a stream after it."""

    async def streaming(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.15)
        await send({"type": "http.response.body", "body": b"late but whole"})

    sent = asyncio.run(call(BoundedTimeout(streaming, timeout=0.05)))
    assert [m.get("status") for m in sent][:1] == [200] and sent[-1]["body"] == b"late but whole"


def test_a_handlers_own_timeout_error_is_not_a_504() -> None:
    async def failing(scope, receive, send) -> None:
        raise TimeoutError("the handler's own")

    with pytest.raises(TimeoutError, match="the handler's own"):
        asyncio.run(call(BoundedTimeout(failing, timeout=60)))


def test_bentoml_still_adds_the_middlewares_reworked(monkeypatch: pytest.MonkeyPatch) -> None:
    """BentoML's service app still adds its TimeoutMiddleware and OpenTelemetry's middleware with tracing
    off (what `rework` replaces); reworked, the timeout is ours and the unread spans are gone, and with an
    exporter configured the tracing middleware stays."""
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.server.http.traffic import TimeoutMiddleware
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    service = tiny_service()
    service.inject_config()
    factory = ServiceAppFactory(service, is_main=True)
    original = [m.cls for m in bentoml_fixes.bentoml_middlewares(factory)]
    assert TimeoutMiddleware in original and OpenTelemetryMiddleware in original, original
    assert bentoml_fixes.tracing_exporter() is None
    reworked = [m.cls for m in rework(bentoml_fixes.bentoml_middlewares(factory))]
    assert BoundedTimeout in reworked and TimeoutMiddleware not in reworked and OpenTelemetryMiddleware not in reworked
    assert len(reworked) == len(original) - 1
    monkeypatch.setattr(bentoml_fixes, "tracing_exporter", lambda: "otlp")
    assert OpenTelemetryMiddleware in [m.cls for m in rework(bentoml_fixes.bentoml_middlewares(factory))]
    bentoml_fixes.install()  # installed (or already, by an import of the service): the factory's list is reworked
    assert [m.cls for m in factory.middlewares] == [m.cls for m in rework(bentoml_fixes.bentoml_middlewares(factory))]


def test_rework_keeps_the_timeout_setting() -> None:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    (m,) = rework([Middleware(TimeoutMiddleware, timeout=7.5)])
    assert m.cls is BoundedTimeout and m.kwargs == {"timeout": 7.5}


def test_switched_off_nothing_is_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bentoml_fixes.SWITCH, "off")
    assert bentoml_fixes.install() is False
    before = gc.get_freeze_count()
    bentoml_fixes.freeze_heap()
    assert gc.get_freeze_count() == before


def test_freeze_heap_moves_the_heap_out_of_sight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bentoml_fixes.SWITCH, raising=False)
    try:
        bentoml_fixes.freeze_heap()
        assert gc.get_freeze_count() > 10_000  # pytest, numpy, pandas, bentoml... all frozen
    finally:
        gc.unfreeze()


def test_gc_pauses_are_counted_by_generation() -> None:
    registry = prometheus_client.CollectorRegistry()
    pauses = GcPauses(prometheus_client, registry)
    try:
        gc.collect(2)
        gc.collect(0)
        pauses.flush()
    finally:
        pauses.close()
    full = registry.get_sample_value("ecomlab_gc_pause_seconds_count", {"generation": "2"})
    young = registry.get_sample_value("ecomlab_gc_pause_seconds_count", {"generation": "0"})
    assert full is not None and full >= 1 and young is not None and young >= 1
    assert registry.get_sample_value("ecomlab_gc_pause_seconds_sum", {"generation": "2"}) > 0
    assert pauses._hook not in gc.callbacks


def test_access_log_setting_decides_the_access_log_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    """`access_log` on: BentoML adds its AccessLogMiddleware, which the fixes swap for AccessLog (same
    arguments); off: neither."""
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.server.http.access import AccessLogMiddleware

    assert bentoml_fixes.install()  # as the service does on import (once per process)
    service = tiny_service()
    service.inject_config()
    factory = ServiceAppFactory(service, is_main=True)
    try:
        bentoml_fixes.access_log(False)
        assert not {AccessLogMiddleware, bentoml_fixes.AccessLog} & {m.cls for m in factory.middlewares}
        bentoml_fixes.access_log(True)
        theirs = [m for m in bentoml_fixes.bentoml_middlewares(factory) if m.cls is AccessLogMiddleware]
        ours = [m for m in factory.middlewares if m.cls is bentoml_fixes.AccessLog]
        assert len(theirs) == len(ours) == 1 and theirs[0].kwargs == ours[0].kwargs
        assert AccessLogMiddleware not in [m.cls for m in factory.middlewares]
    finally:
        bentoml_fixes.access_log(True)


def server_logging(stream: io.StringIO) -> tuple[logging.Handler, dict]:
    """BentoML's server logging set-up (SERVER_LOGGING_CONFIG's `bentoml` logger), writing to `stream`;
    the second value restores the loggers as they were."""
    from bentoml._internal.log import DATE_FORMAT, TRACED_LOG_FORMAT, TraceRecordFilter

    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(TRACED_LOG_FORMAT, DATE_FORMAT))
    handler.addFilter(TraceRecordFilter())
    bentoml_logger, access = logging.getLogger("bentoml"), logging.getLogger("bentoml.access")
    saved = {"handlers": bentoml_logger.handlers[:], "level": bentoml_logger.level, "propagate": bentoml_logger.propagate,
             "access": (access.handlers[:], access.level, access.propagate, access.disabled, bentoml_logger.disabled)}
    bentoml_logger.handlers[:] = [handler]
    bentoml_logger.setLevel(logging.INFO)
    bentoml_logger.propagate = False
    bentoml_logger.disabled = access.disabled = False
    access.handlers[:] = []
    access.setLevel(logging.NOTSET)
    access.propagate = True
    return handler, saved


def restore_logging(saved: dict) -> None:
    bentoml_logger, access = logging.getLogger("bentoml"), logging.getLogger("bentoml.access")
    bentoml_logger.handlers[:] = saved["handlers"]
    bentoml_logger.setLevel(saved["level"])
    bentoml_logger.propagate = saved["propagate"]
    access.handlers[:], level, access.propagate, access.disabled, bentoml_logger.disabled = saved["access"]
    access.setLevel(level)


def test_bentoml_server_logging_is_what_the_access_line_writer_copies() -> None:
    """Upstream (bentoml 1.4.39): the server's `bentoml` logger has one StreamHandler with TraceRecordFilter and
    the traced format; ServerLogLine writes exactly that format. If this fails, revisit ServerLogLine."""
    from bentoml._internal.log import DATE_FORMAT, SERVER_LOGGING_CONFIG, TRACED_LOG_FORMAT

    config = SERVER_LOGGING_CONFIG
    handler = config["handlers"][config["loggers"]["bentoml"]["handlers"][0]]
    assert config["loggers"]["bentoml"]["handlers"] == ["tracehandler"] and config["loggers"]["bentoml"]["propagate"] is False
    assert handler["class"] == "logging.StreamHandler" and handler["filters"] == ["tracing"]
    assert config["formatters"][handler["formatter"]] == {"format": TRACED_LOG_FORMAT, "datefmt": DATE_FORMAT}
    assert TRACED_LOG_FORMAT == "%(asctime)s %(levelname_bracketed)s %(component)s %(message)s%(trace_msg)s"
    assert DATE_FORMAT == "%Y-%m-%dT%H:%M:%S%z"


async def access_lines(middleware_class, stream: io.StringIO, path: str = "/segment", status: int = 200) -> list[str]:
    async def app(scope, receive, send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        await send({"type": "http.response.body", "body": b"}"})

    middleware = middleware_class(app, has_request_content_length=True, has_request_content_type=True,
                                  has_response_content_length=True, has_response_content_type=True, skip_paths=["/health"])
    scope = {**SCOPE, "path": path, "scheme": "http", "client": ("10.0.0.7", 4242),
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]}
    sent = await call(middleware, scope)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body", "http.response.body"]
    lines = stream.getvalue().splitlines()
    stream.seek(0)
    stream.truncate()
    return [re.sub(r" \d+\.\d{3}ms$", " <latency>ms", line) for line in lines]


def test_access_log_writes_bentomls_line() -> None:
    """The same line as BentoML's AccessLogMiddleware, written directly under BentoML's server logging and
    through the logger when the set-up differs (a handler of ops' own); none for a skipped path."""
    from bentoml._internal.server.http.access import AccessLogMiddleware

    stream = io.StringIO()
    handler, saved = server_logging(stream)
    try:
        theirs = asyncio.run(access_lines(AccessLogMiddleware, stream))
        ours = asyncio.run(access_lines(bentoml_fixes.AccessLog, stream))
        assert len(theirs) == 1 and ours == theirs, (ours, theirs)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[INFO\] \[.*\] 10\.0\.0\.7:4242 "
                            r"\(scheme=http,method=POST,path=/segment,type=application/json,length=2\) "
                            r"\(status=200,type=application/json,length=2\) <latency>ms", ours[0]), ours[0]
        assert asyncio.run(access_lines(bentoml_fixes.AccessLog, stream, status=404)) == asyncio.run(
            access_lines(AccessLogMiddleware, stream, status=404))
        assert asyncio.run(access_lines(bentoml_fixes.AccessLog, stream, "/healthz")) == []  # "/health" skipped, as theirs
        assert asyncio.run(access_lines(AccessLogMiddleware, stream, "/healthz")) == []
        records: list[logging.LogRecord] = []
        own = logging.Handler()
        own.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("bentoml.access").addHandler(own)  # not BentoML's set-up alone: through the logger
        try:
            assert asyncio.run(access_lines(bentoml_fixes.AccessLog, stream)) == theirs
        finally:
            logging.getLogger("bentoml.access").removeHandler(own)
        assert len(records) == 1 and records[0].name == "bentoml.access" and records[0].levelno == logging.INFO
        assert theirs[0].endswith("] " + re.sub(r" \d+\.\d{3}ms$", " <latency>ms", records[0].getMessage()))
        logging.getLogger("bentoml.access").setLevel(logging.WARNING)
        assert asyncio.run(access_lines(bentoml_fixes.AccessLog, stream)) == []  # the logger's level still rules
    finally:
        restore_logging(saved)


def metric_samples(registry: prometheus_client.CollectorRegistry, namespace: str) -> dict[tuple, float]:
    """Samples by (name without the namespace, labels), times left out (timestamps, duration sums)."""
    out = {}
    for metric in registry.collect():
        for sample in metric.samples:
            name = sample.name.removeprefix(namespace)
            if "timestamp" in name or name.endswith("duration_seconds_sum") or name.endswith("_created"):
                out[(name, tuple(sorted(sample.labels.items())))] = float(sample.value > 0)
                continue
            if name.endswith("duration_seconds_bucket") and sample.labels["le"] != "+Inf":
                continue  # how long a request took is not the same twice
            out[(name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_traffic_metrics_count_what_bentomls_middleware_counts() -> None:
    """TrafficMetrics (BentoML's RunnerTrafficMetricsMiddleware, children cached) records the same samples
    as BentoML's own over the same requests: totals and durations per endpoint and status, in-progress back
    to 0, the last request's time; /metrics not counted; websocket scopes go to BentoML's code."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    async def app(scope, receive, send) -> None:
        status = 404 if scope["path"] == "/nope" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    def run(cls, namespace: str) -> dict[tuple, float]:
        registry = prometheus_client.CollectorRegistry()
        client = type("Client", (), {k: staticmethod(functools.partial(getattr(prometheus_client, k), registry=registry))
                                     for k in ("Histogram", "Counter", "Gauge", "Summary")})
        middleware = cls(app, namespace=namespace, skip_paths=["/healthz"])
        middleware._setup(metrics_client=client, duration_buckets=(0.5, 1.0, 5.0))

        async def requests() -> None:
            for path in ("/segment", "/segment", "/nope", "/metrics", "/healthz", "/segment"):
                sent = await call(middleware, {**SCOPE, "path": path})
                assert sent[0]["status"] in (200, 404) and len(sent) == 3

        asyncio.run(requests())
        return metric_samples(registry, namespace)

    theirs = run(RunnerTrafficMetricsMiddleware, "theirs")
    ours = run(bentoml_fixes.traffic_metrics_class(), "ours")
    assert ours == theirs
    totals = {dict(k[1])["endpoint"] + ":" + dict(k[1])["http_response_code"]: v
              for k, v in ours.items() if k[0] == "_request_total"}
    assert {k: v for k, v in totals.items() if v} == {"/segment:200": 3, "/nope:404": 1, "/healthz:200": 1}
    assert issubclass(bentoml_fixes.traffic_metrics_class(), RunnerTrafficMetricsMiddleware)


def test_bentoml_traffic_metrics_look_up_children_per_request() -> None:
    """Upstream (bentoml 1.4.39): RunnerTrafficMetricsMiddleware calls `labels(...)` per request, inside its
    http path. If it caches them itself one day, TrafficMetrics can go."""
    import inspect as inspect_

    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    source = inspect_.getsource(RunnerTrafficMetricsMiddleware.__call__)
    assert source.count(".labels(") >= 4 and "track_inprogress()" in source


def test_request_context_sets_what_bentomls_context_middleware_sets() -> None:
    """RequestContext against BentoML's ContextMiddleware: the request (its headers as metadata) and a
    fresh response context while the app runs, request and trace ids in the scope, a request's temporary
    directory released, the context variables reset after."""
    from _bentoml_impl.server.app import ContextMiddleware
    from bentoml._internal.context import ServiceContext, request_tempdir_pool

    context = ServiceContext()

    def run(cls) -> dict:
        seen: dict = {}

        async def app(scope, receive, send) -> None:
            seen["path"] = context.request.url.path
            seen["metadata"] = dict(context.request.metadata)
            seen["fresh"] = type(context.response).__name__, context.response.status_code, len(context.response.cookies)
            context.response.status_code = 201
            seen["temp"] = context.temp_dir
            seen["ids"] = "request_id" in scope and "trace_id" in scope
            await answer(scope, receive, send)

        scope = {**SCOPE, "headers": [(b"x-a", b"1")], "query_string": b"", "scheme": "http", "server": ("h", 80)}
        sent = asyncio.run(call(cls(app, context=context), scope))
        assert sent[0]["status"] == 200
        with pytest.raises(LookupError):
            context.request  # noqa: B018  (reset after the request)
        seen["released"] = seen["temp"] in request_tempdir_pool._pool  # type: ignore[attr-defined]
        seen.pop("temp")
        return seen

    theirs, ours = run(ContextMiddleware), run(bentoml_fixes.RequestContext)
    assert ours == theirs and ours["released"] and ours["ids"] and ours["metadata"] == {"x-a": "1"}
    assert ours["fresh"] == ("ResponseContext", 200, 0)


def test_bentoml_context_middleware_enters_in_request() -> None:
    """Upstream (bentoml 1.4.39): ContextMiddleware enters `ServiceContext.in_request`, which does what
    RequestContext does. If either changes, compare them again (the test above) and revisit."""
    import hashlib
    import inspect as inspect_

    from _bentoml_impl.server.app import ContextMiddleware
    from bentoml._internal.context import ServiceContext

    assert "with self.context.in_request(req)" in inspect_.getsource(ContextMiddleware.__call__)
    source = inspect_.getsource(ServiceContext.in_request)
    for step in ("request.metadata = request.headers", "request_id=trace_context.request_id", "_request_var.set(request)",
                 "_response_var.set(ServiceContext.ResponseContext())", "request_tempdir_pool.release(request.state.temp_dir)"):
        assert step in source, step
    assert hashlib.sha256(source.encode()).hexdigest()[:12] == IN_REQUEST_SOURCE, "ServiceContext.in_request changed: revisit RequestContext"


def test_bentoml_reads_the_api_arguments_with_a_deprecated_model_fields() -> None:
    """Upstream (bentoml 1.4.39, pydantic 2.11+): `api_endpoint` reads `input_data.model_fields` on the
    instance, which warns on every request. With `plain_fields` the instance answers the class's fields
    without a warning; the class's own `model_fields` is pydantic's."""
    import inspect as inspect_
    import warnings

    from _bentoml_impl.server.app import ServiceAppFactory

    assert "input_data.model_fields" in inspect_.getsource(ServiceAppFactory.api_endpoint)
    service = two_api_service()
    spec = service.apis["alpha"].input_spec
    with pytest.warns(DeprecationWarning, match="model_fields"):
        spec(text="x").model_fields  # noqa: B018
    bentoml_fixes.plain_fields(service)
    data = spec(text="x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.model_fields is spec.__pydantic_fields__ and list(data.model_fields) == ["text"]
    assert spec.model_fields == spec.__pydantic_fields__ and spec.model_json_schema()["required"] == ["text"]


def two_api_service():
    @bentoml.service(name="two-apis")
    class TwoApis:
        @bentoml.api(route="/zeta")
        def zeta(self, text: str = "z") -> str:
            return text

        @bentoml.api(route="/alpha")
        def alpha(self, text: str) -> str:
            return text.upper()

    return TwoApis


def test_bentoml_builds_the_local_caller_on_every_access() -> None:
    """Upstream behaviour worked around (bentoml 1.4.39): `APIMethod.__get__` makes a new local caller per
    access (per request). Patched, it is built once per instance and API, and calls the same function."""
    service = two_api_service()
    instance = service.inner()
    api = service.apis["zeta"]
    bentoml_get = bentoml_fixes.original("APIMethod.__get__")
    assert bentoml_get(api, instance, service.inner).local is not bentoml_get(api, instance, service.inner).local, (
        f"bentoml {bentoml.__version__} caches the API's local caller now: drop api_method_get")
    first, again = (bentoml_fixes.api_method_get(api, instance, service.inner) for _ in range(2))
    assert first.local is again.local and first is again
    assert first() == bentoml_get(api, instance, service.inner).local() == "z"  # the Field default filled in as BentoML does
    assert first.local("given") == "given"
    assert bentoml_fixes.api_method_get(api, None, service.inner) is api


def test_bentoml_routes_put_the_apis_last_and_ours_put_them_first() -> None:
    """Upstream (bentoml 1.4.39): the ~10 system routes come before the APIs. Patched: the hot API paths first,
    then the other APIs, then the rest, none lost."""
    from _bentoml_impl.server.app import ServiceAppFactory

    service = two_api_service()
    service.inject_config()
    factory = ServiceAppFactory(service, is_main=True)
    theirs = bentoml_fixes.original("ServiceAppFactory.routes").fget(factory)
    paths = [getattr(r, "path", None) for r in theirs]
    assert min(paths.index("/zeta"), paths.index("/alpha")) >= 3 and "/readyz" in paths[:3], paths
    ours = bentoml_fixes.api_routes_first(theirs, set(service.apis), ("/alpha",))
    assert [r.path for r in ours[:2]] == ["/alpha", "/zeta"]
    assert sorted(map(id, ours)) == sorted(map(id, theirs))


def test_response_headers_are_bentomls() -> None:
    """Upstream (bentoml 1.4.39): `_add_response_headers` reads its format through simple_di on every call;
    ours reads it once and sets the same headers."""
    import inspect as inspect_

    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.context import trace_context
    from simple_di.providers import Provider
    from starlette.responses import Response

    bentoml_headers = bentoml_fixes.original("ServiceAppFactory._add_response_headers")
    injected = inspect_.signature(inspect_.unwrap(bentoml_headers)).parameters["logging_format"].default
    assert isinstance(injected, Provider), "BentoML no longer injects the format per call: drop response_headers"
    service = tiny_service()
    service.inject_config()
    factory = ServiceAppFactory(service, is_main=True)
    trace_context.request_id = 12345
    try:
        theirs, ours = Response(b""), Response(b"")
        bentoml_headers(factory, theirs)
        bentoml_fixes.response_headers(factory, ours)
    finally:
        trace_context.request_id = None
    assert dict(ours.headers) == dict(theirs.headers) and "x-bentoml-request-id" in ours.headers


def test_bentoml_sends_a_whole_body_in_three_messages_and_ours_in_two() -> None:
    """Upstream (bentoml 1.4.39): IterableResponse sends a body held in memory as a chunk with `more_body`
    and an empty last chunk. Ours sends the same bytes and headers as one last chunk, runs the background
    tasks, and leaves a generator's body (a stream) to BentoML's code."""
    from _bentoml_sdk.io_models import IterableResponse
    from starlette.background import BackgroundTask

    theirs_call = bentoml_fixes.original("IterableResponse.__call__")
    ran: list[str] = []

    def response(content):
        return IterableResponse(content, headers={"content-length": "5"}, media_type="application/json",
                                background=BackgroundTask(ran.append, "done"))

    async def sent(call, content) -> list[dict]:
        out: list[dict] = []

        async def send(message: dict) -> None:
            out.append(message)

        await call(response(content), SCOPE, None, send)
        return out

    theirs = asyncio.run(sent(theirs_call, (b'{"a":', b"1}")))
    assert [(m["type"], m.get("body"), m.get("more_body")) for m in theirs] == [
        ("http.response.start", None, None), ("http.response.body", b'{"a":', True),
        ("http.response.body", b"1}", True), ("http.response.body", b"", False)], "IterableResponse changed: revisit note 7"
    for content in ((b'{"a":', b"1}"), [b'{"a":', memoryview(b"1}")]):
        ours = asyncio.run(sent(bentoml_fixes.iterable_response_call, content))
        assert ours[0] == theirs[0] and [(m["body"], m["more_body"]) for m in ours[1:]] == [(b'{"a":1}', False)]
    streamed = asyncio.run(sent(bentoml_fixes.iterable_response_call, (c for c in (b'{"a":', b"1}"))))
    assert streamed == theirs
    assert ran == ["done"] * 4
    bentoml_fixes.install()
    assert IterableResponse.__call__ is bentoml_fixes.iterable_response_call


def test_multiprocess_values_check_the_pid_without_a_system_call(tmp_path) -> None:
    """Upstream (prometheus_client 0.26, which BentoML's multiprocess metrics use): every update of a value
    calls `os.getpid()`. With `cache_metrics_pid` they check with `cached_pid` instead, count the same, and a
    forked child writes to its own file as before."""
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, sys
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
        import prometheus_client
        from prometheus_client import multiprocess, values
        from serving import bentoml_fixes
        import inspect
        counter = prometheus_client.Counter("t_requests", "requests", ["endpoint"])
        child = counter.labels("/segment")
        child.inc()
        if sys.argv[1] == "cached":
            assert bentoml_fixes.cache_metrics_pid() and bentoml_fixes.cache_metrics_pid()
        value = type(child._value)
        check = value._MmapedValue__check_for_pid_change
        ident = check.__closure__[check.__code__.co_freevars.index("process_identifier")].cell_contents
        per_update = all("self.__check_for_pid_change()" in inspect.getsource(getattr(value, m)) for m in ("inc", "set"))
        print({{os.getpid: "getpid", bentoml_fixes.cached_pid: "cached"}}.get(ident, repr(ident)) + ("-per-update" if per_update else ""))
        for _ in range(10):
            child.inc()
        pid = os.fork()
        if pid == 0:  # the child's updates go to its own file, as prometheus_client's own check does it
            child.inc(100)
            os._exit(0)
        os.waitpid(pid, 0)
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        print(registry.get_sample_value("t_requests_total", {{"endpoint": "/segment"}}))
        print(len([f for f in os.listdir({str(tmp_path)!r}) if f.startswith("counter_")]))
    """)

    def run(mode: str) -> list[str]:
        for f in tmp_path.iterdir():
            f.unlink()
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=120,
                             cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()

    check, total, files = run("plain")
    assert check == "getpid-per-update", f"prometheus_client's values no longer call os.getpid per update ({check}): drop cache_metrics_pid"
    assert (total, files) == ("111.0", "2")
    assert run("cached") == ["cached-per-update", "111.0", "2"]
