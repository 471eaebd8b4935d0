"""The OsmAnd HTTP decoders, with the forms phone apps really send (query,
form and the JSON body of newer apps)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import math
import time
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.gateway import osmand
from console.gateway.feeds import handle_osmand
from console.gateway.http import HttpServer, Request, settle
from console.gateway.intake import Intake
from console.gateway.osmand import KNOT_MS, decode_json, decode_query, parse_time
from models.fixes import Rejected, Report

NOW = 1_790_000_000.0


def test_traccar_client_get() -> None:
    r = decode_query("id=123456&timestamp=1790000000&lat=37.5444&lon=127.0374&speed=1.5"
                     "&bearing=90&altitude=30&accuracy=12.5&batt=77", NOW)
    assert (r.device_id, r.t, r.lat, r.lon) == ("123456", 1_790_000_000.0, 37.5444, 127.0374)
    assert r.speed == pytest.approx(1.5 * KNOT_MS)
    assert (r.bearing, r.accuracy, r.battery, r.sos) == (90.0, 12.5, 77, False)


def test_sos_without_position() -> None:
    r = decode_query("id=7&alarm=sos", NOW)
    assert r.sos and math.isnan(r.lat) and r.t == NOW


def test_location_parameter_and_deviceid() -> None:
    r = decode_query("deviceid=9&location=37.5,127.1", NOW)
    assert (r.device_id, r.lat, r.lon) == ("9", 37.5, 127.1)


@pytest.mark.parametrize(
    "raw", ["1790000000", "1790000000000", "2026-09-21T14:13:20Z", "2026-09-21 14:13:20",
            "2026-09-21T23:13:20+09:00"],
)
def test_timestamp_forms(raw: str) -> None:
    assert parse_time(raw) == pytest.approx(1_790_000_000.0)


@pytest.mark.parametrize(
    ("query", "reason"),
    [("lat=1&lon=2", "missing_device_id"), ("id=1", "missing_position"),
     ("id=1&lat=abc&lon=2", "bad_number"), ("id=1&lat=1&lon=2&timestamp=yesterday",
                                             "bad_timestamp"),
     ("id=" + "x" * 65 + "&lat=1&lon=2", "bad_device_id")],
)
def test_malformed_queries(query: str, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        decode_query(query, NOW)
    assert exc.value.reason == reason


# ------------------------------------------------------------- JSON body

def _phone_json(**location: object) -> bytes:
    """A body shaped like the one Traccar Client 9+ POSTs (our own values)."""
    loc: dict[str, object] = {
        "timestamp": "2026-09-21T14:13:20.250Z",
        "coords": {"latitude": 37.6655, "longitude": 127.042, "accuracy": 9.5,
                   "speed": 1.2, "heading": 215.0, "altitude": 41.0},
        "is_moving": True, "odometer": 1200, "event": "",
        "battery": {"level": 0.42, "is_charging": False},
        "activity": {"type": "walking"}, "extras": {},
    }
    loc.update(location)
    return json.dumps({"location": loc, "device_id": "861234567890"}).encode()


def test_json_body_of_newer_phone_apps() -> None:
    r = decode_json(_phone_json(), NOW)
    assert (r.device_id, r.lat, r.lon) == ("861234567890", 37.6655, 127.042)
    assert r.t == pytest.approx(1_790_000_000.25)
    assert r.speed == 1.2  # already m/s in JSON, unlike the query form's knots
    assert (r.bearing, r.accuracy, r.battery, r.sos, r.valid) == (215.0, 9.5, 42, False, True)


def test_json_unknown_values_are_minus_one() -> None:
    coords = {"latitude": 37.5, "longitude": 127.0, "accuracy": -1, "speed": -1, "heading": -1}
    r = decode_json(_phone_json(coords=coords, battery={"level": -1}), NOW)
    assert (r.speed, r.bearing, r.battery) == (0.0, 0.0, -1)
    assert math.isnan(r.accuracy)


def test_json_sos_button_and_sos_without_coords() -> None:
    assert decode_json(_phone_json(extras={"alarm": "sos"}), NOW).sos
    assert decode_json(_phone_json(alarm="SOS"), NOW).sos
    r = decode_json(json.dumps({"device_id": "7", "location": {"extras": {"alarm": "sos"}}})
                    .encode(), NOW)
    assert r.sos and math.isnan(r.lat) and r.t == NOW


def test_json_extras_that_are_malformed_do_not_cost_the_fix() -> None:
    r = decode_json(_phone_json(battery="full", extras=[1], activity=None, is_moving="yes"), NOW)
    assert (r.lat, r.battery, r.sos) == (37.6655, -1, False)


def test_json_numeric_timestamp_and_device_id() -> None:
    body = json.dumps({"device_id": 4242, "location": {
        "timestamp": 1_790_000_000_000, "coords": {"latitude": 37.5, "longitude": 127.0}}})
    r = decode_json(body.encode(), NOW)
    assert (r.device_id, r.t) == ("4242", 1_790_000_000.0)


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"", "bad_json"), (b"{not json", "bad_json"), (b"[1, 2]", "bad_field"),
     (b'{"location": {}}', "missing_device_id"),
     (b'{"device_id": "", "location": {}}', "missing_device_id"),
     (b'{"device_id": "a\\u0000b", "location": {}}', "bad_device_id"),
     (b'{"device_id": true, "location": {}}', "bad_device_id"),
     (b'{"device_id": "1"}', "missing_location"),
     (b'{"device_id": "1", "location": [{}]}', "location_list_unsupported"),
     (b'{"device_id": "1", "location": {"timestamp": "2026-09-21T14:13:20Z"}}',
      "missing_position"),
     (b'{"device_id": "1", "location": {"coords": {"latitude": 37.5}}}', "missing_longitude"),
     (b'{"device_id": "1", "location": {"coords": {"latitude": "37.5", "longitude": 127}}}',
      "bad_number"),
     (b'{"device_id": "1", "location": {"coords": {"latitude": true, "longitude": 127}}}',
      "bad_number"),
     (b'{"device_id": "1", "location": {"coords": {"latitude": 1e999, "longitude": 127}}}',
      "bad_json"),
     (b'{"device_id": "1", "location": {"coords": {"latitude": 37, "longitude": 127},'
      b' "timestamp": "last tuesday"}}', "bad_timestamp"),
     (b'{"device_id": "1", "location": {"coords": 5}}', "bad_field")],
)
def test_malformed_json(body: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        decode_json(body, NOW)
    assert exc.value.reason == reason


# ----------------------------------------- numbers that are not numbers (audit)

@pytest.mark.parametrize("field", ["batt", "battery", "speed", "bearing", "heading",
                                   "accuracy", "hdop"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1e400", "NaN", "Infinity"])
def test_non_finite_numbers_are_refused_with_a_reason(field: str, value: str) -> None:
    with pytest.raises(Rejected) as exc:
        decode_query(f"id=1&lat=37.5&lon=127.0&{field}={value}", NOW)
    assert exc.value.reason == "bad_number"
    assert field in exc.value.detail and "not finite" in exc.value.detail


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-inf"])
def test_non_finite_timestamps_are_bad_timestamps(value: str) -> None:
    with pytest.raises(Rejected) as exc:
        decode_query(f"id=1&lat=37.5&lon=127.0&timestamp={value}", NOW)
    assert exc.value.reason == "bad_timestamp"


def test_non_finite_coordinates_are_left_to_the_intake_to_name() -> None:
    r = decode_query("id=1&lat=nan&lon=1e400", NOW)
    assert math.isnan(r.lat) and r.lon == math.inf  # validate() says coordinate_not_finite


@pytest.mark.parametrize(("batt", "expected"), [("77.6", 78), ("-5", -1), ("250", -1),
                                                 ("1e18", -1), ("", -1)])
def test_battery_out_of_range_means_unknown(batt: str, expected: int) -> None:
    assert decode_query(f"id=1&lat=37.5&lon=127.0&batt={batt}", NOW).battery == expected


def test_more_than_64_fields_is_refused() -> None:
    query = "id=1&lat=37.5&lon=127.0&" + "&".join(f"x{i}=1" for i in range(61))
    assert decode_query(query, NOW).device_id == "1"  # 64 fields: the most allowed
    with pytest.raises(Rejected) as exc:
        decode_query(query + "&x=1", NOW)
    assert exc.value.reason == "too_many_fields"
    with pytest.raises(Rejected) as exc:
        decode_query("&" * 100, NOW)
    assert exc.value.reason == "too_many_fields"


def test_an_sos_survives_every_broken_field() -> None:
    r = decode_query("id=7&alarm=sos&lat=north&lon=1e400&timestamp=yesterday&speed=nan"
                     "&bearing=x&accuracy=inf&batt=nan", NOW)
    assert r.sos and r.t == NOW and math.isnan(r.lat)
    assert (r.speed, r.bearing, r.battery) == (0.0, 0.0, -1) and math.isnan(r.accuracy)


# ----------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["id", "deviceid", "lat", "lon", "location", "timestamp", "speed", "bearing",
         "heading", "accuracy", "hdop", "batt", "battery", "alarm", "valid", "altitude"]
nasty_numbers = st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e400", "1e18", "-0", "0x1p3",
                                 "1_000", "٣", "", " ", "37.5", "127.0", "1790000000",
                                 "1790000000000", "2026-09-21T14:13:20Z", "9" * 400, "sos",
                                 "\x00", "%00", "%ff", "\ud800"])
values = nasty_numbers | st.floats().map(repr) | st.integers().map(str) | st.text(max_size=30)
any_fields = st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=8), values),
                     max_size=80)
GOOD = [("id", "7"), ("lat", "37.5444"), ("lon", "127.0374"), ("timestamp", f"{time.time():.0f}")]
# Half the examples are a good report with fields added or overridden, so the
# accepting path (and the intake behind the handler) runs too.
fields = any_fields | any_fields.map(lambda extra: GOOD + extra[:60])


def _query(pairs: list[tuple[str, str]], raw_tail: str) -> str:
    def q(x: str) -> str:
        return quote(x, safe="", errors="surrogatepass")

    # Two in three pairs percent-encoded, as apps send them; the rest raw.
    text = "&".join(f"{q(k)}={q(v)}" if i % 3 else f"{k}={v}" for i, (k, v) in enumerate(pairs))
    return text + raw_tail


def _check_report(r: Report) -> None:
    assert isinstance(r.device_id, str) and 0 < len(r.device_id) <= 64
    assert -1 <= r.battery <= 100
    assert math.isfinite(r.speed) and math.isfinite(r.bearing) and math.isfinite(r.t)


@FUZZ
@given(fields, st.text(max_size=40))
def test_fuzz_decode_query_raises_only_rejected(pairs: list[tuple[str, str]],
                                                tail: str) -> None:
    try:
        r = decode_query(_query(pairs, tail), NOW)
    except Rejected as exc:
        assert exc.reason and " " not in exc.reason
        return
    _check_report(r)


@FUZZ
@given(st.sampled_from(["GET", "POST"]), fields, st.text(max_size=40),
       st.sampled_from(["", "application/x-www-form-urlencoded", "text/plain"]),
       st.binary(max_size=40))
def test_fuzz_forms_through_the_handler_always_answer(
        method: str, pairs: list[tuple[str, str]], tail: str, content_type: str,
        junk: bytes) -> None:
    intake = Intake(lambda batch: None)
    intake.registered = {"1", "7", "123456"}
    query = _query(pairs, tail)
    if method == "GET":
        req = Request("GET", "/?" + query, {}, b"", "fuzz")
    else:
        body = query.encode("utf-8", "surrogatepass") + junk
        headers = {"content-type": content_type} if content_type else {}
        req = Request("POST", "/?id=7" if junk[:1] == b"?" else "/", headers, body, "fuzz")
    status, text = settle(handle_osmand(intake, req), True)
    assert status in (200, 400, 403) and text
    assert not any(key.endswith(":decoder_error") for key in intake.rejected)
    assert sum(intake.accepted.values()) + sum(intake.rejected.values()) == 1  # counted once


# ------------------------------------------------- over a real keep-alive socket

@pytest.mark.parametrize("query", ["id=1&lat=37.5&lon=127&batt=nan",
                                   "id=1&lat=37.5&lon=127&batt=1e400",
                                   "id=1&lat=37.5&lon=127&speed=inf",
                                   "&".join(["id=1", *(f"f{i}=1" for i in range(70))])])
def test_bad_numbers_get_an_answer_and_keep_the_connection(query: str) -> None:
    intake = Intake(lambda batch: None)
    intake.registered = {"1"}
    good = f"id=1&lat=37.5&lon=127.0&timestamp={time.time():.0f}"

    async def main() -> list[bytes]:
        server = HttpServer(functools.partial(handle_osmand, intake))
        port = await server.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /?{query} HTTP/1.1\r\n\r\nGET /?{good} HTTP/1.1\r\n\r\n".encode())
            replies = []
            for _ in "ab":
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                replies.append(head + await reader.readexactly(length))
            writer.close()
            return replies
        finally:
            await server.close()

    bad_reply, good_reply = asyncio.run(main())
    assert bad_reply.startswith(b"HTTP/1.1 400") and good_reply.startswith(b"HTTP/1.1 200")
    assert sum(intake.rejected.values()) == 1
    assert set(intake.rejected) <= {"osmand:bad_number", "osmand:too_many_fields"}
    assert intake.accepted["osmand"] == 1


@pytest.mark.parametrize("query", [
    "id=1&lat=37.5&lon=127.0", "id=1&&lat=37.5&lon=127.0&", "id&lat=37.5&lon=127.0",
    "=x&id=1&id=2&lat=37.5&lon=127.0", "id=a%20b&lat=37.5&lon=127.0&x=1+2",
    "id=%ED%95%9C&lat=37.5&lon=127.0&bad=%zz", "id=1&lat=&lon=127.0", "",
])
def test_query_fields_are_what_parse_qsl_makes_of_them(query: str) -> None:
    """The direct split (nothing escaped) and parse_qsl agree on every query."""
    from urllib.parse import parse_qsl

    from console.gateway.osmand import _params

    assert _params(query) == dict(parse_qsl(query, keep_blank_values=True))


def test_an_sos_is_worked_before_routine_reads_queued_ahead_of_it() -> None:
    """The OsmAnd port as the gateway builds it (``urgent=may_hold_alarm``),
    saturated: 20 connections' pipelined fixes already read and a slow
    handler. An SOS that comes after them is handled before most of them
    (between two slices of their work), and every connection still gets
    its replies in order. Devices are plain sockets in another thread, so
    the server's loop runs as it would."""
    import socket

    from console.gateway.http import HttpServer
    from console.gateway.osmand import may_hold_alarm

    handled: list[str] = []

    def slow(req: Request) -> tuple[int, str]:
        handled.append(req.target)
        if "alarm" not in req.target:
            time.sleep(0.002)  # 160 routine requests: ~0.3 s of work in all
        return 200, req.target

    def replies(sock: socket.socket, last: str) -> list[str]:
        """The bodies of the replies, up to the one that says ``last``."""
        data = b""
        while not data.endswith(b"\r\n\r\n" + last.encode()):
            chunk = sock.recv(65536)
            assert chunk, "the server hung up"
            data += chunk
        return [part.rsplit(b"\r\n\r\n", 1)[1].decode()
                for part in data.split(b"HTTP/1.1 ")[1:]]

    def devices(port: int, out: dict[str, object]) -> None:
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        for c, s in enumerate(conns):
            s.sendall(b"".join(f"GET /c{c}r{i} HTTP/1.1\r\n\r\n".encode() for i in range(8)))
        time.sleep(0.05)  # they are read, and being worked
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sos:
            sos.sendall(b"GET /?id=9&alarm=sos HTTP/1.1\r\n\r\n")
            out["sos"] = replies(sos, "/?id=9&alarm=sos")
        out["routine"] = [replies(s, f"/c{c}r7") for c, s in enumerate(conns)]
        for s in conns:
            s.close()

    async def main() -> dict[str, object]:
        server = HttpServer(slow, urgent=may_hold_alarm)
        port = await server.start("127.0.0.1", 0)
        out: dict[str, object] = {}
        try:
            await asyncio.wait_for(asyncio.to_thread(devices, port, out), 20)
        finally:
            await server.close()
        out["slices"] = server.slicer.slices
        return out

    out = asyncio.run(main())
    assert out["sos"] == ["/?id=9&alarm=sos"]
    assert out["routine"] == [[f"/c{c}r{i}" for i in range(8)] for c in range(20)]
    assert handled.index("/?id=9&alarm=sos") < len(handled) // 2
    assert isinstance(out["slices"], int) and out["slices"] > 1


