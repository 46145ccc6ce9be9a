"""The middlewares of `serving.bentoml_fixes` that stand in for BentoML 1.4's own (bentoml 1.4.39): the bounded
timeout, the access log, the traffic metrics and the request context. Why each exists, and the test that
fails when a BentoML upgrade changes what it works around, are in the package's docstring (notes 1, 5, 6, 7).
"""

from __future__ import annotations

import asyncio
import logging
import time
from timeit import default_timer
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_response

log = logging.getLogger("ecomlab.serving")


class BoundedTimeout:
    """BentoML's TimeoutMiddleware without the leaked timer: 504 when no response has started within
    `timeout` seconds (the request's task is cancelled, as BentoML does); nothing is kept once it has.

    One watchdog per app, not one timer per request: a request is noted in a dict (its deadline and
    task) and dropped when its response starts or it ends; while any wait, a sweep runs every `tick`
    seconds (a tenth of the timeout, 0.05-1 s) and cancels the overdue. A 504 thus comes at most one
    tick late. Per request that is a dict insert and delete, against `asyncio.timeout`'s timer-heap
    push and cancel (~4% of the app's CPU for a /segment call)."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self.tick = min(1.0, max(0.05, timeout / 10))
        self.waiting: dict[object, tuple[float, asyncio.Task[Any]]] = {}  # request -> (deadline, task)
        self.expired: set[object] = set()
        self._sweeping: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        key, task = object(), asyncio.current_task()
        assert task is not None
        self.waiting[key] = (loop.time() + self.timeout, task)
        if self._sweeping is None or self._sweeping[0] is not loop:
            self._sweeping = (loop, loop.call_later(self.tick, self.sweep, loop))
        waiting = self.waiting

        async def sending(message: Message) -> None:
            if key in waiting:  # the response starts: BentoML's timeout covers the wait for it only
                del waiting[key]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            if key not in self.expired:
                raise  # cancelled by someone else (the client went away, shutdown): not ours to answer
            self.expired.discard(key)
            task.uncancel()
            message = f"no answer within {self.timeout:g} s (the service's timeout_s)"
            log.warning("timed out %s %s: %s", scope.get("method"), scope.get("path"), message)
            await error_response(504, message, "timeout")(scope, receive, send)
        finally:
            waiting.pop(key, None)
            if key in self.expired:  # overdue, but it ended before the cancellation reached it
                self.expired.discard(key)
                task.uncancel()

    def sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel every request whose response has not started by its deadline; again in a tick while any wait."""
        now = loop.time()
        overdue = [key for key, (deadline, _) in self.waiting.items() if deadline <= now]
        for key in overdue:
            _, task = self.waiting.pop(key)
            self.expired.add(key)
            task.cancel()
        self._sweeping = (loop, loop.call_later(self.tick, self.sweep, loop)) if self.waiting else None


def tracing_exporter() -> str | None:
    """BentoML's configured trace exporter (`tracing.exporter_type`), None when tracing is off."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return BentoMLContainer.tracing.exporter_type.get()


def _described(headers: Any, with_type: bool, with_length: bool) -> str:
    """",type=...,length=..." of a request's or response's raw headers, as BentoML's access line writes them."""
    length = kind = b""
    for key, value in headers:
        if key == b"content-length":
            length = value
        elif key == b"content-type":
            kind = value
    return (f",type={kind.decode()}" if with_type else "") + (f",length={length.decode()}" if with_length else "")


