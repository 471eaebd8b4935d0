"""The demo's children in simulated time: incidents on schedule as the real
tracker sees them, plausible commutes, a reproducible device mix.

Everything runs on the simulation clock (``Population.advance``), never the
wall clock: the demo zones are the real ones (resources/demo/zones.json),
the device kinds follow the demo seed, and every fix goes through
``models.tracking.Tracker``, the engine's own zone pipeline.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest

from console.config import Config
from db.seed import demo_zones, device_kind, split_children
from models.geo import to_map
from models.geofence import Geofence, rules_from_config
from models.messages import FLAG_SOS, ZoneView
from models.simulation import (
    CARRIER_ACCURACY_M,
    EDGE_GAP_M,
    LEAVER_OUT_M,
    LEAVER_REPORT_S,
    LEAVER_SPEED_MS,
    RUN_LEAD_S,
    CarrierFix,
    DeviceMix,
    Incident,
    Population,
    SimReport,
    SimZone,
    exact_shares,
)
from models.tracking import Tracker

EPOCH = 1_790_000_000.0  # the simulated run's wall-clock start
TICK_S = 0.2  # the simulator service's tick
DEFAULTS = Config(data_dir="/tmp/cs-unused")  # the shipped simulator settings
SEOUL = (37.41, 37.72, 126.76, 127.19)  # lat, lat, lon, lon: the city's bounding box


def demo_population(children: int | None = None, seed: int = 7, **kw: object) -> Population:
    """The demo seed's children (pilot split, device kinds) with the
    shipped simulator settings unless overridden."""
    zones = demo_zones()
    counts = split_children(children, zones)
    zone_of = np.repeat(np.arange(len(zones)), counts)
    n = len(zone_of)
    settings: dict[str, object] = dict(
        interval_s=DEFAULTS.sim_interval_s, first_incident_s=DEFAULTS.sim_first_incident_s,
        incident_every_s=DEFAULTS.sim_incident_every_s, seed=seed)
    settings.update(kw)
    return Population([f"dev{i}" for i in range(n)], [device_kind(i + 1) for i in range(n)],
                      [SimZone(z.lat, z.lon, z.radius_m) for z in zones], zone_of,
                      **settings)  # type: ignore[arg-type]


def zone_views() -> list[ZoneView]:
    return [ZoneView(id=i, name=z.name, kind=z.kind, lat=z.lat, lon=z.lon, radius_m=z.radius_m)
            for i, z in enumerate(demo_zones())]


@dataclass
class Run:
    """What the engine's tracker saw while the population ran."""

    sos: list[tuple[float, int]] = field(default_factory=list)  # (sim time, slot)
    exits: list[tuple[float, int]] = field(default_factory=list)
    enters: list[tuple[float, int]] = field(default_factory=list)
    reports: list[tuple[float, SimReport]] = field(default_factory=list)
    carrier: list[tuple[float, CarrierFix]] = field(default_factory=list)


def columns(t: list[float], lat: list[float], lon: list[float], accuracy: list[float],
            sos: list[bool]) -> dict[str, np.ndarray]:
    return {"t": np.array(t), "lat": np.array(lat), "lon": np.array(lon),
            "accuracy": np.array(accuracy, np.float32),
            "flags": np.array([FLAG_SOS if s else 0 for s in sos], np.uint8)}


def accuracy_at_gateway(pop: Population, r: SimReport) -> float:
    """What the engine gets: a watch's frame has no accuracy field, so the
    gateway passes NaN (and the tracker uses its widest hysteresis)."""
    return math.nan if pop.kinds[r.index] == "watch" else r.accuracy


