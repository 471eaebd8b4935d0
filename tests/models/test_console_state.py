"""A console's state follows the engine: snapshot, live updates, resync."""

from __future__ import annotations

import numpy as np

from models.console_state import BusState, ConsoleState
from models.messages import (
    AlertOpened,
    AlertUpdated,
    AlertView,
    Heartbeat,
    PositionBatch,
    Snapshot,
    pack,
)


def positions(seq: int, slots: list[int], lat: float) -> PositionBatch:
    n = len(slots)
    return PositionBatch(slots=pack("slots", slots), t=pack("t", [1.0] * n),
                         lat=pack("lat", [lat] * n), lon=pack("lon", [127.0] * n),
                         inside=pack("inside", [1] * n), flags=pack("flags", [0] * n),
                         seq=seq, origin="engine")


def alert(state: str = "new") -> AlertView:
    return AlertView(id=1, kind="sos", priority=1, state=state,  # type: ignore[arg-type]
                     child_token="C-A", child_slot=1, device_id="d", lat=37.5, lon=127.0,
                     place="성동구 성수동1가", opened_at=1.0)


def snapshot(seq: int) -> Snapshot:
    return Snapshot(seq=seq, origin="engine", children=["C-A", "C-B", "C-C"],
                    positions=positions(0, [0], 37.50), alerts=[], zones=[])


def test_updates_before_the_snapshot_are_buffered_then_filtered() -> None:
    st = ConsoleState()
    assert st.apply(positions(5, [0], 37.60))  # already in the snapshot
    assert st.apply(positions(6, [1], 37.61))  # newer than the snapshot
    assert st.apply_snapshot(snapshot(5))
    assert st.seq == 6
    assert st.lat[0] == 37.50  # seq 5 was dropped: the snapshot already had it
    assert st.lat[1] == 37.61
    assert np.isnan(st.lat[2])


def test_in_order_updates_apply_once() -> None:
    st = ConsoleState()
    st.apply_snapshot(snapshot(10))
    assert st.apply(AlertOpened(alert=alert(), seq=11, origin="engine"))
    assert st.apply(AlertOpened(alert=alert(), seq=11, origin="engine"))  # repeat: ignored
    assert st.dropped_old == 1
    assert st.apply(AlertUpdated(alert=alert("acknowledged"), action="ack", actor="op",
                                 seq=12, origin="engine"))
    assert [a.state for a in st.alerts.rows] == ["acknowledged"]
    assert st.marker_status().tolist() == [1, 2, 0]


def test_gap_asks_for_resync_and_the_next_snapshot_heals_it() -> None:
    st = ConsoleState()
    st.apply_snapshot(snapshot(10))
    assert not st.apply(positions(12, [2], 37.7))  # seq 11 was lost
    st.begin_resync()
    assert st.bus_state(now=1.0) is BusState.DISCONNECTED  # no heartbeat yet
    st.apply(Heartbeat(last_seq=12, origin="engine"), now=100.0)
    assert st.bus_state(now=100.5) is BusState.STALE
    assert st.apply_snapshot(snapshot(12))
    assert st.bus_state(now=100.5) is BusState.LIVE
    assert st.resyncs == 1


def test_heartbeat_reveals_a_lost_last_message() -> None:
    st = ConsoleState()
    st.apply_snapshot(snapshot(3))
    assert st.apply(Heartbeat(last_seq=3, origin="engine"), now=1.0)
    assert not st.apply(Heartbeat(last_seq=4, origin="engine"), now=2.0)


def test_late_heartbeat_turns_stale_then_disconnected() -> None:
    st = ConsoleState()
    st.apply_snapshot(snapshot(1))
    st.apply(Heartbeat(last_seq=1, origin="engine"), now=50.0)
    assert st.bus_state(now=51.0) is BusState.LIVE
    assert st.bus_state(now=54.0) is BusState.STALE
    assert st.bus_state(now=61.0) is BusState.DISCONNECTED


def test_unknown_slot_means_roster_changed() -> None:
    st = ConsoleState()
    st.apply_snapshot(snapshot(1))
    assert not st.apply(positions(2, [7], 37.5))
