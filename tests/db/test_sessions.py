"""Sessions in the store and the engine's book of them, on SQLite and
PostgreSQL: which are live, and which ended before their tokens expired
(what the media relay must refuse)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from console.engine.sessions import REFRESH_S, SessionBook
from db import accounts
from db.store import open_store
from models.accounts import SESSION_S
from models.alerts import Refused

T0 = 1_790_000_000.0
PASSWORD = "correct horse battery"


@pytest.fixture
def sessions(store_url: str) -> Iterator[sessionmaker[Session]]:
    engine, made = open_store(store_url)
    with made() as s:
        accounts.add_user(s, "operator1", ["operator"], PASSWORD)
        accounts.add_user(s, "operator2", ["operator"], PASSWORD)
        s.commit()
    yield made
    engine.dispose()


def _sign_in(made: sessionmaker[Session], user: str, now: float) -> accounts.SessionInfo:
    with made() as s:
        info = accounts.sign_in(s, user, PASSWORD, "test", now)
        s.commit()
    return info


def test_unexpired_sessions_say_which_ended_early(sessions: sessionmaker[Session]) -> None:
    out = _sign_in(sessions, "operator1", T0)
    live = _sign_in(sessions, "operator1", T0 + 1)
    gone = _sign_in(sessions, "operator2", T0 + 2)
    old = _sign_in(sessions, "operator2", T0 - SESSION_S - 10)  # expired: in neither list
    with sessions() as s:
        accounts.sign_out(s, out.token, T0 + 5)
        assert accounts.disable(s, "operator2", T0 + 6) == 2
        s.commit()
    with sessions() as s:
        rows = {r.token_hash: r for r in accounts.unexpired_sessions(s, T0 + 10)}
    h = accounts.token_hash
    assert set(rows) == {h(out.token), h(live.token), h(gone.token)}
    assert h(old.token) not in rows
    assert {k for k, r in rows.items() if r.ended} == {h(out.token), h(gone.token)}
    assert rows[h(live.token)].user == "operator1"
    assert rows[h(out.token)].expires_at == pytest.approx(out.expires_at)
    # A disabled account's session counts as ended even if its row was not
    # closed (an account disabled by hand in the database).
    with sessions() as s:
        accounts.get_user(s, "operator1").disabled = True
        s.commit()
    with sessions() as s:
        assert all(r.ended for r in accounts.unexpired_sessions(s, T0 + 10))
    with sessions() as s:
        assert accounts.unexpired_sessions(s, T0 + SESSION_S + 10) == []


def test_the_book_lists_ended_sessions_from_sign_out_and_from_the_store(
        sessions: sessionmaker[Session]) -> None:
    clock = [T0]
    book = SessionBook(sessions, clock=lambda: clock[0])
    assert book.refresh(force=True) and book.ended == {}
    first = book.sign_in("operator1", PASSWORD, "desk 1")
    second = book.sign_in("operator2", PASSWORD, "desk 2")
    assert book.actor(first.token, "cmd.ack").user == "operator1"

    # Signed out through the engine: ended at once, before any re-read.
    assert book.sign_out(first.token) == "operator1"
    assert book.ended == {accounts.token_hash(first.token): first.expires_at}
    with pytest.raises(Refused):
        book.actor(first.token, "cmd.ack")
    assert book.sign_out(first.token) is None  # twice: nothing more ends
    assert len(book.ended) == 1

    # Disabled from the command line: the next re-read (not before) has it.
    with sessions() as s:
        accounts.disable(s, "operator2", clock[0])
        s.commit()
    assert not book.refresh()
    clock[0] += REFRESH_S
    assert book.refresh()
    assert set(book.ended) == {accounts.token_hash(first.token),
                               accounts.token_hash(second.token)}
    with pytest.raises(Refused):
        book.actor(second.token, "cmd.ack")

    # A restarted engine's book finds the same list in the store.
    again = SessionBook(sessions, clock=lambda: clock[0])
    again.refresh(force=True)
    assert again.ended == book.ended
    # Once the tokens expire there is nothing left to refuse.
    clock[0] = first.expires_at + 1
    again.refresh(force=True)
    assert again.ended == {}