def run(pop: Population, seconds: float, carrier_lag_s: float = DEFAULTS.sim_carrier_lag_s,
        keep_reports: bool = False, epoch: float = EPOCH) -> Run:
    """Step ``pop`` for ``seconds`` of simulated time and feed its devices'
    fixes, and the carrier's fixes ``carrier_lag_s`` late, to a real tracker."""
    ids = pop.device_ids
    tracker = Tracker([f"C{i}" for i in range(len(pop))], {d: i for i, d in enumerate(ids)},
                      pop.zone_of.tolist())
    fence = Geofence(zone_views(), rules_from_config(DEFAULTS.fence_dwell_s))
    out = Run()
    late: list[tuple[float, CarrierFix]] = []
    for _ in range(round(seconds / TICK_S)):
        pop.advance(TICK_S)
        now = pop.clock
        rs = pop.due_reports(epoch + now)
        for f in pop.due_carrier_fixes(epoch + now):
            late.append((now + carrier_lag_s, f))
            out.carrier.append((now, f))
        arrived = [f for at, f in late if at <= now]
        late = [(at, f) for at, f in late if at > now]
        if keep_reports:
            out.reports += [(now, r) for r in rs]
        if not rs and not arrived:
            continue
        cols = columns([r.t for r in rs] + [f.t for f in arrived],
                       [r.lat for r in rs] + [f.lat for f in arrived],
                       [r.lon for r in rs] + [f.lon for f in arrived],
                       [accuracy_at_gateway(pop, r) for r in rs]
                       + [f.accuracy_m for f in arrived],
                       [r.sos for r in rs] + [False] * len(arrived))
        res = tracker.step([ids[r.index] for r in rs] + [ids[f.index] for f in arrived], cols)
        out.sos += [(now, p.slot) for p in res.alarms if p.kind == "sos"]
        events = fence.step(res.slots, res.x, res.y, res.accuracy, res.t)
        out.exits += [(now, e.slot) for e in events if e.kind == "exit"]
        out.enters += [(now, e.slot) for e in events if e.kind == "enter"]
    return out


def distance_from_zone_centre(pop: Population, r: SimReport) -> float:
    z = pop.zones[int(pop.zone_of[r.index])]
    zx, zy = to_map(z.lat, z.lon)
    x, y = to_map(r.lat, r.lon)
    return float(np.hypot(x - zx, y - zy))


# ------------------------------------------------------------------ schedule


@pytest.mark.parametrize("children", [None, 260, 30], ids=["pilot-2600", "260", "30"])
def test_first_sos_and_zone_exit_come_within_30_s_then_on_schedule(
        children: int | None) -> None:
    pop = demo_population(children)
    first, every = DEFAULTS.sim_first_incident_s, DEFAULTS.sim_incident_every_s
    seen = run(pop, first + 2 * every + 60)

    sos_times = [t for t, _ in seen.sos]
    exit_times = [t for t, _ in seen.exits]
    dwell = DEFAULTS.fence_dwell_s["school"]  # every demo zone's kind dwells as long
    assert sos_times[0] < 30 and exit_times[0] < 30 + dwell, (sos_times, exit_times)
    assert sos_times[0] == pytest.approx(first, abs=2 * TICK_S)
    # Then once per scheduled incident, each within seconds of its time.
    assert len(sos_times) == len(exit_times) == 3
    for k, (ts, te) in enumerate(zip(sos_times, exit_times, strict=True)):
        due = first + k * every
        assert due <= ts < due + 1, f"SOS {k} at {ts:.1f} s, due {due:.0f} s"
        # the exit counts once the child was out a dwell, at its next report
        assert -1 <= te - due - dwell <= LEAVER_REPORT_S + 2, \
            f"exit {k} at {te:.1f} s, due {due:.0f} s"
    # Exactly the scripted children: no one else, and no carrier fix (a cell
    # fix can be hundreds of metres off), made the tracker see an exit.
    scripted = Counter((i.kind, i.index) for i in pop.incidents)
    assert Counter(("exit", s) for _, s in seen.exits) == Counter(
        {k: n for k, n in scripted.items() if k[0] == "exit"})
    assert Counter(("sos", s) for _, s in seen.sos) == Counter(
        {k: n for k, n in scripted.items() if k[0] == "sos"})
    assert any(f.method == "cell" for _, f in seen.carrier)
    # Each leaver comes back into its zone within a few minutes.
    back = {s for _, s in seen.enters}
    for _, slot in seen.exits[:-1]:
        assert slot in back


