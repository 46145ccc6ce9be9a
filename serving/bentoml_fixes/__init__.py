"""Work-arounds for BentoML 1.4's request path (written against bentoml 1.4.39), all in this one module.

Measured here under 100 concurrent callers (issue "The service under load"), the 100-client p99 was
garbage-collection pauses of 0.3-0.4 s, and BentoML's own request path cost 10-20x a raw ASGI app:

1. `bentoml._internal.server.http.traffic.TimeoutMiddleware` schedules `loop.call_later(timeout, ...)`
   for every request and never cancels it, so ~21 tracked objects per request (an OpenTelemetry span
   among them) live for `traffic.timeout` (60 s): at 2,000 req/s that is millions of objects for every
   full collection to walk. `BoundedTimeout` keeps its behaviour (504 when no response has started
   within the timeout; the handler's task is cancelled) and drops the timer as soon as the response
   starts or the request ends. It sits where BentoML's sits, outside our middleware, so its 504 is
   written in the service's error shape here (BentoML's request metrics still count it).
2. `_bentoml_impl.server.app.ServiceAppFactory.middlewares` always adds OpenTelemetry's ASGI middleware,
   which opens 5 spans per request (35-48% of the request's CPU) even when no exporter is configured
   (`tracing.exporter_type` unset, the default), so nothing can ever read them. Without an exporter the
   middleware is left out; with one, it stays exactly as BentoML sets it up.
3. `freeze_heap()`: after the models are loaded, the ~480k objects of the mlflow/BentoML/pandas imports
   and the models move to the permanent generation (`gc.freeze()`), so full passes walk only what
   requests allocate. Called again after a hot reload has swapped a model in.

4. Per request, BentoML re-derives what never changes while it serves (measured in-process, as shares
   of the app's CPU for one /segment call): `APIMethod.__get__` builds the API's local caller, with
   `inspect.signature` and `functools.wraps`, on every access, i.e. every request (~8%),
   `ServiceAppFactory._add_response_headers` resolves two settings through simple_di's
   `@inject` (~4%), and Starlette's router tries BentoML's ~20 system routes (probes, docs, metrics,
   static files) before the API routes (~3%). The local caller is built once per service instance and
   API, the two settings read once per app, and the API routes (exact POST paths, which no system
   route shares) go first, the model endpoints first of all.

5. Three of BentoML's middlewares redo per request what could be done once (measured in-process, as
   shares of the app's CPU for one /segment call): `AccessLogMiddleware` (~13%) wraps `receive` for
   websocket messages on every http request and logs through `Logger.info`, whose `findCaller` walks
   the stack for a file name and line the access line does not show; `RunnerTrafficMetricsMiddleware`
   (~5%), which on a runner-less 1.4 service records `bentoml_service_request_total`,
   `_request_duration_seconds`, `_request_in_progress` and `_last_request_timestamp_seconds` (none of
   which our own counters duplicate: ours count model calls and rejections), looks up each metric's
   labelled child with keyword labels on every request (4 lookups) and tracks the in-progress gauge
   with a context-manager object; `ContextMiddleware` (~5%) enters `ServiceContext.in_request`
   through a generator context manager. `AccessLog`, `TrafficMetrics` and `RequestContext` take their
   places: the same log line through the same logger (its handlers, filters and format untouched;
   while they are BentoML's server logging set-up, `ServerLogLine` writes the line that set-up would
   write without a LogRecord, filter and formatter pass: the line costs ~6% then, its write included), the same
   metrics (`TrafficMetrics` is BentoML's class, its children looked up once per endpoint
   and status), the same request context. Websocket scopes go to BentoML's own classes.

6. `ServiceAppFactory.api_endpoint` reads the API's arguments with `input_data.model_fields`, on the
   instance: pydantic 2.11+ deprecates that and makes a warning object and a `warnings.warn` call on
   every request (~4%). The API input models get a `model_fields` for instances that answers the
   class's fields without the warning (`plain_fields`, applied when the factory lists its routes).

7. `_bentoml_sdk.io_models.IterableResponse`, the response of every API answering a model (JSON),
   sends its body, already whole in memory, as a chunk with `more_body` and then an empty last chunk:
   three ASGI messages, each through every middleware's `send` and uvicorn's. `iterable_response_call`
   sends a body held in a tuple or list as one last chunk (two messages, the same bytes and headers);
   any other iterable (a generator: a stream) goes BentoML's way.

8. BentoML serves its metrics with prometheus_client in multiprocess mode, whose values (0.26) call
   `os.getpid()` on every update to notice a fork: 8 updates per /segment request (6 of BentoML's
   traffic metrics, 2 of ours), each a system call (~8% of the worker's CPU under load, the largest
   single item). `cache_metrics_pid()` gives those values a pid read once and again in the child
   after every fork (`os.register_at_fork`), the case the check exists for.

`install()` patches the factory's `middlewares` and `routes` properties, its response headers,
`APIMethod.__get__` and `IterableResponse.__call__` once per process, before BentoML builds the app.
tests/serving/test_bentoml_fixes.py fails when a BentoML upgrade changes the behaviour worked around
here (the timer still leaks, the middlewares are still added, the caller is still rebuilt per access,
the routes still put the APIs last, the headers' settings are still injected per call, the three
middlewares of note 5 still do what their replacements do, the API arguments are still read with the
deprecated `model_fields`, a whole body still goes out in three messages, prometheus_client's values
still call `os.getpid()` per update), so each patch is revisited then.
Set ECOMLAB_BENTOML_FIXES=off to serve with BentoML's own request path (the bench's "before" variant).
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

log = logging.getLogger("ecomlab.serving")

SWITCH = "ECOMLAB_BENTOML_FIXES"
_original: Any = None  # BentoML's own `ServiceAppFactory.middlewares` property, once patched
ORIGINALS: dict[str, Any] = {}  # BentoML's own attributes this module replaced, by "Class.attribute"


def enabled() -> bool:
    return os.environ.get(SWITCH, "on").strip().lower() not in ("off", "0", "false", "no")


from serving.bentoml_fixes.middlewares import (  # noqa: F401 - re-exported: the patches and tests use them here
    AccessLog, BoundedTimeout, RequestContext, ServerLogLine, traffic_metrics_class, tracing_exporter,
)


def rework(middlewares: list[Middleware]) -> list[Middleware]:
    """BentoML's middleware list with the leaking timeout replaced, unread tracing left out, and the
    access log, traffic metrics and request context made leaner (note 5)."""
    from _bentoml_impl.server.app import ContextMiddleware
    from bentoml._internal.server.http.access import AccessLogMiddleware
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
    from bentoml._internal.server.http.traffic import TimeoutMiddleware
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    tracing = tracing_exporter() is not None
    lean = {TimeoutMiddleware: BoundedTimeout, AccessLogMiddleware: AccessLog,
            RunnerTrafficMetricsMiddleware: traffic_metrics_class(), ContextMiddleware: RequestContext}
    out = []
    for m in middlewares:
        if m.cls is OpenTelemetryMiddleware and not tracing:
            continue
        out.append(Middleware(lean[m.cls], *m.args, **m.kwargs) if m.cls in lean else m)
    return out


def original(name: str) -> Any:
    """BentoML's own attribute ("Class.attribute"), whether or not this module has replaced it."""
    from _bentoml_impl.server.app import ServiceAppFactory
    from _bentoml_sdk.io_models import IterableResponse
    from _bentoml_sdk.method import APIMethod

    if name in ORIGINALS:
        return ORIGINALS[name]
    cls, attribute = name.split(".")
    return vars({"ServiceAppFactory": ServiceAppFactory, "APIMethod": APIMethod, "IterableResponse": IterableResponse}[cls])[attribute]


