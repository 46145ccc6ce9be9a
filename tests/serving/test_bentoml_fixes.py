"""serving/bentoml_fixes.py: what it works around is still there in the BentoML we pin (these fail when an
upgrade changes it, so the work-around is revisited), and the replacements keep BentoML's behaviour."""

from __future__ import annotations

import asyncio
import gc
import json

import bentoml
import prometheus_client
import pytest
from starlette.middleware import Middleware

from serving import bentoml_fixes
from serving.bentoml_fixes import BoundedTimeout, rework
from serving.metrics import GcPauses

SCOPE = {"type": "http", "method": "POST", "path": "/segment", "headers": []}


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


def test_access_log_setting_decides_bentomls_access_log_middleware() -> None:
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.server.http.access import AccessLogMiddleware

    service = tiny_service()
    service.inject_config()
    factory = ServiceAppFactory(service, is_main=True)
    try:
        bentoml_fixes.access_log(False)
        assert AccessLogMiddleware not in [m.cls for m in factory.middlewares]
        bentoml_fixes.access_log(True)
        assert AccessLogMiddleware in [m.cls for m in factory.middlewares]
    finally:
        bentoml_fixes.access_log(True)


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
