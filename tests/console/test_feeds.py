"""Tag-reader and carrier feeds, and the OsmAnd handler: decoders on valid
and malformed input, the HTTP handlers against a real ``Intake``, and
property-based fuzzing that no input makes a decoder raise anything but
``Rejected``, hang, or lose track of an item."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.gateway.feeds import (
    CARRIER_PATH,
    MAX_ITEMS,
    TAG_PATH,
    FeedsHandler,
    ReaderPos,
    decode_carrier,
    decode_osmand,
    decode_tag_reads,
    handle_osmand,
    reader_positions,
)
from console.gateway.http import Request, settle
from console.gateway.intake import Intake
from console.gateway.osmand import decode_json
from db import repositories as repo
from db.seed import seed_demo
from db.seed_readers import seed_readers
from db.store import open_store, sqlite_url
from models.fixes import Rejected
from models.messages import FixBatch, fix_columns

T0 = 1_790_000_000.0
GATE = ReaderPos(37.50861, 126.88750, 40.0, zone_id=2)
CROSSING = ReaderPos(37.50790, 126.88812, 30.0, zone_id=2)
READERS = {"SD-gate": GATE, "SD-crossing": CROSSING}


def _body(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _read(reader: str, tag: str, t: object = T0, rssi: object = -60) -> dict[str, object]:
    return {"reader_id": reader, "tag_id": tag, "rssi": rssi, "t": t}


def _fix(device: str, t: object = T0, **kw: object) -> dict[str, object]:
    fix: dict[str, object] = {"device_id": device, "lat": 37.6652, "lon": 127.0431,
                              "accuracy_m": 420.0, "t": t, "method": "cell"}
    fix.update(kw)
    return fix


# ----------------------------------------------------------------- tag reads

def test_a_tag_read_is_a_fix_at_the_reader_with_its_range() -> None:
    items, rejects = decode_tag_reads(_body({"reads": [_read("SD-gate", "TAG-0007")]}), READERS)
    assert rejects == []
    [(index, r, via)] = items
    assert (index, via, r.device_id, r.t) == (0, "SD-gate", "TAG-0007", T0)
    assert (r.lat, r.lon, r.accuracy) == (GATE.lat, GATE.lon, 40.0)


def test_a_batch_accepts_good_reads_and_names_each_bad_one() -> None:
    reads = [_read("SD-gate", "A"), _read("nowhere", "B"), {"tag_id": "C", "t": T0},
             _read("SD-gate", "D", t="yesterday"), "not an object",
             _read("SD-crossing", "E", t="2026-09-21T14:13:20Z"), _read("SD-gate", "F", rssi="x")]
    items, rejects = decode_tag_reads(_body({"reads": reads}), READERS)
    assert [i.report.device_id for i in items] == ["A", "E"]
    assert [(r.index, r.reason) for r in rejects] == [
        (1, "unknown_reader"), (2, "missing_reader_id"), (3, "bad_timestamp"),
        (4, "bad_field"), (6, "bad_number")]


def test_reader_id_once_per_batch_and_bare_lists() -> None:
    items, _ = decode_tag_reads(_body({"reader_id": "SD-crossing",
                                       "reads": [{"tag_id": "A", "t": T0 * 1000}]}), READERS)
    assert (items[0].via, items[0].report.t) == ("SD-crossing", T0)
    items, _ = decode_tag_reads(_body([_read("SD-gate", "A")]), READERS)
    assert items[0].via == "SD-gate"


def test_overlapping_readers_the_stronger_read_wins() -> None:
    reads = [_read("SD-gate", "A", rssi=-80), _read("SD-crossing", "A", rssi=-52),
             _read("SD-crossing", "A", rssi=-52)]
    items, rejects = decode_tag_reads(_body({"reads": reads}), READERS)
    assert [(i.index, i.via) for i in items] == [(1, "SD-crossing")]
    assert [(r.index, r.reason) for r in rejects] == [(0, "weaker_read"), (2, "duplicate")]


def test_reads_come_back_in_time_order() -> None:
    reads = [_read("SD-gate", "A", t=T0 + 20), _read("SD-crossing", "A", t=T0)]
    items, _ = decode_tag_reads(_body({"reads": reads}), READERS)
    assert [i.via for i in items] == ["SD-crossing", "SD-gate"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"", "bad_json"), (b"{", "bad_json"), (b"\xff\xfe", "bad_json"), (b"[" * 50_000, "bad_json"),
     (b"{}", "missing_reads"), (b'{"reads": {}}', "bad_field"), (b"42", "bad_field"),
     (_body({"reads": [{}] * (MAX_ITEMS + 1)}), "too_many_items")],
)
def test_a_body_that_is_no_batch_is_refused_whole(body: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        decode_tag_reads(body, READERS)
    assert exc.value.reason == reason


# ------------------------------------------------------------------- carrier

def test_carrier_batch() -> None:
    fixes = [_fix("A", method="gps", accuracy_m=12), _fix("B", t=T0 - 5),
             _fix("C", method="satellite"), _fix("D", method=None), _fix("E", accuracy_m=-1),
             _fix("F", lat="37.5"), {"device_id": "G", "lat": 37.5, "lon": 127.0, "t": T0,
                                     "method": "wifi"}, _fix("H", method=["gps"])]
    items, rejects = decode_carrier(_body({"fixes": fixes}))
    assert [(i.index, i.via, i.report.device_id) for i in items] == [
        (1, "cell", "B"), (0, "gps", "A")]
    assert items[1].report.accuracy == 12.0
    assert [(r.index, r.reason) for r in rejects] == [
        (2, "unknown_method"), (3, "missing_method"), (4, "bad_accuracy"), (5, "bad_number"),
        (6, "missing_accuracy_m"), (7, "unknown_method")]


# ------------------------------------------------------------- the handlers

class Rig:
    """A FeedsHandler on a real Intake whose batches land in a list."""

    def __init__(self, registered: set[str]) -> None:
        self.batches: list[FixBatch] = []
        self.intake = Intake(self.batches.append)
        self.intake.registered = registered
        self.feeds = FeedsHandler(self.intake, READERS)

    def post(self, path: str, obj: object, method: str = "POST") -> tuple[int, Any]:
        req = Request(method, path, {"content-type": "application/json"}, _body(obj), "test")
        status, text = asyncio.run(self.feeds.handle(req))
        return status, json.loads(text)

    def fixes(self) -> list[tuple[str, float, float, float]]:
        self.intake.flush()
        out = []
        for b in self.batches:
            cols = fix_columns(b)
            out += zip(b.device_ids, cols["lat"].tolist(), cols["lon"].tolist(),
                       cols["accuracy"].tolist(), strict=True)
        self.batches.clear()
        return out


def test_tag_reads_become_fixes_and_the_breadcrumb_follows_the_child() -> None:
    rig = Rig({"TAG-1", "TAG-2"})
    reads = [_read("SD-gate", "TAG-1", t=T0), _read("SD-crossing", "TAG-1", t=T0 + 30),
             _read("SD-gate", "TAG-9"), _read("SD-gate", "TAG-2", t=1.0), _read("R?", "TAG-2")]
    status, reply = rig.post(TAG_PATH, {"reads": reads})
    assert status == 200 and reply["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in reply["rejected"]] == [
        (2, "unregistered_device"), (3, "time_before_2000"), (4, "unknown_reader")]
    assert rig.fixes() == [("TAG-1", GATE.lat, GATE.lon, 40.0),
                           ("TAG-1", CROSSING.lat, CROSSING.lon, 30.0)]
    assert rig.feeds.last_reader("TAG-1") == ("SD-crossing", T0 + 30)
    # A late batch with an older read does not move the breadcrumb back.
    rig.post(TAG_PATH, {"reads": [_read("SD-gate", "TAG-1", t=T0 + 10)]})
    assert rig.feeds.last_reader("TAG-1") == ("SD-crossing", T0 + 30)
    assert rig.feeds.last_reader("TAG-2") is None
    stats = rig.intake.stats()
    assert stats["accepted.tag"] == 3
    assert stats["rejected.tag:unknown_reader"] == stats["rejected.tag:time_before_2000"] == 1


def test_each_tag_fix_names_its_reader_on_the_bus() -> None:
    rig = Rig({"TAG-1", "8610"})
    reads = [_read("SD-gate", "TAG-1", t=T0), _read("SD-crossing", "TAG-1", t=T0 + 30)]
    assert rig.post(TAG_PATH, {"reads": reads})[1]["accepted"] == 2
    assert rig.post(CARRIER_PATH, {"fixes": [_fix("8610")]})[1]["accepted"] == 1
    rig.intake.flush()
    by_protocol = {b.protocol: b for b in rig.batches}
    assert by_protocol["tag"].readers == ["SD-gate", "SD-crossing"]
    assert by_protocol["carrier"].readers == []


def test_a_resent_batch_is_answered_item_by_item_as_duplicates() -> None:
    rig = Rig({"TAG-1"})
    assert rig.post(TAG_PATH, [_read("SD-gate", "TAG-1")])[1]["accepted"] == 1
    status, reply = rig.post(TAG_PATH, [_read("SD-gate", "TAG-1")])
    assert (status, reply["accepted"], reply["rejected"][0]["reason"]) == (200, 0, "duplicate")


def test_a_resent_batch_with_two_reads_of_one_tag_is_stored_once() -> None:
    """The child passed the gate, then the crossing; the reader's upload is
    resent whole (its 200 was lost). Neither read may be stored twice, though
    neither is the tag's last report when its copy arrives."""
    rig = Rig({"TAG-1", "TAG-2"})
    batch = {"reads": [_read("SD-gate", "TAG-1", t=T0), _read("SD-gate", "TAG-2", t=T0),
                       _read("SD-crossing", "TAG-1", t=T0 + 30)]}
    assert rig.post(TAG_PATH, batch)[1]["accepted"] == 3
    first = rig.fixes()
    status, reply = rig.post(TAG_PATH, batch)
    assert (status, reply["accepted"]) == (200, 0)
    assert [(r["index"], r["reason"]) for r in reply["rejected"]] == [
        (0, "duplicate"), (1, "duplicate"), (2, "duplicate")]
    assert rig.fixes() == []
    assert sorted(first) == sorted([("TAG-1", GATE.lat, GATE.lon, 40.0),
                                    ("TAG-2", GATE.lat, GATE.lon, 40.0),
                                    ("TAG-1", CROSSING.lat, CROSSING.lon, 30.0)])
    assert rig.intake.stats()["rejected.tag:duplicate"] == 3


