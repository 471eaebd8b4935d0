"""The recorder's hourly retention run against a real SQLite store: it
purges and logs what went, and a store that refuses costs a retry, never
the recorder."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from console.config import Config
from console.services.recorder import Recorder
from db import repositories as repo
from db import usage_log
from db.store import make_engine, session_factory, sqlite_url, upgrade
from db.tables import Fix
from models.usage import UsageFilter

DAY = 86400.0


def _recorder(cfg: Config, engine: Engine) -> SimpleNamespace:
    """What apply_retention uses of a Recorder, without its bus sockets."""
    return SimpleNamespace(rt=SimpleNamespace(config=cfg, log=logging.getLogger("t.recorder")),
                           engine=engine, failed=Counter())


@pytest.fixture
def engine(data_dir: Path) -> Iterator[Engine]:
    upgrade(sqlite_url(data_dir))
    engine = make_engine(sqlite_url(data_dir), busy_timeout_s=0.2)
    now = time.time()
    t = np.array([now - 9 * DAY, now - 8 * DAY, now - DAY, now])
    n = len(t)
    cols = {"t": t, "lat": np.full(n, 37.5), "lon": np.full(n, 127.0),
            "speed": np.zeros(n, np.float32), "bearing": np.zeros(n, np.float32),
            "accuracy": np.full(n, 5, np.float32), "battery": np.full(n, 50, np.int8),
            "flags": np.zeros(n, np.uint8)}
    with engine.begin() as conn:
        repo.insert_fixes(conn, ["w-1"] * n, cols)
    yield engine
    engine.dispose()


def _fixes(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Fix)) or 0)


def test_retention_purges_and_logs(engine: Engine, data_dir: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    rec = _recorder(Config(data_dir=data_dir), engine)
    with caplog.at_level(logging.INFO, "t.recorder"):
        assert Recorder.apply_retention(rec) is True  # type: ignore[arg-type]
    assert _fixes(engine) == 2
    assert "retention removed fixes 2, events 0" in caplog.text
    with session_factory(engine)() as s:
        [record] = usage_log.query(s, UsageFilter())
    assert (record.action, record.actor) == ("purge", "retention")
    assert Recorder.apply_retention(rec) is True  # type: ignore[arg-type]
    assert rec.failed == Counter()


def test_a_locked_store_postpones_retention(engine: Engine, data_dir: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    rec = _recorder(Config(data_dir=data_dir), engine)
    blocker = sqlite3.connect(data_dir / "childsafe.sqlite3", isolation_level=None)
    blocker.execute("ATTACH DATABASE ? AS fixdb", (str(data_dir / "childsafe-fixes.sqlite3"),))
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process holds both files' write locks
        with caplog.at_level(logging.WARNING, "t.recorder"):
            assert Recorder.apply_retention(rec) is False  # type: ignore[arg-type]
        assert "retention postponed: database is locked" in caplog.text
        assert rec.failed["retention"] == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert _fixes(engine) == 4
    assert Recorder.apply_retention(rec) is True  # type: ignore[arg-type]
    assert _fixes(engine) == 2


def test_settings_that_would_delete_everything_are_not_applied(
        engine: Engine, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = _recorder(Config(data_dir=data_dir, fix_retention_days=0), engine)
    with caplog.at_level(logging.ERROR, "t.recorder"):
        assert Recorder.apply_retention(rec) is True  # type: ignore[arg-type]
    assert "retention not applied: retention fix_s must be more than 0" in caplog.text
    assert rec.failed["retention"] == 1 and _fixes(engine) == 4
