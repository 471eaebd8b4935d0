"""DEGRADED, and why, from what the heartbeats say (Qt-free)."""

from __future__ import annotations

import pytest

from models.console_state import BusState, ConsoleState
from models.health import ProcessHealth, reasons, supervisor_stats
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


# ------------------------------------------------------------ the health strip
def _by_name(st: ConsoleState, now: float) -> dict[str, ProcessHealth]:
    processes, _ = st.health(now=now)
    return {p.name: p for p in processes}


def _synced() -> ConsoleState:
    st = ConsoleState()
    st.synced, st.origin, st.seq = True, "engine:1", 5
    return st


def test_strip_lists_each_process_with_state_restarts_and_age() -> None:
    st = _synced()
    st.apply(beat("engine:1", 5, unsaved_alerts=0.0, store_state=0.0), now=100.0)
    st.apply(beat("supervisor:7", 1, **{"up.bus": 1.0, "up.engine": 1.0, "restarts.engine": 2.0,
                                          "up.recorder": 0.0, "restarts.recorder": 3.0,
                                          "up.gateway": 1.0, "up.relay": 1.0,
                                          "up.simulator": 1.0}), now=100.2)
    st.apply(beat("gateway:2", 1), now=93.0)
    processes, _ = st.health(now=100.5)
    assert [p.name for p in processes] == ["bus", "engine", "recorder", "notifier", "gateway",
                                           "relay", "simulator", "supervisor"]
    by = {p.name: p for p in processes}
    assert by["engine"] == ProcessHealth("engine", "up", 2, 0.5, "")
    assert by["recorder"] == ProcessHealth("recorder", "down", 3, None, "")
    assert by["gateway"].state == "silent" and by["gateway"].age_s == 7.5
    assert by["relay"].state == "unknown"  # up by the supervisor, but never heard
    assert by["simulator"].state == "up"  # sends no heartbeat: the supervisor's word
    assert by["bus"].state == "up"
    assert by["bus"].age_s == pytest.approx(0.3)  # the latest heartbeat of anyone
    assert by["supervisor"].state == "up"


def test_details_say_what_is_wrong_with_a_running_process() -> None:
    st = _synced()
    st.apply(beat("engine:1", 5, journal_behind=1.0), now=100.0)
    st.apply(beat("recorder:3", 1, backlog=1200.0), now=100.0)
    st.apply(beat("gateway:2", 1, engine_up=0.0, journal_ok=0.0), now=100.0)
    st.apply(beat("relay:4", 1, evidence_full=1.0), now=100.0)
    by = _by_name(st, 100.5)
    assert [by[n].detail for n in ("engine", "recorder", "gateway", "relay")] == [
        "catching up", "backlog 1,200", "hears no engine, journal refusing", "evidence full"]


def test_summary_store_is_the_worst_writer_and_figures_add_up() -> None:
    from models.health import HealthSummary, health_summary
    assert health_summary({}, {}) == HealthSummary()  # nothing heard: the store is unknown
    s = health_summary({"store_state": 0.0, "unsaved_alerts": 3.0, "journal_gaps": 2.0,
                        "journal_lost": 1.0, "store_failures": 4.0},
                       {"hung_kills": 1.0},
                       gateway={"rejected.osmand:duplicate": 5.0, "rejected.watch:bad_length": 2.0,
                                "accepted.osmand": 900.0, "unregistered_devices": 2.0},
                       recorder={"store_state": 1.0, "store_failures": 1.0})
    assert s == HealthSummary(store="locked", store_by=(("engine", "writable"),
                                                        ("recorder", "locked")),
                              store_failures=5, unsaved_alerts=3, gaps=3, lost=1, refused=7,
                              unregistered_devices=2, hung_kills=1)
    assert health_summary({"store_state": 2.0}, {}, recorder={"store_state": 1.0}).store == "full"
    assert health_summary({"store_state": 99.0}, {}).store == "failing"  # out of range: clamped


def test_engine_silence_is_the_stale_state() -> None:
    """The engine's silence is not a DEGRADED reason: the console turns
    STALE at the same moment the strip shows it silent."""
    st = _synced()
    st.apply(beat("engine:1", 5), now=100.0)
    assert _by_name(st, 102.9)["engine"].state == "up"
    assert _by_name(st, 103.1)["engine"].state == "silent"
    assert st.bus_state(now=103.1) is BusState.STALE


def _scenarios() -> list[tuple[dict[str, float], dict[str, float], dict[str, float]]]:
    """(supervisor stats, heard ages, engine stats): every mix of up, down,
    silent and never heard over the processes."""
    out = []
    for i in range(3 ** 4):
        sup: dict[str, float] = {"up.bus": 1.0, "up.simulator": float(i % 2)}
        ages: dict[str, float] = {"supervisor": 0.2 if i % 5 else 9.0}
        for k, role in enumerate(("engine", "recorder", "gateway", "relay")):
            kind = i // 3 ** k % 3  # 0 up, 1 down, 2 silent (engine: late)
            sup[f"up.{role}"] = 0.0 if kind == 1 else 1.0
            sup[f"restarts.{role}"] = float(kind)
            if kind != 1 or i % 7:  # a down one may still have been heard before
                ages[role] = 8.0 if kind == 2 else 0.3
        out.append((sup, ages, {"unsaved_alerts": float(i % 4 == 0)}))
    return out


def test_strip_and_reasons_never_disagree() -> None:
    """Every process the strip shows down or silent is named by ``reasons``
    (or, for the engine and the bus, the console is STALE/DISCONNECTED), and
    every process ``reasons`` names is shown down or silent."""
    for sup, ages, engine in _scenarios():
        st = _synced()
        now = 100.0
        for role, age in ages.items():
            stats = engine if role == "engine" else sup if role == "supervisor" else {}
            st.apply(beat(f"{role}:1", 5, **stats), now=now - age)
        if "engine" not in ages:
            st.engine_stats = engine
        st.supervisor_stats = sup
        said = " | ".join(st.degraded(now=now))
        state = st.bus_state(now=now)
        for p in st.health(now=now)[0]:
            named = f"{p.name} down" in said or f"{p.name} silent" in said
            if p.state in ("down", "silent") and p.name in ("engine", "bus"):
                assert named or state in (BusState.STALE, BusState.DISCONNECTED), (p, said)
            elif p.state in ("down", "silent"):
                assert named, (p, said)
            else:
                assert not named, (p, said)
        if state is BusState.LIVE:
            assert all(p.state in ("up", "unknown") for p in st.health(now=now)[0])


def test_a_tampered_usage_log_degrades_every_console_until_it_is_sound() -> None:
    broken = reasons({}, {}, {}, 100.0, recorder={"usage_chain_broken": 1.0})
    assert broken == ["location-usage log chain broken: run childsafe audit verify"]
    assert reasons({}, {}, {}, 100.0, recorder={"usage_chain_broken": 0.0}) == []
