"""The trainer's replay bar, offscreen: it presents a session's status and
emits what the trainer asked for, nothing else."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot

from console.training.player import SPEEDS, STEP_S
from models.messages import ReplayMark
from widgets.replay_bar import ReplayBar, ReplayTimeline, TrainingBanner, fake_status

T0 = 1_790_000_000.0


def bar_for(qtbot: QtBot) -> ReplayBar:
    bar = ReplayBar(speeds=SPEEDS, step_s=STEP_S)
    qtbot.addWidget(bar)
    bar.resize(1400, 40)
    bar.show()
    qtbot.waitExposed(bar)
    return bar


def test_marks_sit_at_their_time_and_a_click_seeks_to_the_time_under_it(qtbot: QtBot) -> None:
    bar = bar_for(qtbot)
    assert not bar.play_button.isEnabled()  # nothing to drive before the first answer
    bar.show_status(fake_status(T0, T0 + 300))
    line = bar.timeline
    assert line.isEnabled() and len(line.marks) == 4
    left, right = line.MARGIN, line.width() - line.MARGIN
    for mark in line.marks:
        expected = left + (mark.t - T0) / 1080 * (right - left)
        assert abs(line.x_of(mark.t) - expected) < 0.01
        assert line.mark_at(line.x_of(mark.t) + 2) == mark
        assert mark.label in line.mark_tip(mark)
    assert line.mark_at(line.x_of(T0 + 600)) is None  # no mark there
    assert abs(line.x_of(line.t) - line.x_of(T0 + 300)) < 0.01  # the position
    # sos red, a zone exit blue: the colours the theme (or its fallbacks) give
    assert line.mark_colour("sos") == QColor(line.property("sosColor"))
    assert line.mark_colour("leave_zone") != line.mark_colour("sos")
    assert line.mark_colour("anything else") == QColor(line.property("otherColor"))

    with qtbot.waitSignal(bar.seek_requested) as sought:
        qtbot.mouseClick(line, Qt.MouseButton.LeftButton,
                         pos=QPoint(round(line.x_of(T0 + 540)), line.height() // 2))
    assert abs(sought.args[0] - (T0 + 540)) < 1080 / (right - left)  # within a pixel
    # dragging past the end seeks to the end, and the position waits for the release
    qtbot.mousePress(line, Qt.MouseButton.LeftButton, pos=QPoint(50, 10))
    assert line.dragging is not None
    bar.show_status(fake_status(T0, T0 + 310))
    assert line.t == T0 + 300  # not pulled from under the pointer
    with qtbot.waitSignal(bar.seek_requested) as sought:
        qtbot.mouseRelease(line, Qt.MouseButton.LeftButton, pos=QPoint(line.width() + 40, 10))
    assert sought.args[0] == T0 + 1080
    assert line.dragging is None


def test_the_controls_say_what_the_trainer_asked_and_follow_the_session(qtbot: QtBot) -> None:
    bar = bar_for(qtbot)
    assert [bar.speed.itemData(i) for i in range(bar.speed.count())] == list(SPEEDS)
    assert bar.speed.itemText(0) == "0.25×"
    assert bar.speed.itemText(bar.speed.count() - 1) == "16×"

    bar.show_status(fake_status(T0, T0 + 150, playing=True, speed=4.0))
    assert bar.speed.currentData() == 4.0
    assert "Pause" in bar.play_button.text()
    assert not bar.step_button.isEnabled()  # the session steps only when paused
    assert "+02:30 / 18:00" in bar.progress.text() and "4×" in bar.progress.text()
    with qtbot.waitSignal(bar.pause_requested):
        qtbot.mouseClick(bar.play_button, Qt.MouseButton.LeftButton)

    bar.show_status(fake_status(T0, T0 + 150, playing=False, speed=4.0))
    assert "Play" in bar.play_button.text() and bar.step_button.isEnabled()
    assert "paused" in bar.progress.text()
    with qtbot.waitSignal(bar.play_requested):
        qtbot.mouseClick(bar.play_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(bar.step_requested):
        qtbot.mouseClick(bar.step_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(bar.speed_requested) as chosen:
        bar.speed.activated.emit(bar.speed.findData(16.0))
    assert chosen.args == [16.0]
    # the session's answer, not the click, is what the bar shows afterwards
    with qtbot.assertNotEmitted(bar.speed_requested):
        bar.show_status(fake_status(T0, T0 + 155, playing=False, speed=0.5))
    assert bar.speed.currentData() == 0.5

    # ending asks first; "no" sends nothing
    bar.confirm = lambda: False
    with qtbot.assertNotEmitted(bar.stop_requested):
        qtbot.mouseClick(bar.end_button, Qt.MouseButton.LeftButton)
    bar.confirm = lambda: True
    with qtbot.waitSignal(bar.stop_requested):
        qtbot.mouseClick(bar.end_button, Qt.MouseButton.LeftButton)

    # at the end of the period: nothing left to play or step
    bar.show_status(fake_status(T0, T0 + 1080, playing=False))
    assert not bar.play_button.isEnabled() and not bar.step_button.isEnabled()
    assert "ended" in bar.progress.text()
    bar.clear()
    assert not bar.timeline.isEnabled() and bar.clock.text() == "--:--:--"


def test_a_timeline_without_a_period_ignores_clicks(qtbot: QtBot) -> None:
    line = ReplayTimeline()
    qtbot.addWidget(line)
    line.resize(400, 30)
    line.set_marks([ReplayMark(t=5.0, kind="sos")])
    with qtbot.assertNotEmitted(line.seek_requested):
        qtbot.mouseClick(line, Qt.MouseButton.LeftButton, pos=QPoint(200, 15))


def test_the_banner_says_training_and_the_session_when_known(qtbot: QtBot) -> None:
    banner = TrainingBanner()
    qtbot.addWidget(banner)
    assert banner.full_text().startswith("TRAINING — replayed data, not live operations")
    banner.show_session("", None)
    assert banner.session.text() == ""
    banner.show_session("After-school rush", T0, 0.0)
    assert "After-school rush" in banner.full_text() and "(paused)" in banner.full_text()
    banner.show_session("", T0, 16.0)
    assert "replayed clock" in banner.session.text() and "16×" in banner.session.text()
