"""DEGRADED, and why, from what the heartbeats say (Qt-free)."""

from __future__ import annotations

from models.console_state import BusState, ConsoleState
from models.health import reasons, supervisor_stats
from models.messages import Heartbeat


def test_healthy_is_no_reason() -> None:
    sup = supervisor_stats({"bus": (True, 0), "engine": (True, 2)}, 0)
    assert sup == {"hung_kills": 0.0, "up.bus": 1.0, "restarts.bus": 0.0, "up.engine": 1.0,
                   "restarts.engine": 2.0}
    assert reasons({"unsaved_alerts": 0}, sup, {"gateway": 99.0, "supervisor": 99.0}, 100.0) == []


def test_each_fault_says_why() -> None:
    sup = supervisor_stats({"recorder": (False, 3), "engine": (True, 0)}, 1)
    said = reasons({"unsaved_alerts": 2}, sup, {"gateway": 90.0, "relay": 99.5,
                                                "supervisor": 80.0}, 100.0)
    assert said == ["2 alerts not yet saved", "recorder down (restarted 3 times)",
                    "gateway silent for 10 s", "supervisor silent for 20 s"]
    assert reasons({}, {}, {}, 100.0) == []  # nothing heard of yet is not a fault


def beat(origin: str, seq: int, **stats: float) -> Heartbeat:
    return Heartbeat(origin=origin, seq=seq, last_seq=seq, stats=stats)


def test_a_synced_console_turns_degraded_and_back() -> None:
    st = ConsoleState()
    st.synced, st.origin, st.seq = True, "engine:1", 5
    assert st.apply(beat("engine:1", 5), now=100.0)
    assert st.bus_state(now=100.5) is BusState.LIVE
    st.apply(beat("supervisor:7", 1, **{"up.recorder": 0.0, "restarts.recorder": 1.0}),
             now=100.2)
    assert st.bus_state(now=100.5) is BusState.DEGRADED
    assert st.degraded(now=100.5) == ["recorder down (restarted 1 time)"]
    st.apply(beat("supervisor:7", 2, **{"up.recorder": 1.0, "restarts.recorder": 1.0}),
             now=100.4)
    assert st.bus_state(now=100.5) is BusState.LIVE
    # STALE and DISCONNECTED still win: DEGRADED needs a console in step.
    st.apply(beat("supervisor:7", 3, **{"up.recorder": 0.0}), now=100.6)
    assert st.bus_state(now=104.0) is BusState.STALE


def test_delivery_faults_say_why_and_clear() -> None:
    """The gateway's journal refusing, a gateway that hears no engine, an
    engine catching up and a recorder's backlog each turn a console
    DEGRADED with words, and the next healthy heartbeat clears them."""
    st = ConsoleState()
    st.synced, st.origin, st.seq = True, "engine:1", 5
    st.apply(beat("engine:1", 5, journal_behind=1.0), now=100.0)
    st.apply(beat("gateway:2", 1, journal_ok=0.0, engine_up=0.0), now=100.0)
    st.apply(beat("recorder:3", 1, backlog=1.0), now=100.0)
    assert st.degraded(now=100.5) == [
        "engine catching up with devices' reports",
        "gateway cannot store reports: devices are told to send again",
        "gateway hears no engine: SOS not acknowledged to devices",
        "recorder: 1 event waiting for the store"]
    assert st.bus_state(now=100.5) is BusState.DEGRADED
    st.apply(beat("engine:1", 5, journal_behind=0.0), now=101.0)
    st.apply(beat("gateway:2", 2, journal_ok=1.0, engine_up=1.0), now=101.0)
    st.apply(beat("recorder:3", 2, backlog=0.0), now=101.0)
    assert st.degraded(now=101.5) == []
    assert st.bus_state(now=101.5) is BusState.LIVE
    assert st.degraded(now=110.0) == ["gateway silent for 9 s", "recorder silent for 9 s"]


def test_store_errors_are_told_apart() -> None:
    from models.health import STORE_STATES, store_state
    assert STORE_STATES[store_state("")] == "writable"
    assert STORE_STATES[store_state("(sqlite3.OperationalError) database is locked")] == "locked"
    assert STORE_STATES[store_state("canceling statement due to lock timeout")] == "locked"
    assert STORE_STATES[store_state("database or disk is full")] == "full"
    assert STORE_STATES[store_state("[Errno 28] No space left on device")] == "full"
    assert STORE_STATES[store_state("no such table: alerts")] == "failing"
