"""The engine's fix pipeline: ordering, duplicates, SOS, breadcrumbs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.messages import FLAG_BAD_POSITION, FLAG_SOS, ZoneView
from models.tracking import Tracker

ZONE = ZoneView(id=10, name="Sindorim Elementary", kind="school", lat=37.5085, lon=126.8875,
                radius_m=300)
M_LAT = 1 / 111_320  # degrees per metre northwards


def tracker() -> Tracker:
    return Tracker(["C-A", "C-B"], {"dA": 0, "dB": 1, "dB2": 1}, [10, 10])


def cols(t: list[float], lat: list[float], lon: list[float] | None = None,
         flags: list[int] | None = None, accuracy: float = 10.0) -> dict[str, np.ndarray]:
    n = len(t)
    return {
        "t": np.array(t, float), "lat": np.array(lat, float),
        "lon": np.array(lon if lon is not None else [ZONE.lon] * n, float),
        "speed": np.zeros(n, np.float32), "bearing": np.zeros(n, np.float32),
        "accuracy": np.full(n, accuracy, np.float32), "battery": np.full(n, 50, np.int8),
        "flags": np.array(flags if flags is not None else [0] * n, np.uint8),
    }


def north(metres: float) -> float:
    return ZONE.lat + metres * M_LAT


def test_newest_fix_per_child_wins_and_old_ones_never_move_it() -> None:
    tr = tracker()
    res = tr.step(["dA", "dA", "dB"], cols([20, 10, 5], [north(10), north(50), north(0)]))
    assert sorted(res.slots.tolist()) == [0, 1]
    assert tr.lat[0] == pytest.approx(north(10))
    # An older fix, and an exact duplicate, leave the live position alone.
    res = tr.step(["dA", "dA"], cols([15, 20], [north(100), north(10)]))
    assert len(res.slots) == 0
    assert tr.lat[0] == pytest.approx(north(10))
    assert tr.rejected["out_of_order_or_duplicate"] == 2


def test_two_devices_of_one_child_share_its_slot() -> None:
    tr = tracker()
    tr.step(["dB"], cols([1], [north(0)]))
    tr.step(["dB2"], cols([2], [north(20)]))
    assert tr.lat[1] == pytest.approx(north(20))


def test_unknown_devices_are_counted_not_applied() -> None:
    tr = tracker()
    res = tr.step(["nobody", "dA"], cols([1, 1], [north(0), north(0)]))
    assert res.slots.tolist() == [0]
    assert tr.rejected["unknown_device"] == 1


def test_sos_with_bad_position_uses_last_known() -> None:
    tr = tracker()
    tr.step(["dA"], cols([1], [north(40)]))
    res = tr.step(["dA"], cols([2], [math.nan], [math.nan], flags=[FLAG_SOS | FLAG_BAD_POSITION]))
    assert len(res.alarms) == 1
    press = res.alarms[0]
    assert press.slot == 0 and press.position_is_last_known
    assert press.lat == pytest.approx(north(40))
    assert tr.lat[0] == pytest.approx(north(40))  # the live position did not move


def test_sos_with_good_position() -> None:
    tr = tracker()
    res = tr.step(["dB"], cols([1], [north(5)], flags=[FLAG_SOS]))
    assert res.alarms[0].slot == 1 and not res.alarms[0].position_is_last_known


def test_a_batch_reports_each_applied_fix_for_the_geofence() -> None:
    """Zones are the geofence's (models.geofence): the tracker hands it each
    child's applied fix, how accurate it is, and whether it is the first."""
    tr = tracker()
    res = tr.step(["dA", "dB"], cols([5, 6], [north(10), north(20)], accuracy=12.0))
    assert res.slots.tolist() == [0, 1] and res.first.tolist() == [True, True]
    assert res.accuracy.tolist() == [12.0, 12.0] and res.t.tolist() == [5.0, 6.0]
    res = tr.step(["dA"], cols([7], [north(30)]))
    assert res.first.tolist() == [False]
    tr.forget([0])
    res = tr.step(["dA"], cols([8], [north(30)]))
    assert res.first.tolist() == [True]  # consent back: a first sighting again


# ---------------------------------------------------------------- breadcrumbs

