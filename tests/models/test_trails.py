"""The trainer's trails: a ring buffer per child, one NaN-broken curve for all."""

from __future__ import annotations

import numpy as np
import pytest

from models.trails import Trails


def children(xs: np.ndarray, ys: np.ndarray) -> list[list[tuple[float, float]]]:
    """Split the curve at its NaN breaks into each child's points."""
    out: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        if np.isnan(x):
            out.append(current)
            current = []
        else:
            current.append((x, y))
    assert not current, "the curve must end with a break"
    return out


def test_each_child_is_one_run_ending_where_it_is_now_with_a_break_after_it() -> None:
    trails = Trails(window_s=60, step_s=10)
    trails.add(0.0, [0.0, 100.0], [0.0, 100.0])
    trails.add(10.0, [1.0, 101.0], [0.0, 100.0])
    trails.add(15.0, [1.5, 101.5], [0.0, 100.0])  # within a step: the head only
    assert len(trails) == 2
    xs, ys = trails.segments()
    assert children(xs, ys) == [[(0.0, 0.0), (1.0, 0.0), (1.5, 0.0)],
                                [(100.0, 100.0), (101.0, 100.0), (101.5, 100.0)]]


def test_the_ring_keeps_only_the_window() -> None:
    trails = Trails(window_s=30, step_s=10)
    assert trails.capacity == 4
    for i in range(10):
        assert trails.add(10.0 * i, [float(i)], [0.0])
    assert len(trails) == trails.capacity
    (points,) = children(*trails.segments())
    # 60..90 s: the window's 30 s back from 90 s (the ring's oldest row is gone)
    assert [p[0] for p in points] == [6.0, 7.0, 8.0, 9.0]


def test_a_child_without_a_position_breaks_its_trail_and_one_never_seen_is_left_out() -> None:
    trails = Trails(window_s=100, step_s=1)
    nan = float("nan")
    trails.add(0.0, [0.0, nan, 5.0], [0.0, nan, 5.0])
    trails.add(1.0, [1.0, nan, nan], [1.0, nan, nan])
    trails.add(2.0, [2.0, nan, 7.0], [2.0, nan, 7.0])
    xs, _ = trails.segments()
    # child 0 whole, child 1 never seen (left out), child 2 with its gap as a NaN
    assert np.count_nonzero(np.isnan(xs)) == 3
    assert xs[:4].tolist()[:3] == [0.0, 1.0, 2.0] and np.isnan(xs[3])
    tail = xs[4:].tolist()
    assert len(tail) == 4 and tail[0] == 5.0 and tail[2] == 7.0
    assert np.isnan(tail[1]) and np.isnan(tail[3])


def test_time_going_back_or_another_roster_starts_again() -> None:
    trails = Trails(window_s=60, step_s=1)
    for t in range(5):
        trails.add(100.0 + t, [float(t), 0.0], [0.0, 0.0])
    assert len(trails) == 5
    trails.add(90.0, [50.0, 50.0], [0.0, 0.0])  # a seek back in the replay
    assert len(trails) == 1 and trails.segments()[0].size == 0  # one point draws nothing
    trails.add(91.0, [51.0, 51.0], [0.0, 0.0])
    assert children(*trails.segments())[0] == [(50.0, 0.0), (51.0, 0.0)]
    trails.add(92.0, [1.0, 2.0, 3.0], [0.0, 0.0, 0.0])  # a roster of another size
    assert trails.children == 3 and len(trails) == 1
    trails.reset()
    assert len(trails) == 0 and trails.segments()[0].size == 0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        Trails(window_s=0)
    with pytest.raises(ValueError):
        Trails().add(0.0, [1.0, 2.0], [1.0])