def test_carrier_fixes_through_the_handler() -> None:
    rig = Rig({"8610"})
    status, reply = rig.post(CARRIER_PATH, {"fixes": [_fix("8610"), _fix("8610", lat=0, lon=0,
                                                                          t=T0 + 1)]})
    assert (status, reply["accepted"]) == (200, 1)
    assert reply["rejected"] == [{"index": 1, "reason": "coordinate_null_island", "detail": ""}]
    assert rig.fixes() == [("8610", 37.6652, 127.0431, 420.0)]


def test_feeds_handler_refusals_are_counted() -> None:
    rig = Rig(set())
    assert rig.post("/v1/nothing", {})[0] == 404
    assert rig.post(TAG_PATH, {}, method="GET")[0] == 405
    status, reply = rig.post(CARRIER_PATH, {"fixes": "many"})
    assert (status, reply["error"]) == (400, "bad_field")
    stats = rig.intake.stats()
    assert stats["rejected.feeds:unknown_path"] == stats["rejected.tag:bad_method"] == 1
    assert stats["rejected.carrier:bad_field"] == 1


def _osmand(intake: Intake, method: str, target: str, body: bytes = b"",
            content_type: str = "") -> tuple[int, str]:
    headers = {"content-type": content_type} if content_type else {}
    return settle(handle_osmand(intake, Request(method, target, headers, body, "test")), True)


