"""The geofence: which children are in which safety zones, and when that changes.

An ordered pipeline over a batch of fixes, every stage vectorized:

1. **order** — keep each child's newest fix, and only if it is newer than
   the last one seen (the engine's Tracker already does this; repeating it
   makes the fence safe on its own).
2. **candidates** — a uniform grid over the zones' bounding boxes (numpy,
   no geometry objects) answers which zones each fix's reach box touches;
   no fix is ever compared with every zone. The rare fix whose reach spans
   many cells (a carrier fix) asks an STRtree of the same boxes instead.
3. **classify** — per (fix, candidate zone): the signed distance ``d`` to
   the fence (negative inside; a circle's is an exact ``hypot`` minus the
   radius, a polygon's the distance to its boundary) against the fix's
   accuracy ``a``. It is evidence of inside (``d <= -m``) or outside
   (``d >= m``) with the margin ``m = max(a, clip(a, hysteresis_min_m,
   hysteresis_max_m))``; otherwise it *holds*, and when the accuracy circle
   crosses the fence (``|d| < a``) it is *uncertain*. A zone the child has
   state in but that is not a candidate any more is outside evidence (the
   child is farther than its reach from it).
4. **diff** — a membership flips only after *every* fix for the zone
   kind's ``dwell_s`` has been evidence of the other side (from the first
   such fix to the one that confirms it). A good fix that is not (the child
   is at the fence) cancels the pending flip, so jitter at a fence never
   flaps. A *vague* fix (uncertain with an accuracy above
   ``hysteresis_max_m``: a carrier fix between a watch's GPS fixes) neither
   cancels nor advances it: it is no evidence either way, so it can cause
   no false exit, no false all-clear, and does not hold back a real exit.

A child seen for the first time takes its memberships directly, without
events (no alert storm when the engine starts); so does a pair whose state
is unknown because the child's fixes near that fence have all been uncertain.

State is columnar: sorted ``slot * Z + zone`` codes with their state,
pending-since time and uncertain flag, one entry per pair that is inside,
pending, unknown or uncertain (a child far from every zone costs nothing).
Python-level work happens per event, never per fix or per zone.

Zone indices are positions in the ``zones`` list given; ``rebuild`` maps
them to a new list by zone id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import shapely

from models.messages import ZoneView
from models.zones import metric_geometries

__all__ = ["FenceEvent", "FenceRule", "Geofence", "rules_from_config"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

OUTSIDE, INSIDE, UNKNOWN = 0, 1, 2  # a pair's state
C_OUT, C_IN, C_UNCERTAIN, C_HOLD, C_VAGUE = 0, 1, 2, 3, 4  # what one fix says about a pair


@dataclass(frozen=True)
class FenceRule:
    """Per zone kind: the hysteresis band is the fix's accuracy clipped to
    [min, max] metres; ``dwell_s`` is how long evidence must last to flip."""

    hysteresis_min_m: float = 15.0
    hysteresis_max_m: float = 100.0
    dwell_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.hysteresis_min_m <= self.hysteresis_max_m:
            raise ValueError(f"hysteresis {self.hysteresis_min_m}..{self.hysteresis_max_m} m: "
                             "need 0 <= min <= max")
        if not self.dwell_s >= 0:
            raise ValueError(f"dwell_s {self.dwell_s} must be >= 0")


def rules_from_config(dwell_s: Mapping[str, float], hysteresis_min_m: float = 15.0,
                      hysteresis_max_m: float = 100.0) -> dict[str, FenceRule]:
    """The rules from the config's ``fence_dwell_s`` ({"school": 30, ...})."""
    return {kind: FenceRule(hysteresis_min_m, hysteresis_max_m, float(s))
            for kind, s in dwell_s.items()}


class FenceEvent(NamedTuple):
    """A confirmed change: ``t`` is the fix that confirmed it, ``since`` the
    first fix on the new side (when the child actually crossed, within the
    fix interval)."""

    slot: int
    zone: int
    kind: Literal["enter", "exit"]
    t: float
    since: float


