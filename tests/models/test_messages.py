"""The bus contract: typed, versioned, strict."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from models.messages import (
    MAX_BODY_BYTES,
    AckAlert,
    BadMessage,
    FixBatch,
    Heartbeat,
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
    raw = msgspec.msgpack.encode({"schema": "cmd.ack", "alert_id": 1, "operator": "a",
                                  "sneaky": True})
    with pytest.raises(BadMessage, match="sneaky"):
        decode(raw)


def test_unknown_schema_and_garbage_are_rejected() -> None:
    with pytest.raises(BadMessage):
        decode(msgspec.msgpack.encode({"schema": "alert.deleted"}))
    with pytest.raises(BadMessage):
        decode(b"\xc1\xff not msgpack")


def test_future_version_is_rejected() -> None:
    raw = encode(AckAlert(alert_id=1, operator="a", version=2))
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
