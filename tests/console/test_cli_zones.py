"""``childsafe zones …`` and ``childsafe import zones``, through the real
argument parsing (a parser built the way ``console.cli`` builds its own) on
a fresh SQLite store in a private data dir."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from console.cli import build_parser
from db import changes
from db.store import open_store, sqlite_url
from models.zones import ZoneError

FOREST_RING = [[127.0336, 37.5422], [127.0413, 37.5422], [127.0413, 37.5470],
               [127.0336, 37.5470], [127.0336, 37.5422]]


def _file(path: Path, *features: dict[str, object]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(features)},
                               ensure_ascii=False), encoding="utf-8")
    return path


FOREST = {"type": "Feature", "properties": {"name": "Seoul Forest Park", "kind": "park"},
          "geometry": {"type": "Polygon", "coordinates": [FOREST_RING]}}
SINDORIM = {"type": "Feature", "properties": {"name": "Sindorim Elementary", "kind": "school",
                                              "radius_m": 300, "hours": "07:30-17:00"},
            "geometry": {"type": "Point", "coordinates": [126.8875, 37.5085]}}


def parser() -> argparse.ArgumentParser:
    """The real command line, as `childsafe` builds it."""
    return build_parser()


def run(data_dir: Path, *argv: str) -> int:
    args = parser().parse_args([*argv, "--data-dir", str(data_dir)])
    return int(args.fn(args))


def test_import_list_export_remove(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _file(data_dir / "zones.geojson", FOREST, SINDORIM)
    assert run(data_dir, "import", "zones", str(good)) == 0
    assert capsys.readouterr().out.strip().endswith("2 added, 0 updated, 0 unchanged")

    assert run(data_dir, "zones", "add", "Sinhak Elementary", "--kind", "school",
               "--lat", "37.6655", "--lon", "127.0420", "--radius", "300") == 0
    assert "added zone 3 Sinhak Elementary (school, 도봉구)" in capsys.readouterr().out

    assert run(data_dir, "zones", "list") == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [r[:4] for r in rows] == [["1", "Seoul Forest Park", "park", "polygon"],
                                     ["2", "Sindorim Elementary", "school", "circle"],
                                     ["3", "Sinhak Elementary", "school", "circle"]]
    assert rows[1][4:] == ["37.508500", "126.887500", "300", "07:30-17:00", "구로구", "v1"]

    out = data_dir / "export.geojson"
    assert run(data_dir, "zones", "export", "--out", str(out)) == 0
    assert "exported 3 zone(s)" in capsys.readouterr().out
    assert run(data_dir, "import", "zones", str(out)) == 0
    assert "0 added, 0 updated, 3 unchanged" in capsys.readouterr().out
    assert run(data_dir, "zones", "export") == 0
    assert json.loads(capsys.readouterr().out) == json.loads(out.read_text(encoding="utf-8"))

    assert run(data_dir, "zones", "remove", "Sinhak Elementary") == 0
    assert "removed zone 3 Sinhak Elementary" in capsys.readouterr().out
    with pytest.raises(ZoneError, match="no zone 'Sinhak Elementary'"):
        run(data_dir, "zones", "remove", "Sinhak Elementary")


def test_a_bad_file_imports_nothing(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unclosed = {**FOREST, "properties": {"name": "Forest, unclosed", "kind": "park"},
                "geometry": {"type": "Polygon", "coordinates": [FOREST_RING[:-1]]}}
    swapped = {**SINDORIM, "properties": {"name": "Sindorim swapped", "kind": "school",
                                          "radius_m": 300},
               "geometry": {"type": "Point", "coordinates": [37.5085, 126.8875]}}
    bad = _file(data_dir / "bad.geojson", SINDORIM, unclosed, swapped)
    assert run(data_dir, "import", "zones", str(bad)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0].endswith("bad.geojson: 2 problem(s); nothing was imported")
    assert lines[1].startswith("  features[1] 'Forest, unclosed': exterior ring is not closed")
    assert lines[2].startswith("  features[2] 'Sindorim swapped': latitude and longitude are "
                               "swapped")
    engine, sessions = open_store(sqlite_url(data_dir))
    with sessions() as s:
        assert changes.version(s, "zones") == 0
    engine.dispose()
    assert run(data_dir, "zones", "list") == 0
    assert capsys.readouterr().out == ""

    assert run(data_dir, "import", "zones", str(data_dir / "missing.geojson")) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses an unknown kind before any work
        run(data_dir, "zones", "add", "x", "--kind", "mall", "--lat", "37.5", "--lon", "127",
            "--radius", "100")
    with pytest.raises(ZoneError, match=r"radius_m 0\.0"):
        run(data_dir, "zones", "add", "x", "--kind", "park", "--lat", "37.5", "--lon", "127",
            "--radius", "0")
