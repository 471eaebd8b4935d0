"""console.privacy_controller with real widgets offscreen, a fake session
(requests recorded, answers given by the test) and a fake clock: reveals
granted at once or after a supervisor, the identity forgotten at the end
of the grant (nothing left in the card or the controller), disclosures,
approvals and the usage log's export."""

from __future__ import annotations

import csv
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from console.privacy_controller import POLL_S, PrivacyController
from models.accounts import may
from models.messages import (
    AlertView,
    AnyMessage,
    ChildDetail,
    ChildRequest,
    CommandReply,
    DiscloseRequest,
    DisclosureDecision,
    DisclosureList,
    DisclosureReply,
    DisclosuresRequest,
    DisclosureView,
    RevealDecision,
    RevealList,
    RevealReply,
    RevealRequest,
    RevealsRequest,
    UsageRequest,
    UsageRows,
)
from models.messages import RevealView as RevealState
from models.usage import UsageFilter
from widgets.alert_panel import AlertPanel
from widgets.approvals_panel import ApprovalsPanel
from widgets.reveal_view import RevealView, fake_child_detail
from widgets.usage_log_view import UsageLogView, fake_rows

NOW = 1_790_000_000.0
CHILD = "C-PRIV01"


class FakeSession:
    """``console.session.Session`` as the controller uses it."""

    def __init__(self, user: str, roles: set[str]) -> None:
        self.user = user
        self.roles = frozenset(roles)
        self.sent: list[tuple[AnyMessage, Callable[[Any], None] | None]] = []

    def may(self, schema: str) -> bool:
        return may(self.roles, schema)

    def send(self, command: AnyMessage, on_reply: Callable[[Any], None] | None = None) -> int:
        self.sent.append((command, on_reply))
        return len(self.sent)

    def kinds(self) -> list[str]:
        return [type(m).__name__ for m, _ in self.sent]

    def last(self, kind: type) -> Any:
        return next(m for m, _ in reversed(self.sent) if isinstance(m, kind))

    def answer(self, kind: type, reply: object) -> None:
        """Answer the oldest unanswered request of ``kind``."""
        i = next(i for i, (m, _) in enumerate(self.sent) if isinstance(m, kind))
        _, on_reply = self.sent.pop(i)
        assert on_reply is not None
        on_reply(reply)


class Rig:
    def __init__(self, qtbot: QtBot, tmp_path: Path, user: str, roles: set[str]) -> None:
        self.t = NOW
        self.session = FakeSession(user, roles)
        self.panel = AlertPanel(clock=lambda: self.t)
        self.view = RevealView(clock=lambda: self.t)
        self.approvals = ApprovalsPanel()
        self.usage = UsageLogView()
        for w in (self.panel, self.view, self.approvals, self.usage):
            qtbot.addWidget(w)
        self.path = tmp_path / "export.csv"
        self.asked_path: list[str] = []
        self.ctrl = PrivacyController(self.session, self.panel, self.view, self.approvals,
                                      self.usage, clock=lambda: self.t,
                                      ask_path=self._path)
        self.panel.set_user(user, roles)
        self.ctrl.reset()
        self.session.sent.clear()

    def _path(self, name: str) -> str:
        self.asked_path.append(name)
        return str(self.path) if self.path.name else ""

    def tick(self, dt: float) -> None:
        self.t += dt
        self.ctrl.tick(self.t)

    def ask_reveal(self, alert: AlertView, reason: str = "SOS, child not answering") -> None:
        self.ctrl.request_reveal(alert)
        dialog = self.ctrl.reveal_dialog
        assert dialog.isVisible()
        dialog.reason.setText(reason)
        dialog.accept()


def alert(**kw: object) -> AlertView:
    base: dict[str, object] = dict(id=7, kind="sos", priority=1, state="in_progress",
                                   child_token=CHILD, child_slot=3, device_id="860123456784821",
                                   lat=37.5444, lon=127.0374, place="성동구 성수동1가",
                                   opened_at=NOW - 60, owner="kim.op", version=4)
    base.update(kw)
    return AlertView(**base)  # type: ignore[arg-type]


