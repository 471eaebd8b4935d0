"""widgets.health_strip: a real strip offscreen, fed heartbeats through a real
ConsoleState, as the console's frames feed it."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from models.console_state import BusState, ConsoleState
from models.messages import Heartbeat
from widgets.health_strip import HealthStrip, age_text

ROLES = ("engine", "recorder", "notifier", "gateway", "relay")
UP = {f"up.{p}": 1.0 for p in ("bus", *ROLES)}


def beat(origin: str, **stats: float) -> Heartbeat:
    return Heartbeat(origin=origin, seq=5, last_seq=5, stats=stats)


def healthy(st: ConsoleState, now: float, **sup: float) -> None:
    """A second of a healthy system: every service beats, the supervisor
    reports all up (``sup`` overrides its figures)."""
    st.apply(beat("engine:1", store_state=0.0, unsaved_alerts=0.0), now=now)
    for role in ROLES[1:]:
        st.apply(beat(f"{role}:1", store_state=0.0), now=now)
    st.apply(beat("supervisor:1", **(UP | sup)), now=now)


def synced() -> ConsoleState:
    st = ConsoleState()
    st.synced, st.origin, st.seq = True, "engine:1", 5
    return st


def strip_for(qtbot: QtBot, width: int = 1600) -> HealthStrip:
    strip = HealthStrip()
    qtbot.addWidget(strip)
    strip.resize(width, 24)
    return strip


def show(strip: HealthStrip, st: ConsoleState, now: float) -> None:
    strip.show_health(*st.health(now=now))


def states(strip: HealthStrip) -> dict[str, str]:
    return {name: str(label.property("state")) for name, label in strip.processes.items()}


def test_down_silent_store_and_unsaved_then_all_green(qtbot: QtBot) -> None:
    strip = strip_for(qtbot)
    st = synced()
    healthy(st, 100.0)
    show(strip, st, 100.4)
    assert list(strip.processes) == ["bus", "engine", "recorder", "notifier", "gateway",
                                     "relay", "supervisor"]
    assert set(states(strip).values()) == {"up"}
    assert st.bus_state(now=100.4) is BusState.LIVE
    assert strip.processes["engine"].text() == "● engine 0.4 s"
    assert strip.store.text() == "store writable"

    # The recorder dies (3rd restart pending), the gateway goes quiet, the store
    # locks and the engine holds three alerts it could not save.
    st.apply(beat("engine:1", store_state=1.0, unsaved_alerts=3.0), now=107.0)
    st.apply(beat("relay:1"), now=107.0)
    st.apply(beat("notifier:1"), now=107.0)
    st.apply(beat("supervisor:1", **(UP | {"up.recorder": 0.0, "restarts.recorder": 3.0})),
             now=107.0)
    show(strip, st, 107.5)
    assert states(strip) == {"bus": "up", "engine": "up", "recorder": "down",
                             "notifier": "up", "gateway": "silent", "relay": "up",
                             "supervisor": "up"}
    assert strip.processes["recorder"].text() == "● recorder down ↻3"
    assert "restarted 3 times" in strip.processes["recorder"].toolTip()
    assert strip.processes["gateway"].text() == "● gateway silent 7.5 s"
    assert "no heartbeat for 7.5 s" in strip.processes["gateway"].toolTip()
    assert strip.store.text() == "store locked"
    assert strip.store.property("state") == "warn"
    assert "recorder writable" in strip.store.toolTip()  # the recorder's last word
    assert strip.unsaved.text() == "3 unsaved"
    assert strip.unsaved.property("state") == "warn"
    # The status bar says the same, in words.
    assert st.bus_state(now=107.5) is BusState.DEGRADED
    assert st.degraded(now=107.5) == ["3 alerts not yet saved",
                                      "store locked: changes wait and are retried",
                                      "recorder down (restarted 3 times)",
                                      "gateway silent for 8 s"]  # down is not also "silent"

    # Back: the recorder restarted, the gateway beats, the store frees.
    healthy(st, 108.0, **{"restarts.recorder": 3.0})
    show(strip, st, 108.2)
    assert set(states(strip).values()) == {"up"}
    assert strip.processes["recorder"].text() == "● recorder 0.2 s ↻3"
    assert strip.store.property("state") == "ok"
    assert strip.unsaved.text() == "0 unsaved" and strip.unsaved.property("state") == "ok"
    assert st.bus_state(now=108.2) is BusState.LIVE

    # And down again: the pill turns red again (no state left behind).
    st.apply(beat("supervisor:1", **(UP | {"up.recorder": 0.0, "restarts.recorder": 4.0})),
             now=109.0)
    show(strip, st, 109.1)
    assert strip.processes["recorder"].property("state") == "down"
    assert strip.processes["recorder"].text() == "● recorder down ↻4"
    assert st.bus_state(now=109.1) is BusState.DEGRADED


def test_trouble_figures_and_unknown(qtbot: QtBot) -> None:
    """A running process with trouble is ringed; gaps with losses, refused
    reports and unregistered devices are counted; nothing heard is grey."""
    strip = strip_for(qtbot)
    assert strip.store.text() == "store unknown"
    st = synced()
    st.apply(beat("engine:1", journal_gaps=2.0, journal_lost=1.0), now=100.0)
    st.apply(beat("relay:1", evidence_full=1.0), now=100.0)
    st.apply(beat("gateway:1", **{"rejected.osmand:duplicate": 1200.0,
                                  "rejected.watch:bad_length": 3.0,
                                  "unregistered_devices": 2.0}), now=100.0)
    show(strip, st, 100.5)
    assert states(strip)["recorder"] == "unknown"  # never heard, no supervisor yet
    assert strip.processes["recorder"].text() == "○ recorder"
    relay = strip.processes["relay"]
    assert relay.text() == "● relay 0.5 s · evidence full"
    assert relay.property("trouble") is True
    assert strip.processes["engine"].property("trouble") is False
    assert strip.gaps.text() == "gaps 3 (1 lost)" and strip.gaps.property("state") == "bad"
    assert strip.refused.text() == "refused 1,203"
    assert strip.unregistered.text() == "2 unregistered"
    assert not strip.unregistered.isHidden()


def test_extra_processes_get_pills_in_order(qtbot: QtBot) -> None:
    strip = strip_for(qtbot)
    st = synced()
    healthy(st, 100.0, **{"up.simulator": 1.0, "up.democams": 1.0})
    show(strip, st, 100.1)
    assert list(strip.processes)[-3:] == ["democams", "simulator", "supervisor"]
    assert strip.processes["simulator"].text() == "● simulator"  # no heartbeat of its own
    healthy(st, 101.0)  # a supervisor without them: their pills go
    show(strip, st, 101.1)
    assert "simulator" not in strip.processes
    assert strip.layout().count() == 2 + 7 + 5 + 1  # title, folded, pills, figures, stretch


def test_short_of_room_running_pills_drop_their_ages(qtbot: QtBot) -> None:
    """A narrow window gets compact pills (the strip never widens it):
    running processes lose their ages, then fold into one "N up" pill; what
    is wrong always stays in sight."""
    strip = strip_for(qtbot, width=4000)
    st = synced()
    healthy(st, 100.0, **{"restarts.engine": 2.0, "up.recorder": 0.0,
                          "restarts.recorder": 3.0})
    st.apply(beat("relay:1", evidence_full=1.0), now=100.0)
    show(strip, st, 100.4)
    assert not strip.compact
    full = strip.sizeHint().width()
    strip.resize(full - 1, 24)
    show(strip, st, 100.4)
    assert strip.compact and not strip.folded
    assert strip.processes["engine"].text() == "● engine"
    assert "restarted 2 times" in strip.processes["engine"].toolTip()
    assert strip.processes["relay"].text() == "● relay · evidence full"
    assert strip.processes["recorder"].text() == "● recorder down ↻3"
    strip.resize(200, 24)
    show(strip, st, 100.45)
    assert strip.folded == ["bus", "engine", "notifier", "gateway", "supervisor"]
    assert strip.quiet.text() == "● 5 up" and not strip.quiet.isHidden()
    assert strip.processes["engine"].isHidden()
    assert not strip.processes["recorder"].isHidden()
    assert not strip.processes["relay"].isHidden()
    strip.resize(full, 24)  # room again: the whole text comes back
    show(strip, st, 100.5)
    assert not strip.compact and not strip.folded and strip.quiet.isHidden()
    assert strip.processes["engine"].text() == "● engine 0.5 s ↻2"
    assert not strip.processes["engine"].isHidden()


def test_age_text() -> None:
    assert [age_text(a) for a in (None, 0.04, 9.94, 12.4, 300.0, 7200.0)] == [
        "—", "0.0 s", "9.9 s", "12 s", "5 min", "2 h"]
