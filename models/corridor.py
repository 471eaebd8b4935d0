"""Each child's usual corridor, learned from where they have been, and the
fixes that fall far outside it (unusual movement, for an operator to judge).

Why cells: a child's days are a few routes between home, school and
academies; a 250 m grid over the places their fixes fell holds that in a
few dozen integers per child, and "far outside" is then "no learned cell
within ``FAR_M``", answered by sorted-array lookups for a whole batch at
once, with no geometry per fix. Why maturity: a child enrolled yesterday
has no usual corridor yet; only a history of ``MIN_DAYS`` days with
``MIN_CELLS`` places is one to be outside of.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CELL_M = 250.0
FAR_M = 1000.0  # farther than this from every usual cell is unusual
MIN_DAYS = 3.0  # history needed before a corridor means anything
MIN_CELLS = 4
FRESH_MAX = 65_536  # newly learned cells kept apart before the big array is rebuilt
_REACH = int(np.ceil(FAR_M / CELL_M))
_BITS = 20  # cell index bits per axis (250 m cells cover 262 km, beyond Korea's width)
_MASK = (1 << _BITS) - 1
# Offsets of every cell within FAR_M of a cell (a disc of cells), packed once.
_D = np.arange(-_REACH, _REACH + 1)
_DX, _DY = (a.ravel() for a in np.meshgrid(_D, _D))
_NEAR = (np.hypot(_DX, _DY) * CELL_M <= FAR_M + CELL_M)
_DX, _DY = _DX[_NEAR], _DY[_NEAR]

IntArray = npt.NDArray[np.int64]


def cells(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Grid cell of each map position (EPSG:5179 metres are all positive in Korea)."""
    cx = np.floor(np.asarray(x, dtype=np.float64) / CELL_M).astype(np.int64) & _MASK
    cy = np.floor(np.asarray(y, dtype=np.float64) / CELL_M).astype(np.int64) & _MASK
    return cx, cy


def _codes(slots: IntArray, cx: IntArray, cy: IntArray) -> IntArray:
    return (slots << (2 * _BITS)) | (cx << _BITS) | cy


def _member(sorted_codes: IntArray, codes: IntArray) -> npt.NDArray[np.bool_]:
    """Which ``codes`` are in ``sorted_codes`` (sorted, unique), any shape."""
    if not len(sorted_codes):
        return np.zeros(np.shape(codes), dtype=bool)
    pos = np.searchsorted(sorted_codes, codes)
    return sorted_codes[np.minimum(pos, len(sorted_codes) - 1)] == codes


def _insert_sorted(into: IntArray, new: IntArray) -> IntArray:
    """``into`` and ``new`` sorted and disjoint: their sorted union."""
    return np.insert(into, np.searchsorted(into, new), new)


class Corridor:
    """Learned cells of every child (sorted codes) and the span of their history."""

    def __init__(self, n: int) -> None:
        # Learned cells in two sorted, unique, disjoint arrays: a large one and
        # a small one of cells first seen lately. A batch's fixes mostly fall in
        # cells already known (children on their usual routes); only the few
        # new ones are sorted into the small array, and the large one is
        # rebuilt only when the small one grows past FRESH_MAX. (Sorting every
        # learned cell for each batch cost the engine half its CPU.)
        self._known = np.empty(0, dtype=np.int64)
        self._fresh = np.empty(0, dtype=np.int64)
        self._new: list[IntArray] = []  # learned since the last merge
        self.first_t = np.full(n, np.inf)
        self.last_t = np.full(n, -np.inf)
        self.n_cells = np.zeros(n, dtype=np.int64)

    def grow(self, k: int) -> None:
        self.first_t = np.concatenate([self.first_t, np.full(k, np.inf)])
        self.last_t = np.concatenate([self.last_t, np.full(k, -np.inf)])
        self.n_cells = np.concatenate([self.n_cells, np.zeros(k, dtype=np.int64)])

    def learn(self, slots: npt.ArrayLike, x: npt.ArrayLike, y: npt.ArrayLike,
              t: npt.ArrayLike) -> None:
        """Add where these children were (history at start, live fixes after)."""
        s = np.asarray(slots, dtype=np.int64)
        tt = np.asarray(t, dtype=np.float64)
        ok = np.isfinite(np.asarray(x, dtype=np.float64)) & np.isfinite(
            np.asarray(y, dtype=np.float64)) & np.isfinite(tt)
        if not ok.any():
            return
        s, tt = s[ok], tt[ok]
        cx, cy = cells(np.asarray(x, dtype=np.float64)[ok], np.asarray(y, dtype=np.float64)[ok])
        self._new.append(_codes(s, cx, cy))
        np.minimum.at(self.first_t, s, tt)
        np.maximum.at(self.last_t, s, tt)
        if sum(len(a) for a in self._new) > 65536:
            self._merge()

    def _merge(self) -> None:
        if not self._new:
            return
        new = np.unique(np.concatenate(self._new))
        self._new = []
        new = new[~(_member(self._known, new) | _member(self._fresh, new))]
        if not len(new):
            return
        np.add.at(self.n_cells, new >> (2 * _BITS), 1)
        # Sorted, disjoint: inserting at the search positions keeps the order
        # with one copy, where a union would sort everything again (that sort,
        # once a batch, was a third of the engine's CPU under load).
        self._fresh = _insert_sorted(self._fresh, new)
        if len(self._fresh) > FRESH_MAX:
            self._known = _insert_sorted(self._known, self._fresh)
            self._fresh = np.empty(0, dtype=np.int64)

    def _span_ok(self, s: IntArray) -> npt.NDArray[np.bool_]:
        return self.last_t[s] - self.first_t[s] >= MIN_DAYS * 86400.0

    def mature(self, slots: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        s = np.asarray(slots, dtype=np.int64)
        span = self._span_ok(s)
        if (span & (self.n_cells[s] < MIN_CELLS)).any():
            self._merge()  # cells not yet counted may make these mature
        return span & (self.n_cells[s] >= MIN_CELLS)

    def far(self, slots: npt.ArrayLike, x: npt.ArrayLike, y: npt.ArrayLike
            ) -> npt.NDArray[np.bool_]:
        """Per fix: the child has a usual corridor and this is farther than
        ``FAR_M`` from all of it."""
        s = np.asarray(slots, dtype=np.int64)
        out = np.zeros(len(s), dtype=bool)
        if not len(s):
            return out
        check = self.mature(s) & np.isfinite(np.asarray(x, dtype=np.float64)) \
            & np.isfinite(np.asarray(y, dtype=np.float64))
        rows = np.flatnonzero(check)
        if not len(rows):
            return out
        self._merge()  # the cells learned since the last merge count as usual
        cx, cy = cells(np.asarray(x, dtype=np.float64)[rows],
                       np.asarray(y, dtype=np.float64)[rows])
        near = _codes(s[rows][:, None], (cx[:, None] + _DX) & _MASK, (cy[:, None] + _DY) & _MASK)
        hit = _member(self._known, near) | _member(self._fresh, near)
        out[rows] = ~hit.any(axis=1)
        return out

    def forget(self, slots: npt.ArrayLike) -> None:
        """A withdrawn consent takes the learned corridor with it."""
        s = np.unique(np.asarray(slots, dtype=np.int64))
        self._merge()
        self._known = self._known[~np.isin(self._known >> (2 * _BITS), s)]
        self._fresh = self._fresh[~np.isin(self._fresh >> (2 * _BITS), s)]
        self.first_t[s] = np.inf
        self.last_t[s] = -np.inf
        self.n_cells[s] = 0
