"""Guardians' location-check tokens.

Why only a hash is stored: the token is what lets a guardian ask where
their child is, so a copy of the store (a backup, a stolen laptop) must not
be usable to ask. The token is shown once, when issued; a guardian who lost
it gets a new one, and issuing replaces the hash, so the old token stops
working at once (a phone that was lost or passed on).

A token is 32 random bytes: too many to guess, so looking its SHA-256 up
through the unique index is the whole check (no timing to compare).
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.tables import Guardian

TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 128  # anything longer is not ours: answered without hashing it


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue(session: Session, guardian_id: int, now: float | None = None) -> str:
    """A new token for the guardian (the old one stops working); the caller
    commits and shows the token once."""
    guardian = session.get(Guardian, guardian_id)
    if guardian is None:
        raise ValueError(f"guardian: no guardian {guardian_id}")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    guardian.token_hash = digest(token)
    guardian.token_at = time.time() if now is None else now
    session.flush()
    return token


def guardian_of(session: Session, token: str) -> Guardian | None:
    """The guardian whose token this is, or None."""
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return None
    return session.scalar(select(Guardian).where(Guardian.token_hash == digest(token)))
