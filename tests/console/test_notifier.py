"""Guardians' notices through a real SMTP server (aiosmtpd on 127.0.0.1)
from a real SQLite outbox: delivery with a Korean subject, a 4xx retried,
a 5xx dead-lettered at once, a refused connection retried, one bad notice
costing only itself, and the notifier's loop sending each notice once
across a restart while one left in flight is sent again."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Thread

import pytest
import zmq
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from console.config import Config
from console.notify.adapters import DeliveryError, adapter_for
from console.notify.smtp import SmtpAdapter
from console.services import notifier as notifier_module
from console.services.notifier import Notifier, Result
from console.services.runtime import Runtime
from db import consent as db_consent
from db import outbox
from db.store import open_store, sqlite_url
from db.tables import Child, Notice
from models.messages import NoticeStatus, decode
from models.notices import CHANNELS, Outgoing, render
from tests.console.smtp_server import Mailbox, smtp_server
from tests.services import free_tcp_port

KST = 32400.0
SENDER = "childsafe@seoul.example"
MOTHER = "mother@example.kr"


@pytest.fixture
def store(data_dir: Path) -> Iterator[sessionmaker[Session]]:
    """One child with routine consent; its mother has an e-mail, its father
    a phone only."""
    engine, factory = open_store(sqlite_url(data_dir))
    now = time.time()
    with factory() as s:
        s.add(Child(id=1, token="C-AAAA001", name="김민준", zone_id=None))
        s.flush()
        mother = db_consent.add_guardian(s, "김엄마", "", MOTHER, now)
        father = db_consent.add_guardian(s, "김아빠", "010-1234-5678", "", now)
        db_consent.link(s, "C-AAAA001", mother.id, "mother")
        db_consent.link(s, "C-AAAA001", father.id, "father")
        db_consent.give(s, "C-AAAA001", mother.id, "routine", "under14", "admin", now)
        s.commit()
    yield factory
    engine.dispose()


def _config(data_dir: Path, port: int) -> Config:
    cfg = Config(data_dir=data_dir, bus_security="off", notifier_adapter="smtp",
                 smtp_host="127.0.0.1", smtp_port=port, smtp_from=SENDER,
                 notice_max_attempts=3)
    cfg.ensure_dirs()
    return cfg


def _enqueue(store: sessionmaker[Session], key: str, now: float) -> dict[str, int]:
    """The event's notices by channel: {"email": id, "sms": id}."""
    with store() as s:
        rows = outbox.enqueue(s, child_id=1, kind="school_arrival", zone="신도림초등학교",
                              event_at=now, key=key, now=now, offset_s=KST)
        s.commit()
        return {r.channel: r.id for r in rows}


def _row(store: sessionmaker[Session], notice_id: int) -> Notice:
    with store() as s:
        row = s.get(Notice, notice_id)
        assert row is not None
        return row


def _recorded(data_dir: Path) -> list[dict[str, object]]:
    path = data_dir / "notices.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@contextmanager
def _notifier(cfg: Config, clock: Callable[[], float] = time.time,
              **kw: object) -> Iterator[tuple[Notifier, list[NoticeStatus]]]:
    """A notifier driven step by step by the test; what it publishes is
    kept in the list as well."""
    n = Notifier(Runtime("notifier", cfg), clock=clock, **kw)  # type: ignore[arg-type]
    published: list[NoticeStatus] = []
    send = n._publish

    def keep(statuses: list[NoticeStatus]) -> None:
        published.extend(statuses)
        send(statuses)

    n._publish = keep  # type: ignore[method-assign]
    try:
        yield n, published
    finally:
        n.close()


def _step(n: Notifier, timeout_s: float = 10.0) -> None:
    """One claim, its sends and their outcomes written."""
    n.poll_at = n.retry_at = 0.0
    n.turn([])
    deadline = time.monotonic() + timeout_s
    while n.in_flight or n.done:
        assert time.monotonic() < deadline, "the notifier did not finish its batch"
        n.turn(n.sender.take(0.2))


def _until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ------------------------------------------------------------------ adapter


def test_smtp_adapter_delivers_korean_mail() -> None:
    text = render("school_arrival", "김민준", "신도림초등학교", 1_741_044_720.0, KST)
    notice = Outgoing(id=7, key="arr:1:g1", child_token="C-AAAA001", kind="school_arrival",
                      zone="신도림초등학교", channel="email", address=MOTHER,
                      subject=text.subject, body=text.body, event_at=1_741_044_720.0,
                      attempts=0)
    with smtp_server() as (box, port):
        adapter = SmtpAdapter("127.0.0.1", port, SENDER, timeout_s=5.0)
        adapter.send(notice)
        adapter.send(notice)  # a resend after a restart: the same Message-ID
    first, second = box.messages
    assert first["Subject"] == "[서울 아동안전] 김민준 학생이 신도림초등학교에 도착했습니다 (08:32)"
    assert (first["From"], first["To"]) == (SENDER, MOTHER)
    assert "김민준 arrived at 신도림초등학교 at 08:32." in first.get_content()
    assert first["Message-ID"] == second["Message-ID"] == adapter.message_id(notice)
    assert first["Message-ID"].startswith("<notice-7-") and "@seoul.example>" in first[
        "Message-ID"]


