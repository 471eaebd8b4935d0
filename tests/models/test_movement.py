"""Unusual movement: only a sustained run of fast, accurate steps raises."""

from __future__ import annotations

import numpy as np

from models.movement import SUSTAIN_S, SpeedWatch


def walk(w: SpeedWatch, slot: int, t0: float, speed_kmh: float, steps: int, every_s: float = 10.0,
         accuracy: float = 10.0, limit: float = 15.0, x0: float = 0.0
         ) -> tuple[list[int], list[int], float]:
    """Move ``slot`` east at ``speed_kmh``; all the unusual/ended slots seen."""
    unusual: list[int] = []
    ended: list[int] = []
    x = x0
    for i in range(steps):
        t = t0 + i * every_s
        u, e = w.step(np.array([slot]), np.array([x]), np.array([0.0]), np.array([t]),
                      np.array([accuracy]), np.array([limit]))
        unusual += u
        ended += e
        x += speed_kmh / 3.6 * every_s
    return unusual, ended, x


def test_walking_never_raises() -> None:
    w = SpeedWatch(2)
    assert walk(w, 0, 0.0, 5.0, 100)[:2] == ([], [])


def test_a_car_for_two_minutes_raises_once_and_ends_when_slow() -> None:
    w = SpeedWatch(2)
    steps = int(SUSTAIN_S / 10) + 5
    unusual, ended, x = walk(w, 1, 0.0, 50.0, steps)
    assert unusual == [1]  # once, not on every fast step after
    assert w.speed_kmh[1] > 45
    unusual, ended, _ = walk(w, 1, steps * 10.0, 4.0, 3, x0=x)
    assert unusual == [] and ended == [1]


def test_a_short_burst_or_a_coarse_jump_is_not_unusual() -> None:
    w = SpeedWatch(1)
    assert walk(w, 0, 0.0, 60.0, 5)[0] == []  # 40 s of speed: a lift, not a kidnapping
    w2 = SpeedWatch(1)
    assert walk(w2, 0, 0.0, 200.0, 40, accuracy=400.0)[0] == []  # cell fixes jumping


def test_the_limit_is_per_child_profile() -> None:
    w = SpeedWatch(1)
    assert walk(w, 0, 0.0, 40.0, 30, limit=70.0)[0] == []  # a child who takes the bus


def test_grow_and_forget() -> None:
    w = SpeedWatch(1)
    w.grow(2)
    assert len(w.t) == 3 and not w.raised.any()
    walk(w, 2, 0.0, 50.0, 20)
    assert w.raised[2]
    w.forget([2])
    assert not w.raised[2] and not np.isfinite(w.t[2])