def bentoml_middlewares(factory: Any) -> list[Middleware]:
    """The middleware list BentoML itself gives `factory` (a ServiceAppFactory), patched or not."""
    from _bentoml_impl.server.app import ServiceAppFactory

    return (_original or ServiceAppFactory.middlewares).fget(factory)


_hot_routes: tuple[str, ...] = ()  # paths tried first of all (the model endpoints), set by install()


def api_routes_first(routes: list[Any], api_names: set[str], hot: tuple[str, ...] = ()) -> list[Any]:
    """BentoML's routes with the API endpoints (POST routes named after an API) moved to the front: the
    `hot` paths first, in that order, then the other APIs in BentoML's order, then everything else."""
    api = [r for r in routes if getattr(r, "name", None) in api_names and getattr(r, "methods", None) == {"POST"}]
    rank = {path: i for i, path in enumerate(hot)}
    api.sort(key=lambda r: rank.get(getattr(r, "path", None), len(rank)))  # stable: the rest keep their order
    return api + [r for r in routes if not any(r is a for a in api)]


class InstanceFields:
    """`model_fields` read on an instance of an API's input model: the class's fields, as pydantic answers,
    without its deprecation warning (see note 6)."""

    def __get__(self, instance: Any, owner: type) -> Any:
        return owner.__pydantic_fields__  # type: ignore[attr-defined]


def plain_fields(service: Any) -> None:
    """Give each API's input model of `service` (a bentoml Service) the warning-free `model_fields` (note 6)."""
    for api in service.apis.values():
        spec = api.input_spec
        if "model_fields" not in vars(spec):
            type.__setattr__(spec, "model_fields", InstanceFields())


def routes(self: Any) -> list[Any]:
    """`ServiceAppFactory.routes` with the API routes first (note 4); the input models made warning-free (note 6)."""
    plain_fields(self.service)
    return api_routes_first(ORIGINALS["ServiceAppFactory.routes"].fget(self), set(self.service.apis), _hot_routes)