def test_handle_osmand_serves_get_form_and_json() -> None:
    batches: list[FixBatch] = []
    intake = Intake(batches.append)
    intake.registered = {"861", "862", "863"}
    t = f"{T0:.0f}"
    assert _osmand(intake, "GET", f"/?id=861&lat=37.5&lon=127.0&timestamp={t}") == (200, "OK")
    form = f"id=862&lat=37.5&lon=127.0&timestamp={t}".encode()
    assert _osmand(intake, "POST", "/", form, "application/x-www-form-urlencoded") == (200, "OK")
    body = _body({"device_id": "863", "location": {
        "timestamp": "2026-09-21T14:13:20Z", "coords": {"latitude": 37.5, "longitude": 127.0}}})
    assert _osmand(intake, "POST", "/", body, "application/json; charset=utf-8") == (200, "OK")
    # A proxy that drops the header does not turn JSON into a bad form.
    again = body.replace(b"13:20Z", b"13:21Z")
    assert _osmand(intake, "POST", "/", again) == (200, "OK")
    assert _osmand(intake, "POST", "/", again, "application/json") == (200, "OK (duplicate)")
    assert _osmand(intake, "PUT", "/", body) == (405, "GET or POST")
    assert _osmand(intake, "POST", "/", b"{oops", "application/json") == (400, "bad_json")
    unknown = body.replace(b'"863"', b'"999"')
    assert _osmand(intake, "POST", "/", unknown, "application/json") == (
        403, "unregistered device")
    assert intake.accepted["osmand"] == 4
    assert intake.rejected["osmand:bad_json"] == intake.rejected["osmand:bad_method"] == 1


def test_decode_osmand_merges_query_and_form() -> None:
    req = Request("POST", "/?id=5", {}, b"lat=37.5&lon=127.0", "test")
    r = decode_osmand(req, T0)
    assert (r.device_id, r.lat, r.t) == ("5", 37.5, T0)


# --------------------------------------------------------- readers registry

