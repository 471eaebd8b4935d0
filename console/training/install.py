"""A training installation beside the live one: its own bus, keys and store.

Nothing of a training session may reach live operations, and the live
system must never show replayed data. The isolation is structural, not a
flag the live side has to remember:

- everything lives under ``<live data_dir>/training``: its own ipc sockets
  (or, over TCP, the live ports plus ``PORT_OFFSET``), logs and SQLite
  store, so no live process ever connects to it;
- its services get key pairs of their own: the live bus refuses them and
  the training bus refuses the live ones. Only the consoles' key pairs are
  shared, so a workstation's console can join a session with its usual key;
- every envelope it publishes says ``source = "replay"``, and live
  subscribers refuse that (``console.bus.Subscriber``), as training ones
  refuse anything else.

The scratch store starts from the live roster (for a recorded period) or a
seeded population (for a scenario), with the live accounts so trainees sign
in as themselves. Children and guardians are pseudonymised as they are
copied: a training session never holds a real child's name or a
guardian's phone number.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from sqlalchemy import Connection, String, Table, cast, delete, insert, select, update

from console import keys
from console.config import Config
from db import tables
from db.store import open_store

log = logging.getLogger(__name__)

PORT_OFFSET = 100  # a training bus over TCP listens on the live ports plus this
TRAINING_DIR = "training"
REPORTS_DIR = "training-reports"  # kept across sessions, beside the live data

# What a recorded period needs of the live store, in foreign-key order.
REFERENCE: tuple[Table, ...] = tuple(t.__table__ for t in (  # type: ignore[misc]
    tables.Zone, tables.Child, tables.Device, tables.Guardian, tables.Guardianship,
    tables.Consent, tables.Reader, tables.Camera, tables.TimetableSlot, tables.CalendarDay,
    tables.TimetableException))
# What a session writes, emptied when a seek back restarts its engine.
SESSION_STATE: tuple[Table, ...] = tuple(t.__table__ for t in (  # type: ignore[misc]
    tables.AlertAction, tables.Evidence, tables.Alert, tables.Event, tables.Cursor,
    tables.Notice, tables.Reveal, tables.Disclosure, tables.Fix))


def training_dir(live: Config) -> Path:
    return live.data_dir / TRAINING_DIR


def reports_dir(live: Config) -> Path:
    return live.data_dir / REPORTS_DIR


def training_config(live: Config, start: float) -> Config:
    """The training installation's settings, its clock starting at ``start``."""
    return dataclasses.replace(
        live, data_dir=training_dir(live), db_url="", training=True, replay_start=start,
        bus_pub_port=live.bus_pub_port + PORT_OFFSET,
        bus_sub_port=live.bus_sub_port + PORT_OFFSET,
        engine_port=live.engine_port + PORT_OFFSET,
        # no device faces a training session, and its video is not part of it
        osmand_port=live.osmand_port + PORT_OFFSET, watch_port=live.watch_port + PORT_OFFSET,
        feeds_port=live.feeds_port + PORT_OFFSET, relay_port=live.relay_port + PORT_OFFSET,
        notifier_adapter="record", fix_retention_days=max(live.fix_retention_days, 30.0))


def for_console(live: Config) -> Config:
    """What ``childsafe console --training`` connects to."""
    return training_config(live, 0.0)


def fresh(live: Config, start: float) -> Config:
    """An empty training installation (the last session's is removed), with
    its service keys and the live consoles' key pairs."""
    train = training_config(live, start)
    root = train.data_dir
    if root.exists():
        shutil.rmtree(root)
    train.ensure_dirs()
    if live.bus_security == "curve":
        keys.init(root)
        share_console_keys(live.data_dir, root)
    return train


def share_console_keys(live_dir: Path, train_dir: Path) -> None:
    """Copy the consoles' key pairs (``console*.key`` and their secrets):
    a workstation joins a session with the key it already has."""
    src, dst = keys.keys_dir(live_dir), keys.keys_dir(train_dir)
    for path in sorted(src.glob("console*.key*")):
        target = dst / path.name
        shutil.copyfile(path, target)
        target.chmod(path.stat().st_mode & 0o777)


def copy_reference(live: Config, train: Config) -> int:
    """The live roster, zones, cameras, readers and timetables into the
    scratch store, pseudonymised; returns the children copied."""
    src_engine, _ = open_store(live.db_url)
    dst_engine, _ = open_store(train.db_url)
    try:
        with src_engine.connect() as src, dst_engine.begin() as dst:
            for table in REFERENCE:
                rows = [dict(r) for r in src.execute(select(table)).mappings()]
                if rows:
                    dst.execute(insert(table), rows)
            children = len(dst.execute(select(tables.Child.id)).all())
            pseudonymise(dst)
        copy_accounts(live, train)
    finally:
        src_engine.dispose()
        dst_engine.dispose()
    return children


def pseudonymise(conn: Connection) -> None:
    """Names and contacts out of the scratch store (tokens stay: they are
    what the recording carries)."""
    c = tables.Child.__table__
    g = tables.Guardian.__table__
    conn.execute(update(c).values(name="훈련 " + c.c.token))
    conn.execute(update(g).values(
        name="보호자 " + cast(g.c.id, String), phone="", email="",
        token_hash=None, token_at=None))


def copy_accounts(live: Config, train: Config) -> int:
    """The live accounts (password hashes included: trainees sign in as
    themselves), with their lockouts cleared."""
    users = tables.User.__table__
    src_engine, _ = open_store(live.db_url)
    dst_engine, _ = open_store(train.db_url)
    try:
        with src_engine.connect() as src, dst_engine.begin() as dst:
            rows = [dict(r) for r in src.execute(select(users)).mappings()]
            dst.execute(delete(users))
            for row in rows:
                row.update(failures=0, locked_until=0.0)
            if rows:
                dst.execute(insert(users), rows)
        return len(rows)
    finally:
        src_engine.dispose()
        dst_engine.dispose()


def clear_session_state(train: Config) -> None:
    """What the last run of the training engine wrote (alerts, their
    history, notices, stored fixes): a seek back starts them again."""
    engine, _ = open_store(train.db_url)
    try:
        with engine.begin() as conn:
            for table in SESSION_STATE:
                conn.execute(delete(table))
    finally:
        engine.dispose()
