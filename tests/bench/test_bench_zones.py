"""Smoke test of ``childsafe bench zones`` on tiny sizes: every figure is
a positive number, the report renders, and the methods agree on containment
(PostGIS with shapely's raw containment pair for pair; the geofence's first
sightings with it up to its hysteresis margin). Times are printed by the
bench, never asserted here (DESIGN.md: benchmarks, not timed tests)."""

from __future__ import annotations

import contextlib

import pytest

from tests.bench import bench_zones as bz
from tests.bench.postgis import PostGISUnavailable, postgis_database
from tests.services import free_tcp_port

TINY = {"children": 300, "fixes": 600, "batch": 200}


def _check_geofence_rows(r: dict[str, object]) -> None:
    g, s, fs = r["geofence"], r["shapely"], r["first_sighting"]
    assert isinstance(g, dict) and isinstance(s, dict) and isinstance(fs, dict)
    assert g["fixes_per_s"] > 0 and s["fixes_per_s"] > 0
    assert g["candidates_per_fix"] > 0
    assert r["fixes"] == TINY["fixes"] and r["inside_pairs"] > 0
    # first sightings: nothing confirmed that is not inside, nothing left
    # unconfirmed that is deeper inside than the fix's hysteresis margin
    assert fs["confirmed"] > 0 and fs["extra"] == 0 and fs["unexplained"] == 0
    assert fs["confirmed"] + fs["held_at_fence"] == fs["raw"]


def test_zones_are_school_sized_valid_polygons_some_concave() -> None:
    import shapely

    from models.zones import metric_geometries

    zones = bz.make_zones(200, seed=5)
    polys = metric_geometries(zones.views)
    assert all(shapely.is_valid(polys))
    across = 2 * zones.r
    assert across.min() >= bz.DIAMETER_M[0] and across.max() <= bz.DIAMETER_M[1]
    convex = shapely.area(polys) >= shapely.area(shapely.convex_hull(polys)) - 1e-6
    assert (~convex).sum() == zones.concave > 0


def test_geofence_rows_without_postgis_say_why() -> None:
    result = bz.run((60,), **TINY, postgis=False)
    (r,) = result["runs"]
    _check_geofence_rows(r)
    text = "\n".join(bz.headline(result)) + "\n" + bz.format_result(result)
    assert "geofence (Geofence.step)" in text and "--no-postgis" in text


def test_an_unreachable_postgis_still_reports_the_geofence_rows() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_tcp_port()}/nothing"
    result = bz.run((60,), **TINY, pg_url=url)
    assert result["postgis_error"] and "cannot create a database" in result["postgis_error"]
    _check_geofence_rows(result["runs"][0])
    assert "PostGIS: cannot create a database" in bz.headline(result)[0]


@pytest.mark.postgres
def test_postgis_and_the_geofence_agree_on_containment(postgres_url: str) -> None:
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgis_database(postgres_url))
        except PostGISUnavailable as exc:
            pytest.skip(f"PostGIS part: {exc}")
        r = bz.run_one(80, **TINY, pg_url=url)
    _check_geofence_rows(r)
    assert "postgis_error" not in r, r.get("postgis_error")
    pg = r["postgis"]
    for method in bz.PG_METHODS:
        assert pg[method]["fixes_per_s"] > 0, method
        assert pg[method]["compared"] > 0 and pg[method]["differ"] == 0, method
    assert "Index Scan using zone_geom" in pg["plan"]
    head = bz.headline({"runs": [r], "postgis_error": None})[0]
    assert "PostGIS ST_Contains" in head and "agrees" in head
