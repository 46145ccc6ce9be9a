"""ASGI middleware of the service: answers BentoML cannot give with a reason.

ModelGate: a model endpoint whose model is not loaded answers 503 with the reason, and /readyz
answers with its detail. FormGuard: a malformed form body is the client's 400, not BentoML's 500.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.models.registry import FAMILIES
from serving.store import ModelStore, ModelUnavailable

READY_FIELDS = ("family", "name", "alias", "version", "status", "error")


def _is(scope: Scope, method: str) -> bool:
    return scope["type"] == "http" and scope.get("method") == method


class ModelGate:
    """A POST to a model route whose family has no model answers 503 + Retry-After with the reason;
    GET /readyz answers with its detail (models, reasons, registry error) in JSON.

    BentoML renders every 5xx a handler raises as "An unexpected error has occurred", so the
    handler's ServiceUnavailable cannot say why (registry unreachable, alias missing, not servable...).
    """

    ROUTES: dict[str, str] = {entry.route: entry.name for entry in FAMILIES.values()}
    store: ModelStore | None = None  # this worker's store, set by the service instance

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = ModelGate.store
        if store is not None and _is(scope, "POST") and scope.get("path") in self.ROUTES:
            family = self.ROUTES[scope["path"]]
            try:
                store.get(family)
            except ModelUnavailable as exc:
                retry = str(max(1, round(store.settings.reload_interval_s or 30)))
                response = JSONResponse({"error": f"{family} model unavailable: {exc}"}, 503, headers={"retry-after": retry})
                await response(scope, receive, send)
                return
        if store is not None and _is(scope, "GET") and scope.get("path") == "/readyz":
            await self.readiness(store)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def readiness(store: ModelStore) -> JSONResponse:
        """200 when every configured model serves (a registry error is still shown), else 503."""
        ok, reasons = store.ready()
        detail = {
            "ready": ok,
            "reasons": reasons,
            "registry_error": store.registry_error,
            "models": [{k: m[k] for k in READY_FIELDS} for m in store.describe()],
        }
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
            await JSONResponse({"error": problem}, 400)(scope, receive, send)
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