def test_a_bad_address_fails_for_good_before_dialling() -> None:
    adapter = SmtpAdapter("127.0.0.1", free_tcp_port(), SENDER, timeout_s=1.0)
    notice = Outgoing(id=1, key="k", child_token="C", kind="school_arrival", zone="z",
                      channel="email", address="mother at example", subject="s", body="b",
                      event_at=0.0, attempts=0)
    with pytest.raises(DeliveryError, match="bad e-mail address") as err:
        adapter.send(notice)
    assert err.value.permanent


def test_a_server_without_starttls_or_auth_is_a_transient_failure() -> None:
    """The server's or the configuration's fault, not the notice's: fixing
    the server must not leave the notices dead."""
    notice = Outgoing(id=1, key="k", child_token="C", kind="school_arrival", zone="z",
                      channel="email", address=MOTHER, subject="s", body="b", event_at=0.0,
                      attempts=0)
    with smtp_server() as (box, port):
        for adapter, reason in (
                (SmtpAdapter("127.0.0.1", port, SENDER, starttls=True), "offers no STARTTLS"),
                (SmtpAdapter("127.0.0.1", port, SENDER, user="u", password="p"), "AUTH")):
            with pytest.raises(DeliveryError, match=reason) as err:
                adapter.send(notice)
            assert not err.value.permanent
    assert box.messages == []


# ------------------------------------------------------------ outcomes


def test_451_is_retried_then_sent(store: sessionmaker[Session], data_dir: Path) -> None:
    clock = [time.time()]
    ids = _enqueue(store, "arr:1", clock[0])
    with smtp_server(Mailbox(data_replies=["451 4.3.0 Try again later"])) as (box, port), \
            _notifier(_config(data_dir, port), lambda: clock[0]) as (n, published):
        _step(n)
        mail = _row(store, ids["email"])
        assert (mail.state, mail.attempts, mail.next_at) == ("pending", 1, clock[0] + 30.0)
        assert mail.last_error.startswith("refused: 451")
        assert _row(store, ids["sms"]).state == "sent"  # recorded for the SMS hand-off
        assert box.messages == []
        clock[0] += 29.0
        _step(n)
        assert _row(store, ids["email"]).attempts == 1  # not due yet
        clock[0] += 1.0
        _step(n)
    mail = _row(store, ids["email"])
    assert (mail.state, mail.attempts, mail.sent_at) == ("sent", 2, clock[0])
    assert len(box.messages) == 1
    assert [(p.notice_id, p.state, p.attempts) for p in published
            if p.notice_id == ids["email"]] == [(ids["email"], "retrying", 1),
                                               (ids["email"], "sent", 2)]
    assert n.stats()["sent"] == 2 and n.stats()["retried"] == 1
    [sms] = _recorded(data_dir)
    assert (sms["channel"], sms["address"], sms["child"]) == ("sms", "010-1234-5678", "C-AAAA001")


def test_550_is_dead_at_once_with_the_reason(store: sessionmaker[Session],
                                              data_dir: Path) -> None:
    ids = _enqueue(store, "arr:1", time.time())
    box = Mailbox(rcpt_reply="550 5.1.1 <mother@example.kr>: no such user")
    with smtp_server(box) as (_, port), _notifier(_config(data_dir, port)) as (n, published):
        _step(n)
    mail = _row(store, ids["email"])
    assert (mail.state, mail.attempts) == ("dead", 1)
    assert mail.last_error == "recipient refused: 550 5.1.1 <mother@example.kr>: no such user"
    [status] = [p for p in published if p.notice_id == ids["email"]]
    assert (status.state, status.child_token, status.error) == ("dead", "C-AAAA001",
                                                                mail.last_error)
    assert n.stats()["dead"] == 1


def test_a_refused_connection_is_retried(store: sessionmaker[Session], data_dir: Path) -> None:
    ids = _enqueue(store, "arr:1", time.time())
    with _notifier(_config(data_dir, free_tcp_port())) as (n, published):  # nobody listens
        _step(n)
    mail = _row(store, ids["email"])
    assert (mail.state, mail.attempts) == ("pending", 1)
    assert mail.last_error.startswith("cannot reach 127.0.0.1:")
    assert "refused" in mail.last_error.lower()
    assert [p.state for p in published if p.notice_id == ids["email"]] == ["retrying"]


