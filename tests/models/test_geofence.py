"""The geofence pipeline: dwell, hysteresis, uncertain fixes, polygons and scale.

Zones sit at real Seoul places; fixes are placed in EPSG:5179 metres relative
to a zone's centre, the way the engine hands them over.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from models.geo import to_map, to_wgs84
from models.geofence import FenceEvent, FenceRule, Geofence, rules_from_config
from models.messages import ZoneView
from models.zones import metric_geometries

SINDORIM = (37.5085, 126.8875)  # Sindorim Elementary, 구로구 신도림동
FOREST = (37.5444, 127.0374)  # Seoul Forest Park, 성동구 성수동1가
SINHAK = (37.6655, 127.0420)  # Sinhak Elementary, 도봉구 방학동
RULES = rules_from_config({"school": 30.0, "park": 30.0, "home": 60.0})


def circle(zone_id: int, name: str, at: tuple[float, float], radius: float,
           kind: str = "school") -> ZoneView:
    return ZoneView(id=zone_id, name=name, kind=kind, lat=at[0], lon=at[1], radius_m=radius)


def polygon(zone_id: int, name: str, at: tuple[float, float],
            offsets: list[tuple[float, float]], kind: str = "park") -> ZoneView:
    """A polygon from (east, north) metre offsets around ``at``, stored as
    the store keeps it: GeoJSON in lon/lat."""
    cx, cy = to_map(*at)
    lat, lon = to_wgs84(np.array([cx + e for e, _ in offsets]),
                        np.array([cy + n for _, n in offsets]))
    ring = [[float(o), float(a)] for o, a in zip(lon, lat, strict=True)]
    ring.append(ring[0])
    shape = json.dumps({"type": "Polygon", "coordinates": [ring]})
    return ZoneView(id=zone_id, name=name, kind=kind, lat=at[0], lon=at[1], radius_m=0.0,
                    shape=shape)


def school() -> tuple[Geofence, float, float]:
    fence = Geofence([circle(1, "Sindorim Elementary", SINDORIM, 300.0)], RULES)
    cx, cy = to_map(*SINDORIM)
    return fence, cx, cy


def walk(fence: Geofence, cx: float, cy: float, east: list[float], t0: float = 0.0,
         every: float = 10.0, accuracy: float = 10.0, slot: int = 0) -> list[FenceEvent]:
    """One fix per ``every`` seconds at these east offsets from the centre."""
    events: list[FenceEvent] = []
    for i, e in enumerate(east):
        events += fence.step([slot], [cx + e], [cy], [accuracy], t0 + i * every)
    return events


def test_first_sighting_takes_the_state_without_an_event() -> None:
    fence, cx, cy = school()
    assert fence.step([0, 1], [cx + 50, cx + 900], [cy, cy], [5, 5], 100.0) == []
    assert fence.zones_of(0) == [0]
    assert fence.zones_of(1) == []
    assert fence.inside_any([0, 1, 7]).tolist() == [True, False, False]
    inside, uncertain = fence.counts()
    assert inside.tolist() == [1] and uncertain.tolist() == [0]


def test_enter_after_dwell() -> None:
    fence, cx, cy = school()
    events = walk(fence, cx, cy, [600, 500, 200, 150, 100, 80, 60, 50])
    # inside evidence from t=20 (d=-100); confirmed by the fix 30 s later
    assert events == [FenceEvent(0, 0, "enter", 50.0, 20.0)]
    assert fence.zones_of(0) == [0]


def test_exit_after_dwell() -> None:
    fence, cx, cy = school()
    events = walk(fence, cx, cy, [0, 100, 350, 400, 450, 500, 600])
    assert events == [FenceEvent(0, 0, "exit", 50.0, 20.0)]
    assert fence.zones_of(0) == []
    assert fence.counts()[0].tolist() == [0]


def test_a_short_excursion_is_no_exit() -> None:
    fence, cx, cy = school()
    assert walk(fence, cx, cy, [0, 350, 360, 250, 350, 360, 200]) == []
    assert fence.zones_of(0) == [0]


def test_dwell_per_kind() -> None:
    cx, cy = to_map(*SINDORIM)
    home = circle(9, "home", SINDORIM, 100.0, kind="home")
    fence = Geofence([home], RULES)
    events = walk(fence, cx, cy, [0, 200, 200, 200, 200, 200, 200, 200, 200])
    assert events == [FenceEvent(0, 0, "exit", 70.0, 10.0)]  # home: 60 s


@pytest.mark.parametrize("pattern", ["alternate", "random"])
def test_jitter_at_the_fence_never_flaps(pattern: str) -> None:
    fence, cx, cy = school()
    rng = np.random.default_rng(7)
    n = 60  # five minutes at one fix per 5 s
    if pattern == "alternate":
        d = np.where(np.arange(n) % 2 == 0, 20.0, -20.0)
    else:
        d = rng.uniform(-20.0, 20.0, n)
    for start in (-100.0, 100.0):  # a child inside, and one outside
        events = walk(fence, cx, cy, [300.0 + start, *(300.0 + d).tolist()], every=5.0,
                      slot=int(start > 0))
        assert events == []
    assert fence.zones_of(0) == [0]
    assert fence.zones_of(1) == []


def test_an_uncertain_fix_is_no_exit() -> None:
    fence, cx, cy = school()
    # inside, then a fix 20 m beyond the fence with 300 m accuracy, for minutes
    events = walk(fence, cx, cy, [0.0] + [320.0] * 20, accuracy=300.0)
    assert events == []
    assert fence.zones_of(0) == [0]
    assert fence.counts()[1].tolist() == [1]  # shown as uncertain


def test_a_carrier_fix_changes_nothing() -> None:
    fence, cx, cy = school()
    walk(fence, cx, cy, [0.0])
    assert fence.step([0], [cx + 500], [cy], [800.0], 10.0) == []
    assert fence.zones_of(0) == [0]
    assert fence.pending(0) == {}
    # nor does it hold back a real exit already under way: vague fixes are no evidence
    events = walk(fence, cx, cy, [400.0], t0=20.0)
    events += fence.step([0], [cx + 500], [cy], [800.0], 30.0)
    events += walk(fence, cx, cy, [420.0, 430.0], t0=40.0)
    assert events == [FenceEvent(0, 0, "exit", 50.0, 20.0)]


def test_an_unknown_start_resolves_without_an_event() -> None:
    fence, cx, cy = school()
    events = walk(fence, cx, cy, [290.0, 300.0, 310.0, 100.0], accuracy=50.0)
    assert events == []
    assert fence.zones_of(0) == [0]


def test_leaving_the_candidate_range_exits() -> None:
    fence, cx, cy = school()
    walk(fence, cx, cy, [0.0])
    events = walk(fence, cx, cy, [2000.0, 2100.0, 2200.0, 2300.0], t0=10.0)
    assert events == [FenceEvent(0, 0, "exit", 40.0, 10.0)]
    assert fence.pairs == 0  # nothing held for a child far from every zone


def test_out_of_order_fixes_are_dropped() -> None:
    fence, cx, cy = school()
    walk(fence, cx, cy, [0.0], t0=100.0)
    # an older fix far outside, and two in one batch: the newest wins
    assert fence.step([0, 0], [cx + 900, cx + 10], [cy, cy], [5, 5], [50.0, 120.0]) == []
    assert fence.pending(0) == {}


def test_concave_polygon_containment() -> None:
    # an L: 400 m x 400 m with the north-east 300 m x 300 m square cut out
    ell = polygon(3, "Seoul Forest L", FOREST,
                  [(-200, -200), (200, -200), (200, -100), (-100, -100), (-100, 200),
                   (-200, 200)])
    fence = Geofence([ell], RULES)
    cx, cy = to_map(*FOREST)
    points = {"foot": (150, -150), "stem": (-150, 150), "notch": (50, 50)}
    for slot, (e, n) in enumerate(points.values()):
        fence.step([slot], [cx + e], [cy + n], [5.0], 0.0)
    assert [fence.zones_of(s) for s in range(3)] == [[0], [0], []]
    # the notch is well inside the L's bounding circle, yet outside the zone
    assert fence.counts()[0].tolist() == [2]
    # walking from the notch into the stem is an enter, after the dwell
    events: list[FenceEvent] = []
    for i, e in enumerate([50, -30, -150, -150, -150, -150]):
        events += fence.step([2], [cx + e], [cy + 50], [5.0], 10.0 * (i + 1))
    assert events == [FenceEvent(2, 0, "enter", 60.0, 30.0)]


def test_forget_and_rebuild() -> None:
    a = circle(1, "Sindorim Elementary", SINDORIM, 300.0)
    b = circle(2, "Sinhak Elementary", SINHAK, 300.0)
    fence = Geofence([a, b], RULES)
    ax, ay = to_map(*SINDORIM)
    bx, by = to_map(*SINHAK)
    fence.step([0, 1, 2], [ax, bx, ax + 10], [ay, by, ay], [5, 5, 5], 0.0)
    assert [fence.zones_of(s) for s in range(3)] == [[0], [1], [0]]
    fence.forget([2])
    assert fence.zones_of(2) == [] and fence.counts()[0].tolist() == [1, 1]
    assert fence.step([2], [ax + 500], [ay], [5], 5.0) == []  # a first sighting again
    # Sindorim reshaped and moved to index 1, Sinhak deleted, a park added
    moved = circle(1, "Sindorim Elementary", SINDORIM, 250.0)
    park = circle(5, "Seoul Forest Park", FOREST, 500.0, kind="park")
    fence.rebuild([park, moved])
    assert [fence.zones_of(s) for s in range(3)] == [[1], [], []]
    assert fence.counts()[0].tolist() == [0, 1]
    assert fence.step([1], [bx], [by], [5], 10.0) == []  # no exit for a deleted zone
    # SQLite reuses a deleted zone's id: a different zone under it starts afresh
    reused = circle(5, "Sinhak Elementary", SINHAK, 300.0)
    fence.rebuild([reused, moved])
    assert fence.counts()[0].tolist() == [0, 1]
    renamed = ZoneView(id=1, name="Sindorim Elementary School", kind="school",
                       lat=SINDORIM[0], lon=SINDORIM[1], radius_m=250.0, version=2)
    fence.rebuild([reused, renamed])
    assert fence.counts()[0].tolist() == [0, 1]  # renamed (a new version): the same zone


def test_empty_zone_list() -> None:
    fence = Geofence([], RULES)
    assert fence.step([0], [1.0e6], [2.0e6], [5.0], 0.0) == []
    assert fence.counts()[0].tolist() == []


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        FenceRule(hysteresis_min_m=50.0, hysteresis_max_m=10.0)


class BruteForce:
    """Signed distance from a point to every zone's fence, zone by zone with
    shapely (the answer the fence's index and vectorized geometry must give)."""

    def __init__(self, zones: list[ZoneView]) -> None:
        geoms = metric_geometries(zones)
        self.radius = np.array([z.radius_m for z in zones])
        self.is_poly = np.array([bool(z.shape) for z in zones])
        self.centres = shapely.get_coordinates(geoms[~self.is_poly])
        self.polys = geoms[self.is_poly]
        self.outlines = shapely.boundary(self.polys)

    def __call__(self, x: float, y: float) -> np.ndarray:
        d = np.empty(len(self.radius))
        d[~self.is_poly] = (np.hypot(x - self.centres[:, 0], y - self.centres[:, 1])
                            - self.radius[~self.is_poly])
        pt = shapely.Point(x, y)
        dist = shapely.distance(self.outlines, pt)
        d[self.is_poly] = np.where(shapely.contains(self.polys, pt), -dist, dist)
        return d


def test_city_scale_against_brute_force() -> None:
    """10,000 zones (circles and polygons) and 100,000 children across Seoul:
    sampled children's memberships agree with a zone-by-zone shapely answer,
    and the candidates came from the index, not from every zone."""
    rng = np.random.default_rng(2008)
    x0, y0 = to_map(37.55, 126.99)
    n_zones, n_children = 10_000, 100_000
    zx = x0 + rng.uniform(-15_000, 15_000, n_zones)
    zy = y0 + rng.uniform(-12_000, 12_000, n_zones)
    size = rng.uniform(60, 400, n_zones)
    zlat, zlon = to_wgs84(zx, zy)
    zones: list[ZoneView] = []
    for i in range(n_zones):
        if i % 2 == 0:
            zones.append(ZoneView(id=i + 1, name=f"z{i}", kind="school", lat=float(zlat[i]),
                                  lon=float(zlon[i]), radius_m=float(size[i])))
            continue
        w, h = size[i], size[i] * rng.uniform(0.5, 1.5)  # a rectangle, a notch cut out
        corners = np.array([(-w, -h), (w, -h), (w, 0), (0, 0), (0, h), (-w, h), (-w, -h)])
        lat, lon = to_wgs84(zx[i] + corners[:, 0], zy[i] + corners[:, 1])
        ring = np.column_stack([lon, lat]).tolist()
        ring[-1] = ring[0]
        zones.append(ZoneView(id=i + 1, name=f"z{i}", kind="park", lat=float(zlat[i]),
                              lon=float(zlon[i]), radius_m=0.0,
                              shape=json.dumps({"type": "Polygon", "coordinates": [ring]})))
    fence = Geofence(zones, RULES)
    near = rng.integers(0, n_zones, n_children)
    x = zx[near] + rng.normal(0, 300, n_children)
    y = zy[near] + rng.normal(0, 300, n_children)
    acc = rng.choice([5.0, 10.0, 30.0], n_children)
    slots = np.arange(n_children)
    assert fence.step(slots, x, y, acc, 0.0) == []  # first sightings: no events
    assert 0 < fence.candidates < n_children * 20  # from the index, not 10^9 pairs

    brute = BruteForce(zones)
    sample = rng.choice(n_children, 150, replace=False).tolist()
    before = {}
    for s in sample:
        d = brute(x[s], y[s])
        margin = max(acc[s], 15.0)
        before[s] = fence.zones_of(s)
        assert before[s] == np.flatnonzero(d <= -margin).tolist(), s

    # everyone moves a little; after the dwell, clear evidence decides and
    # the hysteresis band keeps what was held
    x2 = x + rng.normal(0, 60, n_children)
    y2 = y + rng.normal(0, 60, n_children)
    events = fence.step(slots, x2, y2, acc, 10.0) + fence.step(slots, x2, y2, acc, 40.0)
    assert events and all(e.t == 40.0 and e.since == 10.0 for e in events)
    for s in sample:
        d = brute(x2[s], y2[s])
        margin = max(acc[s], 15.0)
        band = np.abs(d) < margin
        expect = sorted(set(np.flatnonzero(d <= -margin).tolist())
                        | (set(before[s]) & set(np.flatnonzero(band).tolist())))
        assert fence.zones_of(s) == expect, s
    inside, _ = fence.counts()
    assert inside.sum() == int(fence.inside_any(slots).sum()) + sum(
        max(len(fence.zones_of(s)) - 1, 0) for s in np.flatnonzero(fence.inside_any(slots)))


def test_detailed_polygon_with_a_hole_and_vague_fixes() -> None:
    """A 120-vertex ring road of a park with a lake cut out (GEOS handles
    polygons that detailed), and carrier-sized fixes whose reach spans many
    grid cells (they go to the tree): still exact."""
    cx, cy = to_map(*FOREST)
    angle = np.linspace(0, 2 * np.pi, 121)[:-1]
    outer = np.column_stack([cx + 2400 * np.cos(angle), cy + 1800 * np.sin(angle)])
    lake = np.column_stack([cx + 600 * np.cos(angle[::4]), cy + 500 * np.sin(angle[::4])])
    ring = [[float(o), float(a)] for a, o in zip(*to_wgs84(outer[:, 0], outer[:, 1]),
                                                    strict=True)]
    hole = [[float(o), float(a)] for a, o in zip(*to_wgs84(lake[:, 0], lake[:, 1]),
                                                    strict=True)]
    park = ZoneView(id=1, name="Seoul Forest Park", kind="park", lat=FOREST[0], lon=FOREST[1],
                    radius_m=0.0, shape=json.dumps({"type": "Polygon", "coordinates": [
                        [*ring, ring[0]], [*hole, hole[0]]]}))
    zones = [park, circle(2, "Sindorim Elementary", SINDORIM, 300.0),
             circle(3, "Sinhak Elementary", SINHAK, 300.0),
             polygon(4, "corner", FOREST, [(-100, -100), (100, -100), (100, 100), (-100, 100)])]
    fence = Geofence(zones, RULES)
    rng = np.random.default_rng(11)
    n = 4000
    x = cx + rng.uniform(-4000, 4000, n)
    y = cy + rng.uniform(-3000, 3000, n)
    acc = rng.choice([5.0, 40.0, 700.0, 1500.0], n)
    assert fence.step(np.arange(n), x, y, acc, 0.0) == []
    brute = BruteForce(zones)
    for s in range(0, n, 7):
        d = brute(x[s], y[s])
        margin = max(acc[s], min(max(acc[s], 15.0), 100.0))
        assert fence.zones_of(s) == np.flatnonzero(d <= -margin).tolist(), (s, acc[s])
    _, uncertain = fence.counts()
    assert uncertain[0] > 0  # vague fixes over the park's fence


def test_uncertain_of_names_the_zones_a_childs_fix_straddles() -> None:
    """The child card says where a child may or may not be: the zones whose
    fence the latest fix's accuracy circle crosses."""
    from models.geo import to_map
    from models.messages import ZoneView

    zone = ZoneView(id=1, name="Sindorim Elementary", kind="school", lat=37.5085,
                    lon=126.8875, radius_m=300)
    fence = Geofence([zone])
    cx, cy = to_map(zone.lat, zone.lon)
    fence.step([0, 1], [cx, cx], [cy + 295, cy + 100], [30.0, 5.0], 1.0)
    assert fence.uncertain_of(0) == [0] and fence.uncertain_of(1) == []


def test_inside_flags_kept_per_batch_match_a_full_rebuild() -> None:
    """The per-child inside flags are brought up to date for the children of
    each batch only; after many batches (entries, exits, new children
    appearing past the arrays' size) they equal a rebuild from scratch."""
    a = circle(1, "A", SINDORIM, 300.0)
    b = circle(2, "B", (SINDORIM[0] + 0.004, SINDORIM[1] + 0.004), 250.0)
    fence = Geofence([a, b], RULES)
    cx, cy = to_map(*SINDORIM)
    rng = np.random.default_rng(11)
    everyone = np.arange(3000)
    fence.inside_any(everyone)  # the flags exist before the batches
    for turn in range(40):
        n = 200
        slots = rng.integers(0, 100 + turn * 70, n)  # later turns bring new children
        xs = cx + rng.uniform(-500, 900, n)
        ys = cy + rng.uniform(-500, 900, n)
        fence.step(slots, xs, ys, np.full(n, 10.0), turn * 60.0)
        kept = fence.inside_any(everyone)
        fence._inside_cache = None
        np.testing.assert_array_equal(kept, fence.inside_any(everyone))
    assert fence.inside_any(everyone).any()


def test_inside_pairs_of_many_children_are_zones_of_each() -> None:
    """The whole-batch question gives, row by row, what ``zones_of`` gives
    child by child (repeats and children never seen included)."""
    a = circle(1, "A", SINDORIM, 300.0)
    b = circle(2, "B", SINDORIM, 600.0)  # nested: the middle is inside both
    fence = Geofence([a, b], RULES)
    cx, cy = to_map(*SINDORIM)
    rng = np.random.default_rng(5)
    for turn in range(10):
        n = 60
        fence.step(np.arange(n), cx + rng.uniform(-800, 800, n), np.full(n, cy),
                   np.full(n, 10.0), turn * 60.0)
    ask = np.array([0, 5, 5, 17, 59, 500, 3])
    rows, zones = fence.inside_pairs(ask)
    want = [(i, z) for i, slot in enumerate(ask.tolist()) for z in fence.zones_of(slot)]
    assert list(zip(rows.tolist(), zones.tolist(), strict=True)) == want
    assert want  # some are inside
