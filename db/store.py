"""Opening the store: engines, SQLite pragmas and schema migrations.

The embedded default is SQLite in WAL mode under the installation's data
dir (readers never block the recorder's batched writes); a PostgreSQL URL
runs the same code. The schema is always brought up by Alembic, never by
``create_all``, so a demo database and a production one have one history.

On SQLite the fixes (and the journal cursors that say how far they are
stored) live in a second file beside the first, attached to every
connection as ``fixdb`` (``fixes_file``, migration 0009). SQLite has one
write lock per file: with the fixes in the main file, every alert the
engine stored waited for the recorder's fix writes (tens of milliseconds
under load, the largest part of an SOS's p99), and the recorder had to cut
its writes small to let it in. Queries name the tables without a schema
and SQLite finds them in whichever file holds them; a transaction that
writes both files is atomic in each, not across them (WAL), so writers
order their commits (``console.services.recorder``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / 'childsafe.sqlite3'}"


FIXES_SCHEMA = "fixdb"  # the attached fixes file's name in SQL


def fixes_file(url: str) -> Path | None:
    """The SQLite file that holds the fixes beside the store at ``url``
    (``childsafe.sqlite3`` -> ``childsafe-fixes.sqlite3``); None for
    PostgreSQL and for an in-memory SQLite store (one database is all it has)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[1] if "///" in url else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    main = Path(path.split("?", 1)[0])
    return main.with_name(f"{main.stem}-fixes{main.suffix or '.sqlite3'}")


# SQLite's own default: a commit that finds the WAL this many pages long
# copies it into the database file first (a checkpoint).
CHECKPOINT_PAGES = 1000
# The engine's: only when nobody else has for about 40 MB of writes. Under
# load a checkpoint takes tens of milliseconds, and an alert's commit must
# not pay it; the recorder, whose writes fill the WAL, does.
RARE_CHECKPOINT_PAGES = 10_000


def _sqlite_pragmas(busy_timeout_s: float, checkpoint_pages: int,
                    fixes: Path | None) -> Callable[[Any, Any], None]:
    def apply(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
        if fixes is not None:
            cur.execute(f"ATTACH DATABASE ? AS {FIXES_SCHEMA}", (str(fixes),))
            cur.execute(f"PRAGMA {FIXES_SCHEMA}.journal_mode=WAL")
            cur.execute(f"PRAGMA {FIXES_SCHEMA}.synchronous=NORMAL")
        cur.close()
    return apply


def make_engine(url: str, busy_timeout_s: float = 10.0,
                checkpoint_pages: int = CHECKPOINT_PAGES) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout because
    several processes (engine, recorder, CLI) share the file. The engine's
    own store waits only a fraction of a second (``busy_timeout_s``): its
    loop raises alerts and must not freeze behind a lock; PostgreSQL gets
    the same bound as a lock timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
        event.listen(engine, "connect",
                     _sqlite_pragmas(busy_timeout_s, checkpoint_pages, fixes_file(url)))
        return engine
    ms = int(busy_timeout_s * 1000)
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"options": f"-c lock_timeout={ms}"})


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def no_wait_sessions(url: str, sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions whose writes fail at once (``is_busy``) when another process
    holds SQLite's write lock of the file they write, instead of sleeping in
    its busy handler: the engine tries again on its next turn and handles
    alarms meanwhile. They begin deferred, so a write takes only its own
    file's lock (``BEGIN IMMEDIATE`` would take the fixes file's too, and
    wait for the recorder). PostgreSQL locks rows, not the database, and an
    in-memory SQLite store is one connection's alone: both keep ``sessions``."""
    if fixes_file(url) is None:
        return sessions
    return session_factory(make_engine(url, 0.0, RARE_CHECKPOINT_PAGES))


def is_busy(exc: BaseException) -> bool:
    """The store refused only because another writer holds the lock (SQLite's
    SQLITE_BUSY and its extended codes), not because anything is wrong."""
    code = getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == 5


def upgrade(url: str, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` (idempotent)."""
    from alembic import command
    from alembic.config import Config

    logging.getLogger("alembic").setLevel(logging.WARNING)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, revision)


def open_store(url: str, busy_timeout_s: float = 10.0,
               checkpoint_pages: int = CHECKPOINT_PAGES) -> tuple[Engine, sessionmaker[Session]]:
    """Migrate, then return an engine and a session factory for it."""
    upgrade(url)
    engine = make_engine(url, busy_timeout_s, checkpoint_pages)
    return engine, session_factory(engine)
