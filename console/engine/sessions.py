"""Who is signed in, as the engine knows it: the gate every command passes.

Sessions live in the store (so an engine restarted mid-shift keeps every
console signed in) and in memory here for the check on each command. The
store is re-read every few seconds, so an account disabled from the command
line (which ends its sessions in the store) is shut out within seconds.

The same read gives the sessions that ended before they expired
(``ended``): the engine posts them to the media relay, which refuses
their view tokens (``console.media.tokens``), so a signed-out or disabled
operator's copied video link stops playing too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from db import accounts
from models.accounts import Role, may, parse_roles
from models.alerts import Actor, Refused
from models.messages import AlertView, StaffLoad

REFRESH_S = 3.0
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Live:
    user: str
    roles: frozenset[Role]
    created_at: float
    expires_at: float


class SessionBook:
    def __init__(self, sessions: sessionmaker[Session],
                 clock: Callable[[], float] = time.time, training: bool = False) -> None:
        """``training``: a training installation's book (a trainer may read
        its alerts: ``models.accounts.TRAINING_PERMISSIONS``)."""
        self.sessions = sessions
        self.training = training
        self.clock = clock
        self._live: dict[str, Live] = {}  # token hash -> session
        self.ended: dict[str, float] = {}  # token hash -> expiry, of sessions ended early
        self._loaded_at = -1e18
        self.refused = 0

    def refresh(self, force: bool = False) -> bool:
        """Re-read the store when due (or ``force``); True when it was read."""
        now = self.clock()
        if not force and now - self._loaded_at < REFRESH_S:
            return False
        try:
            with self.sessions() as s:
                rows = accounts.unexpired_sessions(s, now)
        except Exception:
            log.exception("could not re-read sessions; keeping the ones known")
            return False
        live: dict[str, Live] = {}
        ended: dict[str, float] = {}
        for row in rows:
            if row.ended:
                ended[row.token_hash] = row.expires_at
                continue
            try:
                live[row.token_hash] = Live(row.user, parse_roles(row.roles), row.created_at,
                                            row.expires_at)
            except ValueError:
                log.warning("session of %s has unknown roles %r; ignored", row.user, row.roles)
        self._live = live
        self.ended = ended
        self._loaded_at = now
        return True

    def sign_in(self, user: str, password: str, console: str) -> accounts.SessionInfo:
        """Raises ``accounts.SignInRefused`` with what to tell the person."""
        with self.sessions() as s:
            try:
                info = accounts.sign_in(s, user, password, console, self.clock())
            except accounts.SignInRefused:
                s.commit()  # the failure count and the access record
                raise
            s.commit()
        self._live[accounts.token_hash(info.token)] = Live(info.user, info.roles,
                                                           info.created_at, info.expires_at)
        return info

    def sign_out(self, token: str) -> str | None:
        with self.sessions() as s:
            user = accounts.sign_out(s, token, self.clock())
            s.commit()
        live = self._live.pop(accounts.token_hash(token), None)
        if live is not None:
            self.ended[accounts.token_hash(token)] = live.expires_at
        return user

    def live(self, token: str) -> Live:
        """The session of ``token`` if it is live; else ``Refused``
        (unauthenticated: the console asks for a sign-in)."""
        live = self._live.get(accounts.token_hash(token)) if token else None
        if live is None:
            raise Refused("unauthenticated", "not signed in (or the session ended): "
                                             "sign in again")
        if live.expires_at <= self.clock():
            raise Refused("unauthenticated", "the session expired after 12 h: sign in again")
        return live

    def actor(self, token: str, schema: str) -> Actor:
        """The signed-in sender of a command, if it may send it; else ``Refused``."""
        live = self.live(token)
        if not may(live.roles, schema, self.training):
            raise Refused("forbidden", f"{live.user} ({', '.join(sorted(live.roles))}) may "
                                       f"not do {schema}")
        return Actor(live.user, live.roles)

    def who(self, token: str) -> str:
        """The user behind ``token`` for the record, or "?"."""
        live = self._live.get(accounts.token_hash(token)) if token else None
        return live.user if live else "?"

    def record(self, user: str, action: str, ok: bool, detail: str) -> None:
        """One line in the access log (a refusal, a sign-in): never fatal."""
        try:
            with self.sessions() as s:
                accounts.log(s, user, action, ok, detail, self.clock())
                s.commit()
        except Exception:
            log.exception("could not record %s of %s in the access log", action, user)

    def staff(self, alerts: list[AlertView]) -> list[StaffLoad]:
        """Each signed-in operator or supervisor with the open alerts they own."""
        load: dict[str, int] = {}
        for a in alerts:
            if a.owner and a.state != "resolved":
                load[a.owner] = load.get(a.owner, 0) + 1
        first: dict[str, Live] = {}
        for live in self._live.values():
            if live.roles & {"operator", "supervisor"} and (
                    live.user not in first or live.created_at < first[live.user].created_at):
                first[live.user] = live
        return [StaffLoad(user=u, roles=sorted(v.roles), signed_in_at=v.created_at,
                          open_alerts=load.get(u, 0)) for u, v in sorted(first.items())]

    def assignable(self) -> frozenset[str]:
        """Enabled accounts that work the queue: who an alert may be assigned to."""
        with self.sessions() as s:
            return frozenset(u.name for u in accounts.users(s)
                             if not u.disabled and set(parse_roles(u.roles)) & {"operator",
                                                                                "supervisor"})
