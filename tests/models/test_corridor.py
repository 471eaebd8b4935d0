"""The usual corridor: learned cells, maturity, far from all of them."""

from __future__ import annotations

import numpy as np

from models.corridor import FAR_M, MIN_DAYS, Corridor
from models.geo import to_map

DAY = 86400.0
X0, Y0 = to_map(37.5085, 126.8875)  # Sindorim Elementary


def route(c: Corridor, slot: int, days: float) -> None:
    """Home (1 km west) to school, every school day for ``days``."""
    xs = np.linspace(X0 - 1000, X0, 40)
    for d in range(int(days) + 1):
        c.learn(np.full(40, slot), xs, np.full(40, Y0), np.full(40, d * DAY) + np.arange(40))


def test_far_from_a_mature_corridor_only() -> None:
    c = Corridor(3)
    route(c, 0, MIN_DAYS + 1)
    route(c, 1, 1)  # enrolled yesterday: no corridor yet
    far = c.far([0, 0, 0, 1], [X0 - 500, X0 + 300, X0 + 3000, X0 + 3000],
                [Y0 + 100, Y0, Y0 + 2000, Y0 + 2000])
    assert far.tolist() == [False, False, True, False]
    assert c.mature([0, 1, 2]).tolist() == [True, False, False]


def test_the_edge_of_far() -> None:
    c = Corridor(1)
    route(c, 0, MIN_DAYS + 1)
    assert not c.far([0], [X0], [Y0 + FAR_M * 0.9])[0]
    assert c.far([0], [X0], [Y0 + FAR_M * 2.5])[0]


def test_many_children_in_one_call_and_forget() -> None:
    n = 2000
    c = Corridor(n)
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 20_000, n)
    for d in range(5):
        c.learn(np.arange(n), X0 + base, np.full(n, Y0), np.full(n, d * DAY))
        c.learn(np.arange(n), X0 + base + 500, np.full(n, Y0), np.full(n, d * DAY + 60))
        c.learn(np.arange(n), X0 + base + 900, np.full(n, Y0 + 300), np.full(n, d * DAY + 90))
        c.learn(np.arange(n), X0 + base, np.full(n, Y0 + 600), np.full(n, d * DAY + 99))
    assert c.far(np.arange(n), X0 + base, np.full(n, Y0 + 5000)).all()
    assert not c.far(np.arange(n), X0 + base + 250, np.full(n, Y0)).any()
    c.forget([0, 1])
    assert c.mature([0, 1, 2]).tolist() == [False, False, True]
    c.grow(2)
    assert len(c.first_t) == n + 2 and not c.mature([n, n + 1]).any()


def test_cells_learned_lately_count_as_soon_as_learned_and_after_the_big_rebuild() -> None:
    """New cells wait in a small array before the big one is rebuilt: a fix
    near either is not far, counts include both, and forget clears both."""
    from models import corridor as cm

    c = cm.Corridor(3)
    day = 86400.0
    base_x, base_y = 950_000.0, 1_950_000.0
    xs = base_x + np.arange(6) * cm.CELL_M
    c.learn(np.zeros(6, dtype=np.int64), xs, np.full(6, base_y), np.linspace(0, 4 * day, 6))
    assert c.mature([0])[0] and c.n_cells[0] == 6
    far_x = base_x + 20 * cm.CELL_M
    assert c.far([0], [far_x], [base_y])[0]
    c.learn([0], [far_x], [base_y], [4 * day + 1])  # now part of the corridor (lately)
    assert not c.far([0], [far_x + 10], [base_y])[0] and c.n_cells[0] == 7
    old = cm.FRESH_MAX
    try:
        cm.FRESH_MAX = 0  # the next new cell rebuilds the big array
        c.learn([0], [far_x + 10 * cm.CELL_M], [base_y], [4 * day + 2])
        assert not c.far([0], [far_x], [base_y])[0]  # (learning is merged when next asked)
        assert len(c._fresh) == 0 and c.n_cells[0] == 8
        assert c.mature([0])[0]
    finally:
        cm.FRESH_MAX = old
    c.learn([0], [far_x + 30 * cm.CELL_M], [base_y], [4 * day + 3])
    c.forget([0])
    assert c.n_cells[0] == 0 and not c.mature([0])[0]
    assert not (c._known >> 40 == 0).any() and not (c._fresh >> 40 == 0).any()


def test_merging_keeps_the_arrays_sorted_and_unique() -> None:
    """Cells merged in many small batches, repeats included, end up as the
    same sorted, unique set a single union would make."""
    from models import corridor as cm

    rng = np.random.default_rng(7)
    c = cm.Corridor(50)
    old = cm.FRESH_MAX
    try:
        cm.FRESH_MAX = 40  # several big rebuilds on the way
        for day in range(5):
            slots = rng.integers(0, 50, 30)
            xs = 950_000.0 + rng.integers(0, 12, 30) * cm.CELL_M
            ys = 1_950_000.0 + rng.integers(0, 12, 30) * cm.CELL_M
            c.learn(slots, xs, ys, np.full(30, day * 86400.0))
            c._merge()
    finally:
        cm.FRESH_MAX = old
    both = np.concatenate([c._known, c._fresh])
    assert len(np.unique(both)) == len(both)
    assert (np.diff(c._known) > 0).all() and (np.diff(c._fresh) > 0).all()
    assert c.n_cells.sum() == len(both)
