"""The alerts benchmark runs through on a small installation (a smoke test:
it must produce its numbers, get commands accepted and see every SOS it
sent in the console; the numbers themselves are not judged, benchmarks are
not timed tests)."""

from __future__ import annotations

import pytest

from tests.bench import bench_alerts

COMMAND_KEYS = ("accepted", "refused", "accepted_per_s", "refused_per_s", "refused_by_code",
                "reply_p50_ms", "reply_p99_ms", "alerts_opened", "alerts_resolved",
                "cpu_percent")
LOAD_KEYS = ("sos_sent", "sos_samples", "sos_lost", "sos_p50_ms", "sos_p99_ms", "sos_max_ms",
             "bus_p99_ms", "sos_stages_ms", "accepted", "accepted_per_s", "reply_p99_ms",
             "alerts_worked", "cpu_percent")


@pytest.mark.slow
def test_alerts_bench_produces_its_numbers() -> None:
    r = bench_alerts.run(seconds=1.0, children=300, log=lambda _msg: None)

    commands, load = r["commands"], r["load"]
    assert set(COMMAND_KEYS) <= commands.keys()
    assert set(LOAD_KEYS) <= load.keys()
    assert commands["alerts_opened"] == commands["alerts_requested"] > 0
    assert commands["accepted"] > 0 and commands["alerts_resolved"] > 0
    assert set(commands["refused_by_code"]) <= {"stale"}, commands["refused_by_code"]
    # Every SOS sent in the load phase was answered and reached the console.
    assert 0 < load["sos_sent"] <= round(bench_alerts.SOS_RATE * 1.0)
    assert load["sos_http_ok"] == load["sos_sent"]
    assert load["sos_lost"] == 0 and load["sos_samples"] == load["sos_sent"]
    assert load["accepted"] > 0
    report = "\n".join(bench_alerts.headline(r)) + bench_alerts.format_result(r)
    assert "× the 100 ms budget" in report and "commands/s" in report
