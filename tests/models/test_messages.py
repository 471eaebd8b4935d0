"""The bus contract: typed, versioned, strict."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from models.messages import (
    MAX_BODY_BYTES,
    AckAlert,
    AlertOpened,
    AlertView,
    BadMessage,
    FixBatch,
    Heartbeat,
    PositionBatch,
    Snapshot,
    decode,
    encode,
    fix_columns,
    pack,
    to_jsonable,
    topic_of,
)


def batch(n: int = 3) -> FixBatch:
    return FixBatch(
        device_ids=[f"d{i}" for i in range(n)], t=pack("t", np.arange(n) + 1.7e9),
        lat=pack("lat", np.full(n, 37.5)), lon=pack("lon", np.full(n, 127.0)),
        speed=pack("speed", np.zeros(n)), bearing=pack("bearing", np.zeros(n)),
        accuracy=pack("accuracy", np.full(n, 5.0)), battery=pack("battery", np.full(n, 80)),
        flags=pack("flags", np.zeros(n)), seq=4, origin="gateway",
    )


def test_round_trip_keeps_columns() -> None:
    msg = decode(encode(batch()))
    assert isinstance(msg, FixBatch)
    cols = fix_columns(msg)
    assert cols["lat"].tolist() == [37.5] * 3
    assert cols["battery"].dtype == np.int8
    assert msg.seq == 4 and msg.origin == "gateway"
    assert topic_of(msg) == b"fix.batch"


def test_unknown_field_is_rejected() -> None:
    raw = msgspec.msgpack.encode({"schema": "cmd.ack", "token": "t", "alert_id": 1,
                                  "alert_version": 1, "sneaky": True})
    with pytest.raises(BadMessage, match="sneaky"):
        decode(raw)


def test_unknown_schema_and_garbage_are_rejected() -> None:
    with pytest.raises(BadMessage):
        decode(msgspec.msgpack.encode({"schema": "alert.deleted"}))
    with pytest.raises(BadMessage):
        decode(b"\xc1\xff not msgpack")


def test_future_version_is_rejected() -> None:
    raw = encode(AckAlert(token="t", alert_id=1, alert_version=1, version=2))
    with pytest.raises(BadMessage, match="version 2"):
        decode(raw)


def test_oversized_body_is_rejected_before_decoding() -> None:
    with pytest.raises(BadMessage, match="exceeds"):
        decode(b"\x00" * (MAX_BODY_BYTES + 1))


def test_column_length_mismatch_is_rejected() -> None:
    bad = msgspec.structs.replace(batch(3), lat=pack("lat", [1.0, 2.0]))
    with pytest.raises(BadMessage, match="column lat"):
        fix_columns(bad)


def test_jsonable_expands_columns() -> None:
    out = to_jsonable(batch(2))
    assert out["schema"] == "fix.batch"
    assert out["lat"] == [37.5, 37.5]
    hb = to_jsonable(Heartbeat(last_seq=9, origin="engine"))
    assert hb["last_seq"] == 9


def test_fix_batch_readers_default_empty_and_round_trip() -> None:
    assert batch().readers == []
    tagged = msgspec.structs.replace(batch(3), readers=["R001-1", "", "R002-3"], protocol="tag")
    msg = decode(encode(tagged))
    assert isinstance(msg, FixBatch) and msg.readers == ["R001-1", "", "R002-3"]
    fix_columns(msg)  # the right length passes


def test_a_fix_batch_from_before_readers_still_decodes() -> None:
    """A body in the event log written before the field existed."""
    old = msgspec.to_builtins(batch(2), builtin_types=(bytes,))
    del old["readers"]
    old["schema"] = "fix.batch"
    msg = decode(msgspec.msgpack.encode(old))
    assert isinstance(msg, FixBatch) and msg.readers == [] and len(msg.device_ids) == 2


def test_readers_of_the_wrong_length_are_rejected() -> None:
    bad = msgspec.structs.replace(batch(3), readers=["R1", ""])
    with pytest.raises(BadMessage, match="readers has 2 values for 3"):
        fix_columns(bad)


def test_alert_and_snapshot_carry_the_breadcrumb_and_old_bodies_decode() -> None:
    view = AlertView(id=1, kind="sos", priority=1, state="new", child_token="C-1",
                     child_slot=4, device_id="E200", lat=37.5, lon=127.0, place="p",
                     opened_at=1.0, last_reader="R001-1", last_reader_at=0.5,
                     position_from_reader=True)
    snap = Snapshot(children=["C-1"], positions=PositionBatch(
        slots=b"", t=b"", lat=b"", lon=b"", inside=b"", flags=b""), alerts=[view], zones=[],
        last_readers={4: "R001-1"})
    back = decode(encode(snap))
    assert isinstance(back, Snapshot) and back.alerts == [view]
    assert back.last_readers == {4: "R001-1"}
    old = msgspec.to_builtins(AlertOpened(alert=view), builtin_types=(bytes,))
    for key in ("last_reader", "last_reader_at", "position_from_reader"):
        del old["alert"][key]
    old["schema"] = "alert.opened"
    opened = decode(msgspec.msgpack.encode(old))
    assert isinstance(opened, AlertOpened)
    assert (opened.alert.last_reader, opened.alert.position_from_reader) == ("", False)
