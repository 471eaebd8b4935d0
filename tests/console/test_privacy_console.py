"""Privacy in the real console window: what an auditor's console shows (the
usage log, nothing live), what a supervisor's adds (approvals), and the
whole road against a real engine: a reveal waiting for a supervisor,
approved in another console, shown, and forgotten when the grant ends; a
disclosure approved with the guardian notice; the auditor reading the log
those left."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from console.app import ConsoleWindow
from console.feed import Frame
from models.console_state import BusState
from models.messages import AlertView, SignedIn
from tests.console.conftest import (
    SEOUL_FOREST,
    TEST_PASSWORD,
    make_config,
    running_backend,
)

LEFT = Qt.MouseButton.LeftButton
NOW = time.time()


def sign(window: ConsoleWindow, user: str, roles: list[str]) -> None:
    """As if the engine had answered a sign-in (no backend needed)."""
    window.session.deliver([SignedIn(token=f"t-{user}", user=user, roles=roles,
                                     expires_at=NOW + 3600)])


def alert(slot: int) -> AlertView:
    return AlertView(id=slot + 1, kind="sos", priority=1, state="new", child_token=f"C-{slot}",
                     child_slot=slot, device_id="860123456784821", lat=37.5444, lon=127.0374,
                     place="성동구 성수동1가", opened_at=NOW - 30)


def live_frame() -> Frame:
    x = np.array([200_000.0, 200_050.0, 200_100.0])
    return Frame(state=BusState.LIVE, children=3, fixes_per_s=1.0, x=x, y=x + 1e6,
                 status=np.array([0, 1, 2], dtype=np.uint8), alerts=[alert(2)])


def test_an_auditor_console_shows_the_usage_log_and_nothing_live(data_dir: Path,
                                                                 qtbot: QtBot) -> None:
    window = ConsoleWindow(make_config(data_dir))
    qtbot.addWidget(window)
    window.resize(1600, 960)
    window.show()
    qtbot.waitExposed(window)
    window.feed.take = live_frame  # type: ignore[method-assign]
    side = window.side
    sign(window, "auditor1", ["auditor"])
    window.apply_frame()
    assert not window.map.isVisibleTo(window) and not window.cctv.isVisibleTo(window)
    assert window.map.markers.counts == (0, 0, 0)  # nothing drawn, not just hidden
    assert window.alerts.model.rowCount() == 0 and window.panel.alert is None
    assert not side.isTabVisible(side.indexOf(window.work_split))
    assert not side.isTabVisible(side.indexOf(window.gateway))  # device ids
    assert not side.isTabVisible(side.indexOf(window.approvals))
    assert side.isTabVisible(side.indexOf(window.usage_log))
    assert side.currentWidget() is window.usage_log
    qtbot.wait(50)
    assert window.usage_log.width() >= 1400  # the whole window is the log
    assert window.cctv.cameras_shown() == [None] * len(window.cctv.cameras_shown())
    # An operator at the same console gets the live picture back.
    sign(window, "operator1", ["operator"])
    assert window.map.isVisibleTo(window)
    assert window.map.markers.counts == (1, 1, 1)
    assert window.alerts.model.rowCount() == 1
    assert side.isTabVisible(side.indexOf(window.work_split))
    assert not side.isTabVisible(side.indexOf(window.usage_log))
    assert not side.isTabVisible(side.indexOf(window.approvals))
    # A supervisor has the approvals beside the queue; the count is in its tab.
    sign(window, "supervisor1", ["supervisor", "operator"])
    assert side.isTabVisible(side.indexOf(window.approvals))
    window.approvals.pending_changed.emit(2)
    assert side.tabText(side.indexOf(window.approvals)) == "Approvals · 2"
    window.close()


def test_reveal_approval_expiry_disclosure_and_the_log_against_a_real_engine(
        data_dir: Path, qtbot: QtBot) -> None:
    cfg = make_config(data_dir, children=30, reveal_s=12.0)
    with running_backend(cfg) as backend:
        op = ConsoleWindow(cfg)
        sv = ConsoleWindow(cfg)
        for w in (op, sv):
            qtbot.addWidget(w)
            w.resize(1600, 960)
            w.show()
        op.start(("operator1", TEST_PASSWORD))
        sv.start(("supervisor1", TEST_PASSWORD))
        qtbot.waitUntil(lambda: op.session.user == "operator1"
                        and sv.session.user == "supervisor1", timeout=10_000)
        backend.fix(backend.roster[4].device_id, *SEOUL_FOREST, alarm="sos")
        qtbot.waitUntil(lambda: op.alerts.model.rowCount() == 1, timeout=10_000)
        op.alerts.table.selectRow(0)
        a = op.panel.alert
        assert a is not None and a.owner == ""
        assert backend.roster[4].device_id[-4:] in op.panel.meta.text()
        assert backend.roster[4].device_id not in op.panel.meta.text()

        # Not the operator's alert (nobody owns it): the reveal waits.
        qtbot.mouseClick(op.panel.reveal_button, LEFT)
        dialog = op.privacy.reveal_dialog
        assert dialog.isVisible() and "supervisor must approve" in dialog.intro.text()
        qtbot.keyClicks(dialog.reason, "SOS, child not answering the phone")
        qtbot.mouseClick(dialog.ok, LEFT)
        qtbot.waitUntil(lambda: op.reveal_view.state.property("state") == "pending",
                        timeout=5000)
        assert op.reveal_view.isVisible()

        # Another supervisor's console: the approvals tab lists it; approve.
        sv.side.setCurrentWidget(sv.approvals)
        qtbot.waitUntil(lambda: sv.approvals.reveal_table.rowCount() == 1, timeout=10_000)
        sv.approvals.reveal_table.selectRow(0)
        assert sv.approvals.selected_reveal() is not None
        assert sv.approvals.selected_reveal().user == "operator1"  # type: ignore[union-attr]
        qtbot.mouseClick(sv.approvals.approve_reveal, LEFT)
        qtbot.waitUntil(lambda: "approved" in sv.approvals.message.text(), timeout=5000)

        # The operator's console sees the approval and shows the identity.
        qtbot.waitUntil(lambda: op.reveal_view.detail is not None, timeout=10_000)
        text = op.reveal_view.shown_text()
        assert "보호자" in text and "parent" in text and "left)" in text
        name = op.reveal_view.detail.name  # type: ignore[union-attr]
        assert name and name in text
        # ... for reveal_s only, then nothing is left.
        qtbot.waitUntil(lambda: op.reveal_view.detail is None, timeout=20_000)
        assert name not in op.reveal_view.shown_text()
        assert "보호자" not in op.reveal_view.shown_text()

        # A disclosure: asked by the operator, approved with the notice.
        qtbot.mouseClick(op.panel.disclose_button, LEFT)
        ask = op.privacy.disclose_dialog
        ask.agency.setCurrentIndex(ask.agency.findData("police"))
        qtbot.keyClicks(ask.reason, "child missing; patrol needs a name")
        qtbot.mouseClick(ask.ok, LEFT)
        qtbot.waitUntil(lambda: "waiting for a supervisor" in op.panel.fact["disclosure"].text(),
                        timeout=5000)
        qtbot.waitUntil(lambda: sv.approvals.disclosure_table.rowCount() == 1, timeout=10_000)
        sv.approvals.disclosure_table.selectRow(0)
        assert not sv.approvals.approve_disclosure.isEnabled()  # no notice yet
        qtbot.keyClicks(sv.approvals.notice, "phoned the mother at 14:20")
        qtbot.mouseClick(sv.approvals.approve_disclosure, LEFT)
        qtbot.waitUntil(lambda: "approved by supervisor1" in op.panel.fact["disclosure"].text(),
                        timeout=10_000)

        # The auditor (at the supervisor's console) reads what that left.
        sv.session.sign_out()
        sv.session.sign_in("auditor1", TEST_PASSWORD)
        qtbot.waitUntil(lambda: sv.session.user == "auditor1", timeout=5000)
        assert sv.side.currentWidget() is sv.usage_log and not sv.map.isVisibleTo(sv)
        qtbot.mouseClick(sv.usage_log.search_button, LEFT)
        qtbot.waitUntil(lambda: sv.usage_log.loaded_once, timeout=5000)
        actions = {(r.actor, r.action, r.subject) for r in sv.usage_log.rows()}
        child = a.child_token
        assert ("operator1", "reveal", child) in actions
        assert ("supervisor1", "disclosure", child) in actions
        assert sv.usage_log.banner.property("chain") == "verified"
        op.close()
        sv.close()
