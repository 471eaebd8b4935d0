"""The OsmAnd HTTP decoder, with the forms phone apps really send."""

from __future__ import annotations

import math

import pytest

from console.gateway.osmand import KNOT_MS, decode_query, parse_time
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
