"""The service's client errors: a batch over a configured limit (413) and input a model rejects (400).

BentoML renders a `BentoMLException`'s message with its `error_code`; anything else a handler raises
is a 500 with a generic message, so a client's mistake must become one of these.
"""

from __future__ import annotations

from http import HTTPStatus

from bentoml.exceptions import BentoMLException, InvalidArgument


class TooLarge(BentoMLException):
    """A batch over the configured limit."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def too_large(field: str, got: int, limit: int) -> TooLarge:
    return TooLarge(f"{field}: {got} items, the limit is {limit} (configs/serve.yaml limits)")


def over_limit(field: str, got: int, limit: int, unit: str = "") -> InvalidArgument:
    """A single value (a horizon, a k) over its limit: the client's 400, naming the field."""
    return InvalidArgument(f"{field}: {got} is over the limit of {limit}{unit}")


def bad_input(field: str, exc: Exception) -> InvalidArgument:
    """A model's ValueError about the request, as the client's 400 naming the field (first line only)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InvalidArgument(f"{field}: {first}")
