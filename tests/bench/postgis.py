"""A throw-away PostGIS database for benchmarks and their smoke tests.

Why a helper: ``childsafe bench zones`` compares the geofence with what the
production store (PostgreSQL with PostGIS, DESIGN.md "Store") would do with
the same zones, so it needs a PostGIS database that it may fill and drop, and
never a real installation's. The server is the test suite's own
``tests.services.PostgresServer`` (a private cluster in a temp dir, on
127.0.0.1 only, stopped afterwards); this module only adds the extension, or
a fresh database with it inside a server someone else already runs (the test
session's, in the smoke test), so nothing of either is duplicated here.

PostGIS is a separate Debian package (``postgresql-15-postgis-3``) from the
server: when it is missing, ``PostGISUnavailable`` says so in words, and the
callers report that instead of a number.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from tests.services import PostgresServer, ServiceError

__all__ = ["POSTGIS_APT_PACKAGE", "PostGISUnavailable", "libpq_url", "postgis_database"]

POSTGIS_APT_PACKAGE = "postgresql-15-postgis-3"


class PostGISUnavailable(RuntimeError):
    """No PostGIS database could be had here; the message says why and what to install."""


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) as psycopg/libpq takes it:
    the benchmark talks to the server with psycopg directly (COPY and binary
    arrays), not through SQLAlchemy."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def _create_extension(url: str) -> None:
    """``CREATE EXTENSION postgis`` in the database at ``url``, or
    PostGISUnavailable naming the missing package."""
    import psycopg

    try:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_available_extensions "
                               "WHERE name = 'postgis'").fetchone()
            if row and row[0]:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                return
    except psycopg.Error as exc:
        raise PostGISUnavailable(f"CREATE EXTENSION postgis failed: {exc}") from exc
    raise PostGISUnavailable(
        f"the PostgreSQL server has no PostGIS extension: install the Debian package "
        f"'{POSTGIS_APT_PACKAGE}' (apt-get install -y {POSTGIS_APT_PACKAGE})")


@contextlib.contextmanager
def postgis_database(server_url: str | None = None) -> Iterator[str]:
    """Yield the SQLAlchemy-style URL of an empty database with PostGIS in it.

    With ``server_url`` (a running server's URL, e.g. the test session's
    ``postgres_url``), a fresh database is created in that server and dropped
    afterwards, so the server's own database is never touched. Without it, a
    private cluster is started (``PostgresServer``) and stopped afterwards.
    Raises PostGISUnavailable, with the reason, when either cannot be done.
    """
    import psycopg

    if server_url is not None:
        name = f"bench_zones_{secrets.token_hex(4)}"
        admin = libpq_url(server_url)
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            raise PostGISUnavailable(f"cannot create a database on {server_url}: {exc}") from exc
        try:
            url = _with_database(server_url, name)
            _create_extension(url)
            yield url
        finally:
            # a server that died meanwhile must not hide the error that says why
            with contextlib.suppress(psycopg.Error), \
                    psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    server = PostgresServer()
    try:
        try:
            url = server.start()
        except ServiceError as exc:
            raise PostGISUnavailable(f"cannot start a private PostgreSQL server: {exc}") from exc
        _create_extension(url)
        yield url
    finally:
        server.stop()