def _ranges(lo: IntArray, hi: IntArray) -> IntArray:
    """``concatenate([arange(l, h) for l, h in zip(lo, hi)])`` without the loop."""
    n = hi - lo
    total = int(n.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    start = np.cumsum(n) - n
    return np.arange(total, dtype=np.int64) + np.repeat(lo - start, n)


def _transition(state: npt.NDArray[np.int8], since: FloatArray, cls: npt.NDArray[np.int8],
                t: FloatArray, dwell: FloatArray
                ) -> tuple[npt.NDArray[np.int8], FloatArray, npt.NDArray[np.int8], FloatArray]:
    """New (state, since), the event per pair (0 none, 1 enter, 2 exit) and,
    for an event, since when its evidence ran."""
    new_state, new_since = state.copy(), since.copy()
    event = np.zeros(len(state), dtype=np.int8)
    unknown = state == UNKNOWN
    new_state[unknown & (cls == C_IN)] = INSIDE
    new_state[unknown & (cls == C_OUT)] = OUTSIDE
    new_since[unknown] = np.nan
    known = ~unknown
    inside, outside = state == INSIDE, state == OUTSIDE
    oppose = known & ((inside & (cls == C_OUT)) | (outside & (cls == C_IN)))
    new_since[known & ~oppose & (cls != C_VAGUE)] = np.nan  # at the fence: start over
    start = oppose & np.isnan(since)
    new_since[start] = t[start]
    with np.errstate(invalid="ignore"):
        flip = oppose & (t - new_since >= dwell)
    new_state[flip] = np.where(inside[flip], OUTSIDE, INSIDE)
    event[flip] = np.where(inside[flip], 2, 1)
    event_since = np.where(flip, new_since, np.nan)
    new_since[flip] = np.nan
    return new_state, new_since, event, event_since


class _BoxIndex:
    """Which zone boxes does each query box touch: a uniform grid of cells
    half a typical zone across, each (cell, zone) pair in one sorted array.

    A pair is reported once, from the cell holding the lower-left corner of
    the two boxes' overlap, so no dedupe sort is needed; a query box wider
    than ``_WIDE`` cells goes to an STRtree of the boxes instead of
    enumerating hundreds of cells.
    """

    PER_ZONE = 2  # cells across a typical zone: fewer false candidates per cell
    MAX_CELLS = 2_000_000  # zones spread over the whole country get coarser cells
    _WIDE = 8

    def __init__(self, bounds: FloatArray) -> None:
        self.bounds = bounds
        n = len(bounds)
        self.tree = shapely.STRtree(shapely.box(*bounds.T)) if n else None
        if n == 0:
            self.cell, self.ox, self.oy, self.ny = 1.0, 0.0, 0.0, 1
            self.zone = np.empty(0, dtype=np.int64)
            return
        size = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
        self.ox, self.oy = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        extent = (float(bounds[:, 2].max()) - self.ox) * (float(bounds[:, 3].max()) - self.oy)
        self.cell = max(float(np.clip(np.median(size) / self.PER_ZONE, 25.0, 2500.0)),
                        float(np.sqrt(extent / self.MAX_CELLS)))
        ix0, iy0, ix1, iy1 = self._cells(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
        self.nx, self.ny = int(ix1.max()) + 1, int(iy1.max()) + 1
        zone, ix, iy = self._expand(ix0, iy0, ix1, iy1)
        keys = ix * self.ny + iy
        order = np.argsort(keys, kind="stable")
        self.zone = zone[order]
        # where each cell's zones start in ``zone``: a gather, not a search, per query cell
        self.start = np.searchsorted(keys[order], np.arange(self.nx * self.ny + 1))

    def _cells(self, x0: FloatArray, y0: FloatArray, x1: FloatArray, y1: FloatArray
               ) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        g = self.cell
        return (np.floor((x0 - self.ox) / g).astype(np.int64),
                np.floor((y0 - self.oy) / g).astype(np.int64),
                np.floor((x1 - self.ox) / g).astype(np.int64),
                np.floor((y1 - self.oy) / g).astype(np.int64))

    @staticmethod
    def _expand(ix0: IntArray, iy0: IntArray, ix1: IntArray, iy1: IntArray
                ) -> tuple[IntArray, IntArray, IntArray]:
        """(row, ix, iy) of every cell of every row's cell rectangle."""
        wy = iy1 - iy0 + 1
        count = (ix1 - ix0 + 1) * wy
        row = np.repeat(np.arange(len(ix0), dtype=np.int64), count)
        k = _ranges(np.zeros(len(count), dtype=np.int64), count)
        return row, ix0[row] + k // wy[row], iy0[row] + k % wy[row]

    def query(self, x: FloatArray, y: FloatArray, reach: FloatArray
              ) -> tuple[IntArray, IntArray]:
        """(query row, zone) pairs whose boxes overlap, each once, unordered."""
        if self.tree is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        fx0, fy0, fx1, fy1 = x - reach, y - reach, x + reach, y + reach
        ix0, iy0, ix1, iy1 = self._cells(fx0, fy0, fx1, fy1)
        hit = (ix1 >= 0) & (iy1 >= 0) & (ix0 < self.nx) & (iy0 < self.ny)
        wide = hit & ((ix1 - ix0 >= self._WIDE) | (iy1 - iy0 >= self._WIDE))
        rows = np.flatnonzero(hit & ~wide)
        r, ix, iy = self._expand(np.clip(ix0[rows], 0, self.nx - 1),
                                 np.clip(iy0[rows], 0, self.ny - 1),
                                 np.clip(ix1[rows], 0, self.nx - 1),
                                 np.clip(iy1[rows], 0, self.ny - 1))
        keys = ix * self.ny + iy
        lo, hi = self.start[keys], self.start[keys + 1]
        q = rows[np.repeat(r, hi - lo)]
        z = self.zone[_ranges(lo, hi)]
        cx, cy = np.repeat(ix, hi - lo), np.repeat(iy, hi - lo)
        b = self.bounds[z]
        lx, ly = np.maximum(fx0[q], b[:, 0]), np.maximum(fy0[q], b[:, 1])
        keep = ((lx <= np.minimum(fx1[q], b[:, 2])) & (ly <= np.minimum(fy1[q], b[:, 3]))
                & (np.floor((lx - self.ox) / self.cell) == cx)
                & (np.floor((ly - self.oy) / self.cell) == cy))
        q, z = q[keep], z[keep]
        wide_rows = np.flatnonzero(wide)
        if len(wide_rows):
            boxes = shapely.box(fx0[wide_rows], fy0[wide_rows], fx1[wide_rows], fy1[wide_rows])
            wq, wz = self.tree.query(boxes)
            q, z = np.concatenate([q, wide_rows[wq]]), np.concatenate([z, wz])
        return q, z


class _Rings:
    """Polygon fences as flat segment arrays, for signed distances without
    a geometry object per fix: the distance to the nearest segment, negative
    when a ray from the point crosses the rings an odd number of times.
    Polygons with more than ``SIMPLE`` segments go to GEOS instead, which
    is faster per segment."""

    SIMPLE = 64
    CHUNK = 1 << 20  # segment rows per pass, bounding memory

    def __init__(self, polys: npt.NDArray[np.object_], which: IntArray, n: int) -> None:
        self.lo = np.zeros(n, dtype=np.int64)
        self.hi = np.zeros(n, dtype=np.int64)
        self.simple = np.zeros(n, dtype=bool)
        self.polys, self.boundary = polys, np.empty(n, dtype=object)
        parts: list[FloatArray] = []
        at = 0
        for z in which.tolist():
            rings = [polys[z].exterior, *polys[z].interiors]
            coords = [np.asarray(r.coords)[:, :2] for r in rings]
            segs = np.concatenate([np.hstack([c[:-1], c[1:]]) for c in coords])
            self.simple[z] = len(segs) <= self.SIMPLE
            if self.simple[z]:
                parts.append(segs)
                self.lo[z], self.hi[z] = at, at + len(segs)
                at += len(segs)
            else:
                self.boundary[z] = polys[z].boundary
                shapely.prepare(polys[z])
        segs = np.concatenate(parts) if parts else np.empty((0, 4))
        self.ax, self.ay = segs[:, 0].copy(), segs[:, 1].copy()
        self.dx, self.dy = segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1]
        len2 = self.dx ** 2 + self.dy ** 2
        self.inv_len2 = np.divide(1.0, len2, out=np.zeros_like(len2), where=len2 > 0)
        self.inv_dy = np.divide(1.0, self.dy, out=np.zeros_like(self.dy), where=self.dy != 0)

    def signed_distance(self, x: FloatArray, y: FloatArray, z: IntArray) -> FloatArray:
        d = np.empty(len(z), dtype=np.float64)
        simple = self.simple[z]
        hard = np.flatnonzero(~simple)
        if len(hard):
            hx, hy, hz = x[hard], y[hard], z[hard]
            dist = shapely.distance(self.boundary[hz], shapely.points(hx, hy))
            d[hard] = np.where(shapely.contains_xy(self.polys[hz], hx, hy), -dist, dist)
        easy = np.flatnonzero(simple)
        n = self.hi[z[easy]] - self.lo[z[easy]]
        ends = np.cumsum(n)
        first = 0
        while first < len(easy):
            last = int(np.searchsorted(ends, ends[first] - n[first] + self.CHUNK, "right"))
            last = max(last, first + 1)
            rows = easy[first:last]
            d[rows] = self._simple(x[rows], y[rows], z[rows])
            first = last
        return d

    def _simple(self, x: FloatArray, y: FloatArray, z: IntArray) -> FloatArray:
        n = self.hi[z] - self.lo[z]
        seg = _ranges(self.lo[z], self.hi[z])
        row = np.repeat(np.arange(len(z)), n)
        px, py = x[row], y[row]
        ax, ay, dx, dy = self.ax[seg], self.ay[seg], self.dx[seg], self.dy[seg]
        rx, ry = px - ax, py - ay
        u = np.clip((rx * dx + ry * dy) * self.inv_len2[seg], 0.0, 1.0)
        dist2 = (rx - u * dx) ** 2 + (ry - u * dy) ** 2
        straddle = (ay > py) != (ay + dy > py)
        cross = straddle & (rx < ry * dx * self.inv_dy[seg])
        starts = np.cumsum(n) - n
        nearest = np.sqrt(np.minimum.reduceat(dist2, starts))
        odd = np.add.reduceat(cross.astype(np.int64), starts) % 2 == 1
        return np.where(odd, -nearest, nearest)


class Geofence:
    """Zone membership of every child, fed one batch at a time.

    ``step(slots, x, y, accuracy, t)`` takes EPSG:5179 metres; accuracy in
    metres, NaN (or negative) for unknown, which counts as
    ``default_accuracy_m``. A fix vaguer than ``max_accuracy_m`` says nothing
    about any zone (it only marks the child's existing pairs uncertain).
    """

    def __init__(self, zones: Sequence[ZoneView], rules: Mapping[str, FenceRule] | None = None,
                 *, default_accuracy_m: float = 25.0, max_accuracy_m: float = 2000.0) -> None:
        self.rules: dict[str, FenceRule] = dict(rules or {})
        self.default_accuracy_m = float(default_accuracy_m)
        self.max_accuracy_m = float(max_accuracy_m)
        self._seen = np.zeros(0, dtype=bool)
        self._last_t = np.zeros(0, dtype=np.float64)
        self._codes = np.empty(0, dtype=np.int64)
        self._state = np.empty(0, dtype=np.int8)
        self._since = np.empty(0, dtype=np.float64)
        self._unc = np.empty(0, dtype=bool)
        self._inside_cache: BoolArray | None = None
        self.candidates = 0  # (fix, zone) pairs the last step classified
        self._load(zones)

    # ------------------------------------------------------------------ zones

    def _load(self, zones: Sequence[ZoneView]) -> None:
        self.zones = list(zones)
        n = len(self.zones)
        self._zc = max(n, 1)  # the code stride; never 0
        metric = metric_geometries(self.zones)
        self._circle = np.array([not z.shape for z in self.zones], dtype=bool)
        self._r = np.array([z.radius_m if not z.shape else 0.0 for z in self.zones], dtype=float)
        self._cx = np.zeros(n)
        self._cy = np.zeros(n)
        if self._circle.any():
            centres = shapely.get_coordinates(metric[self._circle])
            self._cx[self._circle], self._cy[self._circle] = centres[:, 0], centres[:, 1]
        self._rings = _Rings(metric, np.flatnonzero(~self._circle), n)
        bounds = np.empty((n, 4))
        bounds[~self._circle] = shapely.bounds(metric[~self._circle])
        c = self._circle
        bounds[c] = np.column_stack([self._cx[c] - self._r[c], self._cy[c] - self._r[c],
                                     self._cx[c] + self._r[c], self._cy[c] + self._r[c]])
        self._index = _BoxIndex(bounds)
        rules = [self.rules.get(z.kind, FenceRule()) for z in self.zones]
        self._hmin = np.array([r.hysteresis_min_m for r in rules], dtype=float)
        self._hmax = np.array([r.hysteresis_max_m for r in rules], dtype=float)
        self._dwell = np.array([r.dwell_s for r in rules], dtype=float)
        self._reach_min = float(self._hmin.max()) if n else 0.0
        self._reach_max = float(self._hmax.max()) if n else 0.0
        self._inside_cache = None

    def rebuild(self, zones: Sequence[ZoneView]) -> None:
        """Swap in an edited zone list at runtime. A zone that is still there
        keeps its memberships, reshaped or not (the next fixes re-judge them
        through the dwell); a deleted zone's memberships go without exit
        events; a new zone starts with none.

        "Still there" is the same id with the same name or a newer version:
        SQLite hands a deleted zone's id to the next zone added, which must
        not inherit the old zone's children."""
        new = {z.id: (i, z) for i, z in enumerate(zones)}

        def same(old: ZoneView) -> int:
            i, z = new.get(old.id, (-1, old))
            return i if z.name == old.name or z.version > old.version else -1

        mapping = np.array([same(z) for z in self.zones] or [-1], dtype=np.int64)
        old_zc = self._zc
        slot, zone = np.divmod(self._codes, old_zc)
        moved = mapping[zone]
        keep = moved >= 0
        self._load(zones)
        codes = slot[keep] * self._zc + moved[keep]
        order = np.argsort(codes, kind="stable")
        self._codes = codes[order]
        self._state = self._state[keep][order]
        self._since = self._since[keep][order]
        self._unc = self._unc[keep][order]

    # ------------------------------------------------------------------- step

    def _grow(self, n: int) -> None:
        if n > len(self._seen):
            size = max(n, 2 * len(self._seen), 1024)
            self._seen = np.concatenate([self._seen, np.zeros(size - len(self._seen), bool)])
            self._last_t = np.concatenate(
                [self._last_t, np.full(size - len(self._last_t), -np.inf)])

    def _newest(self, slots: IntArray, t: FloatArray, ok: BoolArray) -> IntArray:
        """Rows of each slot's newest fix that is newer than the last one seen."""
        idx = np.flatnonzero(ok)
        order = idx[np.lexsort((t[idx], slots[idx]))]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = slots[order][1:] != slots[order][:-1]
        pick = order[last]
        return pick[t[pick] > self._last_t[slots[pick]]]

    def _classify(self, qi: IntArray, zi: IntArray, x: FloatArray, y: FloatArray,
                  acc: FloatArray) -> npt.NDArray[np.int8]:
        d = np.empty(len(zi), dtype=np.float64)
        circle = self._circle[zi]
        ci, pi = np.flatnonzero(circle), np.flatnonzero(~circle)
        cq, cz = qi[ci], zi[ci]
        d[ci] = np.hypot(x[cq] - self._cx[cz], y[cq] - self._cy[cz]) - self._r[cz]
        if len(pi):
            pq = qi[pi]
            d[pi] = self._rings.signed_distance(x[pq], y[pq], zi[pi])
        a = acc[qi]
        margin = np.maximum(a, np.clip(a, self._hmin[zi], self._hmax[zi]))
        cls = np.full(len(zi), C_HOLD, dtype=np.int8)
        cls[d <= -margin] = C_IN
        cls[d >= margin] = C_OUT
        crossing = np.abs(d) < a
        cls[crossing] = np.where(a[crossing] > self._hmax[zi[crossing]], C_VAGUE, C_UNCERTAIN)
        return cls

    def step(self, slots: npt.ArrayLike, x: npt.ArrayLike, y: npt.ArrayLike,
             accuracy: npt.ArrayLike, t: npt.ArrayLike) -> list[FenceEvent]:
        """Apply one batch; returns the enter/exit events it confirmed,
        ordered by slot then zone. ``t`` may be one time for the batch."""
        s_in = np.asarray(slots, dtype=np.int64).ravel()
        n = len(s_in)
        xs = np.asarray(x, dtype=np.float64).ravel()
        ys = np.asarray(y, dtype=np.float64).ravel()
        acc_in = np.asarray(accuracy, dtype=np.float64).ravel()
        t_in = np.broadcast_to(np.asarray(t, dtype=np.float64), (n,)).ravel()
        if not len(xs) == len(ys) == len(acc_in) == n:
            raise ValueError("slots, x, y and accuracy must have the same length")
        if n and s_in.min() < 0:
            raise ValueError("slots must be >= 0")
        if n == 0:
            return []
        self._grow(int(s_in.max()) + 1)
        pick = self._newest(s_in, t_in, np.isfinite(xs) & np.isfinite(ys) & np.isfinite(t_in))
        if len(pick) == 0:
            return []
        s, px, py, t_b = s_in[pick], xs[pick], ys[pick], t_in[pick]
        self._last_t[s] = t_b
        acc = acc_in[pick]
        acc = np.where(np.isnan(acc) | (acc < 0), self.default_accuracy_m, acc)
        vague = ~(acc <= self.max_accuracy_m)
        clear = np.flatnonzero(~vague)

        # candidates (clear fixes only) and what each fix says about them
        zc = self._zc
        if len(clear) and self.zones:
            a = acc[clear]
            reach = np.maximum(a, np.clip(a, self._reach_min, self._reach_max))
            q, zi = self._index.query(px[clear], py[clear], reach)
            rows = clear[q]
            cls_c = self._classify(rows, zi, px, py, acc)
        else:
            rows = zi = np.empty(0, dtype=np.int64)
            cls_c = np.empty(0, dtype=np.int8)
        self.candidates = len(zi)
        code_c = s[rows] * zc + zi
        order = np.argsort(code_c, kind="stable")
        code_c, cls_c, rows, zi = code_c[order], cls_c[order], rows[order], zi[order]

        # the pairs already held for these children
        lo = np.searchsorted(self._codes, s * zc)
        hi = np.searchsorted(self._codes, s * zc + zc)
        pos = _ranges(lo, hi)
        row_s = np.repeat(np.arange(len(s)), hi - lo)
        code_s = self._codes[pos]
        cls_s = np.full(len(code_s), C_OUT, dtype=np.int8)  # not a candidate: far outside
        fresh = np.ones(len(code_c), dtype=bool)
        if len(code_c) and len(code_s):
            j = np.minimum(np.searchsorted(code_c, code_s), len(code_c) - 1)
            found = code_c[j] == code_s
            cls_s[found] = cls_c[j[found]]
            fresh[j[found]] = False
        cls_s[vague[row_s]] = C_VAGUE
        st_s, since_s, ev_s, evt_s = _transition(self._state[pos], self._since[pos], cls_s,
                                                 t_b[row_s], self._dwell[code_s % zc])

        # pairs not held yet: outside (or unknown, for a child never seen)
        nf = np.flatnonzero(fresh)
        code_n, cls_n, row_n = code_c[nf], cls_c[nf], rows[nf]
        st0 = np.where(self._seen[s[row_n]], OUTSIDE, UNKNOWN).astype(np.int8)
        st_n, since_n, ev_n, evt_n = _transition(st0, np.full(len(nf), np.nan), cls_n,
                                                 t_b[row_n], self._dwell[zi[nf]])

        events = self._events(np.concatenate([code_s, code_n]), np.concatenate([ev_s, ev_n]),
                              np.concatenate([t_b[row_s], t_b[row_n]]),
                              np.concatenate([evt_s, evt_n]))
        self._store(pos, st_s, since_s, cls_s, code_n, st_n, since_n, cls_n)
        self._seen[s[clear]] = True
        self._refresh_inside(s)
        return events

    def _refresh_inside(self, slots: IntArray) -> None:
        """Bring the inside flags of these children up to date, not every
        child's (rebuilding them all for each batch was a tenth of the
        engine's CPU at 100,000 children)."""
        cache = self._inside_cache
        if cache is None or len(cache) != len(self._seen):
            self._inside_cache = None  # rebuilt whole when next asked
            return
        zc = self._zc
        pos = _ranges(np.searchsorted(self._codes, slots * zc),
                      np.searchsorted(self._codes, slots * zc + zc))
        cache[slots] = False
        cache[self._codes[pos][self._state[pos] == INSIDE] // zc] = True

    def _events(self, codes: IntArray, kinds: npt.NDArray[np.int8], ts: FloatArray,
                sinces: FloatArray) -> list[FenceEvent]:
        """The flipped pairs as events, in code order (slot, then zone)."""
        hit = np.flatnonzero(kinds)
        if not len(hit):
            return []
        hit = hit[np.argsort(codes[hit], kind="stable")]
        slot, zone = np.divmod(codes[hit], self._zc)
        return [FenceEvent(sl, zo, "enter" if k == 1 else "exit", tt, si)
                for sl, zo, k, tt, si in zip(slot.tolist(), zone.tolist(), kinds[hit].tolist(),
                                             ts[hit].tolist(), sinces[hit].tolist(),
                                             strict=True)]

    def _store(self, pos: IntArray, st_s: npt.NDArray[np.int8], since_s: FloatArray,
               cls_s: npt.NDArray[np.int8], code_n: IntArray, st_n: npt.NDArray[np.int8],
               since_n: FloatArray, cls_n: npt.NDArray[np.int8]) -> None:
        """Write back: a pair is held while inside, pending, unknown or
        uncertain; a plain outside pair is dropped."""
        self._state[pos], self._since[pos] = st_s, since_s
        unc_s = (cls_s == C_UNCERTAIN) | (cls_s == C_VAGUE)
        self._unc[pos] = unc_s
        drop = (st_s == OUTSIDE) & np.isnan(since_s) & ~unc_s
        if drop.any():
            keep = np.ones(len(self._codes), dtype=bool)
            keep[pos[drop]] = False
            self._select(keep)
        unc_n = (cls_n == C_UNCERTAIN) | (cls_n == C_VAGUE)
        hold = (st_n != OUTSIDE) | ~np.isnan(since_n) | unc_n
        if hold.any():
            at = np.searchsorted(self._codes, code_n[hold])
            self._codes = np.insert(self._codes, at, code_n[hold])
            self._state = np.insert(self._state, at, st_n[hold])
            self._since = np.insert(self._since, at, since_n[hold])
            self._unc = np.insert(self._unc, at, unc_n[hold])

    def _select(self, keep: BoolArray) -> None:
        self._codes, self._state = self._codes[keep], self._state[keep]
        self._since, self._unc = self._since[keep], self._unc[keep]

    # ---------------------------------------------------------------- queries

    def counts(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Per zone index: children inside (confirmed) and children whose
        latest fix is uncertain there (whatever state they hold; the two
        overlap)."""
        n = len(self.zones)
        zone = self._codes % self._zc
        inside = np.bincount(zone[self._state == INSIDE], minlength=n)[:n]
        uncertain = np.bincount(zone[self._unc], minlength=n)[:n]
        return inside.astype(np.int64), uncertain.astype(np.int64)

    def _inside_slots(self) -> BoolArray:
        if self._inside_cache is None:
            cache = np.zeros(len(self._seen), dtype=bool)
            cache[self._codes[self._state == INSIDE] // self._zc] = True
            self._inside_cache = cache
        return self._inside_cache

    def inside_any(self, slots: npt.ArrayLike) -> BoolArray:
        """Per slot: inside at least one zone (the map's inside flag)."""
        s = np.asarray(slots, dtype=np.int64)
        cache = self._inside_slots()
        out = np.zeros(s.shape, dtype=bool)
        ok = (s >= 0) & (s < len(cache))
        out[ok] = cache[s[ok]]
        return out

    def zones_of(self, slot: int) -> list[int]:
        """Zone indices the child is inside (confirmed), ascending."""
        lo, hi = np.searchsorted(self._codes, [slot * self._zc, (slot + 1) * self._zc])
        codes = self._codes[lo:hi][self._state[lo:hi] == INSIDE]
        return (codes % self._zc).tolist()

    def inside_pairs(self, slots: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """For many children at once: (row of ``slots``, zone index) of every
        zone each is inside (confirmed), by row then zone. (Asking
        ``zones_of`` child by child was a sixth of the engine's time while a
        city's children were first seen after a start.)"""
        s = np.asarray(slots, dtype=np.int64)
        zc = self._zc
        lo = np.searchsorted(self._codes, s * zc)
        hi = np.searchsorted(self._codes, s * zc + zc)
        pos = _ranges(lo, hi)
        rows = np.repeat(np.arange(len(s)), hi - lo)
        inside = self._state[pos] == INSIDE
        return rows[inside], self._codes[pos][inside] % zc

    def uncertain_of(self, slot: int) -> list[int]:
        """Zone indices where the child's latest fix is uncertain (its
        accuracy circle crosses the fence), ascending."""
        lo, hi = np.searchsorted(self._codes, [slot * self._zc, (slot + 1) * self._zc])
        return (self._codes[lo:hi][self._unc[lo:hi]] % self._zc).tolist()

    def pending(self, slot: int) -> dict[int, float]:
        """Zone index -> since when a flip is pending for this child."""
        lo, hi = np.searchsorted(self._codes, [slot * self._zc, (slot + 1) * self._zc])
        since = self._since[lo:hi]
        has = ~np.isnan(since)
        return dict(zip((self._codes[lo:hi][has] % self._zc).tolist(), since[has].tolist(),
                        strict=True))

    def forget(self, slots: npt.ArrayLike) -> None:
        """Drop everything about these children, without events (consent
        withdrawn, enrolment ended): a later fix is a first sighting."""
        s = np.unique(np.asarray(slots, dtype=np.int64))
        s = s[(s >= 0) & (s < len(self._seen))]
        if not len(s):
            return
        self._select(~np.isin(self._codes // self._zc, s))
        self._seen[s] = False
        self._last_t[s] = -np.inf
        self._inside_cache = None

    @property
    def pairs(self) -> int:
        """(child, zone) pairs held: inside, pending, unknown or uncertain."""
        return len(self._codes)
