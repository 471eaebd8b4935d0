"""Accounts, sessions and the access log in the store.

Passwords are argon2id hashes (``argon2-cffi``); a session token is 32
random bytes the console keeps, and the store keeps only its SHA-256. The
lockout rule (``models.accounts``) is applied here so that the command line
and the engine lock the same way.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.tables import AccessRecord, User, UserSession
from models.accounts import (
    LOCKOUT_S,
    MAX_FAILURES,
    SESSION_S,
    Role,
    check_password,
    check_user_name,
    parse_roles,
)

_hasher = PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) defaults


class SignInRefused(Exception):
    """Wrong name or password, a locked or disabled account: the message is
    what the person signing in is told."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    token: str  # only ever in memory and on the wire, never in the store
    user: str
    roles: frozenset[Role]
    created_at: float
    expires_at: float


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def roles_of(user: User) -> frozenset[Role]:
    return parse_roles(user.roles)


def add_user(session: Session, name: str, roles: list[str], password: str) -> User:
    check_user_name(name)
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise ValueError(f"user {name} exists already")
    user = User(name=name, roles=",".join(sorted(parse_roles(roles))),
                password_hash=_hasher.hash(check_password(password)), created_at=time.time())
    session.add(user)
    return user


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise ValueError(f"no user {name}")
    return user


def users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def set_password(session: Session, name: str, password: str) -> None:
    user = get_user(session, name)
    user.password_hash = _hasher.hash(check_password(password))
    user.failures = 0
    user.locked_until = 0.0


def disable(session: Session, name: str, now: float | None = None) -> int:
    """Disable the account and end its sessions; returns how many were ended."""
    user = get_user(session, name)
    user.disabled = True
    return end_sessions(session, user.id, time.time() if now is None else now)


def end_sessions(session: Session, user_id: int, now: float) -> int:
    open_ = session.scalars(select(UserSession).where(
        UserSession.user_id == user_id, UserSession.ended_at.is_(None))).all()
    for s in open_:
        s.ended_at = now
    return len(open_)


def sign_in(session: Session, name: str, password: str, console: str = "",
            now: float | None = None) -> SessionInfo:
    """Check the password, apply the lockout, and open a session; the caller
    commits (a failure's count too: commit after ``SignInRefused`` as well)."""
    now = time.time() if now is None else now
    user = session.scalar(select(User).where(User.name == name[:64]))
    if user is None:
        _hasher.hash("x" * 10)  # as slow as a real check: do not reveal who exists
        log(session, name[:64], "signin", False, "unknown user", now)
        raise SignInRefused("wrong user name or password")
    if user.disabled:
        log(session, name, "signin", False, "account disabled", now)
        raise SignInRefused(f"the account {name} is disabled")
    if user.locked_until > now:
        log(session, name, "signin", False, "account locked", now)
        raise SignInRefused(f"the account {name} is locked for another "
                            f"{int(user.locked_until - now) + 1} s after {MAX_FAILURES} "
                            "wrong passwords")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failures += 1
        detail = f"wrong password ({user.failures} in a row)"
        if user.failures >= MAX_FAILURES:
            user.locked_until = now + LOCKOUT_S
            user.failures = 0
            detail += f"; locked for {LOCKOUT_S:.0f} s"
        log(session, name, "signin", False, detail, now)
        raise SignInRefused("wrong user name or password") from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failures = 0
    token = secrets.token_urlsafe(32)
    expires = now + SESSION_S
    session.add(UserSession(token_hash=token_hash(token), user_id=user.id,
                            console=console[:64], created_at=now, expires_at=expires))
    log(session, name, "signin", True, console[:64], now)
    return SessionInfo(token, user.name, roles_of(user), now, expires)


def sign_out(session: Session, token: str, now: float | None = None) -> str | None:
    """End the session; returns its user's name, or None if there was none."""
    row = session.get(UserSession, token_hash(token))
    if row is None or row.ended_at is not None:
        return None
    row.ended_at = time.time() if now is None else now
    user = session.get(User, row.user_id)
    name = user.name if user else "?"
    log(session, name, "signout", True, "", row.ended_at)
    return name


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session whose token has not expired: live, or ended early."""

    token_hash: str
    user: str
    created_at: float
    expires_at: float
    roles: str
    ended: bool  # signed out, or its account disabled: its tokens must stop working


def unexpired_sessions(session: Session, now: float) -> list[SessionRow]:
    """Every session whose token has not expired: the live ones are what
    the engine reloads after a restart; the ended ones (signed out, or of
    a disabled account) are what the media relay must refuse until then."""
    rows = session.execute(
        select(UserSession.token_hash, User.name, UserSession.created_at,
               UserSession.expires_at, User.roles, UserSession.ended_at, User.disabled)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.expires_at > now))
    return [SessionRow(h, n, c, e, r, ended is not None or bool(disabled))
            for h, n, c, e, r, ended, disabled in rows]


def log(session: Session, user: str, action: str, ok: bool, detail: str,
        now: float | None = None) -> None:
    session.add(AccessRecord(at=time.time() if now is None else now, user=user[:64],
                             action=action[:40], ok=ok, detail=detail[:300]))


def access_log(session: Session, limit: int = 100) -> list[AccessRecord]:
    return list(session.scalars(select(AccessRecord).order_by(AccessRecord.id.desc())
                                .limit(limit)))
