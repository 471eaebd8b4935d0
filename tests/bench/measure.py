"""What every benchmark measures the same way: CPU ticks from /proc, rates
from sampled counters, and numbers reported against a DESIGN.md budget.

Why /proc and not psutil: these are three reads of one file each, and the
benchmarks run on the same Linux machines as CI.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores."""
    parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return total - idle, total


def rate(points: list[tuple[float, float]], start: float, end: float) -> float:
    """Growth per second of a sampled counter ``(t, value)`` between two times."""
    inside = [p for p in points if start <= p[0] <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return math.nan
    (t0, v0), (t1, v1) = inside[0], inside[-1]
    return (v1 - v0) / (t1 - t0)


def fmt(v: Any, unit: str = "") -> str:
    return "n/a" if not isinstance(v, int | float) or not math.isfinite(v) else f"{v:,.0f}{unit}"


def ratio_line(label: str, value: float, budget: float, unit: str,
               higher_is_better: bool = True) -> str:
    """``label: value = ratio× the budget (within|outside)``."""
    if not math.isfinite(value):
        return f"{label}: n/a (budget {budget:,.0f}{unit})"
    ratio = value / budget
    verdict = "within" if (ratio >= 1.0) == higher_is_better else "outside"
    return (f"{label}: {value:,.0f}{unit} = {ratio:.2f}× the {budget:,.0f}{unit} budget "
            f"({verdict})")
