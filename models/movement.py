"""Unusual movement: a child moving faster than they can on foot (or by the
bus they take) for long enough that it is not a GPS jump.

Why sustained, and why from positions: a single fast step is usually a
fix jumping between a building's reflections, and devices' own speed
fields are missing or wrong on cheap watches. So the speed here is the
distance between two accurate fixes over their time apart, and only a run
of fast steps lasting ``SUSTAIN_S`` raises anything; the operator then
judges (a car with a parent, or a stranger's car).
"""

from __future__ import annotations

import numpy as np

SUSTAIN_S = 120.0  # fast for this long before it is unusual
MIN_STEP_S = 5.0  # fixes closer in time than this say nothing about speed
MAX_STEP_S = 300.0  # ... and a gap longer than this breaks a run
MAX_ACCURACY_M = 50.0  # coarser fixes (cell towers, tag readers) are not used


class SpeedWatch:
    """Per child slot: the last accurate fix and since when they have been
    fast. Grows with the roster like the tracker."""

    def __init__(self, n: int) -> None:
        self.x = np.full(n, np.nan)
        self.y = np.full(n, np.nan)
        self.t = np.full(n, -np.inf)
        self.fast_since = np.full(n, np.nan)  # NaN: not fast now
        self.raised = np.zeros(n, dtype=bool)  # an alert is out for this run
        self.speed_kmh = np.zeros(n)  # the last measured step, for the alert and the card

    def grow(self, k: int) -> None:
        self.x = np.concatenate([self.x, np.full(k, np.nan)])
        self.y = np.concatenate([self.y, np.full(k, np.nan)])
        self.t = np.concatenate([self.t, np.full(k, -np.inf)])
        self.fast_since = np.concatenate([self.fast_since, np.full(k, np.nan)])
        self.raised = np.concatenate([self.raised, np.zeros(k, dtype=bool)])
        self.speed_kmh = np.concatenate([self.speed_kmh, np.zeros(k)])

    def step(self, slots: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray,
             accuracy: np.ndarray, limit_kmh: np.ndarray) -> tuple[list[int], list[int]]:
        """Take the newest applied fix of each slot (in order, as the tracker
        applied them); returns (slots that became unusual, slots whose fast
        run ended after an alert)."""
        good = np.isfinite(accuracy) & (accuracy <= MAX_ACCURACY_M)
        s, x, y, t, limit = slots[good], x[good], y[good], t[good], limit_kmh[good]
        if len(s) == 0:
            return [], []
        dt = t - self.t[s]
        measured = (dt >= MIN_STEP_S) & np.isfinite(self.x[s])
        kmh = np.where(measured, np.hypot(x - self.x[s], y - self.y[s])
                       / np.maximum(dt, MIN_STEP_S) * 3.6, 0.0)
        fast = measured & (kmh > limit) & (dt <= MAX_STEP_S)
        slow = measured & ~fast
        starting = fast & ~np.isfinite(self.fast_since[s])
        # the run began at the previous fix: that is when the child left at speed
        self.fast_since[s[starting]] = self.t[s[starting]]
        ended = s[slow & self.raised[s]].tolist()
        self.fast_since[s[slow]] = np.nan
        self.raised[s[slow]] = False
        self.speed_kmh[s[measured]] = kmh[measured]
        long_enough = fast & (t - self.fast_since[s] >= SUSTAIN_S) & ~self.raised[s]
        unusual = s[long_enough].tolist()
        self.raised[s[long_enough]] = True
        keep = dt > 0  # a late fix never moves the reference back
        self.x[s[keep]], self.y[s[keep]], self.t[s[keep]] = x[keep], y[keep], t[keep]
        return unusual, ended

    def forget(self, slots: np.ndarray | list[int]) -> None:
        s = np.asarray(slots, dtype=np.int64)
        self.x[s] = np.nan
        self.y[s] = np.nan
        self.t[s] = -np.inf
        self.fast_since[s] = np.nan
        self.raised[s] = False
