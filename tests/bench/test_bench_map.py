"""Smoke test of ``childsafe bench map`` on 2,000 children for a fraction of
a second: every phase runs and returns sane figures, and the report renders.
Rates and times are printed by the bench, never asserted here (DESIGN.md:
benchmarks, not timed tests)."""

from __future__ import annotations

import math

from pytestqt.qtbot import QtBot

from tests.bench import _map
from tests.bench import bench_map as bm

MARKERS = 2_000


def finite_positive(result: dict[str, float], keys: tuple[str, ...]) -> None:
    for key in keys:
        v = result[key]
        assert isinstance(v, float) and math.isfinite(v) and v > 0, (key, v)


def test_each_phase_of_the_map_bench_runs_on_a_small_city(qtbot: QtBot) -> None:
    r = bm.run(MARKERS, seconds=0.3)
    assert r["markers"] == MARKERS
    assert 0.9 * MARKERS < r["drawn"] <= MARKERS  # a few children have no fix yet
    finite_positive(r, ("redraw_frames", "redraw_paints", "redraw_fps", "redraw_ms_per_frame",
                        "redraw_cpu_ms_per_frame", "redraw_ms_set_positions",
                        "pan_frames", "pan_paints", "pan_fps", "pan_ms_per_frame",
                        "pan_cpu_ms_per_frame", "rss_before_view_mb", "rss_view_mb", "rss_mb"))
    assert r["redraw_paints"] <= r["redraw_frames"]  # a paint per frame at most
    assert r["pan_renders"] == r["pan_paints"]  # a moved view is stamped afresh
    assert r["rss_view_mb"] >= r["rss_before_view_mb"] * 0.5


def test_the_cold_start_decodes_a_real_snapshot_onto_the_map(qtbot: QtBot) -> None:
    c = bm.cold_start(MARKERS)
    assert 0.9 * MARKERS < c["drawn"] <= MARKERS
    assert c["zones"] == 3 and c["cameras"] == bm.SNAPSHOT_CAMERAS
    finite_positive(c, ("snapshot_bytes", "snapshot_zlib1_bytes", "decode_s", "state_s",
                        "set_positions_s", "first_paint_s", "cold_start_s", "view_s"))
    assert c["snapshot_bytes"] < c["snapshot_max_body_bytes"]
    steps = sum(c[k] for k in ("decode_s", "state_s", "take_s", "zones_s", "set_positions_s",
                               "first_paint_s"))
    assert math.isclose(c["cold_start_s"], steps, rel_tol=1e-6)


def test_the_snapshot_is_the_engine_message_with_every_child() -> None:
    from models.basemap import load_basemap
    from models.messages import Snapshot, decode, position_columns

    snap = decode(bm.snapshot_body(MARKERS, load_basemap(), zones=5, cameras=7, readers=2))
    assert isinstance(snap, Snapshot)
    assert len(snap.children) == len(set(snap.children)) == MARKERS
    assert (len(snap.zones), len(snap.cameras), len(snap.readers)) == (5, 7, 2)
    cols = position_columns(snap.positions)
    assert 0.9 * MARKERS < len(cols["slots"]) <= MARKERS
    assert (cols["lat"] > 37.3).all() and (cols["lat"] < 37.8).all()  # Seoul
    assert {a.child_slot for a in snap.alerts} <= set(cols["slots"].tolist())


def test_the_command_line_report_has_both_rates_memory_and_cold_start(qtbot: QtBot) -> None:
    heads, details = _map(0.2, [MARKERS])
    text = "\n".join(heads)
    assert f"map {MARKERS:,} markers: redraw" in text
    assert "the 30 fps budget" in text and "pan/zoom" in text and "the 60 fps budget" in text
    assert "MB with the markers" in text
    assert f"map {MARKERS:,} cold start:" in text and "the 2 s budget" in text
    assert len(details) == 1 and "cold.snapshot_bytes=" in details[0]