def reveal(state: str, **kw: object) -> RevealState:
    base: dict[str, object] = dict(id=21, child=CHILD, user="kim.op", reason="SOS, child not "
                                   "answering", alert_id=7, state=state, requested_at=NOW)
    base.update(kw)
    return RevealState(**base)  # type: ignore[arg-type]


def identity(expires_at: float, **kw: object) -> ChildDetail:
    d = fake_child_detail(NOW, CHILD)
    return msgspec.structs.replace(d, expires_at=expires_at, reveal_id=21, **kw)


def live_details() -> list[ChildDetail]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, ChildDetail) and o.child == CHILD]


@pytest.fixture
def operator(qtbot: QtBot, tmp_path: Path) -> Rig:
    return Rig(qtbot, tmp_path, "kim.op", {"operator"})


@pytest.fixture
def supervisor(qtbot: QtBot, tmp_path: Path) -> Rig:
    return Rig(qtbot, tmp_path, "park.sv", {"supervisor"})


# ------------------------------------------------------------------ reveals


def test_an_owned_open_alert_reveals_at_once_and_forgets_at_the_end(operator: Rig) -> None:
    rig = operator
    a = alert()
    rig.panel.show_alert(a)
    rig.ctrl.request_reveal(a)
    dialog = rig.ctrl.reveal_dialog
    assert dialog.isVisible() and "shown at once" in dialog.intro.text()
    dialog.accept()  # no reason: nothing leaves
    assert RevealRequest.__name__ not in rig.session.kinds()
    dialog.reason.setText("SOS, child not answering")
    dialog.accept()
    assert rig.session.last(RevealRequest) == RevealRequest(
        token="", child=CHILD, reason="SOS, child not answering", alert_id=7)
    assert "Asking the engine" in rig.view.state.text()
    rig.session.answer(RevealRequest, RevealReply(reveal=reveal(
        "granted", decided_by="engine", decided_at=NOW, expires_at=NOW + 900)))
    assert rig.session.last(ChildRequest) == ChildRequest(token="", child=CHILD, trail_s=0.0)
    rig.session.answer(ChildRequest, identity(NOW + 900))
    assert "Kim Haneul" in rig.view.shown_text() and "010-2345-6789" in rig.view.shown_text()
    assert "(15:00 left)" in rig.view.countdown.text()
    rig.tick(899)
    assert "(0:01 left)" in rig.view.countdown.text()
    assert len(live_details()) == 1  # the card's, and only the card's
    forgotten: list[str] = []
    rig.ctrl.forgotten.connect(forgotten.append)
    rig.tick(1)
    # The card is empty, and no copy of the identity is left anywhere.
    text = rig.view.shown_text()
    for word in ("Kim Haneul", "Park Jiyoung", "010-", "@example.kr", "mother"):
        assert word not in text
    assert "forgotten" in text and rig.view.detail is None
    assert forgotten == [CHILD]
    assert live_details() == []
    assert not any(isinstance(v, ChildDetail) for v in vars(rig.ctrl).values())
    # Pressing again after the end asks for a reason again.
    rig.ctrl.request_reveal(a)
    assert rig.ctrl.reveal_dialog.isVisible() and rig.ctrl.reveal_dialog.reason.text() == ""


