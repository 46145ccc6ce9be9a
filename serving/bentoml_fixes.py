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

`install()` patches the factory's `middlewares` property once per process, before BentoML builds the
app. tests/serving/test_bentoml_fixes.py fails when a BentoML upgrade changes the behaviour worked
around here (the timer still leaks, the middlewares are still added), so the patch is revisited then.
Set ECOMLAB_BENTOML_FIXES=off to serve with BentoML's own request path (the bench's "before" variant).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_response

log = logging.getLogger("ecomlab.serving")

SWITCH = "ECOMLAB_BENTOML_FIXES"
_original: Any = None  # BentoML's own `ServiceAppFactory.middlewares` property, once patched


def enabled() -> bool:
    return os.environ.get(SWITCH, "on").strip().lower() not in ("off", "0", "false", "no")


class BoundedTimeout:
    """BentoML's TimeoutMiddleware without the leaked timer: 504 when no response has started within
    `timeout` seconds (the request's task is cancelled, as BentoML does); the timer goes once it has."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False
        deadline = asyncio.timeout(self.timeout)

        async def sending(message: Message) -> None:
            nonlocal started
            if not started:
                started = True
                deadline.reschedule(None)  # BentoML's timeout covers the wait for the response's start only
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, sending)
        except TimeoutError:
            if not deadline.expired() or started:
                raise  # the handler's own TimeoutError, not ours
            message = f"no answer within {self.timeout:g} s (the service's timeout_s)"
            log.warning("timed out %s %s: %s", scope.get("method"), scope.get("path"), message)
            await error_response(504, message, "timeout")(scope, receive, send)


def tracing_exporter() -> str | None:
    """BentoML's configured trace exporter (`tracing.exporter_type`), None when tracing is off."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return BentoMLContainer.tracing.exporter_type.get()


def rework(middlewares: list[Middleware]) -> list[Middleware]:
    """BentoML's middleware list with the leaking timeout replaced and unread tracing left out."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    tracing = tracing_exporter() is not None
    out = []
    for m in middlewares:
        if m.cls is TimeoutMiddleware:
            out.append(Middleware(BoundedTimeout, *m.args, **m.kwargs))
        elif m.cls is OpenTelemetryMiddleware and not tracing:
            continue
        else:
            out.append(m)
    return out


def bentoml_middlewares(factory: Any) -> list[Middleware]:
    """The middleware list BentoML itself gives `factory` (a ServiceAppFactory), patched or not."""
    from _bentoml_impl.server.app import ServiceAppFactory

    return (_original or ServiceAppFactory.middlewares).fget(factory)


def install() -> bool:
    """Patch BentoML's service app factory (once per process); False when switched off."""
    global _original
    if not enabled():
        return False
    if _original is not None:
        return True
    from _bentoml_impl.server.app import ServiceAppFactory

    _original = ServiceAppFactory.middlewares
    ServiceAppFactory.middlewares = property(lambda self: rework(bentoml_middlewares(self)))  # type: ignore[method-assign,assignment]
    return True


def access_log(on: bool) -> None:
    """BentoML's access log on or off (`access_log` in configs/serve.yaml), read when it builds the app."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.api_server_config.logging.access.enabled.set(on)


def freeze_heap() -> None:
    """Move every object alive now out of the collector's sight (see the module's note 3)."""
    if enabled():
        gc.collect()
        gc.freeze()
