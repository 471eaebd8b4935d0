"""models.cameras: ranking cameras for a point, view cones, 촬영방면정보."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from models import cameras as mc
from models.cameras import CameraIndex, cone_polygons, cone_rings, parse_view_direction
from models.geo import to_map, to_wgs84

POINT = (37.5444, 127.0374)  # Seoul Forest Park
PX, PY = to_map(*POINT)


def index_at(cams: list[tuple[float, float, float | None, float, float, bool]]) -> CameraIndex:
    """Cameras placed in metres east/north of POINT: (east, north, direction, fov, range, ptz)."""
    east = np.array([c[0] for c in cams], dtype=float)
    north = np.array([c[1] for c in cams], dtype=float)
    lat, lon = to_wgs84(PX + east, PY + north)
    return CameraIndex(
        np.arange(1, len(cams) + 1), lat, lon, [c[2] for c in cams], [c[3] for c in cams],
        [c[4] for c in cams], [c[5] for c in cams],
    )


def ids(ranked: list[mc.Ranked]) -> list[int]:
    return [r.camera_id for r in ranked]


def test_point_in_a_cone_beats_a_nearer_camera_facing_away() -> None:
    idx = index_at([
        (0, 15, 0.0, 90, 80, False),    # 1: 15 m north of the point, looking north
        (0, -60, 0.0, 90, 80, False),   # 2: 60 m south, looking north at the point
        (40, 0, 270.0, 60, 30, False),  # 3: looks at it, but 40 m exceeds its 30 m range
    ])
    ranked = idx.rank(*POINT)
    assert ids(ranked) == [2, 3, 1]
    away, facing = ranked[2], ranked[0]
    assert facing.in_view and not away.in_view and not ranked[1].in_view
    assert facing.distance_m == pytest.approx(60, abs=0.01)
    assert away.distance_m == pytest.approx(15, abs=0.01)
    assert facing.bearing_deg == pytest.approx(0, abs=0.01) or facing.bearing_deg > 359.99
    assert away.bearing_deg == pytest.approx(180, abs=0.01)
    assert 0 <= away.score < facing.score <= 1


def test_cone_edges_and_range() -> None:
    idx = index_at([
        (0, -50, 44.0, 90, 80, False),   # point 44 deg off: inside a 90 deg cone
        (0, -50, 46.0, 90, 80, False),   # just outside
        (0, -50, 0.0, 90, 49, False),    # in the cone, 1 m beyond the range
    ])
    got = {r.camera_id: r for r in idx.rank(*POINT)}
    assert got[1].in_view and not got[2].in_view and not got[3].in_view
    assert got[1].score > got[2].score  # but the edge still scores above a camera facing away
    assert got[2].score > index_at([(0, -50, 180.0, 90, 80, False)]).rank(*POINT)[0].score


def test_heading_prefers_the_camera_the_child_walks_toward() -> None:
    idx = index_at([(0, 40, None, 90, 80, False), (0, -40, None, 90, 80, False)])
    assert ids(idx.rank(*POINT, heading_deg=0.0)) == [1, 2]      # walking north
    assert ids(idx.rank(*POINT, heading_deg=180.0)) == [2, 1]    # walking south
    assert ids(idx.rank(*POINT, heading_deg=80.0)) == [1, 2]     # mostly east, a bit north
    north, south = idx.rank(*POINT)  # no heading: a tie, the lower id first
    assert (north.camera_id, south.camera_id) == (1, 2)
    assert north.score == pytest.approx(south.score)
    assert ids(idx.rank(*POINT, heading_deg=float("nan"))) == [1, 2]
    # heading reorders nearby cameras; it does not lift a far one above a near one
    far = index_at([(0, 300, None, 90, 80, False), (0, -30, None, 90, 80, False)])
    assert ids(far.rank(*POINT, heading_deg=0.0)) == [2, 1]


def test_omnidirectional_ptz_and_unknown_direction() -> None:
    idx = index_at([
        (30, 0, None, 90, 80, False),    # 1: direction unknown ("정면")
        (-30, 0, None, 360, 100, True),  # 2: 360-degree PTZ
        (0, 30, 0.0, 90, 80, False),     # 3: fixed, looking away
        (0, -30, 0.0, 90, 80, False),    # 4: fixed, looking at the point
        (0, -35, 90.0, 90, 80, True),    # 5: PTZ, pointing elsewhere: can be turned
        (0, -32, None, 360, 80, False),  # 6: fixed 360-degree camera
    ])
    ranked = {r.camera_id: r for r in idx.rank(*POINT)}
    assert ids(idx.rank(*POINT)) == [4, 6, 2, 5, 1, 3]
    assert [ranked[i].in_view for i in (1, 2, 3, 4, 5, 6)] == [False, True, False, True, False,
                                                               True]
    out_of_range = index_at([(0, 120, None, 360, 100, True)]).rank(*POINT)[0]
    assert not out_of_range.in_view


def test_k_larger_than_the_registry_and_empty_registry() -> None:
    idx = index_at([(10, 0, None, 90, 80, False), (5000, 0, 270.0, 90, 80, False)])
    assert ids(idx.rank(*POINT, k=20)) == [1, 2]  # the far one found by widening the search
    assert ids(idx.rank(*POINT, k=1)) == [1]
    assert idx.rank(*POINT, k=0) == []
    empty = CameraIndex([], [], [], [], [], [])
    assert len(empty) == 0 and empty.rank(*POINT) == []
    assert empty.cone_rings().shape == (0, 18, 2)


def test_windowed_search_equals_scoring_every_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    """The square search must give exactly the brute-force top k, sparse or dense."""
    rng = np.random.default_rng(7)
    n = 3000
    lat = rng.uniform(37.45, 37.65, n)
    lon = rng.uniform(126.85, 127.15, n)
    direction = np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 360, n))
    fov = rng.choice([60.0, 90.0, 360.0], n)
    rng_m = rng.uniform(30, 150, n)
    ptz = rng.random(n) < 0.1
    fast = CameraIndex(np.arange(n), lat, lon, direction, fov, rng_m, ptz)
    monkeypatch.setattr(mc, "MIN_SEARCH_M", 1e8)
    brute = CameraIndex(np.arange(n), lat, lon, direction, fov, rng_m, ptz)
    for i in range(60):
        p_lat, p_lon = rng.uniform(37.4, 37.7), rng.uniform(126.8, 127.2)
        heading = None if i % 3 == 0 else float(rng.uniform(0, 360))
        k = (1, 9, 40)[i % 3]
        assert fast.rank(p_lat, p_lon, heading, k) == brute.rank(p_lat, p_lon, heading, k)
    # far outside the registry (Busan): still the k nearest
    assert len(fast.rank(35.1, 129.0, k=5)) == 5


def test_from_cameras_reads_store_shaped_rows() -> None:
    lat, lon = to_wgs84(PX, PY - 50)
    rows = [SimpleNamespace(id=7, lat=lat, lon=lon, direction_deg=None, fov_deg=360.0,
                            range_m=80.0, ptz=True),
            SimpleNamespace(id=9, lat=lat, lon=lon, direction_deg=0.0, fov_deg=90.0,
                            range_m=80.0, ptz=False)]
    idx = CameraIndex.from_cameras(rows)
    assert ids(idx.rank(*POINT)) == [9, 7]
    assert list(idx.ids) == [7, 9]


def test_unplayable_cameras_never_rank_but_stay_in_the_index() -> None:
    """A retired camera, one in maintenance and one without a stream URL
    (how every imported camera starts) sit right at the point, looking at
    it: they still have cones for the map, but no tile."""
    lat, lon = to_wgs84(PX, PY - 20)
    far_lat, far_lon = to_wgs84(PX, PY - 300)

    def cam(cid: int, status: str, url: str, south: bool = False) -> SimpleNamespace:
        return SimpleNamespace(id=cid, lat=far_lat if south else lat,
                               lon=far_lon if south else lon, direction_deg=0.0, fov_deg=90.0,
                               range_m=80.0, ptz=False, status=status, stream_url=url)

    rows = [cam(1, "retired", "rtsp://cam/1"), cam(2, "maintenance", "rtsp://cam/2"),
            cam(3, "unknown", ""), cam(4, "active", "rtsp://cam/4", south=True),
            cam(5, "Retired ", "rtsp://cam/5"), cam(6, "unknown", "  ")]
    idx = CameraIndex.from_cameras(rows)
    assert len(idx) == 6 and idx.playable_count == 1
    assert list(idx.playable) == [False, False, False, True, False, False]
    assert idx.cone_rings().shape[0] == 6  # all of them drawn
    assert ids(idx.rank(*POINT, k=9)) == [4]  # the far one, since it is the only one that plays
    # A bus CameraView carries whether there is a stream, not the URL.
    views = [SimpleNamespace(**{k: v for k, v in vars(r).items() if k != "stream_url"},
                             has_stream=bool(r.stream_url.strip())) for r in rows]
    assert list(CameraIndex.from_cameras(views).playable) == list(idx.playable)
    unknown = [SimpleNamespace(**{k: v for k, v in vars(r).items() if k != "stream_url"})
               for r in rows]
    assert ids(CameraIndex.from_cameras(unknown).rank(*POINT, k=9)) == [3, 6, 4]
    nothing = CameraIndex([1], [lat], [lon], [0.0], [90.0], [80.0], playable=[False])
    assert nothing.rank(*POINT) == [] and len(nothing) == 1


def test_is_playable() -> None:
    assert mc.is_playable("active", "rtsp://x") and mc.is_playable("unknown", "http://x")
    assert mc.is_playable("unknown", None)  # URL not known here: trust the status
    assert not mc.is_playable("unknown", "")
    assert not mc.is_playable("retired", "rtsp://x")
    assert not mc.is_playable("maintenance", None)


def test_live_beats_offline_when_close_but_not_a_camera_that_sees_the_point() -> None:
    idx = index_at([
        (0, -40, 0.0, 90, 80, False),   # 1: 40 m south, looking at the point
        (0, -45, 0.0, 90, 80, False),   # 2: 45 m south, looking at it too
        (0, 60, 0.0, 90, 80, False),    # 3: 60 m north, facing away
    ])
    assert ids(idx.rank(*POINT)) == [1, 2, 3]
    ranked = idx.rank(*POINT, offline={1})
    assert ids(ranked) == [2, 1, 3]  # a close call: the live one first
    assert ranked[1].offline and not ranked[0].offline
    assert ranked[1].score == pytest.approx(idx.rank(*POINT)[0].score - mc.OFFLINE_PENALTY)
    # Both facing-the-point cameras offline: they still beat one that cannot see it.
    assert ids(idx.rank(*POINT, offline={1, 2})) == [1, 2, 3]
    # The search widens correctly when the penalty applies (same as brute force).
    assert ids(idx.rank(*POINT, offline=[1, 2, 3], k=2)) == [1, 2]


def test_ranking_with_offline_cameras_equals_scoring_every_camera(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    n = 2000
    args = (np.arange(n), rng.uniform(37.5, 37.6, n), rng.uniform(126.95, 127.05, n),
            np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 360, n)),
            rng.choice([60.0, 90.0, 360.0], n), rng.uniform(30, 150, n), rng.random(n) < 0.1,
            rng.random(n) < 0.8)
    down = set(rng.choice(n, 300, replace=False).tolist())
    fast = CameraIndex(*args)
    monkeypatch.setattr(mc, "MIN_SEARCH_M", 1e8)
    brute = CameraIndex(*args)
    playable = set(np.flatnonzero(args[-1]).tolist())
    for _ in range(30):
        p_lat, p_lon = rng.uniform(37.5, 37.6), rng.uniform(126.95, 127.05)
        got = fast.rank(p_lat, p_lon, None, 9, offline=down)
        assert got == brute.rank(p_lat, p_lon, None, 9, offline=down)
        assert {r.camera_id for r in got} <= playable
        assert all(r.offline == (r.camera_id in down) for r in got)


def test_bad_registry_input_is_refused() -> None:
    with pytest.raises(ValueError, match="lon has 1 values for 2 cameras"):
        CameraIndex([1, 2], [37.5, 37.5], [127.0], [0, 0], [90, 90], [80, 80])
    with pytest.raises(ValueError, match="range_m"):
        CameraIndex([1], [37.5], [127.0], [0], [90], [0])
    with pytest.raises(ValueError, match="out of range"):
        CameraIndex([1], [137.5], [127.0], [0], [90], [80])


def test_cone_rings() -> None:
    rings = cone_rings([100.0, 0.0], [200.0, 0.0], [90.0, None], [60.0, 90.0], [50.0, 10.0],
                       arc_points=5)
    assert rings.shape == (2, 7, 2)
    cone, circle = rings
    assert (cone[0] == cone[-1]).all() and (circle[0] == circle[-1]).all()
    assert tuple(cone[0]) == (100.0, 200.0)  # apex at the camera
    arc = cone[1:-1] - (100.0, 200.0)
    assert np.hypot(*arc.T) == pytest.approx(50.0)
    compass = np.degrees(np.arctan2(arc[:, 0], arc[:, 1]))
    assert compass == pytest.approx([60, 75, 90, 105, 120])
    assert np.hypot(*circle.T) == pytest.approx(10.0)  # unknown direction: a circle
    lat, lon = to_wgs84(PX, PY)
    projected = cone_polygons([lat], [lon], [0.0], [90.0], [80.0])
    assert projected.shape == (1, 18, 2)
    assert projected[0, 0] == pytest.approx((PX, PY))
    with pytest.raises(ValueError):
        cone_rings([0.0], [0.0], [0.0], [90.0], [10.0], arc_points=1)


@pytest.mark.parametrize(
    ("text", "deg", "ptz"),
    [
        ("북측", 0.0, False), ("남동방향", 135.0, False), ("동쪽 방향", 90.0, False),
        ("정북", 0.0, False), ("북북동", 22.5, False), ("동남동", 112.5, False),
        ("놀이터(남측)", 180.0, False), ("서측 인도", 270.0, False), ("북서", 315.0, False),
        ("NE", 45.0, False), ("north-east", 45.0, False), ("South", 180.0, False),
        ("45도", 45.0, False), ("방위각 120", 120.0, False), ("120", 120.0, False),
        ("북측, 북측", 0.0, False),
        ("360도", None, True), ("회전형", None, True), ("PTZ", None, True),
        ("정면", None, False), ("", None, False), ("도로 방향", None, False),
        ("성수동 방향", None, False), ("서울방면", None, False), ("남동구청 방향", None, False),
        ("남북", None, False), ("동, 서", None, False), ("4방향", None, False),
        ("nan", None, False),
    ],
)
def test_parse_view_direction(text: str, deg: float | None, ptz: bool) -> None:
    got = parse_view_direction(text)
    assert (got.deg, got.ptz) == (deg, ptz)
    assert got.fov_deg == (360.0 if ptz else 90.0)
