"""The service's one error shape, for every 4xx and 5xx:
`{"error": {"code": str, "message": str, "fields": [{"field": str, "message": str}]}}`.

BentoML answers a validation error, a handler's `BentoMLException` and a 5xx in three shapes (one of
them a one-item list) and logs each with a traceback at ERROR. Our handlers answer their own errors
in this shape (`answers_errors`); what BentoML or Starlette answer is reshaped by the ErrorShape
middleware (`reshape`), and their tracebacks of client mistakes are dropped (`ClientErrorFilter`).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, TypeVar

from bentoml.exceptions import BentoMLException, InvalidArgument
from starlette.responses import JSONResponse

F = TypeVar("F", bound=Callable[..., Any])
Field = dict[str, str]

#: the code (and metrics reason) of a status when nothing more precise is known
CODES = {
    400: "invalid_input", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
    415: "unsupported_media_type", 500: "internal_error", 503: "unavailable", 504: "timeout",
}
_FIELD_FIRST = re.compile(r"^([A-Za-z_][\w.\[\]]*(?: \(\w+\))?): (.+)$", re.S)  # "customers[1].monetary: ..."


def default_code(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    return CODES.get(status) or re.sub(r"\W+", "_", phrase.lower()).strip("_")


def error_body(status: int, message: str, code: str | None = None, fields: Iterable[Field] = ()) -> dict[str, Any]:
    return {"error": {"code": code or default_code(status), "message": message, "fields": list(fields)}}


def error_response(
    status: int, message: str, code: str | None = None, fields: Iterable[Field] = (), headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, fields), status, headers=headers)


def field_of(message: str) -> list[Field]:
    """The field a message of ours names first ("lines: ..."), as `fields`; none when it names none."""
    match = _FIELD_FIRST.match(message)
    return [{"field": match.group(1), "message": match.group(2).splitlines()[0]}] if match else []


class ApiError(BentoMLException):
    """An error a handler answers itself, in the one shape; a BentoMLException so BentoML would still answer it."""

    error_code = HTTPStatus.BAD_REQUEST
    code = "invalid_input"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, fields: Iterable[Field] | None = None) -> None:
        super().__init__(message, error_code=HTTPStatus(status) if status else None)
        self.code = code or (type(self).code if status is None else default_code(status))
        self.fields = list(field_of(message) if fields is None else fields)

    def response(self) -> JSONResponse:
        return error_response(int(self.error_code), self.message, self.code, self.fields)

    @classmethod
    def of(cls, exc: BentoMLException) -> ApiError:
        """Any BentoMLException a handler raised (serving.kpis raises InvalidArgument) as an ApiError."""
        if isinstance(exc, ApiError):
            return exc
        return ApiError(str(exc), status=int(exc.error_code))


class BadRequest(ApiError, InvalidArgument):
    """The client's 400: a value a model or a KPI rejects."""


class TooLarge(ApiError):
    """A batch over the configured limit."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


def too_large(field: str, got: int, limit: int) -> TooLarge:
    return TooLarge(f"{field}: {got} items, the limit is {limit} (configs/serve.yaml limits)")


def over_limit(field: str, got: int, limit: int, unit: str = "") -> BadRequest:
    """A single value (a horizon, a k) over its limit: the client's 400, naming the field."""
    return BadRequest(f"{field}: {got} is over the limit of {limit}{unit}", code="over_limit")


def bad_input(field: str, exc: Exception) -> BadRequest:
    """A model's ValueError about the request, as the client's 400 naming the field (first line only)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return BadRequest(f"{field}: {first}", fields=[{"field": field, "message": first}])


def model_unavailable(family: str, reason: str) -> ApiError:
    return ApiError(f"{family} model unavailable: {reason}", status=503, code="model_unavailable", fields=[])


def answers_errors(handler: F) -> F:
    """A handler whose BentoMLExceptions are answered in the one shape, with their fields and code.

    BentoML would log each with a traceback at ERROR and hide a 5xx's message; the ErrorShape
    middleware logs them in one line instead.
    """
    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(*args, **kwargs)
            except BentoMLException as exc:
                return ApiError.of(exc).response()

        return wrapper  # type: ignore[return-value]

    @functools.wraps(handler)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except BentoMLException as exc:
            return ApiError.of(exc).response()

    return sync_wrapper  # type: ignore[return-value]


# ---- what BentoML and Starlette answer, in the one shape ----


def is_ours(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and "code" in body["error"]


def reshape(status: int, body: bytes) -> dict[str, Any]:
    """BentoML's and Starlette's error bodies in the one shape: a pydantic validation error with its
    fields, `[{"error": msg}]` of a BentoMLException, `{"error": msg}`, `{"detail": msg}` or plain text."""
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if is_ours(parsed):
        return parsed
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]
    if isinstance(parsed, dict) and isinstance(parsed.get("detail"), list):
        fields = [{"field": field_path(d.get("loc", ())), "message": str(d.get("msg", ""))} for d in parsed["detail"] if isinstance(d, dict)]
        shown = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
        return error_body(status, f"{len(fields)} invalid field(s): {shown}{more}", fields=fields)
    if isinstance(parsed, dict) and isinstance(parsed.get("error") or parsed.get("detail"), str):
        message = parsed.get("error") or parsed["detail"]
        return error_body(status, message, fields=field_of(message) if status < 500 else ())
    text = body.decode("utf-8", "replace").strip() if isinstance(body, bytes) else ""
    return error_body(status, text[:500] or default_code(status).replace("_", " "))


def field_path(loc: Iterable[Any]) -> str:
    """A pydantic error location as a path: ("customers", 0, "recency") -> "customers[0].recency"; () -> "body"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def is_client_error(exc: BaseException | None) -> bool:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return True
    return isinstance(exc, BentoMLException) and int(exc.error_code) < 500


class ClientErrorFilter(logging.Filter):
    """Drops BentoML's ERROR-with-traceback record of a client's mistake: the ErrorShape middleware logs it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and is_client_error(record.exc_info[1]))


def quiet_client_errors(logger_name: str = "bentoml._internal.server.http_app") -> None:
    """Install ClientErrorFilter on the logger of BentoML's `log_exception` (once)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter())


def openapi_errors(statuses: Iterable[int]) -> dict[int, dict[str, Any]]:
    """OpenAPI responses of `statuses`, each the one error shape (components/schemas/ErrorResponse)."""
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    return {s: {"description": HTTPStatus(s).phrase, "content": {"application/json": {"schema": ref}}} for s in statuses}
