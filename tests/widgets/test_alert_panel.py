"""widgets.alert_panel: real widgets offscreen, the real procedures file, a
pinned clock; commands are checked as the structs the window would send."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from models import alerts as rules
from models.messages import (
    AckAlert,
    AddNote,
    AlertCommand,
    AlertDetail,
    AlertView,
    AssignAlert,
    DispatchAlert,
    HistoryEntry,
    HoldAlert,
    MarkStep,
    ReopenAlert,
    ResolveAlert,
    ResumeAlert,
    TakeAlert,
    pack,
)
from models.procedures import Procedures
from widgets.alert_panel import (
    ACTIONS,
    OUTCOME_TEXT,
    AlertPanel,
    fake_detail,
)
from widgets.alert_queue import fake_alerts

NOW = 1_790_000_000.0
SOS_MANDATORY = ["cctv", "call_device", "call_guardian", "decide_dispatch"]
ME = "kim.op"


def _view(**kw: object) -> AlertView:
    base: dict[str, object] = dict(id=7, kind="sos", priority=1, state="new",
                                   child_token="C-A13F00", child_slot=3, device_id="860001",
                                   lat=37.5444, lon=127.0374, place="성동구 성수동1가",
                                   opened_at=NOW - 60, version=4, ack_due=NOW + 30,
                                   close_due=NOW + 540)
    base.update(kw)
    return AlertView(**base)  # type: ignore[arg-type]


@pytest.fixture
def panel(qtbot: QtBot) -> AlertPanel:
    p = AlertPanel(clock=lambda: NOW)
    qtbot.addWidget(p)
    p.resize(640, 800)
    p.set_user(ME, ["operator"])
    p.set_assignable([ME, "lee.op", "park.sv"])
    p.tick(NOW)
    p.show()
    qtbot.waitExposed(p)
    return p


def _enabled(p: AlertPanel) -> set[str]:
    return {k for k, b in p.buttons.items() if b.isEnabled()}


def _emitted(p: AlertPanel, qtbot: QtBot, act: Callable[[], None]) -> AlertCommand:
    with qtbot.waitSignal(p.command_requested, timeout=1000) as got:
        act()
    cmd = got.args[0]
    assert isinstance(cmd, AlertCommand)
    return cmd


# ------------------------------------------------------------------ the rules mirrored


def test_the_panel_offers_every_command_and_outcome_the_rules_know() -> None:
    # it names the engine's own outcome too (an alert that cleared itself)
    assert set(OUTCOME_TEXT) == set(rules.OUTCOMES) | {rules.CLEARED}
    offered = {cmd for _, _, cmd, _, _ in ACTIONS if cmd} | {MarkStep, AddNote}
    assert offered == set(rules.ALLOWED_FROM)


# ------------------------------------------------------------------ buttons per state and role

ALL_STEPS = [*SOS_MANDATORY, "log_outcome"]
OPERATOR = {
    # state: (owner, enabled buttons) for an operator; the alert is theirs once owned
    "new": ("", {"ack", "take", "cameras"}),
    "acknowledged": ("", {"take", "hold", "dispatch", "resolve", "cameras"}),
    "in_progress": (ME, {"hold", "dispatch", "resolve", "cameras"}),
    "on_hold": (ME, {"resume", "dispatch", "resolve", "cameras"}),
    "dispatched": (ME, {"resolve", "cameras"}),
    "resolved": (ME, {"cameras"}),
}
SUPERVISOR_EXTRA = {"new": {"assign"}, "acknowledged": {"assign"}, "in_progress": {"assign"},
                    "on_hold": {"assign"}, "dispatched": {"assign"}, "resolved": {"reopen"}}


@pytest.mark.parametrize("state", list(OPERATOR))
@pytest.mark.parametrize("role", ["operator", "supervisor", "auditor"])
def test_buttons_follow_state_and_role(panel: AlertPanel, state: str, role: str) -> None:
    owner, expected = OPERATOR[state]
    user = ME if role == "operator" else "park.sv" if role == "supervisor" else "choi.au"
    panel.set_user(user, [role])
    panel.show_alert(_view(state=state, owner=owner, steps=ALL_STEPS))
    if role == "supervisor":
        # Not the owner, but a supervisor may take over and act on anyone's alert.
        expected = expected | SUPERVISOR_EXTRA[state]
        if state in ("in_progress", "on_hold", "dispatched"):
            expected = expected | {"take"}
    if role == "auditor":
        expected = set()
    assert _enabled(panel) == expected
    assert panel.note.isEnabled() == (role != "auditor")
    for key, button in panel.buttons.items():
        if not button.isEnabled():
            assert "\n" in button.toolTip(), key  # says why it is not offered


def test_another_operators_alert_is_theirs(panel: AlertPanel) -> None:
    panel.show_alert(_view(state="in_progress", owner="lee.op", steps=ALL_STEPS))
    assert _enabled(panel) == {"cameras"}
    assert "lee.op" in panel.buttons["hold"].toolTip()
    assert "lee.op" in panel.buttons["take"].toolTip()


def test_shortcuts_are_in_the_tooltips(panel: AlertPanel) -> None:
    panel.show_alert(_view())
    for key, shortcut in {"ack": "F4", "take": "F6", "hold": "F7", "dispatch": "F9",
                          "resolve": "F10", "cameras": "F11"}.items():
        assert shortcut in panel.buttons[key].toolTip()


def test_nothing_shown_nothing_offered(panel: AlertPanel) -> None:
    panel.show_alert(None)
    assert _enabled(panel) == set()
    assert not panel.note.isEnabled()
    assert panel.header.property("severity") == "none"


# ------------------------------------------------------------------ commands


def test_simple_actions_emit_their_command(panel: AlertPanel, qtbot: QtBot) -> None:
    panel.show_alert(_view(version=4))
    panel.note.setText("  seen on camera 12  ")
    cmd = _emitted(panel, qtbot, panel.buttons["ack"].click)
    assert cmd == AckAlert(token="", alert_id=7, alert_version=4, note="seen on camera 12")
    cmd = _emitted(panel, qtbot, panel.buttons["take"].click)
    assert cmd == TakeAlert(token="", alert_id=7, alert_version=4, note="seen on camera 12")
    panel.show_alert(_view(version=5, state="on_hold", owner=ME))
    panel.note.clear()
    cmd = _emitted(panel, qtbot, panel.buttons["resume"].click)
    assert cmd == ResumeAlert(token="", alert_id=7, alert_version=5)
    panel.note.setText("guardian on the phone")
    cmd = _emitted(panel, qtbot, panel.note_button.click)
    assert cmd == AddNote(token="", alert_id=7, alert_version=5, note="guardian on the phone")
    with qtbot.waitSignal(panel.cameras_requested) as cams:
        panel.buttons["cameras"].click()
    assert cams.args[0].id == 7


def test_hold_asks_reason_and_minutes(panel: AlertPanel, qtbot: QtBot) -> None:
    panel.show_alert(_view(state="in_progress", owner=ME, version=9))
    panel.buttons["hold"].click()
    assert panel.current_form() == "hold"
    assert not panel.hold_ok.isEnabled()  # a hold needs a reason
    panel.hold_reason.setText("guardian calling back")
    panel.hold_minutes.setValue(20)
    cmd = _emitted(panel, qtbot, panel.hold_ok.click)
    assert cmd == HoldAlert(token="", alert_id=7, alert_version=9, reason="guardian calling back",
                            until=NOW + 20 * 60)
    assert panel.current_form() == ""


def test_dispatch_asks_target_and_reference(panel: AlertPanel, qtbot: QtBot) -> None:
    panel.show_alert(_view(state="acknowledged", version=3))
    panel.buttons["dispatch"].click()
    assert [panel.dispatch_target.itemText(i) for i in range(2)] == ["Police 112", "Fire 119"]
    panel.dispatch_target.setCurrentIndex(panel.dispatch_target.findData("fire"))
    assert not panel.dispatch_ok.isEnabled()
    qtbot.keyClicks(panel.dispatch_ref, "119-2231")
    cmd = _emitted(panel, qtbot, lambda: qtbot.keyClick(panel.dispatch_ref, Qt.Key.Key_Return))
    assert cmd == DispatchAlert(token="", alert_id=7, alert_version=3, target="fire",
                                reference="119-2231")


def test_resolve_needs_the_mandatory_steps_then_an_outcome_and_a_note(
        panel: AlertPanel, qtbot: QtBot) -> None:
    panel.show_alert(_view(state="in_progress", owner=ME, steps=["cctv"]))
    resolve = panel.buttons["resolve"]
    assert not resolve.isEnabled()
    texts = {s.id: s.text for s in Procedures.load().steps("sos")}
    for sid in ("call_device", "call_guardian", "decide_dispatch"):
        assert texts[sid] in resolve.toolTip()
    assert texts["cctv"] not in resolve.toolTip()
    assert texts["log_outcome"] not in resolve.toolTip()  # optional
    panel.open_form("resolve")  # the shortcut's way in is closed too
    assert panel.current_form() == ""

    panel.show_alert(_view(state="in_progress", owner=ME, steps=SOS_MANDATORY, version=5))
    assert resolve.isEnabled()
    resolve.click()
    panel.outcome.setCurrentIndex(panel.outcome.findData("false_alarm"))
    assert not panel.resolve_ok.isEnabled()
    panel.resolve_note.setText("child pressed it by mistake")
    cmd = _emitted(panel, qtbot, panel.resolve_ok.click)
    assert cmd == ResolveAlert(token="", alert_id=7, alert_version=5, outcome="false_alarm",
                               note="child pressed it by mistake")


def test_supervisor_reopens_and_assigns(panel: AlertPanel, qtbot: QtBot) -> None:
    panel.set_user("park.sv", ["supervisor"])
    panel.show_alert(_view(state="resolved", owner=ME, outcome="child_safe", version=12))
    panel.buttons["reopen"].click()
    panel.reopen_note.setText("child not home after all")
    cmd = _emitted(panel, qtbot, panel.reopen_ok.click)
    assert cmd == ReopenAlert(token="", alert_id=7, alert_version=12,
                              note="child not home after all")
    panel.show_alert(_view(state="in_progress", owner=ME, version=14))
    panel.buttons["assign"].click()
    names = [panel.assignee.itemText(i) for i in range(panel.assignee.count())]
    assert names == ["lee.op", "park.sv"]  # not the owner
    panel.assignee.setCurrentText("lee.op")
    cmd = _emitted(panel, qtbot, panel.assign_ok.click)
    assert cmd == AssignAlert(token="", alert_id=7, alert_version=14, user="lee.op")


def test_function_keys_click_only_what_is_offered(panel: AlertPanel, qtbot: QtBot) -> None:
    panel.show_alert(_view(version=2))
    panel.activateWindow()
    panel.header.setFocus()
    qtbot.waitUntil(panel.isActiveWindow)
    sent: list[AlertCommand] = []
    panel.command_requested.connect(sent.append)
    qtbot.keyClick(panel, Qt.Key.Key_F10)  # resolve: not from new
    qtbot.keyClick(panel, Qt.Key.Key_F7)  # hold: not from new
    assert sent == [] and panel.current_form() == ""
    qtbot.keyClick(panel, Qt.Key.Key_F4)
    assert sent == [AckAlert(token="", alert_id=7, alert_version=2)]
    qtbot.keyClick(panel, Qt.Key.Key_F6)
    assert isinstance(sent[-1], TakeAlert)
    panel.show_alert(_view(version=3, state="in_progress", owner=ME))
    qtbot.keyClick(panel, Qt.Key.Key_F9)
    assert panel.current_form() == "dispatch"
    with qtbot.waitSignal(panel.cameras_requested):
        qtbot.keyClick(panel, Qt.Key.Key_F11)


# ------------------------------------------------------------------ procedure steps


def test_steps_done_and_skip_with_a_reason(panel: AlertPanel, qtbot: QtBot) -> None:
    panel.show_alert(_view(state="in_progress", owner=ME, version=6))
    assert list(panel.step_rows) == ALL_STEPS
    assert [r.mandatory.text() for r in panel.step_rows.values()] == ["required"] * 4 + [""]
    row = panel.step_rows["call_device"]
    assert row.done.isVisible() and row.done.isEnabled()
    cmd = _emitted(panel, qtbot, row.done.click)
    assert cmd == MarkStep(token="", alert_id=7, alert_version=6, step="call_device")

    panel.step_rows["cctv"].skip.click()
    assert panel.current_form() == "skip"
    assert not panel.skip_ok.isEnabled()  # skipping needs a reason
    panel.skip_reason.setText("no camera covers the spot")
    cmd = _emitted(panel, qtbot, panel.skip_ok.click)
    assert cmd == MarkStep(token="", alert_id=7, alert_version=6, step="cctv", skipped=True,
                           note="no camera covers the spot")


def test_steps_show_their_state_from_the_alert_and_history(panel: AlertPanel) -> None:
    alert = _view(state="in_progress", owner=ME, steps=["cctv", "call_device"], version=8)
    panel.show_alert(alert)
    assert panel.step_rows["cctv"].mark.property("state") == "done"  # before the detail
    history = [
        HistoryEntry(action="open", actor="engine", at=NOW - 60, detail="sos"),
        HistoryEntry(action="step", actor=ME, at=NOW - 30, detail="cctv skipped",
                     note="no camera covers the spot"),
        HistoryEntry(action="step", actor=ME, at=NOW - 20, detail="call_device done"),
    ]
    panel.show_detail(AlertDetail(alert=alert, history=history))
    rows = panel.step_rows
    assert rows["cctv"].mark.property("state") == "skipped"
    assert "no camera covers the spot" in rows["cctv"].status.text()
    assert ME in rows["call_device"].status.text()
    assert rows["call_device"].mark.property("state") == "done"
    assert not rows["cctv"].done.isVisible() and not rows["cctv"].skip.isVisible()
    assert rows["call_guardian"].mark.property("state") == "pending"
    assert rows["call_guardian"].done.isVisible()


def test_step_buttons_are_not_offered_before_acknowledging(panel: AlertPanel) -> None:
    panel.show_alert(_view(state="new"))
    row = panel.step_rows["cctv"]
    assert row.done.isVisible() and not row.done.isEnabled()
    panel.ask_skip("cctv")
    assert panel.current_form() == ""


# ------------------------------------------------------------------ detail, history, refusal


def test_detail_is_asked_for_new_alerts_and_versions(panel: AlertPanel, qtbot: QtBot) -> None:
    asked: list[int] = []
    panel.detail_needed.connect(asked.append)
    panel.show_alert(_view(version=1))
    panel.show_alert(_view(version=1))
    assert asked == [7]
    panel.show_alert(_view(version=2, state="acknowledged"))
    assert asked == [7, 7]
    panel.show_alert(_view(version=1))  # a late, older copy: ignored
    assert panel.alert is not None and panel.alert.version == 2
    panel.show_alert(_view(id=8))
    assert asked == [7, 7, 8]


def test_history_and_trail_from_the_detail(panel: AlertPanel, qtbot: QtBot) -> None:
    alert = _view(state="resolved", owner=ME, outcome="false_alarm", steps=SOS_MANDATORY)
    panel.show_alert(alert)
    lat, lon = np.array([37.54, 37.541, 37.542]), np.array([127.03, 127.031, 127.032])
    history = [
        HistoryEntry(action="open", actor="engine", at=NOW - 60, detail="sos"),
        HistoryEntry(action="ack", actor=ME, at=NOW - 50),
        HistoryEntry(action="resolve", actor=ME, at=NOW - 5, detail="false_alarm",
                     note="pressed by mistake"),
    ]
    detail = AlertDetail(alert=alert, history=history, trail_t=pack("t", [1.0, 2.0, 3.0]),
                         trail_lat=pack("lat", lat), trail_lon=pack("lon", lon))
    panel.show_detail(msgspec.structs.replace(detail, alert=_view(id=99)))  # another alert
    assert panel.history.rowCount() == 0
    with qtbot.waitSignal(panel.trail_ready) as trail:
        panel.show_detail(detail)
    assert np.array_equal(trail.args[0], lat) and np.array_equal(trail.args[1], lon)
    table = panel.history
    rows = [[table.item(r, c).text() for c in range(5)] for r in range(table.rowCount())]
    assert [r[1:] for r in rows] == [
        [ME, "Resolved", "False alarm", "pressed by mistake"],
        [ME, "Acknowledged", "", ""],
        ["engine", "Opened", "SOS", ""],
    ]
    assert all(len(r[0]) == 8 for r in rows)  # HH:MM:SS


def test_refusal_shows_until_the_alert_changes(panel: AlertPanel) -> None:
    panel.show_alert(_view(version=3))
    panel.show_refusal("alert 7 changed by lee.op since you saw it: look again")
    assert panel.refusal.isVisible()
    assert panel.refusal_text() == "alert 7 changed by lee.op since you saw it: look again"
    panel.show_alert(_view(version=3))
    assert panel.refusal.isVisible()
    panel.show_alert(_view(version=4, state="acknowledged"))
    assert not panel.refusal.isVisible() and panel.refusal_text() == ""


def test_note_clears_once_it_went_out(panel: AlertPanel, qtbot: QtBot) -> None:
    panel.show_alert(_view(version=3))
    panel.note.setText("calling the guardian")
    _emitted(panel, qtbot, panel.buttons["ack"].click)
    assert panel.note.text() == "calling the guardian"  # until the engine says yes
    panel.show_alert(_view(version=4, state="acknowledged", last_note="calling the guardian"))
    assert panel.note.text() == ""


def test_facts_show_hold_dispatch_battery_and_sla(panel: AlertPanel) -> None:
    panel.show_alert(_view(state="on_hold", owner=ME, hold_reason="guardian calling back",
                           hold_until=NOW + 600, battery=9, battery_trend=-6.0,
                           position_is_last_known=True))
    assert "guardian calling back" in panel.fact["hold"].text()
    assert "(in 10:00)" in panel.fact["hold"].text()
    assert panel.fact["battery"].text().startswith("9 %")
    assert panel.fact["battery"].property("low") == "true"
    assert "last known" in panel.fact["position"].text()
    assert "(in 9:00)" in panel.fact["sla"].text()
    panel.tick(NOW + 600)
    assert "overdue 1:00" in panel.fact["sla"].text()
    assert panel.fact["sla"].property("overdue") == "true"
    panel.show_alert(_view(state="dispatched", owner=ME, dispatched_to="police",
                           dispatch_ref="A-77", version=9))
    assert panel.fact["dispatch"].text() == "Police 112 · ref A-77"
    assert panel.fact["sla"].text() == ""
    assert panel.header.text() == "SOS · P1 · Dispatched"
    assert panel.header.property("severity") == "dispatched"


def test_fake_details_render_for_every_fake_alert(panel: AlertPanel) -> None:
    for alert in fake_alerts(NOW):
        panel.show_alert(alert)
        panel.show_detail(fake_detail(alert, NOW))
        assert panel.history.rowCount() >= 1
