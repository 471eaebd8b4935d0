"""The child card through a real engine: a child with a timetable today
arrives at its academy through the gateway, and an operator's card shows
the slot arrived, the zone it is in, the guardian's notice and the trail,
with the use written to the location-usage log; auditors and admins are
refused, and so is a child nobody enrolled.

One backend (bus, engine, recorder, gateway) serves the module; each test
uses children of its own. The controller's part (which child, when to ask,
the trail on the map, answers that come too late) runs on a fake session.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.child_card_controller import REFRESH_S, ChildCardController
from console.config import Config
from console.feed import LiveFeed
from db import timetables
from db.repositories import RosterEntry
from db.tables import Child
from models.geo import to_map
from models.holidays import holiday
from models.messages import (
    MAX_CARD_TRAIL_S,
    ChildCard,
    ChildCardRequest,
    CommandReply,
    NoticeStatus,
    UsageRequest,
    UsageRows,
    unpack,
)
from models.timetable import local_day
from models.usage import UsageEntry, UsageFilter
from tests.console.conftest import SEOUL_FOREST, Backend, make_config, running_backend, wait_for
from widgets.child_card import ChildCardPanel, fake_card
from widgets.map_view import MapView

SERVICES = ("bus", "engine", "recorder", "gateway")  # the recorder stores the trail
ZONE = "Seoul Forest Park"
NOW = time.time()


def _window(cfg: Config) -> tuple[int, int, int]:
    """(weekday, start, end minutes) of an academy slot under way now, local time."""
    now = time.time()
    local = datetime.fromtimestamp(now + cfg.local_utc_offset_s, UTC)
    minute = local.hour * 60 + local.minute
    start = max(0, minute - 60)
    end = min(24 * 60, max(minute + 60, start + 30))
    return local.weekday(), start, end


@pytest.fixture(scope="module")
def b() -> Iterator[Backend]:
    data_dir = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    cfg = make_config(data_dir, children=20)
    if holiday(local_day(time.time(), cfg.local_utc_offset_s)) is not None:
        pytest.skip("today is a public holiday: no timetable runs")
    weekday, start, end = _window(cfg)

    def first_child_at_the_academy(s: Session) -> None:
        token = s.scalar(select(Child.token).order_by(Child.id).limit(1))
        assert token is not None
        timetables.set_slot(s, token, weekday, ZONE, "academy", start, end, "test")

    try:
        with running_backend(cfg, SERVICES, seed=first_child_at_the_academy) as backend:
            yield backend
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def children(b: Backend) -> list[RosterEntry]:
    """One roster entry (its first device) per child, in roster order."""
    first: dict[str, RosterEntry] = {}
    for r in b.roster:
        first.setdefault(r.token, r)
    return list(first.values())


@pytest.fixture(scope="module")
def tokens(b: Backend) -> dict[str, str]:
    return {u: b.sign_in(u) for u in ("operator1", "supervisor1", "auditor1", "admin1")}


def card(b: Backend, session: str, child: str, trail_s: float = 900.0) -> ChildCard:
    reply = b.command(ChildCardRequest(token=session, child=child, trail_s=trail_s))
    assert isinstance(reply, ChildCard), reply
    return reply


def refused(reply: object, code: str) -> str:
    assert isinstance(reply, CommandReply) and not reply.ok, reply
    assert reply.code == code, reply
    return reply.error


def history(b: Backend, auditor: str, child: str) -> list[UsageEntry]:
    reply = b.command(UsageRequest(token=auditor, filter=UsageFilter(subject=child,
                                                                     action="history")))
    assert isinstance(reply, UsageRows), reply
    return reply.rows


def test_an_operator_sees_the_day_the_notices_and_the_trail(
        b: Backend, children: list[RosterEntry], tokens: dict[str, str]) -> None:
    child = children[0]
    op = tokens["operator1"]
    before = card(b, op, child.token)
    assert before.tracked and before.child == child.token
    assert [(s.zone, s.kind, s.state) for s in before.slots] == [(ZONE, "academy", "pending")]
    assert before.zones == [] and before.last_fix_t == 0.0 and before.notices == []
    assert before.day_t0 <= time.time() < before.day_t0 + 86400
    assert len(before.trail_t) == 0
    assert history(b, tokens["auditor1"], child.token) == []  # nothing shown, nothing logged

    sent_at = time.time()
    for i in range(3):  # a short walk inside the park
        status, _ = b.fix(child.device_id, SEOUL_FOREST[0] + i * 1e-4, SEOUL_FOREST[1],
                          t=sent_at - 20 + i * 10, batt=64)
        assert status == 200

    def arrived() -> ChildCard | None:
        c = card(b, op, child.token)
        done = (c.slots and c.slots[0].state == "arrived" and c.notices
                and len(c.trail_t) // 8 == 3)
        return c if done else None

    wait_for(arrived, 15, "the arrival, its notice and the stored trail")
    now = card(b, op, child.token)
    slot = now.slots[0]
    assert slot.inside and slot.alerted == [] and slot.alert_ids == []
    assert slot.arrived_at == pytest.approx(sent_at - 20, abs=1.0)  # the first fix in
    assert slot.departed_at == 0.0
    assert now.zones == [ZONE] and now.uncertain == []
    assert now.last_fix_t == pytest.approx(sent_at, abs=1.0) and now.battery == 64
    assert not now.lost_signal and now.alert_ids == []
    notice = now.notices[0]
    assert (notice.kind, notice.zone, notice.state) == ("academy_arrival", ZONE, "pending")
    assert notice.channel == "sms" and notice.attempts == 0  # the seed's guardian has a phone
    t, lat = unpack("t", now.trail_t), unpack("lat", now.trail_lat)
    assert list(t) == sorted(t) and lat[-1] == pytest.approx(SEOUL_FOREST[0] + 2e-4)
    assert now.trail_s == 900.0
    # A supervisor's card too; the window is capped at an hour.
    assert card(b, tokens["supervisor1"], child.token, trail_s=1e9).trail_s == MAX_CARD_TRAIL_S

    rows = history(b, tokens["auditor1"], child.token)
    # one use per viewer, however often the card was asked for meanwhile
    assert sorted(r.actor for r in rows) == ["operator1", "supervisor1"]
    last = rows[0]
    assert last.purpose == "child card" and last.subject == child.token
    assert "3 positions" in last.detail and "1 notice(s)" in last.detail
    # No trail asked for and no notices: nothing shown, nothing recorded.
    quiet = children[1]
    assert len(card(b, op, quiet.token, trail_s=0).trail_t) == 0
    assert history(b, tokens["auditor1"], quiet.token) == []


def test_only_operators_and_supervisors_get_a_card(b: Backend, children: list[RosterEntry],
                                                   tokens: dict[str, str]) -> None:
    child = children[2].token
    for user in ("auditor1", "admin1"):
        error = refused(b.command(ChildCardRequest(token=tokens[user], child=child)),
                        "forbidden")
        assert user in error
    refused(b.command(ChildCardRequest(token="not-a-session", child=child)),
            "unauthenticated")


def test_an_unknown_child_is_refused_in_words(b: Backend, tokens: dict[str, str]) -> None:
    op = tokens["operator1"]
    error = refused(b.command(ChildCardRequest(token=op, child="C-NOPE000")), "unknown")
    assert "no child C-NOPE000" in error
    refused(b.command(ChildCardRequest(token=op, child="")), "bad_value")
    refused(b.command(ChildCardRequest(token=op, child="C-1", trail_s=float("nan"))),
            "bad_value")


# ------------------------------------------------------------- the console's side


class FakeSession:
    """``console.session.Session`` as the controller uses it: requests kept,
    answered by the test."""

    def __init__(self) -> None:
        self.user = "operator1"
        self.allowed = True
        self.sent: list[tuple[object, Callable[[object], None] | None]] = []

    def may(self, schema: str) -> bool:
        return self.allowed and schema == "req.child_card"

    def send(self, command: object, on_reply: Callable[[object], None] | None = None) -> int:
        self.sent.append((command, on_reply))
        return len(self.sent)

    def answer(self, reply: object) -> None:
        _, on_reply = self.sent[-1]
        assert on_reply is not None
        on_reply(reply)


def test_the_controller_asks_for_the_picked_child_and_draws_its_trail(qtbot: QtBot) -> None:
    session = FakeSession()
    panel = ChildCardPanel(clock=lambda: NOW)
    view = MapView()
    for w in (panel, view):
        qtbot.addWidget(w)
    view.resize(800, 600)
    view.show()
    panel.show()
    qtbot.waitExposed(view)
    cx, cy = to_map(np.array([SEOUL_FOREST[0]]), np.array([SEOUL_FOREST[1]]))
    xs = np.array([cx[0], cx[0] + 2000.0, np.nan])
    ys = np.array([cy[0], cy[0], np.nan])
    view.center_on(float(cx[0]), float(cy[0]), 4000.0)  # ~5 m a pixel
    clock = [NOW]
    ctl = ChildCardController(session, panel, view, positions=lambda: (xs, ys),
                              token_of=lambda slot: ["C-0000A1", "C-0000B2", ""][slot],
                              clock=lambda: clock[0])
    wanted: list[bool] = []
    ctl.card_wanted.connect(lambda: wanted.append(True))

    ctl.map_clicked(float(cx[0]) + 300.0, float(cy[0]))  # 60 px away: nobody
    assert session.sent == [] and not wanted
    ctl.map_clicked(float(cx[0]) + 30.0, float(cy[0]) - 20.0)  # a few px from slot 0
    assert wanted and len(session.sent) == 1
    req = session.sent[0][0]
    assert isinstance(req, ChildCardRequest) and req.child == "C-0000A1"
    assert view.highlighted() == (pytest.approx(cx[0]), pytest.approx(cy[0]))
    assert panel.child == "C-0000A1" and "Asking" in panel.status.text()
    ctl.tick(NOW + 1)  # one request at a time
    assert len(session.sent) == 1

    session.answer(fake_card(NOW, "C-0000A1", day_t0=NOW - 16 * 3600))
    assert panel.card is not None and panel.card.child == "C-0000A1"
    assert len(ctl.trail) == 90 and ctl.trail.isVisible()
    ctl.tick(NOW + 5)
    assert len(session.sent) == 1  # not due yet
    clock[0] = NOW + REFRESH_S + 1
    ctl.tick(clock[0])
    assert len(session.sent) == 2  # refreshed while shown
    session.answer(fake_card(NOW, "C-0000A1", day_t0=NOW - 16 * 3600))
    # A notice about another child changes nothing; one about this child asks again.
    ctl.on_notices([NoticeStatus(notice_id=1, child_token="C-0000B2", kind="school_arrival",
                                 zone="z", state="sent", attempts=1)])
    ctl.tick(clock[0] + 1)
    assert len(session.sent) == 2
    ctl.on_notices([NoticeStatus(notice_id=2, child_token="C-0000A1", kind="school_arrival",
                                 zone="z", state="dead", attempts=5, error="550")])
    ctl.tick(clock[0] + 1)
    assert len(session.sent) == 3
    session.answer(CommandReply(ok=False, error="the store refused the child card",
                                code="store"))
    assert panel.status.property("kind") == "error" and panel.card is not None

    # Hidden: nothing asked, no trail on the map; shown again: asked at once.
    panel.hide()
    assert not ctl.trail.isVisible()
    clock[0] += 3 * REFRESH_S
    ctl.tick(clock[0])
    assert len(session.sent) == 3
    panel.show()
    assert ctl.trail.isVisible() and len(session.sent) == 4

    # The alert's child replaces the card; the old child's late answer is dropped.
    ctl.alert_selected(None)
    assert panel.child == "C-0000A1"
    stale_answer = session.sent[-1][1]
    ctl.show_child("C-0000B2")
    assert len(ctl.trail) == 0 and panel.card is None and len(session.sent) == 5
    assert stale_answer is not None
    stale_answer(fake_card(NOW, "C-0000A1"))
    assert panel.card is None
    # A sign-out forgets everything, and what was on its way.
    on_its_way = session.sent[-1][1]
    ctl.reset()
    assert on_its_way is not None
    on_its_way(fake_card(NOW, "C-0000B2"))
    assert panel.card is None and panel.child == "" and len(ctl.trail) == 0
    # Someone who may not see cards asks nothing.
    session.allowed = False
    ctl.map_clicked(float(cx[0]), float(cy[0]))
    ctl.show_child("C-0000A1")
    assert len(session.sent) == 5


def test_notice_changes_and_tokens_reach_the_gui_thread(data_dir: Path) -> None:
    feed = LiveFeed(make_config(data_dir))  # not started: its state is fed by hand
    msg = NoticeStatus(notice_id=7, child_token="C-0000A1", kind="school_arrival", zone="z",
                       state="retrying", attempts=1, error="timeout", origin="notifier:1")
    assert feed.state.apply(msg)  # the notifier's word: no engine sequence to check
    assert feed.take().notices == [msg]
    assert feed.take().notices == []  # each change once
    feed.state.tokens = ["C-0000A1", "C-0000B2"]
    assert feed.token_of(1) == "C-0000B2" and feed.token_of(2) == "" and feed.token_of(-1) == ""
