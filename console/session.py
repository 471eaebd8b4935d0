"""Who is signed in at this console, and the road every command takes.

The engine is the gate: it issued the session token and checks it, and the
role, on every command. This controller keeps the token, stamps it on each
command, routes each reply to whoever asked (by ``ref``), and when the
engine says the session is over (expired, signed out elsewhere, account
disabled) it asks for a sign-in again instead of letting commands fail
one by one. It also asks the engine every ``CHECK_S`` (``SessionCheck``),
so a console whose account was disabled while nobody touched it signs out
by itself within seconds rather than at the next command.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from PySide6.QtCore import QObject, QTimer, Signal

from models.accounts import may
from models.messages import (
    AnyMessage,
    CommandReply,
    Reply,
    SessionCheck,
    SignedIn,
    SignIn,
    SignOut,
)
from widgets.sign_in import SignInDialog

log = logging.getLogger(__name__)

OnReply = Callable[[Any], None]


MAX_UNANSWERED = 1000  # requests remembered while waiting for their reply
CHECK_S = 10.0  # how often a signed-in console asks whether its session is still live
CHECK_SOON_S = 2.0  # the least time between checks asked for by events (``check_soon``)


class CommandSink(Protocol):
    """``console.feed.LiveFeed`` as far as sending goes."""

    def send(self, command: AnyMessage) -> int: ...


class Session(QObject):
    changed = Signal(object)  # SignedIn, or None when signed out

    def __init__(self, feed: CommandSink, dialog: SignInDialog,
                 parent: QObject | None = None, training: bool = False) -> None:
        """``training``: the console is on a training installation (what a
        trainer may see there differs: ``models.accounts.may``)."""
        super().__init__(parent)
        self.feed = feed
        self.training = training
        self.dialog = dialog
        self.current: SignedIn | None = None
        self._waiting: dict[int, OnReply] = {}
        self._sent_with: dict[int, str] = {}  # ref -> the token the request carried
        self.otherwise: OnReply = lambda _r: None  # replies nobody waits for
        dialog.submitted.connect(self.sign_in)
        self.check_timer = QTimer(self)
        self.check_timer.setInterval(int(CHECK_S * 1000))
        self.check_timer.timeout.connect(self.check)
        self._checked_at = -CHECK_SOON_S

    # ------------------------------------------------------------- identity
    @property
    def token(self) -> str:
        return self.current.token if self.current else ""

    @property
    def user(self) -> str:
        return self.current.user if self.current else ""

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.current.roles) if self.current else frozenset()

    def may(self, schema: str) -> bool:
        """Whether this user's roles may send ``schema`` (to hide what they cannot do)."""
        return may(self.roles, schema, self.training)

    def sign_in(self, user: str, password: str) -> None:
        self.feed.send(SignIn(user=user, password=password, console=socket.gethostname()))

    def sign_out(self) -> None:
        """End the session at the engine and ask who comes next."""
        if self.current is not None:
            self.feed.send(SignOut(token=self.current.token))
        previous = self.user
        self._set(None)
        self.dialog.ask(message=self.tr("{0} signed out.").format(previous) if previous else "")

    def sign_out_quietly(self) -> None:
        """End the session as the console closes (no one to ask next)."""
        if self.current is not None:
            self.feed.send(SignOut(token=self.current.token))
        self.current = None
        self.check_timer.stop()

    def check(self) -> None:
        """Ask the engine whether this session is still live; a refusal
        ends it here as any refused command does (``deliver``)."""
        if self.current is not None:
            self._checked_at = time.monotonic()
            self.send(SessionCheck(token=""), lambda _reply: None)

    def check_soon(self) -> None:
        """``check`` now, unless one went out in the last ``CHECK_SOON_S``:
        for events that may mean the session ended (a video tile refused
        by the relay), however many of them come at once."""
        if time.monotonic() - self._checked_at >= CHECK_SOON_S:
            self.check()

    # ------------------------------------------------------------- commands
    def send(self, command: AnyMessage, on_reply: OnReply | None = None) -> int:
        """Send ``command`` with this session's token; ``on_reply`` gets its answer."""
        if "token" in getattr(type(command), "__struct_fields__", ()):
            command = msgspec.structs.replace(command, token=self.token)  # type: ignore[type-var]
        ref = self.feed.send(command)
        self._sent_with[ref] = self.token
        if on_reply is not None:
            self._waiting[ref] = on_reply
        # A request whose engine died before answering is never answered:
        # forget the oldest beyond a bound instead of keeping them for ever.
        for book in (self._sent_with, self._waiting):
            while len(book) > MAX_UNANSWERED:
                del book[next(iter(book))]
        return ref

    def deliver(self, replies: list[Reply]) -> None:
        """Route each reply (called by the window on the GUI thread, per frame)."""
        for reply in replies:
            if isinstance(reply, SignedIn):
                self._set(reply)
                self.dialog.hide()
                continue
            ref = getattr(reply, "ref", 0)
            handler = self._waiting.pop(ref, None)
            sent_with = self._sent_with.pop(ref, None)
            if isinstance(reply, CommandReply) and not reply.ok:
                if reply.code == "signin":
                    self.dialog.show_error(reply.error)
                    continue
                # Only this session's own token being refused ends it (a request
                # sent before the sign-in was answered says nothing about it).
                if (reply.code == "unauthenticated" and self.current is not None
                        and sent_with == self.current.token):
                    user = self.user
                    self._set(None)
                    self.dialog.ask(user, reply.error)
            (handler or self.otherwise)(reply)

    def _set(self, signed: SignedIn | None) -> None:
        self.current = signed
        if signed is not None:
            log.info("signed in as %s (%s)", signed.user, ", ".join(signed.roles))
            self.check_timer.start()
        else:
            self.check_timer.stop()
        self.changed.emit(signed)