def test_watch_leavers_exit_too_once_past_the_widest_hysteresis() -> None:
    """Without phones the leaver wears a watch, whose fixes carry no
    accuracy: the geofence takes them as 25 m (``default_accuracy_m``), waits
    for that far past the edge and a dwell, and the run goes further and
    lasts longer than that."""
    zones = demo_zones()
    pop = Population([f"w{i}" for i in range(60)], ["watch"] * 60,
                     [SimZone(z.lat, z.lon, z.radius_m) for z in zones],
                     np.arange(60) % len(zones))
    seen = run(pop, DEFAULTS.sim_first_incident_s + 60)
    first = DEFAULTS.sim_first_incident_s
    assert [s for _, s in seen.exits] == [i.index for i in pop.incidents if i.kind == "exit"]
    start = first - RUN_LEAD_S
    dwell = DEFAULTS.fence_dwell_s["school"]
    assert start + (EDGE_GAP_M + 25) / LEAVER_SPEED_MS + dwell <= seen.exits[0][0] \
        < start + 45 + dwell


def test_leavers_and_sos_children_have_their_own_gps() -> None:
    pop = demo_population(260)
    run(pop, 600)
    assert pop.incidents
    for inc in pop.incidents:
        assert pop.kinds[inc.index] in ("watch", "phone"), inc  # a tag has no GPS, no button
    leavers = [i.index for i in pop.incidents if i.kind == "exit"]
    assert len(set(leavers)) == len(leavers), "the same child ran off twice"
    assert {pop.kinds[i] for i in leavers} == {"phone"}  # their fixes say how accurate


# ------------------------------------------------------------------ commutes


def test_commutes_stay_plausible() -> None:
    pop = demo_population(260)
    start = pop.pos.copy()
    seen = run(pop, 400, keep_reports=True)
    leavers = {i.index for i in pop.incidents if i.kind == "exit"}

    by_child: dict[int, list[tuple[float, SimReport]]] = {}
    for now, r in seen.reports:
        by_child.setdefault(r.index, []).append((now, r))
        assert SEOUL[0] < r.lat < SEOUL[1] and SEOUL[2] < r.lon < SEOUL[3], r
        assert 0.0 <= r.speed_ms <= LEAVER_SPEED_MS + 1e-9
        radius = pop.radius[r.index]
        d = distance_from_zone_centre(pop, r)
        if r.index in leavers:
            assert d <= radius + LEAVER_OUT_M + 1.0
        else:
            assert d <= radius, f"child {r.index} {d:.0f} m from a {radius:.0f} m zone"
            assert r.speed_ms <= 2.0, "a commuting child walks"
    # Every device reports on its interval, and children really move.
    locating = np.flatnonzero(pop.self_locating)
    assert set(by_child) == set(locating.tolist())
    walked = np.hypot(*(pop.pos - start).T)
    assert np.median(walked[locating]) > 50
    speeds = []
    for i, rows in by_child.items():
        if i in leavers:
            continue
        times = np.array([now for now, _ in rows])
        assert np.diff(times).max() <= DEFAULTS.sim_interval_s + TICK_S + 1e-9
        xy = np.array([to_map(r.lat, r.lon) for _, r in rows])
        v = np.hypot(*np.diff(xy, axis=0).T) / np.diff(times)
        assert v.max() <= 1.5 + 0.05, f"child {i} moved at {v.max():.2f} m/s"
        speeds += [r.speed_ms for _, r in rows if r.moving]
    assert 0.7 <= np.median(speeds) <= 1.5


