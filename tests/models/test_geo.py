"""models.geo: WGS84 <-> EPSG:5179 and reverse geocoding to "구 동"."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.geo import normalize_district, place_name, to_map, to_wgs84

SEOUL_FOREST = (37.5444, 127.0374)
SINDORIM_ELEM = (37.5085, 126.8875)
SINHAK_ELEM = (37.6655, 127.0420)


def test_demo_sites_reverse_geocode_to_gu_dong() -> None:
    assert place_name(*SEOUL_FOREST) == "성동구 성수동1가"
    assert place_name(*SINDORIM_ELEM) == "구로구 신도림동"
    assert place_name(*SINHAK_ELEM).startswith("도봉구")
    assert place_name(*SINHAK_ELEM) == "도봉구 방학동"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("서울시도봉구", "도봉구"),
        ("서울시노원구", "노원구"),
        ("서울특별시성북구", "성북구"),
        ("서울특별시 중구", "중구"),
        ("성동구", "성동구"),
        ("성남시분당구", "성남시 분당구"),
        ("수원시", "수원시"),
    ],
)
def test_normalize_district(raw: str, clean: str) -> None:
    assert normalize_district(raw) == clean


def test_place_name_outside_korea_is_empty() -> None:
    assert place_name(35.0, 129.0) == ""  # open sea off Busan
    assert place_name(0.0, 0.0) == ""
    assert place_name(48.8566, 2.3522) == ""  # Paris


def test_place_name_elsewhere_in_korea_keeps_city_and_gu() -> None:
    assert place_name(37.39, 127.11) == "성남시 분당구 백현동"


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (math.nan, 127.0),
        (37.5, math.nan),
        (math.inf, 127.0),
        (91.0, 127.0),
        (-90.5, 127.0),
        (37.5, 180.5),
        (37.5, -181.0),
        ("north", 127.0),
        (None, 127.0),
    ],
)
def test_place_name_rejects_bad_input(lat: object, lon: object) -> None:
    with pytest.raises(ValueError):
        place_name(lat, lon)  # type: ignore[arg-type]


def test_to_map_scalar_is_metres_in_epsg5179() -> None:
    x, y = to_map(*SEOUL_FOREST)
    assert isinstance(x, float) and isinstance(y, float)
    # EPSG:5179 has false origin (1,000,000 E, 2,000,000 N) at 38 N 127.5 E.
    assert x == pytest.approx(959_135, abs=5)
    assert y == pytest.approx(1_949_553, abs=5)


def test_distances_are_metres() -> None:
    # 0.01 degree of latitude is about 1,109 m at 37.5 N.
    x0, y0 = to_map(37.50, 127.0)
    x1, y1 = to_map(37.51, 127.0)
    assert math.hypot(x1 - x0, y1 - y0) == pytest.approx(1109.4, abs=3)


def test_round_trip_arrays() -> None:
    rng = np.random.default_rng(3)
    lat = rng.uniform(37.4, 37.7, 1000)
    lon = rng.uniform(126.7, 127.2, 1000)
    x, y = to_map(lat, lon)
    assert x.shape == y.shape == (1000,)
    assert x.dtype == np.float64
    lat2, lon2 = to_wgs84(x, y)
    np.testing.assert_allclose(lat2, lat, atol=1e-9)
    np.testing.assert_allclose(lon2, lon, atol=1e-9)


def test_to_wgs84_scalar() -> None:
    lat, lon = to_wgs84(*to_map(*SINDORIM_ELEM))
    assert (lat, lon) == pytest.approx(SINDORIM_ELEM, abs=1e-9)


def test_nan_rejected_unless_allowed() -> None:
    lat = np.array([37.5, np.nan, 37.6])
    lon = np.array([127.0, 127.0, np.nan])
    with pytest.raises(ValueError, match="NaN"):
        to_map(lat, lon)
    x, y = to_map(lat, lon, allow_nan=True)
    assert np.isfinite(x[0]) and np.isfinite(y[0])
    assert np.isnan(x[1:]).all() and np.isnan(y[1:]).all()
    with pytest.raises(ValueError, match="NaN"):
        to_wgs84(np.array([np.nan]), np.array([1.9e6]))
    lat2, _ = to_wgs84(np.array([np.nan]), np.array([1.9e6]), allow_nan=True)
    assert np.isnan(lat2[0])


def test_out_of_range_rejected_even_with_allow_nan() -> None:
    with pytest.raises(ValueError, match="out of range"):
        to_map(np.array([37.5, 95.0]), np.array([127.0, 127.0]), allow_nan=True)
    with pytest.raises(ValueError, match="out of range"):
        to_map(37.5, 200.0)
    with pytest.raises(ValueError):
        to_map(np.inf, 127.0, allow_nan=True)
    with pytest.raises(ValueError):
        to_wgs84(np.inf, 1.9e6)


def test_shape_mismatch_and_non_numbers_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        to_map(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError):
        to_map("a", "b")  # type: ignore[arg-type]
