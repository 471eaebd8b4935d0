"""The operator's child card: one child's day at a glance, and its trail.

What a guardian on the phone asks ("did she get to the academy?", "why no
message?", "is his watch on?") is answered from one panel: the device's
state in the header (battery and when it runs out, the last fix's age, a
LOST SIGNAL badge, the zones the child is in now), today's timetable as a
strip (each expected slot's planned window, the arrival and departure
actually seen, coloured by state, outlined when an alert is open on it)
and the guardians' notices with their delivery.

Children stay tokens here: the card is the pseudonymous view (a name needs
a reveal, ``widgets.reveal_view``). It only presents: the controller
(``console.child_card_controller``) asks the engine for a ``ChildCard`` and
hands it to ``show_card``; ``tick(now)`` ages the clocks from an injected
time. ``TrailLayer`` (``widgets.trail_layer``) draws the card's trail on
the map, old points faint and new ones strong, so which way the child went
reads at a glance; the strip is ``widgets.timetable_strip.TimetableStrip``.

Every colour is a Qt property the theme sets (``ChildCard {
qproperty-arrivedColor: …; }``, the strip and the trail take theirs from
the card); the defaults only serve a card run without the theme.

Run ``python -m widgets.child_card`` for a demo on fake data
(``--map`` adds the trail on the live map, ``--shot PATH`` saves a PNG).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from PySide6.QtCore import QT_TRANSLATE_NOOP, Property, Qt, Signal
from PySide6.QtGui import QColor, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from models.messages import CardNotice, CardSlot, ChildCard, pack
from models.privacy_view import local_time
from widgets.tables import read_only
from widgets.timetable_strip import TimetableStrip
from widgets.trail_layer import DEFAULT_TRAIL_COLOUR

STALE_FIX_S = 10 * 60.0  # a last fix older than this is shown as old
LOW_BATTERY = 20  # percent
SHORT_RUNTIME_H = 2.0  # a draining battery with less than this left is low
NOTICE_COLUMNS = ("Time", "Kind", "Zone", "Channel", "State", "Attempts", "Error")
TIME, KIND, ZONE, CHANNEL, STATE, ATTEMPTS, ERROR = range(len(NOTICE_COLUMNS))
KIND_TEXT = {"school_arrival": QT_TRANSLATE_NOOP("ChildCardPanel", "school arrival"),
             "school_departure": QT_TRANSLATE_NOOP("ChildCardPanel", "school departure"),
             "academy_arrival": QT_TRANSLATE_NOOP("ChildCardPanel", "academy arrival"),
             "academy_departure": QT_TRANSLATE_NOOP("ChildCardPanel", "academy departure")}

DEFAULT_COLOURS: dict[str, str] = {
    "stripBackground": "#111c33",
    "axisColor": "#475569",
    "textColor": "#cbd5e1",
    "pendingColor": "#64748b",
    "arrivedColor": "#22c55e",
    "departedColor": "#3b82f6",
    "alertColor": "#ef4444",
    "nowColor": "#fbbf24",
    "markColor": "#f8fafc",
    "sentColor": "#86efac",
    "queuedColor": "#cbd5e1",
    "retryingColor": "#fcd34d",
    "deadColor": "#fca5a5",
    "trailColor": DEFAULT_TRAIL_COLOUR,
}
NOTICE_COLOUR = {"sent": "sentColor", "pending": "queuedColor", "retrying": "retryingColor",
                 "dead": "deadColor"}


def time_to_empty_h(battery: int, trend_per_h: float) -> float | None:
    """Hours until a draining battery is empty at its present rate; None
    when it is not draining or the level is unknown."""
    if battery < 0 or trend_per_h >= 0:
        return None
    return battery / -trend_per_h


def age_text(seconds: float) -> str:
    """"just now", "40 s", "12 min", "3 h 05 min", "2 days"."""
    s = max(0.0, seconds)
    if s < 5:
        return "just now"
    if s < 60:
        return f"{s:.0f} s ago"
    if s < 3600:
        return f"{s // 60:.0f} min ago"
    if s < 86400:
        return f"{s // 3600:.0f} h {s % 3600 // 60:02.0f} min ago"
    return f"{s // 86400:.0f} days ago"


def _set_prop(widget: QWidget, key: str, value: object) -> None:
    """A style property, re-polished only when it changed."""
    if widget.property(key) == value:
        return
    widget.setProperty(key, value)
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def _colour_property(name: str) -> Property:
    def getter(self: ChildCardPanel) -> QColor:
        return QColor(self._colours[name])

    def setter(self: ChildCardPanel, value: QColor) -> None:
        colour = QColor(value)
        if colour.isValid():
            self._colours[name] = colour
            self._restyle()

    return Property(QColor, getter, setter)


# -------------------------------------------------------------------- the card


class ChildCardPanel(QWidget):
    """The child card. Present-only: it emits, never sends."""

    refresh_requested = Signal()
    close_requested = Signal()
    shown_changed = Signal(bool)  # the card became visible (True) or hidden

    stripBackground = _colour_property("stripBackground")
    axisColor = _colour_property("axisColor")
    textColor = _colour_property("textColor")
    pendingColor = _colour_property("pendingColor")
    arrivedColor = _colour_property("arrivedColor")
    departedColor = _colour_property("departedColor")
    alertColor = _colour_property("alertColor")
    nowColor = _colour_property("nowColor")
    markColor = _colour_property("markColor")
    sentColor = _colour_property("sentColor")
    queuedColor = _colour_property("queuedColor")
    retryingColor = _colour_property("retryingColor")
    deadColor = _colour_property("deadColor")
    trailColor = _colour_property("trailColor")

    def __init__(self, parent: QWidget | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self.setObjectName("childCard")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._colours: dict[str, QColor] = {k: QColor(v) for k, v in DEFAULT_COLOURS.items()}
        self._clock = clock
        self._card: ChildCard | None = None
        self._child = ""

        self.title = QLabel()
        self.title.setObjectName("panelTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.profile = QLabel()
        self.profile.setObjectName("childProfile")
        self.lost = QLabel(self.tr("LOST SIGNAL"))
        self.lost.setObjectName("childLost")
        self.lost.setToolTip(self.tr("The device has not reported while the timetable "
                                     "expects the child"))
        self.lost.hide()
        self.untracked = QLabel(self.tr("NOT TRACKED"))
        self.untracked.setObjectName("childUntracked")
        self.untracked.setToolTip(self.tr("No consent in force: nothing of where the child "
                                          "is or was is shown"))
        self.untracked.hide()
        self.refresh_button = QPushButton(self.tr("Refresh"))
        self.refresh_button.setObjectName("childRefresh")
        self.refresh_button.setToolTip(self.tr("Ask for the card again (it refreshes itself "
                                               "every 10 s while shown)"))
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.close_button = QPushButton(self.tr("Close"))
        self.close_button.setObjectName("childClose")
        self.close_button.setToolTip(self.tr("Clear the card and its trail from the map"))
        self.close_button.clicked.connect(self.close_requested)

        self.battery = QLabel()
        self.battery.setObjectName("childBattery")
        self.last_fix = QLabel()
        self.last_fix.setObjectName("childLastFix")
        self.zones = QLabel()
        self.zones.setObjectName("childZones")
        self.zones.setWordWrap(True)
        self.movement = QLabel()
        self.movement.setObjectName("childFact")
        self.alerts = QLabel()
        self.alerts.setObjectName("childAlerts")
        self.empty = QLabel(self.tr("Click a child on the map, or select an alert, to see "
                                    "its card."))
        self.empty.setObjectName("childEmpty")
        self.empty.setWordWrap(True)
        self.strip = TimetableStrip(self._colours)
        self.strip_title = QLabel(self.tr("Today"))
        self.strip_title.setObjectName("childSection")
        self.legend = QLabel(self.tr("outline: planned · solid: there · ticks: arrival, "
                                     "departure · red: alert open"))
        self.legend.setObjectName("childLegend")
        self.notices_title = QLabel(self.tr("Guardians' notices"))
        self.notices_title.setObjectName("childSection")
        self.notices = QTableWidget(0, len(NOTICE_COLUMNS))
        self.notices.setObjectName("childNotices")
        self.notices.setHorizontalHeaderLabels([self.tr(c) for c in NOTICE_COLUMNS])
        read_only(self.notices, stretch=ERROR)
        self.status = QLabel()
        self.status.setObjectName("childStatus")
        self.status.setWordWrap(True)

        head = QHBoxLayout()
        head.setSpacing(8)
        head.addWidget(self.title)
        head.addWidget(self.profile)
        head.addWidget(self.lost)
        head.addWidget(self.untracked)
        head.addStretch(1)
        head.addWidget(self.refresh_button)
        head.addWidget(self.close_button)
        facts = QHBoxLayout()
        facts.setSpacing(16)
        for label in (self.battery, self.last_fix, self.movement, self.alerts):
            facts.addWidget(label)
        facts.addStretch(1)
        box = QVBoxLayout(self)
        box.setContentsMargins(8, 6, 8, 6)
        box.setSpacing(5)
        box.addLayout(head)
        box.addLayout(facts)
        box.addWidget(self.zones)
        box.addWidget(self.empty)
        today = QHBoxLayout()
        today.addWidget(self.strip_title, 1)
        today.addWidget(self.legend)
        box.addLayout(today)
        box.addWidget(self.strip)
        box.addWidget(self.notices_title)
        box.addWidget(self.notices, 1)
        box.addWidget(self.status)
        self.clear()

    # ----------------------------------------------------------------- API
    @property
    def card(self) -> ChildCard | None:
        return self._card

    @property
    def child(self) -> str:
        """The token the card is about (asked or shown); "" when empty."""
        return self._child

    def asking(self, child: str) -> None:
        """The controller asked for ``child``'s card: say so; a card of
        another child goes at once (it would be read as this one's)."""
        if child != self._child:
            self.clear()
            self._child = child
            self.title.setText(child)
            self.empty.hide()
        self.status.setText(self.tr("Asking the engine for {0}'s card…").format(child))
        _set_prop(self.status, "kind", "info")

    def show_card(self, card: ChildCard) -> None:
        self._card, self._child = card, card.child
        self.empty.hide()
        for w in (self.strip_title, self.legend, self.strip, self.notices_title, self.notices):
            w.show()
        self.title.setText(card.child)
        self.profile.setText(self.tr("travels: {0}").format(card.profile))
        self.untracked.setVisible(not card.tracked)
        self.lost.setVisible(card.tracked and card.lost_signal)
        if card.tracked:
            zones = ", ".join(card.zones) if card.zones else self.tr("no safety zone")
            text = self.tr("Now in: {0}").format(zones)
            if card.uncertain:
                text += self.tr(" · uncertain at: {0}").format(", ".join(card.uncertain))
            self.zones.setText(text)
            _set_prop(self.zones, "uncertain", bool(card.uncertain))
            self.movement.setText(self.tr("last step {0:.1f} km/h").format(card.speed_kmh)
                                  if card.last_fix_t else "")
        else:
            self.zones.setText(self.tr("Not tracked: no consent in force"))
            _set_prop(self.zones, "uncertain", False)
            self.movement.setText("")
        self.alerts.setText(self.tr("open alerts: {0}").format(
            ", ".join(str(a) for a in card.alert_ids)) if card.alert_ids else "")
        self._show_battery(card)
        self.strip.set_day(card.day_t0, card.slots, self._clock())
        self._show_notices(card.notices, card.day_t0)
        self.notices_title.setText(self.tr("Guardians' notices · {0}").format(
            len(card.notices)) if card.notices else self.tr("Guardians' notices · none yet"))
        points = len(card.trail_t) // 8  # float64 times
        parts = [self.tr("updated {0}").format(local_time(card.at, with_date=False))]
        minutes = card.trail_s / 60
        if points:
            parts.append(self.tr("trail: {0} points over the last {1:.0f} min on the map")
                         .format(points, minutes))
        elif card.tracked and card.trail_s > 0:
            parts.append(self.tr("no trail in the last {0:.0f} min").format(minutes))
        if points or card.notices:
            parts.append(self.tr("shown history is recorded in the usage log"))
        self.status.setText(" · ".join(parts))
        _set_prop(self.status, "kind", "info")
        self.tick(self._clock())

    def show_error(self, text: str) -> None:
        """A refusal or a failure, in words; the card shown (if any) stays,
        marked by the message as possibly out of date."""
        self.status.setText(text)
        _set_prop(self.status, "kind", "error")

    def clear(self) -> None:
        self._card, self._child = None, ""
        self.title.setText(self.tr("Child card"))
        for label in (self.profile, self.battery, self.last_fix, self.zones, self.movement,
                      self.alerts, self.status):
            label.setText("")
        self.lost.hide()
        self.untracked.hide()
        self.empty.show()
        for w in (self.strip_title, self.legend, self.strip, self.notices_title, self.notices):
            w.hide()
        self.strip.set_day(0.0, [], 0.0)
        self.notices.setRowCount(0)

    def tick(self, now: float) -> None:
        """Age the last fix and move the strip's now line."""
        card = self._card
        self.strip.set_now(now)
        if card is None or not card.tracked:
            self.last_fix.setText("")
            return
        if not card.last_fix_t:
            self.last_fix.setText(self.tr("no fix yet"))
            _set_prop(self.last_fix, "stale", True)
            return
        age = now - card.last_fix_t
        self.last_fix.setText(self.tr("last fix {0} ({1})").format(
            age_text(age), local_time(card.last_fix_t, with_date=False)))
        _set_prop(self.last_fix, "stale", age > STALE_FIX_S)

    # ------------------------------------------------------------ internals
    def _show_battery(self, card: ChildCard) -> None:
        if not card.tracked or card.battery < 0:
            self.battery.setText(self.tr("battery unknown") if card.tracked else "")
            _set_prop(self.battery, "level", "unknown")
            return
        text = self.tr("battery {0} %").format(card.battery)
        left = time_to_empty_h(card.battery, card.battery_trend)
        if card.battery_trend:
            text += f" · {card.battery_trend:+.1f} %/h"
        if left is not None:
            text += self.tr(" · empty in ~{0}").format(
                f"{left:.1f} h" if left < 10 else f"{left:.0f} h")
        self.battery.setText(text)
        low = card.battery < LOW_BATTERY or (left is not None and left < SHORT_RUNTIME_H)
        _set_prop(self.battery, "level", "low" if low else "ok")

    def _show_notices(self, rows: Sequence[CardNotice], day_t0: float) -> None:
        """Today's notices by their time, older ones with their date."""
        table = self.notices
        table.setRowCount(len(rows))
        for r, n in enumerate(rows):
            when = local_time(n.event_at, with_date=not day_t0 <= n.event_at < day_t0 + 86400)
            cells = (when, self.tr(KIND_TEXT.get(n.kind, n.kind)), n.zone,
                     n.channel, self._state_text(n), str(n.attempts), n.error)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col in (STATE, ERROR) and text:
                    item.setToolTip(text)
                if col == STATE:
                    item.setForeground(self._colours[NOTICE_COLOUR.get(n.state, "queuedColor")])
                if col == ATTEMPTS:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(r, col, item)

    def _state_text(self, n: CardNotice) -> str:
        if n.state == "sent" and n.sent_at:
            return self.tr("sent {0}").format(local_time(n.sent_at, with_date=False))
        if n.state == "retrying" and n.next_at:
            return self.tr("retrying at {0}").format(local_time(n.next_at, with_date=False))
        return self.tr(n.state)

    def _restyle(self) -> None:
        self.strip.update()
        if self._card is not None:
            self._show_notices(self._card.notices, self._card.day_t0)

    def notice_colour(self, row: int) -> QColor:
        """The colour the state cell of ``row`` is drawn in (for tests)."""
        item = self.notices.item(row, STATE)
        return item.foreground().color() if item is not None else QColor()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.shown_changed.emit(True)

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.shown_changed.emit(False)


# ------------------------------------------------------------------- fake data


def fake_card(now: float, child: str = "C-7F3A21", *, day_t0: float | None = None,
              lost: bool = True) -> ChildCard:
    """A plausible afternoon for running the card alone (and for tests):
    school done, at the academy now with a not-departed alert pending
    elsewhere, one notice sent, one retrying, one dead."""
    if day_t0 is None:
        lt = time.localtime(now)
        day_t0 = now - (lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec)

    def at(h: float) -> float:
        return day_t0 + h * 3600.0

    slots = [
        CardSlot(zone="신도림초등학교 (Sindorim Elementary)", kind="school",
                 start_t=at(8 + 40 / 60), end_t=at(14 + 40 / 60), state="departed",
                 arrived_at=at(8.45), departed_at=at(14.8)),
        CardSlot(zone="서울숲 (Seoul Forest Park)", kind="academy", start_t=at(15.5),
                 end_t=at(17.0), state="arrived", inside=True, arrived_at=at(15.4),
                 departed_at=0.0),
        CardSlot(zone="Sinhak Taekwondo", kind="academy", start_t=at(18.0), end_t=at(19.5),
                 state="pending", alerted=["not_arrived"], alert_ids=[41]),
    ]
    notices = [
        CardNotice(id=311, kind="academy_arrival", zone="서울숲 (Seoul Forest Park)",
                   event_at=at(15.4), channel="sms", state="retrying", attempts=2,
                   next_at=at(15.6), error="SMS gateway timeout (30 s)"),
        CardNotice(id=310, kind="academy_arrival", zone="서울숲 (Seoul Forest Park)",
                   event_at=at(15.4), channel="email", state="sent", attempts=1,
                   sent_at=at(15.41)),
        CardNotice(id=305, kind="school_departure", zone="신도림초등학교 (Sindorim Elementary)",
                   event_at=at(14.8), channel="email", state="dead", attempts=5,
                   error="550 mailbox unavailable"),
        CardNotice(id=298, kind="school_arrival", zone="신도림초등학교 (Sindorim Elementary)",
                   event_at=at(8.45), channel="email", state="sent", attempts=1,
                   sent_at=at(8.46)),
    ]
    t = np.linspace(now - 900, now - 20, 90)
    lat = 37.5444 + 0.0025 * (now - t) / 900
    lon = 127.0374 - 0.002 * np.sin((now - t) / 300)
    return ChildCard(child=child, profile="walking", at=now, day_t0=day_t0, zones=[
        "서울숲 (Seoul Forest Park)"], uncertain=[], slots=slots, notices=notices,
        last_fix_t=now - 95, battery=23, battery_trend=-9.5, lost_signal=lost, speed_kmh=3.8,
        alert_ids=[41], trail_s=900.0, trail_t=pack("t", t), trail_lat=pack("lat", lat),
        trail_lon=pack("lon", lon))


def main(argv: list[str] | None = None) -> int:
    """The card alone on fake data (``--map``: with its trail on the map)."""
    import argparse

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QSplitter

    from console.theme import apply_theme
    from models.geo import to_map
    from models.messages import unpack

    parser = argparse.ArgumentParser(prog="python -m widgets.child_card",
                                     description="The child card on fake data")
    parser.add_argument("--map", action="store_true", help="show the trail on the live map")
    parser.add_argument("--shot", metavar="PATH", help="save a PNG of the window and quit")
    args = parser.parse_args(argv)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_theme(app)
    now = time.time()
    # 16:10 local, so the demo's afternoon is "now" whatever the time is here.
    lt = time.localtime(now)
    day_t0 = now - (lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec)
    demo_now = day_t0 + 16 * 3600 + 600
    card = ChildCardPanel(clock=lambda: demo_now)
    data = fake_card(demo_now, day_t0=day_t0)
    card.show_card(data)
    window: QWidget = card
    if args.map:
        from widgets.map_view import MapView
        from widgets.trail_layer import TrailLayer

        split = QSplitter()
        view = MapView()
        layer = TrailLayer()
        layer.setZValue(3.5)
        view.view_box.addItem(layer, ignoreBounds=True)
        x, y = to_map(unpack("lat", data.trail_lat), unpack("lon", data.trail_lon))
        layer.set_trail(x, y, unpack("t", data.trail_t), data.at, data.trail_s)
        layer.set_color(card.trailColor)
        split.addWidget(view)
        split.addWidget(card)
        split.setSizes([760, 840])
        window = split
        QTimer.singleShot(0, lambda: view.center_on(float(np.nanmean(x)), float(np.nanmean(y)),
                                                    900.0))
    window.setWindowTitle(card.tr("Child card (fake data)"))
    window.resize(1600 if args.map else 860, 620)
    window.show()
    if args.shot:
        def shoot() -> None:
            if not window.grab().save(args.shot):
                print(f"could not save {args.shot}", file=sys.stderr)
                app.exit(1)
                return
            app.exit(0)
        QTimer.singleShot(1200, shoot)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
