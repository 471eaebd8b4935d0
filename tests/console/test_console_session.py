"""Signing in and out of a real console window against a real engine, and
what each role is shown; the engine, not the window, is the gate."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from console.app import ConsoleWindow
from db import accounts
from db.store import open_store
from db.tables import UserSession
from models.messages import CommandReply, SessionCheck
from tests.console.conftest import SEOUL_FOREST, TEST_PASSWORD, Backend


def window_for(qtbot: QtBot, backend: Backend) -> ConsoleWindow:
    window = ConsoleWindow(backend.config)
    qtbot.addWidget(window)
    window.start()
    qtbot.waitUntil(lambda: window.status.bus.text() == "LIVE", timeout=10_000)
    return window


def type_in(qtbot: QtBot, window: ConsoleWindow, user: str, password: str) -> None:
    dialog = window.sign_in_dialog
    dialog.user.setText(user)
    qtbot.keyClicks(dialog.password, password)
    qtbot.keyClick(dialog.password, Qt.Key.Key_Return)


def test_sign_in_out_and_switch_user_with_what_each_role_sees(
        backend: Backend, qtbot: QtBot) -> None:
    window = window_for(qtbot, backend)
    dialog = window.sign_in_dialog
    assert dialog.isVisible() and window.session.current is None
    assert window.user_button.text() == "Signed out"

    type_in(qtbot, window, "operator1", "not-the-password")
    qtbot.waitUntil(lambda: "wrong user name or password" in dialog.message.text(),
                    timeout=5000)
    assert dialog.isVisible() and dialog.password.text() == ""

    type_in(qtbot, window, "operator1", TEST_PASSWORD)
    qtbot.waitUntil(lambda: window.session.user == "operator1", timeout=5000)
    assert not dialog.isVisible()
    assert window.user_button.text() == "operator1 · operator"
    side = window.side
    assert not window.escalation_button.isVisibleTo(window)
    assert not side.isTabVisible(side.indexOf(window.camera_panel))
    assert side.isTabVisible(side.indexOf(window.work_split))

    # Switch user: sign out (the engine ends the session), the supervisor signs in.
    token = window.session.token
    qtbot.mouseClick(window.user_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and window.session.current is None
    assert "operator1 signed out" in dialog.message.text()
    type_in(qtbot, window, "supervisor1", TEST_PASSWORD)
    qtbot.waitUntil(lambda: window.session.user == "supervisor1", timeout=5000)
    assert window.escalation_button.isVisibleTo(window)
    _, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        ended = s.get(UserSession, accounts.token_hash(token))
        assert ended is not None and ended.ended_at is not None

    # The supervisor's panel fills from the engine's shift report.
    backend.fix(backend.roster[7].device_id, *SEOUL_FOREST, alarm="sos")
    qtbot.mouseClick(window.escalation_button, Qt.MouseButton.LeftButton)
    assert window.escalation_window.isVisible()
    qtbot.waitUntil(lambda: window.escalation.load_model.rowCount() >= 1, timeout=10_000)
    # The supervisor reassigns from the alert panel to an operator on shift.
    qtbot.waitUntil(lambda: window.alerts.model.rowCount() == 1, timeout=5000)
    window.alerts.table.selectRow(0)
    qtbot.waitUntil(lambda: window.panel.buttons["assign"].isEnabled(), timeout=5000)
    window.panel.open_form("assign")
    assert window.panel.assignee.findText("supervisor1") >= 0  # the signed-in staff
    alert = window.alerts.model.alert_at(0)
    assert alert is not None and alert.device_kind in ("watch", "phone", "tag")
    assert f"({alert.device_kind})" in window.panel.meta.text()
    # Signing out closes it: the next user may not be a supervisor.
    qtbot.mouseClick(window.user_button, Qt.MouseButton.LeftButton)
    assert not window.escalation_window.isVisible()
    # An admin's console opens on the camera registry; the queue is not theirs.
    type_in(qtbot, window, "admin1", TEST_PASSWORD)
    qtbot.waitUntil(lambda: window.session.user == "admin1", timeout=5000)
    assert not side.isTabVisible(side.indexOf(window.work_split))
    assert side.currentWidget() is window.camera_panel
    assert not window.escalation_button.isVisibleTo(window)
    window.close()


def test_an_expired_session_asks_for_sign_in_again(backend: Backend, qtbot: QtBot) -> None:
    window = window_for(qtbot, backend)
    type_in(qtbot, window, "operator1", TEST_PASSWORD)
    qtbot.waitUntil(lambda: window.session.user == "operator1", timeout=5000)
    backend.fix(backend.roster[8].device_id, *SEOUL_FOREST, alarm="sos")
    qtbot.waitUntil(lambda: window.alerts.model.rowCount() == 1, timeout=5000)
    _, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        row = s.get(UserSession, accounts.token_hash(window.session.token))
        assert row is not None
        row.expires_at = time.time() - 1
        s.commit()
    time.sleep(3.5)  # the engine re-reads sessions every 3 s
    window.alerts.table.selectRow(0)
    qtbot.waitUntil(lambda: window.panel.buttons["ack"].isEnabled(), timeout=5000)
    qtbot.mouseClick(window.panel.buttons["ack"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(window.sign_in_dialog.isVisible, timeout=5000)
    assert "sign in again" in window.sign_in_dialog.message.text()
    assert window.sign_in_dialog.user.text() == "operator1"
    assert window.alerts.model.alert_at(0).state == "new"  # type: ignore[union-attr]
    window.close()


def test_a_console_left_alone_signs_out_when_its_account_is_disabled(
        backend: Backend, qtbot: QtBot) -> None:
    """Nobody touches the console: its periodic session check, not a next
    command, finds that the account was disabled from the command line."""
    token = backend.sign_in("supervisor1")
    assert backend.request(SessionCheck(token=token)) == CommandReply(ok=True)
    refused = backend.request(SessionCheck(token="not-a-token"))
    assert isinstance(refused, CommandReply) and refused.code == "unauthenticated"
    window = window_for(qtbot, backend)
    type_in(qtbot, window, "operator1", TEST_PASSWORD)
    qtbot.waitUntil(lambda: window.session.user == "operator1", timeout=5000)
    window.session.check_timer.setInterval(500)
    _, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        accounts.disable(s, "operator1")
        s.commit()
    qtbot.waitUntil(window.sign_in_dialog.isVisible, timeout=10_000)  # re-read every 3 s
    assert window.session.current is None
    assert "sign in again" in window.sign_in_dialog.message.text()
    assert window.user_button.text() == "Signed out"
    # Another account's session is untouched.
    assert backend.request(SessionCheck(token=token)) == CommandReply(ok=True)
    window.close()


def test_a_process_down_turns_every_console_degraded_with_the_reason(
        backend: Backend, qtbot: QtBot) -> None:
    import os
    import signal

    window = window_for(qtbot, backend)
    type_in(qtbot, window, "operator1", TEST_PASSWORD)
    qtbot.waitUntil(lambda: window.status.bus.text() == "LIVE", timeout=10_000)
    plays = window.alarm.plays
    backend.supervisor.backoff = (6.0, 6.0)  # keep it down long enough to be seen
    os.kill(backend.supervisor.pid("recorder"), signal.SIGKILL)
    qtbot.waitUntil(lambda: window.status.bus.text() == "DEGRADED", timeout=10_000)
    assert window.status.reason.text() == "recorder down (restarted 0 times)"
    assert window.status.reason.isVisibleTo(window)
    assert window.alarm.plays == plays + 1  # heard too, not only seen
    qtbot.waitUntil(lambda: window.status.bus.text() == "LIVE", timeout=15_000)
    assert not window.status.reason.isVisibleTo(window)
    window.close()
