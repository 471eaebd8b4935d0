"""Session-wide fixtures shared by every test package.

Fixtures (see ``tests/services.py`` for the machinery):

- ``postgres_url`` (session): SQLAlchemy URL of a private PostgreSQL 15 server
  on 127.0.0.1 with an empty ``childsafe_test`` database.  Tests marked
  ``@pytest.mark.postgres`` get it started even without requesting it.
- ``xvfb_display`` (session): ``":N"`` of a private Xvfb (1600x1000x24).
  Tests marked ``@pytest.mark.xvfb`` get it started; they run Qt in a
  subprocess with ``QT_QPA_PLATFORM=xcb`` and ``DISPLAY`` set to it.
- ``data_dir`` (function): a fresh short directory under /tmp (ipc socket
  paths must stay under 107 characters), removed afterwards.
- ``free_tcp_port()``: import it from ``tests.services``.

Every test is also checked for leaked child processes (``_no_leaked_processes``).
Services start lazily, so ``-m "not postgres"`` never starts PostgreSQL.
Sub-package conftest files add their own fixtures; keep this one for things
the whole suite shares.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import (
    PostgresServer,
    ServiceError,
    XvfbServer,
    descendants,
    find_leaks,
    kill_processes,
)

# Qt must never try to reach a real display unless a test asks for one (the
# bootstrap sets this too; this covers running .venv/bin/pytest directly).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server for the whole session; stopped at the end.

    Missing binaries fail the test with the package to install: a silent skip
    would let the PostgreSQL code paths go untested in CI.
    """
    server = PostgresServer()
    try:
        url = server.start()
    except BaseException as exc:
        server.stop()  # never leave a half-started cluster or its temp dir behind
        if isinstance(exc, ServiceError):
            pytest.fail(str(exc), pytrace=False)
        raise
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    """A private X server for tests that need real xcb rendering; killed at the end."""
    server = XvfbServer()
    try:
        display = server.start()
    except Exception as exc:  # ServiceError or bootstrap's error: both say what to do
        server.stop()
        pytest.fail(f"cannot start Xvfb: {exc}", pytrace=False)
    try:
        yield display
    finally:
        server.stop()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh, short data dir (``/tmp/cs-XXXXXXXX``); removed after the test."""
    path = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_leaked_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves child processes running, and kill them.

    A leaked backend keeps sockets and ports busy and makes later tests flaky
    in ways that point at the wrong test.  Processes of session services
    (Xvfb) and of fixtures set up before the test (higher scopes) are not
    counted.  The ``postgres`` / ``xvfb`` markers start their service here,
    before the snapshot, so that a marked test without the fixture argument
    still gets the service and does not count it as a leak.
    """
    if request.node.get_closest_marker("postgres") is not None:
        request.getfixturevalue("postgres_url")
    if request.node.get_closest_marker("xvfb") is not None:
        request.getfixturevalue("xvfb_display")
    before = descendants()
    yield
    leaked = find_leaks(before)
    if leaked:
        kill_processes(leaked)
        listing = "\n".join(f"  pid {p.pid}: {p.cmdline[:200]}" for p in leaked)
        pytest.fail(
            f"test left {len(leaked)} child process(es) running (now killed):\n{listing}",
            pytrace=False,
        )
