"""widgets.alert_queue and models.qt.alert_table: real widgets offscreen, a
pinned clock (``tick``/``now``), fake alerts built here."""

from __future__ import annotations

import msgspec
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot

from models.messages import AlertView
from models.qt.alert_table import (
    AGE,
    COLUMNS,
    SEVERITIES,
    SLA,
    SeverityRole,
    age_text,
    cell,
    severity,
    sla_text,
)
from resources import path
from widgets.alert_queue import AlertQueue, fake_alerts

NOW = 1_790_000_000.0


def _view(id: int, **kw: object) -> AlertView:
    base: dict[str, object] = dict(id=id, kind="sos", priority=1, state="new",
                                   child_token=f"C-{id:04d}", child_slot=id,
                                   device_id=f"8600000000{id:04d}", lat=37.5444, lon=127.0374,
                                   place="성동구 성수동1가", opened_at=NOW - 60.0)
    base.update(kw)
    return AlertView(**base)  # type: ignore[arg-type]


@pytest.fixture
def queue(qtbot: QtBot) -> AlertQueue:
    q = AlertQueue()
    qtbot.addWidget(q)
    q.resize(1000, 500)
    q.show()
    qtbot.waitExposed(q)
    return q


def _ids(q: AlertQueue) -> list[int]:
    return [a.id for a in q.visible_alerts()]


def _text(q: AlertQueue, alert_id: int, column: str) -> str:
    row = q.model.row_of(alert_id)
    return str(q.model.index(row, COLUMNS.index(column)).data())


# ------------------------------------------------------------------ order and columns


def test_priority_first_then_new_then_oldest(queue: AlertQueue) -> None:
    rows = [
        _view(1, priority=2, opened_at=NOW - 500),
        _view(2, priority=1, opened_at=NOW - 10),
        _view(3, priority=1, opened_at=NOW - 90),
        _view(4, priority=1, state="in_progress", opened_at=NOW - 900),
        _view(5, priority=4, state="acknowledged", opened_at=NOW - 100),
        _view(6, priority=1, state="resolved", opened_at=NOW - 50),
        _view(7, priority=3, opened_at=NOW - 5000),
    ]
    queue.set_alerts(list(reversed(rows)), now=NOW)
    assert _ids(queue) == [3, 2, 4, 1, 7, 5, 6]  # a P1 in work above a new P2


def test_columns_text_with_a_pinned_clock(queue: AlertQueue) -> None:
    queue.set_alerts([
        _view(1, opened_at=NOW - 42, ack_due=NOW + 42, close_due=NOW + 600, count=3),
        _view(2, opened_at=NOW - 725, ack_due=NOW - 42, close_due=NOW + 600),
        _view(3, opened_at=NOW - 3720, state="in_progress", owner="kim.op", ack_due=NOW - 3000,
              close_due=NOW + 65, kind="zone_exit", priority=2),
        _view(4, state="dispatched", ack_due=NOW - 30, close_due=NOW - 10),
        _view(5, state="resolved", close_due=NOW - 10),
        _view(6, state="on_hold", close_due=NOW - 3725, kind="low_battery", priority=4),
        _view(7),  # no deadlines at all
    ], now=NOW)
    assert [_text(queue, 1, c) for c in COLUMNS] == [
        "0:42", "P1", "SOS", "C-0001", "성동구 성수동1가", "New", "", "×3", "0:42",
        "•••• 0001"]
    assert _text(queue, 2, "Age") == "12:05"
    assert _text(queue, 2, "SLA") == "overdue 0:42"  # the ack deadline while new
    assert _text(queue, 3, "Age") == "1:02 h"
    assert _text(queue, 3, "SLA") == "1:05"  # acknowledged: to close_due
    assert (_text(queue, 3, "State"), _text(queue, 3, "Owner")) == ("In progress", "kim.op")
    assert _text(queue, 3, "Kind") == "Zone exit"
    assert _text(queue, 4, "SLA") == "—"  # dispatched: no deadline runs
    assert _text(queue, 5, "SLA") == "—"
    assert _text(queue, 6, "SLA") == "overdue 1:02:05"
    assert _text(queue, 6, "State") == "On hold"
    assert _text(queue, 7, "SLA") == "—"
    assert _text(queue, 7, "Count") == ""
    assert age_text(59.6) == "1:00" and age_text(-3) == "0:00"
    assert sla_text(_view(9, ack_due=NOW + 3600), NOW) == "1:00:00"
    assert cell(_view(9, opened_at=NOW - 5), AGE, NOW) == "0:05"


