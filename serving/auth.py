"""Optional API token: when the configured environment variable is set, requests must carry it.

Health probes stay open so orchestrators can check the service without the secret. The token is
compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


class TokenAuth:
    """ASGI middleware: `Authorization: Bearer <token>` (or `X-API-Token: <token>`), else 401."""

    def __init__(self, app: Any, token_env: str = "ECOMLAB_API_TOKEN") -> None:
        self.app = app
        self.token = os.environ.get(token_env) or None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self._authorised(dict(scope.get("headers") or [])):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong API token (Authorization: Bearer <token>)"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-token", b"").decode("latin-1")
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before it is read into memory."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _reject(send, 413, f"request body of {int(length)} bytes is over the limit of {self.max_bytes}")
            return
        seen = 0

        async def counted() -> dict:
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
            await _reject(send, 413, f"request body over the limit of {self.max_bytes} bytes ({exc.args[0]} read)")


class BodyTooLarge(Exception):
    pass


async def _reject(send: Any, status: int, message: str) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps({"error": message}).encode()})
