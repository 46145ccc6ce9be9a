"""Where the MLflow tracking store is, and how a tracking URI is shown: defined once for training and serving.

Imports no mlflow (nor anything heavy): `ecomlab`'s CLI, the training jobs and the service all resolve
the URI the same way, and every URI or error message shown to a user goes through `redact`/`scrub`.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

HIDDEN = "***"
#: words of an MLflow error that say the store could not be reached (not that it refused a request)
UNREACHABLE = ("connection", "unreachable", "timed out", "max retries", "unable to open database", "operationalerror")
#: the port a network store listens on when its URI names none
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}


class StoreUnreachable(ConnectionError):
    """The tracking server or database of a URI does not accept connections; the message names it (redacted)."""


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


def unreachable(uri: str, timeout: float = 5.0) -> str | None:
    """Why the server behind `uri` refuses a TCP connection; None when it accepts one, or when `uri` is no
    network store (a SQLite file, a folder) or is reached through an HTTP proxy (only the proxy could tell).

    A plain socket, not MLflow: MLflow retries a refused connection for minutes before it gives up, and
    a job should fail in moments, before it writes anything. `postgresql://` and `postgresql+driver://`
    name the same server."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None  # malformed: MLflow's own error says more than a guess here
    scheme = parts.scheme.split("+", 1)[0].lower()
    host = parts.hostname
    if scheme not in DEFAULT_PORTS or not host:  # sqlite, file, a Unix-socket database: nothing to dial
        return None
    if scheme in ("http", "https") and scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return None
    what = "tracking server" if scheme.startswith("http") else "tracking database"
    try:
        with socket.create_connection((host, port or DEFAULT_PORTS[scheme]), timeout=timeout):
            pass
    except OSError as exc:
        return f"{what} {redact(uri)} unreachable: {(exc.strerror or str(exc) or type(exc).__name__).lower()}"
    if scheme.startswith("postgres"):
        return _postgres_refuses(uri, timeout)
    return None


def _postgres_refuses(uri: str, timeout: float) -> str | None:
    """Why PostgreSQL refuses `uri` once its port answers (no such database, bad login, no driver); None when
    it accepts. Only the server can tell, and SQLAlchemy would retry the refusal for two minutes."""
    try:
        import psycopg
    except ImportError:
        return f"tracking database {redact(uri)}: a postgresql:// URL needs the psycopg driver (pip install 'psycopg[binary]')"
    plain = "postgresql:" + uri.split(":", 1)[1]  # psycopg takes no SQLAlchemy driver suffix (postgresql+psycopg://)
    try:
        psycopg.connect(plain, connect_timeout=max(1, round(timeout))).close()
    except psycopg.Error as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        reason = text.rpartition("FATAL:")[2].strip() or text  # the server's own words, without the libpq preamble
        return f"tracking database {redact(uri)} refused the connection: {scrub(reason, uri)}"
    return None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Raise StoreUnreachable (one line, naming the redacted URI and what to do) when `unreachable` finds a reason."""
    reason = unreachable(uri, timeout)
    if reason:
        raise StoreUnreachable(f"{reason}; start it, or point MLFLOW_TRACKING_URI / --tracking-uri at a running one")

def is_unreachable(exc: Exception) -> bool:
    """Whether MLflow's error says the registry or artifact store could not be reached."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in UNREACHABLE)