def test_no_alert_of_one_s_own_waits_for_a_supervisor_then_shows(operator: Rig) -> None:
    rig = operator
    resolved = alert(state="resolved")
    rig.panel.show_alert(resolved)
    rig.session.sent.clear()  # what was disclosed for it (none)
    rig.ctrl.request_reveal(resolved)
    assert "a supervisor must approve" in rig.ctrl.reveal_dialog.intro.text()
    rig.ctrl.reveal_dialog.reason.setText("guardian asks who phoned yesterday")
    rig.ctrl.reveal_dialog.accept()
    rig.session.answer(RevealRequest, RevealReply(reveal=reveal(
        "pending", reason="guardian asks who phoned yesterday")))
    assert "waiting for a supervisor's approval" in rig.view.state.text()
    assert rig.view.state.property("state") == "pending"
    assert rig.session.sent == []
    # Pressing the button again while it waits: no second request, a poll now.
    rig.ctrl.request_reveal(resolved)
    assert not rig.ctrl.reveal_dialog.isVisible()
    assert rig.session.kinds() == ["RevealsRequest"]
    assert rig.session.last(RevealsRequest).pending_only is False
    rig.session.answer(RevealsRequest, RevealList(reveals=[reveal("pending")]))
    rig.tick(POLL_S - 1)
    assert rig.session.sent == []
    rig.tick(1)
    assert rig.session.kinds() == ["RevealsRequest"]
    approved = reveal("granted", decided_by="park.sv", decided_at=rig.t,
                      expires_at=rig.t + 900)
    other = reveal("granted", id=22, user="lee.op", expires_at=rig.t + 900)  # not ours
    rig.session.answer(RevealsRequest, RevealList(reveals=[other, approved]))
    assert rig.session.last(ChildRequest).child == CHILD
    rig.session.answer(ChildRequest, identity(rig.t + 900))
    assert "Kim Haneul" in rig.view.shown_text()
    rig.tick(POLL_S)  # nothing waits any more: no polling
    assert rig.session.sent == []
    # While the grant runs, the button shows it again without a new reason.
    rig.view.forget()
    rig.ctrl.request_reveal(resolved)
    assert not rig.ctrl.reveal_dialog.isVisible()
    assert rig.session.kinds() == ["ChildRequest"]


def test_a_refused_reveal_and_an_engine_refusal_are_said(operator: Rig) -> None:
    rig = operator
    rig.ask_reveal(alert(owner=""))
    rig.session.answer(RevealRequest, RevealReply(reveal=reveal("pending")))
    rig.tick(POLL_S)
    rig.session.answer(RevealsRequest, RevealList(reveals=[reveal(
        "refused", decided_by="park.sv", decided_at=rig.t)]))
    assert "Refused by park.sv" in rig.view.state.text()
    assert rig.session.sent == [] and rig.ctrl.mine == {}
    rig.ask_reveal(alert(owner=""))
    rig.session.answer(RevealRequest, CommandReply(ok=False, code="bad_value",
                                                   error="a reason must be 5 to 200 characters"))
    assert "Not revealed: a reason must be 5 to 200 characters" in rig.view.state.text()
    rig.ctrl.ask_child(CHILD, 0.0)
    rig.session.answer(ChildRequest, CommandReply(ok=False, code="no_reveal",
                                                  error="no reveal of C-PRIV01 is in force"))
    assert rig.view.state.property("state") == "error"
    assert "no reveal of C-PRIV01 is in force" in rig.view.state.text()


def test_answers_from_before_a_sign_out_are_dropped(operator: Rig) -> None:
    rig = operator
    rig.ask_reveal(alert())
    rig.session.answer(RevealRequest, RevealReply(reveal=reveal(
        "granted", decided_by="engine", expires_at=NOW + 900)))
    rig.ctrl.reset()  # signed out before the identity came
    rig.session.answer(ChildRequest, identity(NOW + 900))
    assert rig.view.detail is None and "Kim Haneul" not in rig.view.shown_text()
    assert live_details() == []
    # ... and a sign-out clears what is shown.
    rig.ctrl.ask_child(CHILD, 0.0)
    rig.session.answer(ChildRequest, identity(NOW + 900))
    assert "Kim Haneul" in rig.view.shown_text()
    rig.ctrl.reset()
    assert "Kim Haneul" not in rig.view.shown_text() and live_details() == []