_IN_MEMORY = (type(iter(())), type(iter([])))  # iterators over a body already whole in memory


async def iterable_response_call(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """`IterableResponse.__call__` with a body held in a tuple or list sent as one message (see note 7)."""
    if type(self.body_iterator) not in _IN_MEMORY:
        await original("IterableResponse.__call__")(self, scope, receive, send)
        return
    await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
    await send({"type": "http.response.body", "body": b"".join(self.body_iterator), "more_body": False})
    if self.background is not None:
        await self.background()


def api_method_get(self: Any, instance: Any, owner: type) -> Any:
    """`APIMethod.__get__` with the local caller built once per service instance and API (see note 4):
    BentoML builds it on every attribute access, i.e. on every request, with `inspect.signature`."""
    if instance is None:
        return self
    calls = instance.__dict__.setdefault("_ecomlab_local_calls", {})
    local_caller = calls.get(self.name)
    if local_caller is None:
        local_caller = calls[self.name] = self._local_call(instance)
    func = getattr(proxy, self.name) if (proxy := getattr(instance, "__self_proxy__", None)) else local_caller
    func.local = local_caller
    return func


def response_headers(self: Any, resp: Any) -> None:
    """`ServiceAppFactory._add_response_headers` with its two settings read once per app (see note 4)."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.context import trace_context

    cached = self.__dict__.get("_ecomlab_headers")
    if cached is None:
        cached = self.__dict__["_ecomlab_headers"] = (
            f"BentoML Service/{self.service.name}", BentoMLContainer.logging_formatting.get(),
            bool(BentoMLContainer.http.response.trace_id.get()),
        )
    server, logging_format, with_trace_id = cached
    resp.headers.update({"Server": server})
    if trace_context.request_id is not None:
        resp.headers["X-BentoML-Request-ID"] = format(trace_context.request_id, logging_format["span_id"])
    if with_trace_id and trace_context.trace_id is not None:
        resp.headers["X-BentoML-Trace-ID"] = format(trace_context.trace_id, logging_format["trace_id"])


def install(hot_routes: tuple[str, ...] = ()) -> bool:
    """Patch BentoML's service app factory (once per process); False when switched off. `hot_routes`:
    the API paths the router tries first (the busiest)."""
    global _original, _hot_routes
    if not enabled():
        return False
    if hot_routes:
        _hot_routes = tuple(hot_routes)
    if _original is not None:
        return True
    from _bentoml_impl.server.app import ServiceAppFactory
    from _bentoml_sdk.io_models import IterableResponse
    from _bentoml_sdk.method import APIMethod

    _original = ServiceAppFactory.middlewares
    ORIGINALS.update({
        "IterableResponse.__call__": IterableResponse.__call__,
        "ServiceAppFactory.middlewares": ServiceAppFactory.middlewares, "ServiceAppFactory.routes": ServiceAppFactory.routes,
        "ServiceAppFactory._add_response_headers": ServiceAppFactory._add_response_headers,
        "APIMethod.__get__": APIMethod.__get__,
    })
    ServiceAppFactory.middlewares = property(lambda self: rework(bentoml_middlewares(self)))  # type: ignore[method-assign,assignment]
    ServiceAppFactory.routes = property(routes)  # type: ignore[method-assign,assignment]
    ServiceAppFactory._add_response_headers = response_headers  # type: ignore[method-assign]
    APIMethod.__get__ = api_method_get  # type: ignore[method-assign,assignment]
    IterableResponse.__call__ = iterable_response_call  # type: ignore[method-assign]
    return True


def access_log(on: bool) -> None:
    """BentoML's access log on or off (`access_log` in configs/serve.yaml), read when it builds the app."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.api_server_config.logging.access.enabled.set(on)


_pid = [os.getpid()]  # this process's id: set again in the child after a fork


def _forked() -> None:
    _pid[0] = os.getpid()


os.register_at_fork(after_in_child=_forked)


def cached_pid() -> int:
    """This process's id without a system call (see note 8)."""
    return _pid[0]


def cache_metrics_pid() -> bool:
    """prometheus_client's multiprocess values use `cached_pid` for their fork check (see note 8); False
    when they are not in multiprocess mode or already check with another function than `os.getpid`."""
    from prometheus_client import values

    check = getattr(values.ValueClass, "_MmapedValue__check_for_pid_change", None)
    if check is None or "process_identifier" not in check.__code__.co_freevars:
        return False
    cell = check.__closure__[check.__code__.co_freevars.index("process_identifier")]
    if cell.cell_contents is cached_pid:
        return True
    if cell.cell_contents is not os.getpid:
        return False
    _forked()
    cell.cell_contents = cached_pid
    return True


def freeze_heap() -> None:
    """Move every object alive now out of the collector's sight (see the module's note 3)."""
    if enabled():
        gc.collect()
        gc.freeze()
