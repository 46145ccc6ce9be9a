"""Where the MLflow tracking store is, and how a tracking URI is shown: defined once for training and serving.

Imports no mlflow (nor anything heavy): `ecomlab`'s CLI, the training jobs and the service all resolve
the URI the same way, and every URI or error message shown to a user goes through `redact`/`scrub`.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

HIDDEN = "***"


def default_tracking_uri(workdir: Path | None = None) -> str:
    """The embedded default: a SQLite file `mlflow.db` in the working directory (resolved, so a later chdir keeps it)."""
    return f"sqlite:///{((workdir or Path.cwd()) / 'mlflow.db').resolve()}"


def resolve_tracking_uri(configured: str | None = None) -> str:
    """`MLFLOW_TRACKING_URI` if set, else the configured URI, else the embedded default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or default_tracking_uri()


def _userinfo(uri: str) -> str:
    """The raw `user:password` part of `scheme://user:password@host/...`, or '' when there is none."""
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:  # e.g. an unbalanced IPv6 bracket: nothing we can parse, nothing we can find
        return ""
    info, at, _ = netloc.rpartition("@")
    return info if at else ""


def redact(uri: str) -> str:
    """The URI with its user-info (user and password) replaced by ***: safe to show and log."""
    info = _userinfo(uri)
    return uri.replace(f"//{info}@", f"//{HIDDEN}@", 1) if info else uri


def scrub(text: str, uri: str) -> str:
    """`text` (an error message, say) without the credentials of `uri`, raw or percent-decoded."""
    info = _userinfo(uri)
    if not info:
        return text
    user, _, password = info.partition(":")
    secrets = {info, unquote(info), password, unquote(password)} - {""}
    for secret in sorted(secrets, key=len, reverse=True):  # the whole user-info before its parts
        text = text.replace(secret, HIDDEN)
    return text