def test_the_trail_goes_to_the_map_and_leaves_with_the_identity(operator: Rig,
                                                                qtbot: QtBot) -> None:
    rig = operator
    rig.ctrl.ask_child(CHILD, 0.0)
    rig.session.answer(ChildRequest, identity(NOW + 900))
    qtbot.mouseClick(rig.view.history_button, Qt.MouseButton.LeftButton)
    assert rig.session.last(ChildRequest) == ChildRequest(token="", child=CHILD, trail_s=3600.0)
    with qtbot.waitSignal(rig.view.trail_ready):
        rig.session.answer(ChildRequest, msgspec.structs.replace(
            fake_child_detail(NOW, CHILD, trail=True), expires_at=NOW + 900))
    with qtbot.waitSignal(rig.ctrl.forgotten):
        rig.tick(900)


# ------------------------------------------------------------------ disclosures


def test_a_disclosure_is_asked_then_followed_until_decided(operator: Rig) -> None:
    rig = operator
    a = alert()
    rig.panel.show_alert(a)
    rig.session.sent.clear()
    rig.ctrl.request_disclosure(a)
    dialog = rig.ctrl.disclose_dialog
    assert dialog.isVisible() and not dialog.agency.isHidden()
    dialog.agency.setCurrentIndex(dialog.agency.findData("police"))
    dialog.reason.setText("missing after zone exit; patrol needs a name")
    dialog.accept()
    assert rig.session.last(DiscloseRequest) == DiscloseRequest(
        token="", alert_id=7, agency="police",
        reason="missing after zone exit; patrol needs a name")
    asked = DisclosureView(id=5, alert_id=7, child=CHILD, agency="police",
                           reason="missing after zone exit; patrol needs a name",
                           requested_by="kim.op", requested_at=rig.t, state="pending")
    rig.session.answer(DiscloseRequest, DisclosureReply(disclosure=asked))
    assert "waiting for a supervisor's approval" in rig.panel.fact["disclosure"].text()
    rig.tick(POLL_S)
    assert rig.session.last(DisclosuresRequest).pending_only is False
    rig.session.answer(DisclosuresRequest, DisclosureList(disclosures=[msgspec.structs.replace(
        asked, state="approved", decided_by="park.sv", decided_at=rig.t,
        guardian_notice="phoned the mother at 14:20")]))
    assert "approved by park.sv" in rig.panel.fact["disclosure"].text()
    rig.tick(POLL_S)
    assert rig.session.sent == []  # decided: no more polling
    # A routine alert is never offered, and a refusal is shown on the panel.
    rig.ctrl.request_disclosure(alert(id=8, kind="low_battery", priority=4))
    assert not rig.ctrl.disclose_dialog.isVisible()
    rig.ctrl.request_disclosure(a)
    rig.ctrl.disclose_dialog.reason.setText("second request, same agency")
    rig.ctrl.disclose_dialog.accept()
    rig.session.answer(DiscloseRequest, CommandReply(
        ok=False, code="illegal", error="disclosure 5 of alert 7 to police already waits"))
    assert "already waits" in rig.panel.refusal_text()


def test_an_emergency_alert_shown_asks_what_was_disclosed(operator: Rig) -> None:
    rig = operator
    rig.panel.show_alert(alert())
    assert rig.session.kinds() == ["DisclosuresRequest"]
    rig.session.sent.clear()
    rig.panel.show_alert(alert(id=9, kind="low_battery", priority=4))
    assert rig.session.sent == []


# ------------------------------------------------------------------ approvals