def test_tick_repaints_age_and_sla_only(queue: AlertQueue) -> None:
    queue.set_alerts([_view(1, ack_due=NOW + 5, opened_at=NOW - 10), _view(2)], now=NOW)
    resets: list[bool] = []
    changed: list[tuple[int, int, int, int]] = []
    queue.model.modelReset.connect(lambda: resets.append(True))
    queue.model.dataChanged.connect(
        lambda a, b, _roles=(): changed.append((a.row(), a.column(), b.row(), b.column())))
    queue.tick(NOW + 7)
    assert not resets
    assert {(c[1], c[3]) for c in changed} == {(AGE, AGE), (SLA, SLA)}
    assert {(c[0], c[2]) for c in changed} == {(0, 1)}
    assert _text(queue, 1, "Age") == "0:17"
    assert _text(queue, 1, "SLA") == "overdue 0:02"
    assert queue.model.index(queue.model.row_of(1), SLA).data(SeverityRole) == "escalated"


def test_severity_by_priority_and_state() -> None:
    assert [severity(_view(1, priority=p)) for p in (1, 2, 3, 4)] == [
        "critical", "high", "medium", "low"]
    by_state = {s: severity(_view(1, state=s)) for s in (
        "acknowledged", "in_progress", "on_hold", "dispatched", "resolved")}
    assert by_state == {"acknowledged": "acknowledged", "in_progress": "acknowledged",
                        "on_hold": "onHold", "dispatched": "dispatched",
                        "resolved": "resolved"}
    assert severity(_view(1, priority=4, breaches=1)) == "escalated"
    assert severity(_view(1, state="on_hold", breaches=2)) == "escalated"
    assert severity(_view(1, state="resolved", breaches=2)) == "resolved"


def test_every_severity_has_its_own_colour_from_the_theme(queue: AlertQueue) -> None:
    queue.setStyleSheet(path("theme.qss").read_text(encoding="utf-8"))
    colours = {s: queue.severity.colour(s).name() for s in SEVERITIES}
    assert len(set(colours.values())) == len(SEVERITIES), colours
    assert colours["escalated"] == QColor("#be123c").name()
    assert colours["critical"] == QColor("#7f1d1d").name()  # SeverityPalette's rule applies too
    for row in range(queue.model.rowCount()):
        assert queue.model.index(row, 0).data(SeverityRole) in SEVERITIES


def test_the_old_acknowledge_signal_is_gone(queue: AlertQueue) -> None:
    assert not hasattr(queue, "acknowledge_requested")


# ------------------------------------------------------------------ filters


def test_filters_mine_unassigned_urgent_and_district(queue: AlertQueue) -> None:
    queue.set_alerts([
        _view(1, priority=1, owner="kim.op", state="in_progress"),
        _view(2, priority=2, place="구로구 신도림동"),
        _view(3, priority=3, owner="lee.op", state="in_progress", place="도봉구 방학동"),
        _view(4, priority=4, place="도봉구 방학동"),
        _view(5, priority=1, state="resolved", place="구로구 신도림동"),
        _view(6, priority=2, place="somewhere"),
    ], now=NOW)
    assert queue.districts() == ["구로구", "도봉구", "성동구"]
    assert not queue.filter_buttons["mine"].isEnabled()
    queue.set_user("kim.op", ["operator"])
    queue.filter_buttons["mine"].click()
    assert queue.filter == "mine" and _ids(queue) == [1]
    queue.filter_buttons["unassigned"].click()
    assert _ids(queue) == [2, 6, 4]
    queue.filter_buttons["urgent"].click()
    assert _ids(queue) == [1, 2, 6]
    queue.set_district("구로구")
    assert queue.district == "구로구" and _ids(queue) == [2]
    queue.filter_buttons["all"].click()
    assert _ids(queue) == [2, 5]
    queue.district_combo.setCurrentIndex(queue.district_combo.findData("도봉구"))
    assert _ids(queue) == [3, 4]
    queue.set_district("")
    assert len(_ids(queue)) == 6
    assert queue.filter_buttons["all"].isChecked()


# ------------------------------------------------------------------ selection and keys


