"""Lost signal: only while expected, counted from the engine's start too,
once per silence, and a fix brings the child back."""

from __future__ import annotations

import numpy as np

from models.lost_signal import LostSignal, limits_by_slot


def test_silence_while_expected_raises_once_and_a_fix_ends_it() -> None:
    ls = LostSignal(3, started_at=0.0)
    ls.set_limits({0: 900.0, 1: 900.0})
    last = np.array([100.0, 100.0, 100.0])
    expected = np.array([True, False, True])
    assert ls.check(last, expected, 900.0) == ([], [])
    assert ls.check(last, expected, 1001.0) == ([0], [])  # slot 1 not expected, 2 a tag
    assert ls.check(last, expected, 1500.0) == ([], [])  # once
    last[0] = 1490.0
    assert ls.check(last, expected, 1500.0) == ([], [0])


def test_a_restarted_engine_counts_silence_from_its_start() -> None:
    ls = LostSignal(1, started_at=10_000.0)
    ls.set_limits({0: 900.0})
    never = np.array([-np.inf])
    assert ls.check(never, np.array([True]), 10_500.0) == ([], [])
    assert ls.check(never, np.array([True]), 10_901.0) == ([0], [])


def test_limits_take_the_shortest_reporting_device() -> None:
    slots = {"w": 0, "t": 0, "tag-only": 1, "p": 2}
    kinds = {"w": "watch", "t": "tag", "tag-only": "tag", "p": "phone"}
    per_kind = {"watch": 900.0, "phone": 1200.0, "tag": 0.0}
    assert limits_by_slot(slots, kinds, per_kind) == {0: 900.0, 2: 1200.0}


def test_grow_and_forget() -> None:
    ls = LostSignal(1, 0.0)
    ls.grow(2)
    ls.set_limits({2: 60.0})
    assert ls.check(np.array([0.0, 0.0, 0.0]), np.ones(3, dtype=bool), 100.0) == ([2], [])
    ls.forget([2])
    assert not ls.lost.any()


def test_a_silence_marked_before_a_restart_ends_only_with_a_fix() -> None:
    ls = LostSignal(1, started_at=1000.0)
    ls.set_limits({0: 60.0})
    ls.lost[0] = True  # the engine found the child's lost-signal alert open
    assert ls.check(np.array([-np.inf]), np.array([True]), 1001.0) == ([], [])
    assert ls.check(np.array([1030.0]), np.array([True]), 1031.0) == ([], [0])
