"""The ingest benchmark's real-gateway part runs through on a small load
(a smoke test: it must produce numbers and no error; the numbers are not
judged, benchmarks are not timed tests). It runs in a process of its own,
as `childsafe bench` does: its load generators use multiprocessing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json
from tests.bench import bench_ingest
r = bench_ingest.run(seconds=2.0, connections=40, rate=2_000.0, load_procs=1, children=200,
                     micro=False, log=lambda _msg: None)
print(json.dumps({k: r.get(k) for k in ("gateway", "gateway_error")}, default=str))
"""


@pytest.mark.slow
def test_gateway_phase_produces_numbers_without_error() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["gateway_error"] is None, done.stderr[-3000:]
    gateway = result["gateway"]
    assert gateway["sent"] > 0
    assert gateway["bus_fixes_per_s"] > 0 and gateway["gateway_frames_per_s"] > 0
    assert gateway["lost_connections"] == 0