def test_selection_follows_the_alert_across_updates(queue: AlertQueue, qtbot: QtBot) -> None:
    seen: list[AlertView | None] = []
    queue.selected.connect(seen.append)
    queue.set_alerts([_view(1, state="acknowledged"), _view(2, state="in_progress")], now=NOW)
    assert queue.selected_alert() is None and seen == []  # nothing new: nothing picked
    assert queue.select_alert(2)
    assert [a.id for a in seen if a] == [2]

    # A new alert on top (a reset), and the selected one changes: still selected,
    # and the panel hears the new version once.
    v2 = msgspec.structs.replace(queue.alerts()[1], version=2, owner="kim.op")
    queue.set_alerts([_view(3, priority=1), _view(1, state="acknowledged"), v2], now=NOW)
    selected = queue.selected_alert()
    assert selected is not None and (selected.id, selected.version) == (2, 2)
    assert [(a.id, a.version) for a in seen if a] == [(2, 1), (2, 2)]

    # The same rows again: no signal.
    queue.set_alerts([_view(3, priority=1), _view(1, state="acknowledged"), v2], now=NOW)
    assert len(seen) == 2

    # Filtered away: the selection goes (and says so); the top new one is picked.
    queue.set_filter("urgent")
    queue.set_alerts([_view(3, priority=1), _view(1, state="acknowledged"),
                      msgspec.structs.replace(v2, priority=3)], now=NOW)
    selected = queue.selected_alert()
    assert selected is not None and selected.id == 3
    assert seen[-1] is not None and seen[-1].id == 3


def test_up_down_move_and_enter_locates(queue: AlertQueue, qtbot: QtBot) -> None:
    queue.set_alerts([_view(1), _view(2, opened_at=NOW - 30), _view(3, opened_at=NOW - 10)],
                     now=NOW)
    assert queue.selected_alert() is not None and queue.selected_alert().id == 1  # type: ignore[union-attr]
    queue.table.setFocus()
    with qtbot.waitSignal(queue.selected) as moved:
        qtbot.keyClick(queue.table, Qt.Key.Key_Down)
    assert moved.args[0].id == 2
    qtbot.keyClick(queue.table, Qt.Key.Key_Down)
    qtbot.keyClick(queue.table, Qt.Key.Key_Up)
    assert queue.selected_alert().id == 2  # type: ignore[union-attr]
    with qtbot.waitSignal(queue.locate_requested) as located:
        qtbot.keyClick(queue.table, Qt.Key.Key_Return)
    assert located.args[0].id == 2
    with qtbot.waitSignal(queue.locate_requested) as located:
        index = queue.model.index(2, 0)
        queue.table.doubleClicked.emit(index)
    assert located.args[0].id == 3


@pytest.mark.parametrize("key", [Qt.Key.Key_N, Qt.Key.Key_F8])
def test_next_alert_key_selects_the_most_urgent_new_one(queue: AlertQueue, qtbot: QtBot,
                                                        key: Qt.Key) -> None:
    queue.set_alerts([
        _view(1, priority=1, state="in_progress", owner="kim.op", opened_at=NOW - 900),
        _view(2, priority=2, opened_at=NOW - 800, place="구로구 신도림동"),
        _view(3, priority=1, opened_at=NOW - 20, place="도봉구 방학동"),
        _view(4, priority=1, opened_at=NOW - 40, place="도봉구 방학동"),
    ], now=NOW)
    queue.set_user("kim.op", ["operator"])
    queue.set_filter("mine")  # hides every new alert
    queue.select_alert(1)
    queue.activateWindow()
    queue.table.setFocus()
    qtbot.waitUntil(lambda: queue.table.hasFocus())
    with qtbot.waitSignal(queue.selected) as picked:
        qtbot.keyClick(queue.table, key)
    assert picked.args[0].id == 4  # P1 before P2, then the oldest P1
    assert queue.filter == "all"
    assert queue.next_alert() is not None and queue.selected_alert().id == 4  # type: ignore[union-attr]


def test_next_alert_with_nothing_new_changes_nothing(queue: AlertQueue) -> None:
    queue.set_alerts([_view(1, state="acknowledged")], now=NOW)
    queue.select_alert(1)
    assert queue.next_alert() is None
    assert queue.selected_alert().id == 1  # type: ignore[union-attr]


def test_fake_alerts_cover_every_priority_and_state() -> None:
    alerts = fake_alerts(NOW)
    assert {a.priority for a in alerts} == {1, 2, 3, 4}
    assert {a.state for a in alerts} == {"new", "acknowledged", "in_progress", "on_hold",
                                         "dispatched", "resolved"}
    assert any(a.breaches for a in alerts) and any(a.count > 1 for a in alerts)
