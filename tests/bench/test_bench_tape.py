"""Smoke test of ``childsafe bench tape`` on a tiny load: every figure is a
positive number and the report renders. Times are printed by the bench,
never asserted here (DESIGN.md: benchmarks, not timed tests)."""

from __future__ import annotations

import math

from tests.bench import bench_tape as bt

TINY = (("tiny", 400, 8.0),)


def test_the_bench_measures_both_codecs_and_reports() -> None:
    result = bt.run(traffic_s=1.0, loads=TINY)
    (r,) = result["runs"]
    assert r["frames"] > 20  # a fix batch per 50 ms window, and more
    for label in ("zlib1", "none"):
        v = r[label]
        for key in ("disk_bytes", "raw_bytes", "records", "blocks", "mb_per_hour",
                    "cpu_s_per_hour", "core_percent", "read_10min_s", "read_hour_s",
                    "read_alerts_hour_s", "all_bytes"):
            assert isinstance(v[key], int | float) and math.isfinite(v[key]) and v[key] > 0, (
                label, key, v[key])
        assert v["records"] == r["frames"] and v["skipped"] == 0
        assert v["alert_count"] > 0  # the first SOS opens at once
    assert 0 < r["ratio"] < 1
    text = "\n".join(bt.headline(result)) + "\n" + bt.format_result(result)
    assert "tape tiny (400 children, 1 fix/8 s)" in text
    assert "extrapolated" in text and "none (default)" in text


def test_the_traffic_is_real_bus_messages() -> None:
    from console.tape_keeper import TAPE_TOPICS
    from models.messages import FixBatch, decode, fix_columns, topic_of

    frames = bt.traffic(400, 8.0, 0.5)
    kinds = {}
    for ts, topic, body in frames:
        msg = decode(body)
        assert topic_of(msg) == topic
        kinds[topic] = msg
        assert ts >= frames[0][0]
    fixes = kinds[b"fix.batch"]
    assert isinstance(fixes, FixBatch)
    assert len(fix_columns(fixes)["lat"]) == len(fixes.device_ids) > 0
    assert set(kinds) >= {b"fix.batch", b"zone.counts", b"alert.opened"}
    assert all(topic.startswith(TAPE_TOPICS) for topic in kinds)  # what the recorder tapes
