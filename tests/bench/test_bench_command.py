"""The installed ``childsafe`` script runs the benchmarks from any working
directory (the benchmarks live in the checkout, not in the package)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_childsafe_script_runs_bench_map_from_elsewhere(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("childsafe")
    assert script.exists(), "childsafe is installed into the venv by the bootstrap"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(script), "bench", "map", "--seconds", "0.3",
                           "--markers", "100000", "--data-dir", str(tmp_path / "data")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "map 100,000 markers:" in done.stdout and "fps" in done.stdout
