"""``childsafe bench cameras`` runs end to end through the command line:
rankings over the registry sizes asked for, then the console's CPU with a
grid playing.  A smoke test: tiny sizes, a second each, and no judgement
of the numbers (benchmarks are not timed tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,.]+"


@pytest.mark.xvfb
@pytest.mark.slow
def test_bench_cameras_prints_rankings_and_grid_cpu(xvfb_display: str, tmp_path: Path) -> None:
    env = {"DISPLAY": xvfb_display, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "console", "bench", "cameras", "--seconds", "1",
         "--cameras", "300", "2000", "--tiles", "4", "--size", "160x120",
         "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("childsafe bench cameras: rankings over 300, 2,000 cameras; "
                          "console CPU with 4 cameras playing"), out
    for n in ("300", "2,000"):
        assert re.search(rf"cameras +{n}: +{NUMBER} rankings/s .*p99 {NUMBER} us", out), out
    grid = re.search(rf"cctv 2×2 grid playing \(160x120@10 h264\): console CPU ({NUMBER})% "
                     rf"of one core .*(\d)/4 tiles live", out)
    assert grid, out
    assert float(grid.group(1).replace(",", "")) > 0  # it measured something
    assert "could not run" not in out
