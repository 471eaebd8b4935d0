"""The OsmAnd HTTP decoders, with the forms phone apps really send (query,
form and the JSON body of newer apps)."""

from __future__ import annotations

import json
import math

import pytest

from console.gateway.osmand import KNOT_MS, decode_json, decode_query, parse_time
from models.fixes import Rejected

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
