"""Validation of device reports: a reason for every rejection, SOS kept."""

from __future__ import annotations

import math

import pytest

from models.fixes import Rejected, Report, report_flags, validate
from models.messages import FLAG_BAD_POSITION, FLAG_SOS

NOW = 1_790_000_000.0


def report(**kw: object) -> Report:
    base: dict[str, object] = dict(device_id="d1", t=NOW - 5, lat=37.54, lon=127.03)
    base.update(kw)
    return Report(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        (dict(lat=math.nan), "coordinate_not_finite"),
        (dict(lon=math.inf), "coordinate_not_finite"),
        (dict(lat=91.0), "coordinate_out_of_range"),
        (dict(lon=-181.0), "coordinate_out_of_range"),
        (dict(lat=0.0, lon=0.0), "coordinate_null_island"),
        (dict(t=900_000_000.0), "time_before_2000"),
        (dict(t=NOW + 301), "time_in_future"),
        (dict(t=NOW + 24 * 3600), "time_in_future"),  # would freeze its child for a day
        (dict(valid=False), "invalid_fix"),
    ],
)
def test_bad_reports_are_rejected_with_reason(kw: dict[str, object], reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        validate(report(**kw), now=NOW)
    assert exc.value.reason == reason


def test_good_report_passes() -> None:
    r = validate(report(t=NOW + 299), now=NOW)  # a clock a little ahead is fine
    assert r.lat == 37.54 and report_flags(r) == 0


@pytest.mark.parametrize("kw", [dict(lat=0.0, lon=0.0), dict(lat=math.nan), dict(valid=False)])
def test_sos_with_bad_position_is_kept_and_flagged(kw: dict[str, object]) -> None:
    r = validate(report(sos=True, **kw), now=NOW)
    assert math.isnan(r.lat) and math.isnan(r.lon)
    assert report_flags(r) == FLAG_SOS | FLAG_BAD_POSITION


def test_sos_with_impossible_time_gets_receive_time() -> None:
    r = validate(report(sos=True, t=12.0), now=NOW)
    assert r.t == NOW