def test_a_leaver_never_repeats_its_last_fix_as_a_watch_would_stamp_it() -> None:
    """Watches send time to the second and 6 decimals: a child standing at
    the fence that reported 0.4 s before its run starts must not be made to
    report again within that second (one fix twice, a duplicate to the
    gateway); its run still starts on time."""
    pop = demo_population(30)
    leaver, start = pop.staged, DEFAULTS.sim_first_incident_s - RUN_LEAD_S
    assert leaver >= 0
    pop.next_report[leaver] = start - 0.4
    seen = run(pop, start + 10, keep_reports=True, epoch=EPOCH + 0.5)
    mine = [r for _, r in seen.reports if r.index == leaver]
    keys = Counter((int(r.t), round(r.lat, 6), round(r.lon, 6), r.sos) for r in mine)
    assert max(keys.values()) == 1, mine
    assert np.diff([r.t for r in mine]).min() >= 1.5 - 1e-9
    assert pop.incidents[0] == Incident("exit", leaver, pytest.approx(start, abs=TICK_S))
    assert mine[0].speed_ms == 0 and mine[-1].speed_ms == pytest.approx(LEAVER_SPEED_MS)


def test_commutes_lead_through_the_gates_given() -> None:
    zone = demo_zones()[1]
    gate = (zone.lat + 100 / 111_000, zone.lon)  # ~100 m north of the centre
    pop = Population(["a", "b", "c"], ["tag", "watch", "phone"],
                     [SimZone(zone.lat, zone.lon, zone.radius_m)], np.zeros(3, np.int64),
                     gates=[[gate]], first_incident_s=1e9)
    gx, gy = to_map(*gate)
    zx, zy = to_map(zone.lat, zone.lon)
    assert np.hypot(pop.gate[:, 0] - (gx - zx), pop.gate[:, 1] - (gy - zy)).max() < 15
    # A tag is never a device report: readers see it.
    run(pop, 30)
    assert pop.tags().tolist() == [0]
    assert all(r.index != 0 for r in pop.due_reports(EPOCH)) and not pop.self_locating[0]


# ------------------------------------------------------------------ determinism


def fingerprint(pop: Population, seconds: float) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for _ in range(round(seconds / TICK_S)):
        pop.advance(TICK_S)
        out += [(r.index, r.lat, r.lon, r.sos) for r in pop.due_reports(EPOCH + pop.clock)]
        out += [(f.index, f.lat, f.method) for f in pop.due_carrier_fixes(EPOCH + pop.clock)]
        out += [(h.index, h.steps) for h in pop.due_heartbeats(EPOCH + pop.clock)]
    out += [(i.kind, i.index, i.at) for i in pop.incidents]
    return out


def test_same_seed_same_run_other_seed_other_run() -> None:
    a = fingerprint(demo_population(260, seed=11), 240)
    assert a == fingerprint(demo_population(260, seed=11), 240)
    assert a != fingerprint(demo_population(260, seed=12), 240)
    assert (demo_population(260, seed=11).phone_form
            == demo_population(260, seed=11).phone_form).all()


# ------------------------------------------------------------------ device mix


def test_exact_shares_hold_for_small_counts() -> None:
    rng = np.random.default_rng(1)
    got = Counter(exact_shares(13, {"get": 0.35, "form": 0.15, "json": 0.5}, rng))
    # quotas 4.55, 1.95, 6.5: floors 4, 1, 6, and the two largest remainders round up
    assert got == {"get": 5, "form": 2, "json": 6}
    assert exact_shares(0, {"a": 1.0}, rng) == []


def test_phones_keep_one_form_in_the_configured_shares() -> None:
    pop = demo_population(None, mix=DeviceMix(phone_forms={"get": 1, "form": 1, "json": 2}))
    phones = pop.kinds == "phone"
    got = Counter(pop.phone_form[phones].tolist())
    assert got["json"] == pytest.approx(phones.sum() / 2, abs=1)
    assert got["get"] == pytest.approx(phones.sum() / 4, abs=1)
    assert set(pop.phone_form[~phones].tolist()) == {""}


