"""The console's session controller on its own (a fake feed, the real
dialog): tokens stamped, replies routed by ref, and only a refusal of this
session's own token ends it."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from console.session import Session
from models.messages import (
    AckAlert,
    AnyMessage,
    CommandReply,
    SessionCheck,
    SignedIn,
    SignIn,
    SignOut,
)
from widgets.sign_in import SignInDialog


class FakeFeed:
    def __init__(self) -> None:
        self.sent: list[AnyMessage] = []

    def send(self, command: AnyMessage) -> int:
        self.sent.append(command)
        return len(self.sent)


def signed(token: str = "tok-1", ref: int = 0) -> SignedIn:
    return SignedIn(ref=ref, token=token, user="operator1", roles=["operator"], expires_at=9e9)


def test_tokens_are_stamped_and_replies_routed(qtbot: QtBot) -> None:
    feed, dialog = FakeFeed(), SignInDialog()
    qtbot.addWidget(dialog)
    session = Session(feed, dialog)
    session.sign_in("operator1", "secret-password")
    assert isinstance(feed.sent[0], SignIn) and feed.sent[0].user == "operator1"
    session.deliver([signed()])
    assert session.user == "operator1" and session.may("cmd.ack")
    assert not session.may("req.shift")
    got: list[object] = []
    ref = session.send(AckAlert(token="", alert_id=3, alert_version=1), got.append)
    assert feed.sent[-1].token == "tok-1"  # type: ignore[union-attr]
    others: list[object] = []
    session.otherwise = others.append
    session.deliver([CommandReply(ok=True, ref=ref), CommandReply(ok=True, ref=999)])
    assert got == [CommandReply(ok=True, ref=ref)] and others == [CommandReply(ok=True, ref=999)]


def test_a_refusal_of_an_older_request_does_not_end_a_new_session(qtbot: QtBot) -> None:
    feed, dialog = FakeFeed(), SignInDialog()
    qtbot.addWidget(dialog)
    session = Session(feed, dialog)
    early = session.send(AckAlert(token="", alert_id=3, alert_version=1))  # before sign-in
    session.deliver([signed(), CommandReply(ok=False, code="unauthenticated", ref=early,
                                            error="not signed in")])
    assert session.user == "operator1" and not dialog.isVisible()
    # A refusal of this session's own token does end it, and asks again.
    mine = session.send(AckAlert(token="", alert_id=3, alert_version=1))
    session.deliver([CommandReply(ok=False, code="unauthenticated", ref=mine,
                                  error="the session expired after 12 h: sign in again")])
    assert session.current is None and dialog.isVisible()
    assert dialog.user.text() == "operator1" and "expired" in dialog.message.text()


def test_sign_out_tells_the_engine_and_a_wrong_password_is_shown(qtbot: QtBot) -> None:
    feed, dialog = FakeFeed(), SignInDialog()
    qtbot.addWidget(dialog)
    session = Session(feed, dialog)
    session.deliver([signed("tok-9")])
    session.sign_out()
    assert feed.sent[-1] == SignOut(token="tok-9") and session.current is None
    assert "operator1 signed out" in dialog.message.text()
    session.deliver([CommandReply(ok=False, code="signin", error="wrong user name or password")])
    assert dialog.message.text() == "wrong user name or password"
    assert dialog.message.property("error") is True


def test_requests_never_answered_are_forgotten_beyond_a_bound(qtbot: QtBot) -> None:
    """An engine that dies with requests in flight never answers them: the
    session keeps only the newest MAX_UNANSWERED, and a late reply to a
    forgotten one goes to the general handler."""
    from console.session import MAX_UNANSWERED
    feed, dialog = FakeFeed(), SignInDialog()
    qtbot.addWidget(dialog)
    session = Session(feed, dialog)
    session.deliver([signed()])
    got: list[object] = []
    refs = [session.send(AckAlert(token="", alert_id=3, alert_version=1), got.append)
            for _ in range(MAX_UNANSWERED + 50)]
    assert len(session._waiting) == len(session._sent_with) == MAX_UNANSWERED
    others: list[object] = []
    session.otherwise = others.append
    session.deliver([CommandReply(ok=True, ref=refs[0]), CommandReply(ok=True, ref=refs[-1])])
    assert got == [CommandReply(ok=True, ref=refs[-1])]
    assert others == [CommandReply(ok=True, ref=refs[0])]


def test_a_signed_in_console_checks_its_session_and_a_refusal_ends_it(qtbot: QtBot) -> None:
    """Nobody touches a console whose account was disabled: the periodic
    check finds out, and only while someone is signed in."""
    feed, dialog = FakeFeed(), SignInDialog()
    qtbot.addWidget(dialog)
    session = Session(feed, dialog)
    assert not session.check_timer.isActive()
    session.check()
    assert feed.sent == []  # signed out: nothing to ask
    session.deliver([signed("tok-3")])
    assert session.check_timer.isActive()
    session.check_timer.setInterval(20)
    qtbot.waitUntil(lambda: any(isinstance(m, SessionCheck) for m in feed.sent), timeout=2000)
    session.check_timer.setInterval(60_000)
    asked = next(i for i, m in enumerate(feed.sent) if isinstance(m, SessionCheck)) + 1
    assert feed.sent[asked - 1] == SessionCheck(token="tok-3")
    session.deliver([CommandReply(ok=True, ref=asked)])
    assert session.user == "operator1" and not dialog.isVisible()
    session.check()
    session.deliver([CommandReply(ok=False, code="unauthenticated", ref=len(feed.sent),
                                  error="not signed in (or the session ended): sign in again")])
    assert session.current is None and dialog.isVisible()
    assert "session ended" in dialog.message.text()
    assert not session.check_timer.isActive()
    count = len(feed.sent)
    qtbot.wait(100)
    assert len(feed.sent) == count  # no more checks once signed out


def test_events_ask_for_a_check_at_most_every_few_seconds(qtbot: QtBot) -> None:
    """Four tiles going offline at once (a relay that cut a session) ask
    once, not four times; a later event asks again."""
    from console import session as session_module
    feed, dialog = FakeFeed(), SignInDialog()
    qtbot.addWidget(dialog)
    session = Session(feed, dialog)
    session.check_soon()
    assert feed.sent == []  # signed out: nothing to ask
    session.deliver([signed()])
    for _ in range(4):
        session.check_soon()
    assert sum(isinstance(m, SessionCheck) for m in feed.sent) == 1
    session._checked_at -= session_module.CHECK_SOON_S  # that long ago
    session.check_soon()
    assert sum(isinstance(m, SessionCheck) for m in feed.sent) == 2