class AccessLog:
    """BentoML's access log line (bentoml 1.4.39 `AccessLogMiddleware`, same arguments) for http
    requests, through the same `bentoml.access` logger, without its per-request `receive` wrapper and
    the logger's stack walk for the caller (see note 5). Websocket scopes go to BentoML's own class."""

    def __init__(self, app: ASGIApp, has_request_content_length: bool = False, has_request_content_type: bool = False,
                 has_response_content_length: bool = False, has_response_content_type: bool = False,
                 skip_paths: Any = ()) -> None:
        from bentoml._internal.server.http.access import AccessLogMiddleware

        self.app = app
        self.request_length, self.request_type = has_request_content_length, has_request_content_type
        self.response_length, self.response_type = has_response_content_length, has_response_content_type
        self.skip_paths = tuple(skip_paths)
        self.logger = logging.getLogger("bentoml.access")
        self.line = ServerLogLine()
        self.bentoml = AccessLogMiddleware(app, has_request_content_length, has_request_content_type,
                                           has_response_content_length, has_response_content_type, skip_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.bentoml(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(self.skip_paths) or not self.logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = default_timer()
        request = f"scheme={scope['scheme']},method={scope.get('method', '')},path={path}"
        if self.request_type or self.request_length:
            request += _described(scope["headers"], self.request_type, self.request_length)
        status = 0
        headers: Any = ()

        async def logged(message: Message) -> None:
            nonlocal status, headers
            kind = message["type"]
            if kind == "http.response.start":
                status, headers = message["status"], message["headers"]
            elif kind == "http.response.body" and not message.get("more_body"):
                latency = max(default_timer() - start, 0) * 1000
                await send(message)
                self.log(scope, request, status, headers, latency)
                return
            await send(message)

        await self.app(scope, receive, logged)

    def log(self, scope: Scope, request: str, status: int, headers: Any, latency: float) -> None:
        client = scope.get("client")
        address = f"{client[0]}:{client[1]}" if client else "_"
        response = f"status={status}"
        if self.response_type or self.response_length:
            response += _described(headers, self.response_type, self.response_length)
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        args = (address, request, response, latency)
        if self.line.write(logger, "%s (%s) (%s) %.3fms" % args):
            return
        # the record BentoML's `logger.info(...)` makes, less the caller lookup
        logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, "%s (%s) (%s) %.3fms", args, None, "access"))


class ServerLogLine:
    """An INFO line of a `bentoml.*` logger written as BentoML's server logging writes it (bentoml 1.4.39
    `SERVER_LOGGING_CONFIG`: one StreamHandler on `bentoml`, its TraceRecordFilter and traced format), without
    the LogRecord, filter and formatter passes (half of an access line's cost), while that is the
    logging set-up and no trace id is current. `write` answers False otherwise: the caller logs as usual.
    The date is formatted once per second (the format shows seconds)."""

    def __init__(self) -> None:
        self.handler: Any = None
        self.second = -1
        self.date = ""

    def usable(self, logger: logging.Logger) -> Any:
        """The handler to write to when `logger`'s records end in BentoML's server handler alone, else None."""
        from bentoml._internal import log as bentoml_log

        parent = logger.parent
        if (logger.handlers or logger.filters or not logger.propagate or logger.disabled or parent is None
                or parent.name != "bentoml" or parent.filters or parent.propagate or parent.disabled
                or len(parent.handlers) != 1 or logging.getLogRecordFactory() is not logging.LogRecord):
            return None
        (handler,) = parent.handlers
        formatter = handler.formatter
        if (type(handler) is not logging.StreamHandler or handler.level > logging.INFO or len(handler.filters) != 1
                or type(handler.filters[0]) is not bentoml_log.TraceRecordFilter or type(formatter) is not logging.Formatter
                or formatter._fmt != bentoml_log.TRACED_LOG_FORMAT or formatter.datefmt != bentoml_log.DATE_FORMAT
                or type(formatter._style) is not logging.PercentStyle or formatter.converter is not time.localtime):
            return None
        return handler

    def write(self, logger: logging.Logger, message: str) -> bool:
        from bentoml._internal import log as bentoml_log
        from bentoml._internal.context import trace_context

        handler = self.handler
        parent = logger.parent
        if (handler is None or logger.handlers or parent is None or parent.handlers != [handler] or len(handler.filters) != 1
                or handler.level > logging.INFO):
            handler = self.handler = self.usable(logger)
            if handler is None:
                return False
        if trace_context.trace_id not in (0, None):
            return False  # the line would carry the trace: the handler's own path writes it
        now = time.time()
        if int(now) != self.second:
            self.second, self.date = int(now), time.strftime(bentoml_log.DATE_FORMAT, time.localtime(now))
        line = f"{self.date} [INFO] [{bentoml_log._component_name()}] {message}{handler.terminator}"
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.flush()
        except RecursionError:
            raise
        except Exception:
            return False  # the handler's own path writes it, and reports the error as it does
        finally:
            handler.release()
        return True