def test_seed_readers_is_idempotent_and_feeds_the_registry(data_dir: Path) -> None:
    engine, sessions = open_store(sqlite_url(data_dir))
    try:
        with sessions() as s:
            seed_demo(s, 3)
            created = seed_readers(s)
            assert created == 3 * 5 and seed_readers(s) == 0
            rows = repo.readers(s)
            zones = {z.id: z for z in repo.zones(s)}
        positions = reader_positions(rows)
        assert len(positions) == created
        for row in rows:
            assert row.zone_id is not None
            zone = zones[row.zone_id]
            north = (row.lat - zone.lat) * 111_320
            east = (row.lon - zone.lon) * 111_320 * math.cos(math.radians(zone.lat))
            assert math.hypot(north, east) < zone.radius_m  # inside its zone
            assert 30 <= row.range_m <= 80
            assert positions[row.id] == ReaderPos(row.lat, row.lon, row.range_m, row.zone_id)
    finally:
        engine.dispose()


# ------------------------------------------------------------------ fuzzing

FUZZ = settings(max_examples=300, deadline=2000,
                suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=5),
    max_leaves=30,
)
anything = json_values | st.sampled_from(["SD-gate", "SD-crossing", "2026-09-21T14:13:20Z",
                                          "", " ", "\x00", "\ud800", "sos"])
times = st.floats(allow_nan=True) | st.integers() | st.text(max_size=30) | anything


def _maybe(d: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with the right keys, any of them missing, values of any type."""
    return st.fixed_dictionaries({}, optional=d)


def _shaped(good: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Half well-formed records (so the accepting paths run too), half
    records with any key missing and any value of any type."""
    return st.fixed_dictionaries(good) | _maybe({k: v | anything for k, v in good.items()})


ids = st.sampled_from(["SD-gate", "SD-crossing", "8610", "TAG-1"]) | st.text(min_size=1,
                                                                           max_size=70)
good_t = st.floats(9e8, 2.1e9) | st.sampled_from(["2026-09-21T14:13:20Z", "1790000000"])
lats, lons = st.floats(-90, 90), st.floats(-180, 180)
tag_reads = _shaped({"reader_id": ids, "tag_id": ids, "rssi": st.floats(-100, 0),
                     "t": good_t | times})
carrier_fixes = _shaped({"device_id": ids, "lat": lats, "lon": lons,
                         "accuracy_m": st.floats(0, 5000), "t": good_t,
                         "method": st.sampled_from(["gps", "cell", "wifi"])})
phone = _shaped({"device_id": ids, "location": _shaped({
    "timestamp": good_t, "coords": _shaped({"latitude": lats, "longitude": lons,
                                            "speed": st.floats(-1, 50),
                                            "heading": st.floats(-1, 360),
                                            "accuracy": st.floats(-1, 500)}),
    "battery": _shaped({"level": st.floats(-1, 1)}),
    "extras": _maybe({"alarm": st.sampled_from(["sos", "general"]) | anything}),
    "is_moving": st.booleans()})})


def _encode(doc: object) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


def _check_batch(decode: Any, body: bytes, n: int | None) -> None:
    try:
        items, rejects = decode(body)
    except Rejected:
        return
    for item in items:
        assert isinstance(item.report.lat, float) and isinstance(item.report.t, float)
    if n is not None:  # every item is either decoded or refused, never lost
        assert sorted([i.index for i in items] + [r.index for r in rejects]) == list(range(n))


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_raw_bytes(body: bytes) -> None:
    _check_batch(lambda b: decode_tag_reads(b, READERS), body, None)
    _check_batch(decode_carrier, body, None)
    with contextlib.suppress(Rejected):
        decode_json(body, T0)


@FUZZ
@given(st.lists(tag_reads | anything, max_size=8), st.booleans())
def test_fuzz_tag_batches(reads: list[Any], wrapped: bool) -> None:
    _check_batch(lambda b: decode_tag_reads(b, READERS),
                 _encode({"reads": reads} if wrapped else reads), len(reads))


@FUZZ
@given(st.lists(carrier_fixes | anything, max_size=8))
def test_fuzz_carrier_batches(fixes: list[Any]) -> None:
    _check_batch(decode_carrier, _encode({"fixes": fixes}), len(fixes))


@FUZZ
@given(phone | anything)
def test_fuzz_phone_json(doc: Any) -> None:
    try:
        r = decode_json(_encode(doc), T0)
    except Rejected:
        return
    assert isinstance(r.device_id, str) and 0 < len(r.device_id) <= 64
    assert -1 <= r.battery <= 100


@FUZZ
@given(st.sampled_from(["GET", "POST", "PUT"]), st.sampled_from([TAG_PATH, CARRIER_PATH, "/x"]),
       st.lists(tag_reads | carrier_fixes, max_size=5) | anything)
def test_fuzz_handlers_always_answer(method: str, path: str, doc: Any) -> None:
    rig = Rig({"SD-gate", "8610"})
    req = Request(method, path, {"content-type": "application/json"}, _encode(doc), "fuzz")
    status, text = asyncio.run(rig.feeds.handle(req))
    assert status in (200, 400, 404, 405)
    json.loads(text)
    status, _ = settle(handle_osmand(rig.intake, req), True)
    assert status in (200, 400, 403, 405)
