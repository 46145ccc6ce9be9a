"""Throwaway PostgreSQL databases for tests: one uniquely named database per test, dropped afterwards.

Tests only ever create and drop databases named `ecomlab_test_<random>`: they never touch what they did
not create. The server is `ECOMLAB_TEST_PG` (default `postgresql://<user>@127.0.0.1:5432`, trust auth);
when it does not answer the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PREFIX = "ecomlab_test_"


def server_url() -> str:
    """The PostgreSQL server the tests use, without a database name."""
    return os.environ.get("ECOMLAB_TEST_PG", f"postgresql://{getpass.getuser()}@127.0.0.1:5432").rstrip("/")


def _admin():  # noqa: ANN202 - a psycopg connection; psycopg is imported lazily
    """An autocommit connection to the maintenance database `postgres` (CREATE/DROP DATABASE need autocommit)."""
    import psycopg

    try:
        return psycopg.connect(f"{server_url()}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {server_url()}: {str(exc).strip().splitlines()[0]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; under CI the PostgreSQL tests must run")
        pytest.skip(reason)


def exists(name: str) -> bool:
    """Whether a database called `name` exists on the test server."""
    with _admin() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def unused_name() -> str:
    """A database name no one has: the prefix and a random suffix (lowercase, so no quoting is needed)."""
    return f"{PREFIX}{uuid.uuid4().hex[:12]}"


def create_database() -> str:
    """Create a new uniquely named database; its name."""
    from psycopg import sql

    name = unused_name()
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    """Drop a database this module created (refuses any other name), closing its leftover connections."""
    from psycopg import sql

    if not name.startswith(PREFIX):
        raise ValueError(f"refusing to drop {name!r}: tests only drop the databases they created ({PREFIX}*)")
    with _admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def database() -> Iterator[str]:
    """A fresh database for the block; yields its plain `postgresql://user@host:port/name` URL; dropped on exit, also on failure."""
    name = create_database()
    try:
        yield f"{server_url()}/{name}"
    finally:
        drop_database(name)