def test_the_supervisor_polls_decides_and_sees_refusals(supervisor: Rig) -> None:
    rig = supervisor
    rig.approvals.show()  # the tab is open: every POLL_S
    rig.session.sent.clear()
    rig.tick(POLL_S)
    assert sorted(rig.session.kinds()) == ["DisclosuresRequest", "RevealsRequest"]
    assert rig.session.last(RevealsRequest).pending_only is True
    waiting = reveal("pending", user="kim.op", alert_id=0)
    own = reveal("pending", id=23, user="park.sv", alert_id=0)
    rig.session.answer(RevealsRequest, RevealList(reveals=[waiting, own]))
    rig.session.answer(DisclosuresRequest, DisclosureList(disclosures=[]))
    assert rig.approvals.reveal_table.rowCount() == 2 and rig.approvals.waiting == 1
    rig.approvals.select_reveal(21)
    rig.approvals.approve_reveal.click()
    assert rig.session.last(RevealDecision) == RevealDecision(token="", reveal_id=21,
                                                              approve=True, note="")
    rig.session.answer(RevealDecision, RevealReply(reveal=reveal(
        "granted", decided_by="park.sv", expires_at=rig.t + 900)))
    assert "Reveal 21 of C-PRIV01 for kim.op approved." in rig.approvals.message.text()
    assert "RevealsRequest" in rig.session.kinds()  # the lists again, at once
    rig.session.sent.clear()
    rig.ctrl.decide_reveal(23, True, "")
    rig.session.answer(RevealDecision, CommandReply(
        ok=False, code="four_eyes", error="reveal 23 is your own: another supervisor must "
                                          "decide it"))
    assert rig.approvals.message.property("kind") == "error"
    assert "another supervisor" in rig.approvals.message.text()
    rig.ctrl.decide_disclosure(5, True, "phoned the mother at 14:20")
    assert rig.session.last(DisclosureDecision) == DisclosureDecision(
        token="", disclosure_id=5, approve=True, guardian_notice="phoned the mother at 14:20")


def test_hidden_approvals_poll_slowly_and_an_operator_never(supervisor: Rig,
                                                            operator: Rig) -> None:
    supervisor.approvals.hide()
    supervisor.tick(POLL_S)
    assert supervisor.session.kinds() == ["RevealsRequest", "DisclosuresRequest"]
    supervisor.session.sent.clear()
    supervisor.tick(POLL_S)
    assert supervisor.session.sent == []
    supervisor.tick(10)
    assert len(supervisor.session.sent) == 2
    operator.tick(60)
    assert operator.session.sent == []


# ------------------------------------------------------------------ usage log


@pytest.fixture
def auditor(qtbot: QtBot, tmp_path: Path) -> Rig:
    return Rig(qtbot, tmp_path, "choi.au", {"auditor"})


def test_the_auditor_reads_and_exports_the_log(auditor: Rig) -> None:
    rig = auditor
    rig.usage.actor.setText("kim.op")
    rig.usage.search()
    assert rig.session.last(UsageRequest) == UsageRequest(
        token="", filter=UsageFilter(actor="kim.op"), export=False)
    rows = fake_rows(NOW, 12)
    rig.session.answer(UsageRequest, UsageRows(rows=rows, verified=True))
    assert rig.usage.table.rowCount() == 12
    rig.usage.export()
    sent = rig.session.last(UsageRequest)
    assert sent.export is True and sent.filter == UsageFilter(actor="kim.op", limit=None)
    assert rig.asked_path and rig.asked_path[0].startswith("usage-log-")
    rig.session.answer(UsageRequest, UsageRows(rows=rows, verified=False,
                                               problem="record 1003 was edited"))
    with open(rig.path, encoding="utf-8-sig", newline="") as f:
        lines = list(csv.reader(f))
    assert len(lines) == 13 and lines[0][:3] == ["seq", "time", "actor"]
    assert [int(r[0]) for r in lines[1:]] == sorted(r.seq for r in rows)
    assert f"12 records written to {rig.path}" in rig.usage.count.text()
    assert "chain BROKEN: record 1003 was edited" in rig.usage.count.text()


def test_a_cancelled_export_sends_nothing_and_a_refusal_is_said(auditor: Rig) -> None:
    rig = auditor
    rig.path = Path("")
    rig.usage.export()
    assert rig.session.sent == []
    rig.usage.search()
    rig.session.answer(UsageRequest, CommandReply(ok=False, code="forbidden",
                                                  error="your role does not allow req.usage"))
    assert "Not read: your role does not allow req.usage" in rig.usage.count.text()
