"""Consumers' places in the gateway's journal (``console.journal``)."""

from __future__ import annotations

import time

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from db.tables import Cursor


def load(s: Session | Connection, name: str) -> tuple[str, int]:
    """(epoch, seq) of ``name``; ("", 0) for a consumer that never ran."""
    row = s.execute(select(Cursor.epoch, Cursor.seq).where(Cursor.name == name)).first()
    return (str(row[0]), int(row[1])) if row else ("", 0)


def save(s: Session | Connection, name: str, epoch: str, seq: int) -> None:
    """Record ``name``'s place in the caller's transaction (so a recorder's
    fixes and its cursor commit together)."""
    now = time.time()
    done = s.execute(update(Cursor).where(Cursor.name == name)
                     .values(epoch=epoch, seq=seq, updated_at=now))
    if not done.rowcount:  # type: ignore[attr-defined]
        s.execute(Cursor.__table__.insert().values(name=name, epoch=epoch, seq=seq,
                                                   updated_at=now))