def test_a_tag_read_is_the_breadcrumb_and_marks_the_position() -> None:
    tr = tracker()
    tr.step(["dA", "dB"], cols([10, 10], [north(0), north(5)]), ["R-gate", ""])
    assert tr.breadcrumb(0) == ("R-gate", 10.0) and tr.breadcrumb(1) is None
    assert tr.located_by_reader(0, float(tr.lat[0]), float(tr.lon[0]))
    assert not tr.located_by_reader(1, float(tr.lat[1]), float(tr.lon[1]))
    assert not tr.located_by_reader(0, north(50), ZONE.lon)  # not where the reader put them
    assert tr.last_readers() == {0: "R-gate"}


def test_a_later_gps_fix_moves_the_child_but_keeps_the_breadcrumb() -> None:
    tr = tracker()
    tr.step(["dA"], cols([10], [north(0)]), ["R-gate"])
    tr.step(["dA"], cols([20], [north(40)]))  # a batch from another protocol: no readers
    assert tr.breadcrumb(0) == ("R-gate", 10.0)
    assert not tr.located_by_reader(0, float(tr.lat[0]), float(tr.lon[0]))


def test_the_newest_read_wins_and_a_late_one_never_moves_it_back() -> None:
    tr = tracker()
    tr.step(["dA", "dA"], cols([10, 30], [north(0), north(20)]), ["R-gate", "R-cross"])
    assert tr.breadcrumb(0) == ("R-cross", 30.0)
    assert tr.located_by_reader(0, north(20), ZONE.lon)
    tr.step(["dA"], cols([15], [north(0)]), ["R-gate"])  # older: stored, never applied
    assert tr.breadcrumb(0) == ("R-cross", 30.0)
    # A read newer than the breadcrumb but older than a GPS fix moves the
    # breadcrumb, not the child.
    tr.step(["dA"], cols([50], [north(60)]), [""])
    tr.step(["dA"], cols([40], [north(0)]), ["R-gate"])
    assert tr.breadcrumb(0) == ("R-gate", 40.0)
    assert tr.lat[0] == pytest.approx(north(60)) and not tr.at_reader[0]


def test_reads_from_unknown_devices_or_without_position_leave_no_breadcrumb() -> None:
    tr = tracker()
    tr.step(["nobody", "dB"], cols([10, 10], [north(0), math.nan],
                                   flags=[0, FLAG_BAD_POSITION]), ["R-gate", "R-gate"])
    assert tr.last_readers() == {}


def test_batteries_at_once_match_fix_by_fix() -> None:
    """The whole-batch battery step (distinct children at once, repeated
    ones in order) leaves the same state and raises the same low-battery
    starts as applying every fix in turn, late fixes and repeats included."""
    from models.messages import FLAG_LOW_BATTERY

    rng = np.random.default_rng(3)
    n = 40
    devices = [f"d{i}" for i in range(n)]
    fast = Tracker([f"C{i}" for i in range(n)], {d: i for i, d in enumerate(devices)}, [-1] * n)
    slow = Tracker([f"C{i}" for i in range(n)], {d: i for i, d in enumerate(devices)}, [-1] * n)
    fields = ("battery", "battery_t", "battery_since", "battery_from", "low_battery")
    for turn in range(30):
        k = 25
        picked = rng.integers(0, n, k)  # repeats within a batch on purpose
        c = cols(list(turn * 60.0 + rng.uniform(-90, 30, k)), [ZONE.lat] * k)
        c["battery"] = rng.choice([-1, 5, 12, 40, 80], k).astype(np.int8)
        c["flags"] = np.where(rng.random(k) < 0.3, FLAG_LOW_BATTERY, 0).astype(np.uint8)
        ids = [devices[i] for i in picked]
        slots = picked.astype(np.int64)
        got = fast._batteries(np.arange(k), slots, ids, c)
        says = (c["battery"] >= 0) | (c["flags"] != 0)  # fixes that say anything of it
        want = [i for i in range(k) if says[i] and slow._battery_row(i, slots, c)]
        assert [(a.slot, a.t) for a in got] == [(int(slots[i]), float(c["t"][i]))
                                                 for i in want]
        for f in fields:
            np.testing.assert_array_equal(getattr(fast, f), getattr(slow, f), err_msg=f)