# --------------------------------- the plain-number fast path reads the same

_VALUES = st.one_of(
    st.sampled_from(["", "0", "-0", "1.5", "37.5444", "127.0374", "77.6", "250", "-5", "nan",
                     "inf", "-inf", "1e400", "1_000", " 12 ", "1790000000", "1790000000123",
                     "2026-09-21T14:13:20Z", "abc", "0x10", "1e11", "100000000001"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)
_NAMES = ["timestamp", "lat", "lon", "speed", "bearing", "heading", "accuracy", "hdop",
          "batt", "battery", "valid"]


def _outcome(query: str) -> object:
    try:
        r = decode_query(query, NOW)
    except Rejected as exc:
        return ("rejected", exc.reason, exc.detail)
    return tuple("nan" if isinstance(v, float) and math.isnan(v) else v
                 for v in dataclasses.astuple(r))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_NAMES), _VALUES, max_size=len(_NAMES)))
def test_plain_numbers_are_read_as_field_by_field_reading_reads_them(
        fields: dict[str, str]) -> None:
    """``_plain`` must give exactly what ``_FIELDS`` gives, or step aside."""
    fields = {k: v.replace("&", "").replace("=", "").replace("%", "").replace("+", "")
              for k, v in fields.items()}
    query = "id=42&" + "&".join(f"{k}={v}" for k, v in fields.items())
    fast = _outcome(query)
    original = osmand._plain
    osmand._plain = lambda *_a: None  # type: ignore[assignment]
    try:
        slow = _outcome(query)
    finally:
        osmand._plain = original
    assert fast == slow