def traffic_metrics_class() -> type:
    """`TrafficMetrics`: BentoML's RunnerTrafficMetricsMiddleware (its metrics, made by its own `_setup`)
    with the http path looking up each labelled child once per endpoint and status (see note 5)."""
    global _traffic_metrics
    if _traffic_metrics is not None:
        return _traffic_metrics
    from bentoml._internal.context import server_context
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    class TrafficMetrics(RunnerTrafficMetricsMiddleware):  # type: ignore[misc]
        MAX_ENDPOINTS = 256  # children cached for this many paths; a scan of random paths is looked up per request

        def _children(self, endpoint: str) -> tuple[Any, dict[int, tuple[Any, Any]]]:
            found = self._cache.get(endpoint)
            if found is None:
                names = {"service_name": server_context.bento_name, "service_version": server_context.bento_version,
                         "runner_name": server_context.service_name}
                found = (self.metrics_request_in_progress.labels(endpoint=endpoint, **names), {})
                if len(self._cache) < self.MAX_ENDPOINTS:
                    self._cache[endpoint] = found
            return found

        def _by_status(self, endpoint: str, statuses: dict[int, tuple[Any, Any]], status: int) -> tuple[Any, Any]:
            found = statuses.get(status)
            if found is None:
                labels = {"endpoint": endpoint, "service_name": server_context.bento_name,
                          "service_version": server_context.bento_version, "http_response_code": status,
                          "runner_name": server_context.service_name}
                found = statuses[status] = (self.metrics_request_total.labels(**labels),
                                            self.metrics_request_duration.labels(**labels))
            return found

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not self._is_setup:
                await super().__call__(scope, receive, send)  # websocket, lifespan, and the first request (set-up)
                return
            endpoint = scope["path"]
            if endpoint == "/metrics":
                await self.app(scope, receive, send)
                return
            if not endpoint.startswith(self._skip):
                self._last.set_to_current_time()
            start = default_timer()
            in_progress, statuses = self._children(endpoint)
            status = 0

            async def counted(message: Message) -> None:
                nonlocal status
                kind = message["type"]
                if kind == "http.response.start":
                    status = message["status"]
                elif kind == "http.response.body" and not message.get("more_body"):
                    total, duration = self._by_status(endpoint, statuses, status)
                    total.inc()
                    duration.observe(max(default_timer() - start, 0))
                await send(message)

            in_progress.inc()
            try:
                await self.app(scope, receive, counted)
            finally:
                in_progress.dec()

        def _setup(self, *args: Any, **kwargs: Any) -> None:
            super()._setup(*args, **kwargs)
            self._cache: dict[str, tuple[Any, dict[int, tuple[Any, Any]]]] = {}
            self._skip = tuple(self.skip_paths)
            self._last = self.metrics_last_request_timestamp.labels(
                service_name=server_context.bento_name, service_version=server_context.bento_version,
                runner_name=server_context.service_name)

    _traffic_metrics = TrafficMetrics
    return TrafficMetrics


_traffic_metrics: type | None = None


class RequestContext:
    """BentoML's ContextMiddleware (bentoml 1.4.39): the request and a fresh response context in
    `ServiceContext`'s context variables for the call, what `ServiceContext.in_request` does, entered
    without its generator context manager (see note 5). Other scopes pass through, as there."""

    def __init__(self, app: ASGIApp, context: Any) -> None:
        from bentoml._internal import context as bentoml_context
        from starlette.requests import Request

        self.app = app
        self.context = context
        self.parts = bentoml_context, Request, context.ResponseContext

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bc, request_class, response_class = self.parts
        request = request_class(scope, receive, send)
        request.metadata = request.headers  # type: ignore[attr-defined]
        scope["request_id"], scope["trace_id"] = bc.trace_context.request_id, bc.trace_context.trace_id
        request_token = bc._request_var.set(request)
        response_token = bc._response_var.set(response_class())
        try:
            await self.app(scope, receive, send)
        finally:
            state = scope.get("state")
            if state and "temp_dir" in state:
                bc.request_tempdir_pool.release(state["temp_dir"])
            bc._request_var.reset(request_token)
            bc._response_var.reset(response_token)
