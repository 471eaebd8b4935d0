"""No input takes alerting down: poison on the bus and in commands, sent to
a real engine, is refused and counted, and the next SOS still becomes an
alert from the same engine process."""

from __future__ import annotations

import math
import time

import msgspec
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.bus import Publisher
from console.security import Security
from models.messages import (
    FLAG_BAD_POSITION,
    FLAG_SOS,
    AckAlert,
    AlertDetailRequest,
    AlertsRequest,
    CommandReply,
    FixBatch,
    HoldAlert,
    MarkStep,
    ShiftRequest,
    pack,
)
from models.tracking import check_batch
from tests.console.conftest import Backend, wait_for

NOW = 1_800_000_000.0


def batch(ids: list[str], lat: list[float], lon: list[float], t: list[float],
          flags: list[int] | None = None, raw: dict[str, bytes] | None = None) -> FixBatch:
    n = len(ids)
    cols = dict(t=pack("t", t), lat=pack("lat", lat), lon=pack("lon", lon),
                speed=pack("speed", np.zeros(n)), bearing=pack("bearing", np.zeros(n)),
                accuracy=pack("accuracy", np.full(n, 8.0)),
                battery=pack("battery", np.full(n, 80)),
                flags=pack("flags", flags or [0] * n))
    cols.update(raw or {})
    return FixBatch(device_ids=ids, **cols)  # type: ignore[arg-type]


def columns(b: FixBatch) -> dict[str, np.ndarray]:
    from models.messages import fix_columns
    return fix_columns(b)


def test_check_batch_drops_impossible_times_and_keeps_an_alarm_without_its_position() -> None:
    b = batch(["a", "b", "c", "d", "x" * 65], lat=[37.5, 95.0, 0.0, math.nan, 37.5],
              lon=[127.0, 127.0, 0.0, 127.0, 127.0],
              t=[NOW, NOW, NOW + 30 * 3600, NOW, NOW], flags=[0, FLAG_SOS, 0, 0, 0])
    ids, cols, readers, dropped, _ = check_batch(b.device_ids, columns(b), [], NOW)
    assert ids == ["a", "b", "d"]
    assert dropped == {"time_impossible": 1, "device_id_too_long": 1,
                       "position_not_a_position": 2}
    assert cols["lat"][0] == 37.5 and math.isnan(cols["lat"][1])
    assert cols["flags"][1] == FLAG_SOS | FLAG_BAD_POSITION  # the SOS stays, at last known
    assert readers == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(0, 255)), max_size=20))
def test_check_batch_never_raises_and_never_passes_a_non_position(
        rows: list[tuple[float, float, float, int]]) -> None:
    ids = [f"d{i}" for i in range(len(rows))]
    b = batch(ids, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
              [r[3] for r in rows])
    kept, cols, _, _, rows = check_batch(ids, columns(b), [], NOW)
    assert rows is None or int(rows.sum()) == len(kept)  # the rows kept, when not all
    assert len(kept) == len(cols["t"]) == len(cols["lat"])
    ok = np.isfinite(cols["lat"])
    assert (np.abs(cols["lat"][ok]) <= 90).all() and (np.abs(cols["lon"][ok]) <= 180).all()
    assert ((cols["flags"][~ok] & FLAG_BAD_POSITION) != 0).all()
    assert np.isfinite(cols["t"]).all() and (cols["t"] <= NOW + 300).all()


def test_poison_on_the_bus_is_counted_and_the_next_sos_still_raises(backend: Backend) -> None:
    engine_pid = backend.supervisor.pid("engine")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    # a peer holding the gateway's key: the bus lets its fix batches through,
    # so the engine's own checks are what is tested
    pub = Publisher(ctx, backend.config.bus_pub, origin="gateway",
                    security=Security.of(backend.config, "gateway"))
    try:
        time.sleep(0.5)  # the bus forwards to the engine once the connection is up
        device = backend.roster[0].device_id
        now = time.time()
        poison = [
            batch([device], [95.0], [127.0], [now]),  # latitude 95
            batch([device], [37.5], [127.0], [now], raw={"lat": b"\x00\x01\x02"}),  # 3 bytes
            batch([device], [37.5], [127.0], [1e300]),  # a time from nowhere
            batch([device], [37.5], [127.0], [now + 24 * 3600 * 30]),  # a month ahead
            batch(["x" * 500], [37.5], [127.0], [now], [FLAG_SOS]),  # an id too long
            batch([device, device], [37.5], [127.0], [now]),  # columns of unequal length
        ]
        for msg in poison:
            pub.send(msg)
        pub.send(batch([device], [37.5444], [127.0374], [now + 1], [FLAG_SOS]))
        wait_for(lambda: any(a.kind == "sos" and a.device_id == device
                             for a in backend.snapshot().alerts), 10, "the SOS after poison")
    finally:
        pub.close()
        ctx.term()
    assert backend.supervisor.pid("engine") == engine_pid  # never restarted
    assert not any(a.device_id == "x" * 500 for a in backend.snapshot().alerts)


alert_commands = st.one_of(
    st.builds(AckAlert, token=st.text(max_size=50), alert_id=st.integers(-2**63, 2**63 - 1),
              alert_version=st.integers(-2**63, 2**63 - 1), note=st.text(max_size=3000)),
    st.builds(HoldAlert, token=st.just(""), alert_id=st.integers(-2**63, 2**63 - 1),
              alert_version=st.integers(0, 5), reason=st.text(max_size=300),
              until=st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(MarkStep, token=st.just(""), alert_id=st.integers(-2**63, 2**63 - 1),
              alert_version=st.integers(0, 5), step=st.text(max_size=200)),
    st.builds(AlertDetailRequest, token=st.just(""), alert_id=st.integers(-2**63, 2**63 - 1)),
    st.builds(AlertsRequest, token=st.just(""), open_only=st.booleans(),
              since=st.floats(allow_nan=True, allow_infinity=True),
              limit=st.integers(-2**63, 2**63 - 1)),
    st.builds(ShiftRequest, token=st.just(""),
              since=st.floats(allow_nan=True, allow_infinity=True)),
)


@pytest.mark.slow
def test_fuzzed_commands_are_all_answered_and_never_crash_the_engine(
        backend: Backend) -> None:
    token = backend.sign_in("supervisor1")
    engine_pid = backend.supervisor.pid("engine")
    replies: list[object] = []

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(alert_commands, st.booleans())
    def send(cmd: object, signed: bool) -> None:
        if signed:
            cmd = msgspec.structs.replace(cmd, token=token)  # type: ignore[type-var]
        replies.append(backend.command(cmd, timeout_s=5.0))

    send()
    assert backend.supervisor.pid("engine") == engine_pid
    assert not any(isinstance(r, CommandReply) and r.code == "internal" for r in replies)
    backend.fix(backend.roster[1].device_id, 37.5444, 127.0374, alarm="sos")
    wait_for(lambda: any(a.kind == "sos" for a in backend.snapshot().alerts), 10,
             "an SOS after the fuzzing")
