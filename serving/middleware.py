"""ASGI middleware of the service: answers BentoML cannot give, and every error in one shape.

ErrorShape: every 4xx and 5xx leaves in the shape of serving.errors, counted by endpoint and reason
and logged in one line. MediaTypeGuard: a body a route cannot read is 415. ModelGate: a model endpoint
whose model is not loaded answers 503 with the reason; /readyz, GET /models[/{family}] and GET
/drift[/{family}] answer from the store and the drift windows. FormGuard: a malformed form body is the client's 400, not BentoML's 500.
"""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.answers import model_detail, models_answer
from serving.drift import DriftMonitor
from serving.errors import ApiError, error_response, reshape
from serving.metrics import Metrics
from serving.models.registry import FAMILIES
from serving.store import ModelStore, ModelUnavailable

READY_FIELDS = ("family", "name", "alias", "version", "status", "error")
PROBES = frozenset({"/healthz", "/livez", "/readyz"})  # a probe's 503 is its answer, not a rejected request
log = logging.getLogger("ecomlab.serving")


def _is(scope: Scope, method: str) -> bool:
    return scope["type"] == "http" and scope.get("method") == method


class ErrorShape:
    """Every 4xx and 5xx in the one error shape, counted on /metrics by endpoint and reason, and logged
    in one line: a client's mistake at WARNING, a server fault at ERROR.

    The outermost of ours, so it sees the answers of BentoML, Starlette's routing and our middleware alike.
    An endpoint outside `endpoints` is counted as "other", so a scan of random paths adds no series.
    """

    metrics: Metrics | None = None  # this worker's counters, set by the service instance

    def __init__(self, app: ASGIApp, endpoints: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.endpoints = endpoints

    def endpoint(self, path: str) -> str:
        if path in self.endpoints:
            return path
        for prefix in ("/models/", "/drift/"):
            if path.startswith(prefix):
                return prefix + "{family}"
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") == "/metrics" and ErrorShape.metrics is not None:
            ErrorShape.metrics.scrape()  # GC pauses noted since the last model request and drift gauges, before BentoML renders
        start: Message | None = None
        chunks: list[bytes] = []

        async def shaped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await self.answer(scope, start, b"".join(chunks), send)

        await self.app(scope, receive, shaped)

    async def answer(self, scope: Scope, start: Message, body: bytes, send: Send) -> None:
        status = int(start["status"])
        shaped = reshape(status, body)
        error = shaped["error"]
        new = json.dumps(shaped).encode()
        if scope.get("method") == "HEAD":
            new = b""
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(new)).encode())]
        endpoint = self.endpoint(scope.get("path", ""))
        if endpoint not in PROBES:
            if ErrorShape.metrics is not None:
                ErrorShape.metrics.reject(endpoint, error["code"], status)
            level = logging.ERROR if status >= 500 else logging.WARNING
            log.log(level, "rejected %s %s: %d %s: %s", scope.get("method"), endpoint, status, error["code"], error["message"][:300])
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": new, "more_body": False})