def test_carrier_locates_its_share_of_sim_devices_only() -> None:
    mix = DeviceMix(carrier_share=0.25, carrier_every_s=30.0)
    pop = demo_population(None, mix=mix)
    sims = pop.kinds != "tag"
    assert abs(pop.carrier.sum() - 0.25 * sims.sum()) <= 0.5
    assert not (pop.carrier & ~sims).any()
    seen = run(pop, 300)
    fixes = [f for _, f in seen.carrier]
    per_child = Counter(f.index for f in fixes)
    assert set(per_child) == set(np.flatnonzero(pop.carrier).tolist())
    assert set(per_child.values()) <= {9, 10}  # every 30 s over 300 s
    methods = Counter(f.method for f in fixes)
    for method, share in mix.carrier_methods.items():
        assert methods[method] / len(fixes) == pytest.approx(share, abs=0.03)
    for f in fixes:
        lo, hi = CARRIER_ACCURACY_M[f.method]
        assert lo <= f.accuracy_m <= hi


def test_carrier_errors_match_their_accuracy_radius() -> None:
    pop = demo_population(None, mix=DeviceMix(carrier_share=1.0, carrier_every_s=5.0))
    within = []
    for _ in range(50):
        pop.advance(TICK_S)
        fixes = pop.due_carrier_fixes(EPOCH)
        if not fixes:
            continue
        idx = np.array([f.index for f in fixes])
        tx, ty = pop.map_xy(idx)
        fx, fy = to_map(np.array([f.lat for f in fixes]), np.array([f.lon for f in fixes]))
        err = np.hypot(fx - tx, fy - ty)
        within += (err <= np.array([f.accuracy_m for f in fixes])).tolist()
    assert len(within) > 1000
    assert np.mean(within) == pytest.approx(0.68, abs=0.04)  # the radius is ~1 sigma


def test_watches_alone_send_heartbeats_with_a_growing_pedometer() -> None:
    pop = demo_population(260, mix=DeviceMix(heartbeat_every_s=20.0))
    beats: dict[int, list[tuple[float, int]]] = {}
    for _ in range(round(61 / TICK_S)):
        pop.advance(TICK_S)
        for hb in pop.due_heartbeats(EPOCH + pop.clock):
            beats.setdefault(hb.index, []).append((pop.clock, hb.steps))
            assert 1 <= hb.battery <= 100
    watches = set(np.flatnonzero(pop.kinds == "watch").tolist())
    assert set(beats) == watches
    for v in beats.values():
        gaps = np.diff([t for t, _ in v])
        assert len(v) >= 3 and np.all(np.abs(gaps - 20.0) <= TICK_S + 1e-9), v
    assert sum(v[-1][1] > v[0][1] for v in beats.values()) > 0.9 * len(watches)


@pytest.mark.parametrize("bad", [
    dict(phone_forms={"get": 1, "sms": 1}),
    dict(phone_forms={"get": 0}),
    dict(carrier_methods={"gps": -1, "cell": 2}),
    dict(carrier_share=1.5),
    dict(heartbeat_every_s=0),
])
def test_device_mix_refuses_settings_it_cannot_follow(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DeviceMix(**bad)  # type: ignore[arg-type]


def test_scripted_leavers_are_children_without_a_timetable() -> None:
    """A timetabled child leaving at dismissal is routine, not an incident: the
    demo's leavers are the others, so any hour the demo runs shows its exits."""
    base = demo_population(260)
    scheduled = [i % 3 != 0 for i in range(len(base))]
    zones = demo_zones()
    pop = Population(base.device_ids, list(base.kinds),
                     [SimZone(z.lat, z.lon, z.radius_m) for z in zones], base.zone_of,
                     scheduled=scheduled)
    run(pop, DEFAULTS.sim_first_incident_s + 2 * DEFAULTS.sim_incident_every_s)
    leavers = [i.index for i in pop.incidents if i.kind == "exit"]
    assert leavers and not any(scheduled[i] for i in leavers)