def test_one_bad_notice_costs_only_itself(store: sessionmaker[Session], data_dir: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    class Picky:
        channels = frozenset(CHANNELS)

        def send(self, notice: Outgoing) -> None:
            if notice.channel == "email":
                raise RuntimeError("boom")

    ids = _enqueue(store, "arr:1", time.time())
    with _notifier(_config(data_dir, free_tcp_port()), adapter=Picky()) as (n, _):
        real = notifier_module.outbox.claim_due

        def broken(*_a: object, **_k: object) -> list[Notice]:
            raise RuntimeError("a bug in a turn")

        monkeypatch.setattr(notifier_module.outbox, "claim_due", broken)
        n.turn([])  # logged and counted, not raised
        assert n.stats()["failures"] == 1
        monkeypatch.setattr(notifier_module.outbox, "claim_due", real)
        _step(n)
    assert _row(store, ids["sms"]).state == "sent"
    mail = _row(store, ids["email"])
    assert (mail.state, mail.last_error) == ("pending", "adapter failed: RuntimeError('boom')")


def test_outcomes_wait_for_a_locked_store(store: sessionmaker[Session], data_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifier_module, "STORE_WAIT_S", 0.2)
    ids = _enqueue(store, "arr:1", time.time())
    with smtp_server() as (box, port), _notifier(_config(data_dir, port)) as (n, published):
        n.turn([])  # claimed and handed to the sender
        assert len(n.in_flight) == 2
        blocker = sqlite3.connect(data_dir / "childsafe.sqlite3", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            results: list[Result] = []
            deadline = time.monotonic() + 10
            while len(results) < 2:  # both sent while the store is locked
                assert time.monotonic() < deadline, "the sends did not come back"
                results += n.sender.take(0.1)
            n.turn(results)
            assert n.stats()["store_failures"] == 1 and n.stats()["store_state"] == 1
            assert len(n.done) == 2 and published == []
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        n.retry_at = 0.0
        n.turn([])
        assert n.done == [] and {p.state for p in published} == {"sent"}
    assert {_row(store, i).state for i in ids.values()} == {"sent"}
    assert len(box.messages) == 1


def test_the_record_adapter_handles_every_channel(data_dir: Path) -> None:
    cfg = Config(data_dir=data_dir, notifier_adapter="record")
    adapter = adapter_for(cfg)
    assert set(CHANNELS) <= adapter.channels
    adapter.send(Outgoing(id=3, key="k", child_token="C-1", kind="academy_departure",
                          zone="학원", channel="record", address="", subject="제목",
                          body="본문", event_at=1.0, attempts=2))
    [line] = _recorded(data_dir)
    assert (line["id"], line["subject"], line["attempt"]) == (3, "제목", 3)


# ------------------------------------------------------------ the loop


def _statuses(sub: zmq.Socket[bytes], want: set[int], timeout_s: float) -> list[NoticeStatus]:
    """``notice.status`` bodies from the bus until each of ``want`` is sent."""
    got: list[NoticeStatus] = []
    deadline = time.monotonic() + timeout_s
    while {s.notice_id for s in got if s.state == "sent"} < want:
        assert time.monotonic() < deadline, f"no 'sent' status on the bus: {got}"
        if sub.poll(200):
            msg = decode(sub.recv_multipart()[1])
            if isinstance(msg, NoticeStatus):
                got.append(msg)
    return got


@contextmanager
def _running(cfg: Config, clock: Callable[[], float] = time.time) -> Iterator[Notifier]:
    rt = Runtime("notifier", cfg)
    n = Notifier(rt, clock=clock)
    thread = Thread(target=n.run, name="test-notifier")
    thread.start()
    try:
        yield n
    finally:
        rt.stop.set()
        thread.join(15)
        assert not thread.is_alive(), "the notifier did not stop"


def test_the_loop_sends_once_and_resends_what_was_in_flight(
        store: sessionmaker[Session], data_dir: Path) -> None:
    with smtp_server() as (box, port):
        cfg = _config(data_dir, port)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"notice.")
        sub.bind(cfg.bus_pub)  # stands in for the bus proxy's publisher side
        try:
            # due a second from now: the notifier's publisher has joined by then
            first = _enqueue(store, "arr:1", time.time() + 1.0)
            with _running(cfg):
                statuses = _statuses(sub, set(first.values()), timeout_s=10)
            assert {(s.notice_id, s.state, s.attempts, s.kind) for s in statuses} == {
                (i, "sent", 1, "school_arrival") for i in first.values()}
            assert len(box.messages) == 1 and len(_recorded(data_dir)) == 1

            # a notifier died with this event's notices claimed and unmarked
            lost = _enqueue(store, "dep:1", time.time())
            with store() as s:
                assert len(outbox.claim_due(s, time.time(), 10)) == 2
                s.commit()
            later = lambda: time.time() + outbox.LEASE_S + 1  # noqa: E731
            with _running(cfg, clock=later):
                _statuses(sub, set(lost.values()), timeout_s=10)
                time.sleep(0.6)  # another poll of the outbox: nothing else goes
        finally:
            sub.close(0)
            ctx.term()
    assert len(box.messages) == 2, "the notice sent before the restart went again"
    assert [line["id"] for line in _recorded(data_dir)] == [first["sms"], lost["sms"]]
    with store() as s:
        states = s.execute(select(Notice.id, Notice.state, Notice.attempts)).all()
    assert sorted(states) == sorted((i, "sent", 1) for i in [*first.values(), *lost.values()])
