"""Every child's recent path, for the trainer's map in a training session.

A trainer watching trainees work a scenario needs to see where children
went, not only where they are: who left the zone, which way, how fast. The
console's frames carry only the latest positions, so this keeps the last
``window_s`` of them per slot in a ring buffer, sampled every ``step_s`` of
the session's time (a frame at 30 fps would otherwise fill it with
duplicates), and hands the map all of it as one pair of arrays with a NaN
between children: one pyqtgraph curve with ``connect="finite"`` draws
thousands of trails in a single call.

Qt-free, so it is tested without a display. Memory is
``capacity x children x 2`` floats (120 x 400 x 2 for a scenario); a
roster of another size, or time going backwards (a seek back in the
replay), starts it again.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


class Trails:
    def __init__(self, window_s: float = 600.0, step_s: float = 5.0) -> None:
        """``window_s``: how far back a trail reaches; ``step_s``: the least
        session time between two stored samples."""
        if window_s <= 0 or step_s <= 0:
            raise ValueError("window_s and step_s must be positive")
        self.window_s = float(window_s)
        self.step_s = float(step_s)
        self.capacity = math.ceil(window_s / step_s) + 1
        self.reset()

    def reset(self) -> None:
        """Forget every trail (a seek back: the old paths are of another run)."""
        self._t = np.full(self.capacity, np.nan)
        self._x = np.empty((self.capacity, 0))
        self._y = np.empty((self.capacity, 0))
        self._head = 0  # the ring's next row
        self._count = 0
        self._last_t = -math.inf  # the newest stored sample's time
        self._seen_t = -math.inf  # the newest position's time, stored or not
        self._now_x = np.empty(0)
        self._now_y = np.empty(0)

    @property
    def children(self) -> int:
        return self._x.shape[1]

    def __len__(self) -> int:
        """Samples held (each one row of every child's position)."""
        return self._count

    def add(self, t: float, x: npt.ArrayLike, y: npt.ArrayLike) -> bool:
        """Positions (map metres, NaN: none) of every slot at session time
        ``t``; returns whether they were stored as a new sample (else they
        are only the trails' current heads)."""
        xa = np.asarray(x, dtype=np.float64).reshape(-1)
        ya = np.asarray(y, dtype=np.float64).reshape(-1)
        if xa.shape != ya.shape:
            raise ValueError(f"x and y differ in length ({len(xa)} and {len(ya)})")
        if t < self._seen_t or len(xa) != self.children:
            self.reset()
            self._x = np.full((self.capacity, len(xa)), np.nan)
            self._y = np.full((self.capacity, len(xa)), np.nan)
        self._seen_t = t
        self._now_x, self._now_y = xa.copy(), ya.copy()
        if self._count and t - self._last_t < self.step_s:
            return False
        self._t[self._head] = t
        self._x[self._head] = xa
        self._y[self._head] = ya
        self._head = (self._head + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)
        self._last_t = t
        return True

    def segments(self) -> tuple[Floats, Floats]:
        """Every child's trail, oldest first, ending where it is now, with a
        NaN after each child: x and y for one ``connect="finite"`` curve.
        Children with fewer than two positions in the window are left out."""
        if not self._count or not self.children:
            return np.empty(0), np.empty(0)
        order = (np.arange(self._count) + self._head - self._count) % self.capacity
        keep = order[self._t[order] >= self._seen_t - self.window_s]
        xs, ys = self._x[keep], self._y[keep]  # (samples, children)
        if self._seen_t > self._last_t:  # the newest positions, not a sample yet
            xs, ys = np.vstack([xs, self._now_x]), np.vstack([ys, self._now_y])
        moving = (np.isfinite(xs) & np.isfinite(ys)).sum(axis=0) >= 2
        xs, ys = xs[:, moving], ys[:, moving]
        breaks = np.full((1, xs.shape[1]), np.nan)
        # column-major: each child's samples, then its NaN
        return (np.vstack([xs, breaks]).ravel(order="F"),
                np.vstack([ys, breaks]).ravel(order="F"))
