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
