"""Optional API token and a bound on request bodies, as ASGI middleware.

When the configured environment variable is set, requests must carry the token. Health probes stay
open so orchestrators can check the service without the secret, and /metrics may stay open too
(`metrics_open` in configs/serve.yaml) so a Prometheus scraper needs no secret. The token is compared
in constant time and never logged.
"""

from __future__ import annotations

import hmac
import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_response

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


def open_paths(metrics_open: bool) -> frozenset[str]:
    """The paths that need no token: the probes, and /metrics when the settings leave it open."""
    return OPEN_PATHS | {"/metrics"} if metrics_open else OPEN_PATHS


class TokenAuth:
    """`Authorization: Bearer <token>` (or `X-API-Token: <token>`), else 401."""

    def __init__(self, app: ASGIApp, token_env: str = "ECOMLAB_API_TOKEN", open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.token = os.environ.get(token_env) or None
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        if self._authorised(dict(scope.get("headers") or [])):
            await self.app(scope, receive, send)
            return
        error = "missing or wrong API token (Authorization: Bearer <token>)"
        await error_response(401, error, headers={"www-authenticate": "Bearer"})(scope, receive, send)

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-token", b"").decode("latin-1")
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return bool(given) and self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())


class BodyTooLarge(Exception):
    """Raised inside `receive` when the body read so far is over the limit."""


class BodyLimit:
    """A request body over `max_bytes` gets 413 before it is read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            error = f"request body of {int(length)} bytes is over the limit of {self.max_bytes}"
            await error_response(413, error)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(seen)
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge as exc:
            error = f"request body over the limit of {self.max_bytes} bytes ({exc.args[0]} read)"
            await error_response(413, error)(scope, receive, send)
