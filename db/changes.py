"""The change log: what an admin changed, per scope, in order.

Why a log and not a version column per table: the engine and the gateway
poll once a second whether anything they loaded changed, and one indexed
``max(id)`` per scope answers that for zones, the roster, timetables and
the calendar alike (a deleted row leaves its change behind, where a count
or a newest timestamp would not notice a remove followed by an add). The
rows double as the history an auditor reads (who changed what, when).
"""

from __future__ import annotations

import time
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.tables import Change

Scope = Literal["zones", "roster", "timetables", "calendar"]
SCOPES: tuple[Scope, ...] = ("zones", "roster", "timetables", "calendar")


def record(session: Session, scope: Scope, key: str, action: str, actor: str,
           detail: str = "", at: float | None = None) -> None:
    """Add a change in the caller's transaction (it lands with the edit or not at all)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown change scope {scope!r}")
    session.add(Change(scope=scope, key=str(key)[:64], action=action[:16], actor=actor[:64],
                       detail=detail, at=time.time() if at is None else at))
    session.flush()


def version(session: Session, scope: Scope) -> int:
    """The newest change's id in ``scope`` (0: never changed), from the index."""
    return int(session.scalar(select(func.max(Change.id)).where(Change.scope == scope)) or 0)


def versions(session: Session) -> dict[str, int]:
    return {scope: version(session, scope) for scope in SCOPES}


def history(session: Session, scope: Scope, key: str | None = None,
            limit: int = 200) -> list[Change]:
    """Newest first."""
    q = select(Change).where(Change.scope == scope)
    if key is not None:
        q = q.where(Change.key == key)
    return list(session.scalars(q.order_by(Change.id.desc()).limit(limit)))
