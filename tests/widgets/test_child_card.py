"""widgets.child_card offscreen on fake data with a pinned clock: the
timetable strip (bars where their times are, coloured by state, alerts
outlined), the header (battery and time to empty, last fix age, LOST
SIGNAL, zones), the notices with their delivery, and the fading trail."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from models.messages import CardNotice, CardSlot, ChildCard
from widgets.child_card import (
    NOTICE_COLUMNS,
    ChildCardPanel,
    age_text,
    fake_card,
    time_to_empty_h,
)
from widgets.timetable_strip import FIRST_HOUR, LAST_HOUR, TimetableStrip
from widgets.trail_layer import TrailLayer

DAY_T0 = 1_796_482_800.0  # a local midnight (2026-12-06 00:00 KST)
NOW = DAY_T0 + 16 * 3600 + 600  # 16:10
# Pure colours, so pixels can be told apart exactly.
TEST_QSS = """
ChildCardPanel {
    qproperty-stripBackground: #000000;
    qproperty-axisColor: #101010;
    qproperty-textColor: #202020;
    qproperty-pendingColor: #808080;
    qproperty-arrivedColor: #00ff00;
    qproperty-departedColor: #0000ff;
    qproperty-alertColor: #ff0000;
    qproperty-nowColor: #ffff00;
    qproperty-markColor: #ffffff;
    qproperty-sentColor: #00c000;
    qproperty-queuedColor: #c0c0c0;
    qproperty-retryingColor: #c0c000;
    qproperty-deadColor: #c00000;
}
"""


def at(hours: float) -> float:
    return DAY_T0 + hours * 3600.0


@pytest.fixture
def panel(qtbot: QtBot) -> ChildCardPanel:
    card = ChildCardPanel(clock=lambda: NOW)
    qtbot.addWidget(card)
    card.setStyleSheet(TEST_QSS)
    card.resize(900, 640)
    card.show()
    qtbot.waitExposed(card)
    return card


def strip_image(strip: TimetableStrip) -> QImage:
    return strip.grab().toImage()


def pixel(img: QImage, x: float, y: float) -> QColor:
    ratio = img.devicePixelRatio()
    return img.pixelColor(int(x * ratio), int(y * ratio))


def test_strip_bars_sit_at_their_times_and_take_their_state_colours(
        panel: ChildCardPanel) -> None:
    panel.show_card(fake_card(NOW, day_t0=DAY_T0))
    strip = panel.strip
    assert len(strip.slots) == 3
    x0, x1 = TimetableStrip.LABEL_W, strip.width() - TimetableStrip.RIGHT
    per_hour = (x1 - x0) / (LAST_HOUR - FIRST_HOUR)
    for i, s in enumerate(strip.slots):
        bar = strip.bar_rect(i)
        start_h, end_h = (s.start_t - DAY_T0) / 3600, (s.end_t - DAY_T0) / 3600
        assert bar.left() == pytest.approx(x0 + (start_h - FIRST_HOUR) * per_hour, abs=0.01)
        assert bar.right() == pytest.approx(x0 + (end_h - FIRST_HOUR) * per_hour, abs=0.01)
    # 08:40 is 2 h 40 min into the 16-hour axis.
    assert strip.bar_rect(0).left() == pytest.approx(x0 + (x1 - x0) * (8 + 40 / 60 - 6) / 16,
                                                     abs=0.05)
    assert strip.x_of(at(3)) == x0 and strip.x_of(at(23.5)) == x1  # clamped to the axis
    # Colours by state, from the theme's properties, as drawn.
    assert [strip.bar_color(i).name() for i in range(3)] == ["#0000ff", "#00ff00", "#808080"]
    img = strip_image(strip)
    for i, colour in ((0, "#0000ff"), (1, "#00ff00")):  # the solid band where the child was
        band = strip.band_rect(i)
        assert band is not None
        assert pixel(img, band.center().x(), band.center().y()).name() == colour
    # The school band runs from the arrival seen to the departure seen; the
    # academy's from the arrival to now (the child is inside).
    school, academy = strip.band_rect(0), strip.band_rect(1)
    assert school is not None and academy is not None
    assert school.left() == pytest.approx(strip.x_of(at(8.45)))
    assert school.right() == pytest.approx(strip.x_of(at(14.8)))
    assert academy.right() == pytest.approx(strip.x_of(NOW))
    # Pending and not seen: no band; its open alert outlines the bar in red.
    assert strip.band_rect(2) is None and strip.alerted(2) and not strip.alerted(0)
    bar = strip.bar_rect(2)
    assert pixel(img, bar.center().x(), bar.top()).name() == "#ff0000"
    # The now line.
    assert pixel(img, strip.x_of(NOW), TimetableStrip.AXIS_H + 1).name() == "#ffff00"


def test_the_header_says_battery_fix_age_zones_and_lost_signal(panel: ChildCardPanel) -> None:
    card = fake_card(NOW, day_t0=DAY_T0)  # 23 %, -9.5 %/h, last fix 95 s ago, lost
    panel.show_card(card)
    assert panel.title.text() == "C-7F3A21"
    assert panel.lost.isVisible() and not panel.untracked.isVisible()
    assert "battery 23 %" in panel.battery.text() and "-9.5 %/h" in panel.battery.text()
    assert "empty in ~2.4 h" in panel.battery.text()
    assert panel.battery.property("level") == "ok"
    assert panel.last_fix.text().startswith("last fix 1 min ago")
    assert panel.last_fix.property("stale") is False
    assert "서울숲 (Seoul Forest Park)" in panel.zones.text()
    assert "41" in panel.alerts.text()
    assert "90 points" in panel.status.text() and "usage log" in panel.status.text()
    # Later, the fix gets old; a draining battery with little left is low.
    panel.tick(NOW + 3600)
    assert panel.last_fix.property("stale") is True
    panel.show_card(msgspec.structs.replace(card, battery=12, lost_signal=False,
                                            uncertain=["Sinhak Elementary"]))
    assert not panel.lost.isVisible() and panel.battery.property("level") == "low"
    assert "uncertain at: Sinhak Elementary" in panel.zones.text()
    assert panel.zones.property("uncertain") is True
    # Not tracked (no consent): no position, no device, no badge.
    panel.show_card(msgspec.structs.replace(card, tracked=False, zones=[], trail_t=b"",
                                            trail_lat=b"", trail_lon=b""))
    assert panel.untracked.isVisible() and not panel.lost.isVisible()
    assert panel.battery.text() == "" and panel.last_fix.text() == ""
    assert "Not tracked" in panel.zones.text()


def test_notices_are_listed_with_their_delivery(panel: ChildCardPanel) -> None:
    panel.show_card(fake_card(NOW, day_t0=DAY_T0))
    table = panel.notices
    assert table.rowCount() == 4 and table.columnCount() == len(NOTICE_COLUMNS)

    def row(r: int) -> list[str]:
        return [table.item(r, c).text() for c in range(table.columnCount())]

    retrying, sent, dead, _ = (row(r) for r in range(4))
    assert retrying[1:4] == ["academy arrival", "서울숲 (Seoul Forest Park)", "sms"]
    assert retrying[4].startswith("retrying at") and retrying[5:] == [
        "2", "SMS gateway timeout (30 s)"]
    assert sent[4].startswith("sent ") and sent[3] == "email"
    assert dead[4] == "dead" and dead[6] == "550 mailbox unavailable"
    assert [panel.notice_colour(r).name() for r in range(4)] == [
        "#c0c000", "#00c000", "#c00000", "#00c000"]
    # Today's show their time; an older one its date too.
    assert len(retrying[0]) == 8
    older = CardNotice(id=1, kind="school_arrival", zone="z", event_at=DAY_T0 - 3600,
                       channel="email", state="pending")
    panel.show_card(msgspec.structs.replace(fake_card(NOW, day_t0=DAY_T0), notices=[older]))
    assert table.rowCount() == 1 and len(table.item(0, 0).text()) == 19
    assert table.item(0, 4).text() == "pending"


def test_another_child_clears_the_card_before_its_answer(panel: ChildCardPanel) -> None:
    panel.show_card(fake_card(NOW, day_t0=DAY_T0))
    panel.asking("C-000002")
    assert panel.card is None and panel.child == "C-000002"
    assert panel.notices.rowCount() == 0 and not panel.lost.isVisible()
    assert "C-000002" in panel.status.text()
    panel.show_error("Refused: no child C-000002: check the token")
    assert panel.status.property("kind") == "error"
    panel.clear()
    assert panel.child == "" and panel.empty.isVisible() and not panel.strip.isVisible()


def test_an_empty_day_says_so(panel: ChildCardPanel) -> None:
    card = ChildCard(child="C-1", profile="bus", at=NOW, day_t0=DAY_T0,
                     slots=[], notices=[], battery=-1, trail_s=900.0)
    panel.show_card(card)
    assert panel.strip.slots == [] and panel.notices.rowCount() == 0
    assert panel.battery.text() == "battery unknown"
    assert panel.battery.property("level") == "unknown"
    assert panel.last_fix.text() == "no fix yet" and "no trail" in panel.status.text()
    s = CardSlot(zone="far", kind="school", start_t=at(4), end_t=at(5), state="pending")
    panel.show_card(msgspec.structs.replace(card, slots=[s]))
    assert panel.strip.bar_rect(0).left() == TimetableStrip.LABEL_W  # before 06:00: the edge


def test_helpers() -> None:
    assert time_to_empty_h(50, -10.0) == 5.0
    assert time_to_empty_h(50, 0.0) is None and time_to_empty_h(-1, -5.0) is None
    assert time_to_empty_h(50, 3.0) is None  # charging
    assert age_text(2) == "just now" and age_text(40) == "40 s ago"
    assert age_text(720) == "12 min ago" and age_text(3 * 3600 + 300) == "3 h 05 min ago"


def test_the_trail_fades_from_old_to_new(qtbot: QtBot) -> None:
    layer = TrailLayer()
    t = np.linspace(NOW - 900, NOW, 10)
    x = np.arange(10.0) * 10
    layer.set_trail(x, x, t, NOW, 900.0)
    a = layer.alphas
    assert len(layer) == 10 and a[0] == TrailLayer.MIN_ALPHA and a[-1] == 255
    assert np.all(np.diff(a) > 0)
    # Older than the window: as faint as it gets; points without a position dropped.
    layer.set_trail([0.0, np.nan, 5.0], [0.0, 1.0, 5.0], [NOW - 5000, NOW - 10, NOW], NOW,
                    900.0)
    assert len(layer) == 2 and layer.alphas.tolist() == [TrailLayer.MIN_ALPHA, 255]
    assert not layer.boundingRect().isNull()
    layer.clear()
    assert len(layer) == 0 and layer.boundingRect().isNull()
