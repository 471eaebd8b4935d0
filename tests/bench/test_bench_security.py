"""Smoke test of ``childsafe bench security``'s bus phase: both modes carry
every batch through a real bus process, and the report renders. Times are
printed, never asserted."""

from __future__ import annotations

from tests.bench import bench_security as bs


def test_the_bus_phase_carries_every_batch_with_and_without_curve() -> None:
    r = {"bus": {m: bs.bus_run(m, batches=200) for m in bs.MODES}, "pipeline": {}}
    for mode in bs.MODES:
        assert r["bus"][mode]["batches"] == 200, mode
    lines = bs.headline(r)
    assert "CURVE" in lines[0] and "×" in lines[0]
    assert "bus curve: 200 of 200" in bs.format_result(r)