class MediaTypeGuard:
    """A POST whose body the route cannot read is 415 before BentoML reads it.

    BentoML parses a body of any media type it does not know (text/plain, say) as JSON. JSON routes take
    application/json (or a +json type; no Content-Type is read as JSON, like BentoML's own client sends
    nothing else), form routes multipart/form-data.
    """

    def __init__(self, app: ASGIApp, json_routes: frozenset[str], form_routes: frozenset[str]) -> None:
        self.app = app
        self.json_routes = json_routes
        self.form_routes = form_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if _is(scope, "POST") and (path in self.json_routes or path in self.form_routes):
            given = _content_type(scope)
            if path in self.form_routes:
                wanted, ok = "multipart/form-data", given == b"multipart/form-data"
            else:
                wanted, ok = "application/json", given in (b"", b"application/json") or given.endswith(b"+json")
            if not ok:
                shown = given.decode("latin-1") or "no Content-Type"
                message = f"{path} takes {wanted}, not {shown}"
                await error_response(415, message, fields=[{"field": "Content-Type", "message": message}])(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ModelGate:
    """A POST to a model route whose family has no model answers 503 + Retry-After with the reason;
    GET /readyz answers with its detail (models, reasons, registry error); GET /models and
    GET /models/{family} answer from the store, GET /drift and /drift/{family} from the drift windows
    (BentoML's API routes are POST only).

    BentoML renders every 5xx a handler raises as "An unexpected error has occurred", so the
    handler's error cannot say why (registry unreachable, alias missing, not servable...).
    """

    ROUTES: dict[str, str] = {entry.route: entry.name for entry in FAMILIES.values()}
    store: ModelStore | None = None  # this worker's store, set by the service instance
    drift: DriftMonitor | None = None  # this worker's drift windows, set by the service instance

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = ModelGate.store
        path = scope.get("path", "")
        if store is not None and _is(scope, "POST") and path in self.ROUTES:
            family = self.ROUTES[path]
            try:
                store.get(family)
            except ModelUnavailable as exc:
                retry = str(max(1, round(store.settings.reload_interval_s or 30)))
                message = f"{family} model unavailable: {exc}"
                response = error_response(503, message, "model_unavailable", headers={"retry-after": retry})
                await response(scope, receive, send)
                return
        if store is not None and _is(scope, "GET") and (path in ("/readyz", "/models") or path.startswith("/models/")):
            await self.read(store, path)(scope, receive, send)
            return
        if store is not None and ModelGate.drift is not None and _is(scope, "GET") and (path == "/drift" or path.startswith("/drift/")):
            await self.read_drift(store, ModelGate.drift, path)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @classmethod
    def read(cls, store: ModelStore, path: str) -> JSONResponse:
        if path == "/readyz":
            return cls.readiness(store)
        if path == "/models":
            return JSONResponse(models_answer(store).model_dump())
        try:
            return JSONResponse(model_detail(store, path.removeprefix("/models/")).model_dump())
        except ApiError as exc:
            return exc.response()

    @staticmethod
    def read_drift(store: ModelStore, drift: DriftMonitor, path: str) -> JSONResponse:
        """GET /drift (every configured model) or /drift/{family}: 404 for a family the service does not serve."""
        if path == "/drift":
            return JSONResponse(drift.answer(store).model_dump())
        family = path.removeprefix("/drift/")
        if family not in {m.family for m in store.settings.models}:
            known = sorted(m.family for m in store.settings.models)
            return ApiError(f"family: no model {family!r} is served (configured: {known})", status=404).response()
        return JSONResponse(drift.answer(store, family).model_dump())

    @staticmethod
    def readiness(store: ModelStore) -> JSONResponse:
        """200 when every configured model serves (a registry error is still shown), else 503 with the error shape's key too."""
        ok, reasons = store.ready()
        detail = {
            "ready": ok,
            "reasons": reasons,
            "registry_error": store.registry_error,
            "models": [{k: m[k] for k in READY_FIELDS} for m in store.describe()],
        }
        if not ok:
            detail = {"error": {"code": "not_ready", "message": "not ready: " + "; ".join(reasons), "fields": []}, **detail}
        return JSONResponse(detail, 200 if ok else 503)


class FormGuard:
    """A form body is parsed once before BentoML sees it, so a bad one is the client's 400.

    BentoML answers a malformed multipart body with 500, and takes a text value in a file field for a
    URL to download. Runs inside BodyLimit, so the buffered body is already bounded.
    """

    FORMS = (b"multipart/form-data", b"application/x-www-form-urlencoded")

    def __init__(self, app: ASGIApp, file_fields: tuple[str, ...] = ("file",)) -> None:
        self.app = app
        self.file_fields = file_fields

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _content_type(scope) not in self.FORMS:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        problem = await self._problem(scope, body)
        if problem:
            await ApiError(problem).response()(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _problem(self, scope: Scope, body: bytes) -> str | None:
        try:
            form = await Request(scope, _replay(body, None)).form()
        except HTTPException as exc:
            return f"malformed form body: {exc.detail}"
        try:
            for name in self.file_fields:
                if any(isinstance(v, str) for v in form.getlist(name)):
                    return f"{name}: must be an uploaded file part (with a filename), not a text value"
        finally:
            await form.close()
        return None


class Guards:
    """The service's request guards in one layer, in their order: DashboardPage, TokenAuth, MediaTypeGuard,
    BodyLimit, FormGuard, ModelGate, DashboardData.

    A POST to a JSON API route (the model endpoints: the busiest) passes only the guards that can act on
    it, TokenAuth, MediaTypeGuard, BodyLimit and ModelGate: the dashboard's two answer GET alone, and
    FormGuard reads form bodies only, which MediaTypeGuard refuses on a JSON route before FormGuard would
    see them. Every other request passes all seven. Each guard layer costs ~0.5% of a small request's CPU.
    """

    def __init__(self, app: ASGIApp, token_env: str, open_paths: frozenset[str], json_routes: frozenset[str],
                 form_routes: frozenset[str], max_bytes: int) -> None:
        from serving.auth import BodyLimit, TokenAuth
        from serving.dashboard.routes import DashboardData, DashboardPage

        self.app = app
        self.json_routes = json_routes
        self.post = TokenAuth(MediaTypeGuard(BodyLimit(ModelGate(app), max_bytes), json_routes, form_routes), token_env, open_paths)
        self.every = DashboardPage(TokenAuth(MediaTypeGuard(BodyLimit(FormGuard(ModelGate(DashboardData(app))), max_bytes),
                                                            json_routes, form_routes), token_env, open_paths))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path") in self.json_routes:
            await self.post(scope, receive, send)
        else:
            await self.every(scope, receive, send)


def _content_type(scope: Scope) -> bytes:
    return dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client disconnected first."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive | None) -> Receive:
    """A `receive` that gives the buffered body once, then defers to `receive` (a disconnect, say)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed and receive is not None:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
