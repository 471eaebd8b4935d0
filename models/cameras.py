"""Which cameras to show for a point: CCTV ranking over the whole registry.

When an alert opens, or while the operator follows a child, the console
fills its CCTV grid with the cameras most likely to *show the child now*.
The nearest camera is often the wrong one (it faces the other way), so the
ranking weighs three things, all in EPSG:5179 metres (see `models.geo`):

``score = 0.6 * view + near * (0.3 + 0.1 * heading)``, in [0, 1], where

- ``near = exp(-d / 150 m)``: closer is better, smoothly, with no cut-off,
  so an empty neighbourhood still yields "the nearest cameras".
- ``view`` says whether the camera sees the point, times a range factor
  (1 within ``range_m``, falling linearly to 0 at twice the range):

  ============================================  =====================
  camera                                        view (within range)
  ============================================  =====================
  fixed, point inside its cone                  1.0
  fixed, point up to 30 deg outside the cone    0.5 -> 0 (edge, lens
                                                tolerance, map error)
  fixed 360-degree (fov >= 360, not PTZ)        0.9
  PTZ, point inside its current cone            1.0
  PTZ, elsewhere (someone must turn it)         0.8
  direction unknown (free text we could not     0.4 (treated as
  read, e.g. "정면"), not PTZ                   omnidirectional, but
                                                less trusted)
  ============================================  =====================

- ``heading`` prefers the cameras the child walks toward (the face is
  visible and the child stays in view longer): ``(1 + cos a) / 2`` with
  ``a`` the angle between the child's heading and the direction from the
  child to the camera; 0.5 for all when the heading is unknown.  It is
  weighted by ``near`` so it reorders nearby cameras but never lifts a far
  one above a near one by itself.

Angles are compass degrees (0 = north, clockwise), like a fix's bearing
and the registry's ``direction_deg``.  They are measured on the EPSG:5179
grid, whose north differs from true north by under half a degree in Seoul:
far below a camera's field of view.

Only cameras that can show a picture are ranked: a camera whose status is
``retired`` or ``maintenance``, or that has no stream URL (every imported
camera starts without one), stays on the map but never takes a tile, where
it could only ever say "offline".  Among the rest, a camera reported
offline right now loses ``OFFLINE_PENALTY``: a live camera wins when the
two are close, but an offline camera that sees the point still beats a
live one down the street (it may come back any second, and the operator
should know it is there).

`CameraIndex` projects the registry once and keeps it sorted by x; a
ranking takes the cameras in a square around the point (binary search on
x, a mask on y), scores them with a few numpy operations, and widens the
square only until no camera outside it could enter the top k.  That keeps
a ranking well under a millisecond at city scale (``childsafe bench
cameras``), so the console can re-rank on every fix of a followed child.

`parse_view_direction` reads the national CCTV data's free-text view
direction (촬영방면정보) into what the ranking needs: a compass direction,
"turns all around" (PTZ) or unknown.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from models.geo import to_map

__all__ = [
    "CameraIndex",
    "CameraLike",
    "Ranked",
    "ViewDirection",
    "cone_polygons",
    "cone_rings",
    "is_playable",
    "parse_view_direction",
    "short_title",
]

FloatArray = npt.NDArray[np.float64]

W_VIEW = 0.6
W_NEAR = 0.3
W_HEADING = 0.1
NEAR_SCALE_M = 150.0
EDGE_DEG = 30.0
VIEW_PTZ_ELSEWHERE = 0.8
VIEW_FIXED_360 = 0.9
VIEW_UNKNOWN = 0.4
MIN_SEARCH_M = 500.0
# What an offline camera loses: about one camera's worth of "nearer", far
# less than "sees the point" (0.6), so it only reorders close calls.
OFFLINE_PENALTY = 0.15
# Store statuses (``models.camera_admin.CAMERA_STATUSES``) of cameras that
# cannot show anything, whatever their stream says.
UNPLAYABLE_STATUSES = frozenset({"retired", "maintenance"})


def is_playable(status: str | None, stream_url: str | None = None) -> bool:
    """Can this camera show a picture?  Not when retired or in maintenance,
    nor with an empty stream URL.  ``stream_url`` None means "not known
    here": the status decides alone."""
    if (status or "").strip().lower() in UNPLAYABLE_STATUSES:
        return False
    return stream_url is None or bool(stream_url.strip())


def _stream_of(camera: object) -> str | None:
    """The camera's stream URL as `is_playable` takes it; a bus view knows
    only whether there is one."""
    url = getattr(camera, "stream_url", None)
    has_stream = getattr(camera, "has_stream", None)
    if url is None and has_stream is not None:
        return "relay" if has_stream else ""
    return url


@dataclass(frozen=True, slots=True)
class Ranked:
    """One camera in a ranking, best first.

    ``in_view``: the point lies inside the camera's current view cone and
    range (for 360-degree and direction-less PTZ cameras: within range; for
    a camera whose direction is unknown: never, as nobody can promise it).
    ``bearing_deg``: compass bearing from the camera to the point, where to
    aim a PTZ camera.  ``offline``: it was in the ranking's ``offline`` set,
    and ``score`` already has ``OFFLINE_PENALTY`` taken off.
    """

    camera_id: int
    score: float
    distance_m: float
    in_view: bool
    bearing_deg: float
    offline: bool = False


class CameraLike(Protocol):
    """What `CameraIndex.from_cameras` reads: ``db.tables.Camera`` fits."""

    @property
    def id(self) -> int: ...
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...
    @property
    def direction_deg(self) -> float | None: ...
    @property
    def fov_deg(self) -> float: ...
    @property
    def range_m(self) -> float: ...
    @property
    def ptz(self) -> bool: ...
    @property
    def status(self) -> str: ...


def _floats(values: npt.ArrayLike | Sequence[float | None], n: int, name: str) -> FloatArray:
    """``None`` becomes NaN (direction unknown); the length must match the ids."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values for {n} cameras")
    return arr


class CameraIndex:
    """The camera registry, projected once, ready to rank many points.

    Build it when the registry loads or changes (tens of milliseconds for
    66,000 cameras) and rank from any thread: ranking never mutates it.
    ``direction_deg`` may hold None/NaN for "unknown"; ``fov_deg >= 360``
    marks a 360-degree camera; ``ptz`` (default all False) marks cameras an
    operator can turn; ``playable`` (default all True, see `is_playable`)
    False keeps a camera in the index (its cone is still drawn) but out of
    every ranking.
    """

    def __init__(
        self,
        ids: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        direction_deg: npt.ArrayLike | Sequence[float | None],
        fov_deg: npt.ArrayLike,
        range_m: npt.ArrayLike,
        ptz: npt.ArrayLike | None = None,
        playable: npt.ArrayLike | None = None,
    ) -> None:
        id_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        n = id_arr.shape[0]
        la = _floats(lat, n, "lat")
        lo = _floats(lon, n, "lon")
        direction = _floats(direction_deg, n, "direction_deg") % 360.0
        fov = np.clip(_floats(fov_deg, n, "fov_deg"), 0.0, 360.0)
        rng = _floats(range_m, n, "range_m")
        if n and (not np.isfinite(rng).all() or (rng <= 0).any()):
            raise ValueError("range_m must be positive and finite")
        ptz_arr = (np.zeros(n, dtype=bool) if ptz is None
                   else np.asarray(ptz, dtype=bool).reshape(-1))
        if ptz_arr.shape[0] != n:
            raise ValueError(f"ptz has {ptz_arr.shape[0]} values for {n} cameras")
        play_arr = (np.ones(n, dtype=bool) if playable is None
                    else np.asarray(playable, dtype=bool).reshape(-1))
        if play_arr.shape[0] != n:
            raise ValueError(f"playable has {play_arr.shape[0]} values for {n} cameras")
        x, y = to_map(la, lo) if n else (np.empty(0), np.empty(0))

        # Original order, for cone_rings() and callers that zip with their rows.
        self.ids = id_arr
        self.lat, self.lon = la, lo
        self.x, self.y = x, y
        self.direction_deg, self.fov_deg, self.range_m, self.ptz = direction, fov, rng, ptz_arr
        self.playable = play_arr

        # Only playable cameras are searched and scored, sorted by x for the
        # window search; everything the scorer reads, pre-derived.
        keep = np.flatnonzero(play_arr)
        order = keep[np.argsort(x[keep], kind="stable")]
        self._ids = id_arr[order]
        self._x = x[order]
        self._y = y[order]
        self._range = rng[order]
        self._ptz = ptz_arr[order]
        d = direction[order]
        f = fov[order]
        self._known = np.isfinite(d) & (f < 360.0)
        self._dir = np.where(self._known, d, 0.0)
        # Sees (or can be turned to see) all around: in view whenever in range.
        self._omni = ~self._known & (self._ptz | (f >= 360.0))
        self._half = f / 2.0
        # View for a point within range that the current cone does not cover.
        self._view_else = np.where(
            self._ptz, VIEW_PTZ_ELSEWHERE,
            np.where(f >= 360.0, VIEW_FIXED_360, np.where(np.isfinite(d), 0.0, VIEW_UNKNOWN)),
        )
        self._search_m = (max(MIN_SEARCH_M, 2.0 * float(self._range.max()))
                          if len(order) else MIN_SEARCH_M)

    @classmethod
    def from_cameras(cls, cameras: Iterable[CameraLike]) -> CameraIndex:
        """An index over store rows (``db.tables.Camera``), bus ``CameraView``s
        or anything shaped like them.

        Playability comes from each camera's ``status`` and its stream: a
        store row's ``stream_url``, or a ``CameraView``'s ``has_stream``.
        """
        rows = list(cameras)
        return cls(
            [c.id for c in rows],
            [c.lat for c in rows],
            [c.lon for c in rows],
            [c.direction_deg for c in rows],
            [c.fov_deg for c in rows],
            [c.range_m for c in rows],
            [c.ptz for c in rows],
            [is_playable(getattr(c, "status", None), _stream_of(c)) for c in rows],
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def playable_count(self) -> int:
        """How many cameras a ranking can return at most."""
        return int(self._ids.shape[0])

    def rank(
        self, lat: float, lon: float, heading_deg: float | None = None, k: int = 9,
        offline: Collection[int] = (),
    ) -> list[Ranked]:
        """The ``k`` best playable cameras for a WGS84 point, best first (see
        the module doc).

        ``heading_deg``: the child's compass heading, or None when it stands
        still or is unknown.  ``offline``: ids of cameras reported offline
        now (they lose ``OFFLINE_PENALTY``).  Fewer than ``k`` results only
        if fewer than ``k`` cameras are playable.
        """
        x, y = to_map(float(lat), float(lon))
        return self.rank_xy(x, y, heading_deg, k, offline)

    def rank_xy(
        self, x: float, y: float, heading_deg: float | None = None, k: int = 9,
        offline: Collection[int] = (),
    ) -> list[Ranked]:
        """`rank` for a point already in EPSG:5179 metres (the map's coordinates)."""
        n = self.playable_count
        if n == 0 or k <= 0:
            return []
        down = np.fromiter(offline, dtype=np.int64) if offline else None
        if heading_deg is not None and not math.isfinite(heading_deg):
            heading_deg = None
        k = min(k, n)
        radius = self._search_m
        while True:
            lo = int(np.searchsorted(self._x, x - radius, "left"))
            hi = int(np.searchsorted(self._x, x + radius, "right"))
            sel = lo + np.flatnonzero(np.abs(self._y[lo:hi] - y) <= radius)
            everything = sel.shape[0] == n
            if sel.shape[0] >= k or everything:
                score, dist, in_view, bearing = self._score(sel, x, y, heading_deg)
                is_down = (np.isin(self._ids[sel], down) if down is not None
                           else np.zeros(sel.shape[0], dtype=bool))
                score = score - OFFLINE_PENALTY * is_down  # only lowers: the bound holds
                top = np.lexsort((self._ids[sel], dist, -score))[:k]
                # Exact once the k-th score beats anything a camera outside the
                # square could reach (view is 0 there, as radius >= 2 * range).
                if everything or score[top[-1]] >= (W_NEAR + W_HEADING) * math.exp(
                    -radius / NEAR_SCALE_M
                ):
                    break
            radius *= 2.0
        return [
            Ranked(int(self._ids[sel[i]]), float(score[i]), float(dist[i]), bool(in_view[i]),
                   float(bearing[i]), bool(is_down[i]))
            for i in top
        ]

    def _score(
        self, sel: npt.NDArray[np.intp], x: float, y: float, heading_deg: float | None
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], FloatArray]:
        dx = x - self._x[sel]  # camera -> point
        dy = y - self._y[sel]
        dist = np.hypot(dx, dy)
        bearing = np.degrees(np.arctan2(dx, dy)) % 360.0
        off = np.abs((bearing - self._dir[sel] + 180.0) % 360.0 - 180.0)
        half = self._half[sel]
        known = self._known[sel]
        rng = self._range[sel]
        in_range = dist <= rng
        in_cone = known & (off <= half)
        edge = 0.5 * np.clip(1.0 - (off - half) / EDGE_DEG, 0.0, 1.0)
        fixed_view = np.where(in_cone, 1.0, np.where(known & ~self._ptz[sel], edge, 0.0))
        view = np.maximum(fixed_view, self._view_else[sel])
        view *= np.clip(2.0 - dist / rng, 0.0, 1.0)
        in_view = in_range & (in_cone | self._omni[sel])

        near = np.exp(-dist / NEAR_SCALE_M)
        if heading_deg is None:
            head: FloatArray | float = 0.5
        else:
            h = math.radians(heading_deg)
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = -(dx * math.sin(h) + dy * math.cos(h)) / dist  # child -> camera
            head = (1.0 + np.nan_to_num(cos, nan=0.0)) / 2.0
        score = W_VIEW * view + near * (W_NEAR + W_HEADING * head)
        return score, dist, in_view, bearing

    def cone_rings(self, arc_points: int = 16) -> FloatArray:
        """`cone_rings` for the whole index, in its original camera order."""
        return cone_rings(self.x, self.y, self.direction_deg, self.fov_deg, self.range_m,
                          arc_points=arc_points)


def cone_rings(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    direction_deg: npt.ArrayLike | Sequence[float | None],
    fov_deg: npt.ArrayLike,
    range_m: npt.ArrayLike,
    *,
    arc_points: int = 16,
) -> FloatArray:
    """View cones as closed rings in EPSG:5179, shape ``(n, arc_points + 2, 2)``.

    One array for all cameras so the map builds its paths in one go.  A
    directional camera gives [apex, arc..., apex]; a camera with no known
    direction (NaN) or a 360-degree field of view gives a circle of radius
    ``range_m`` (the map decides how to style the unknown ones: their
    direction is NaN).  First point == last point in every ring.
    """
    if arc_points < 2:
        raise ValueError("arc_points must be at least 2")
    xa = np.asarray(x, dtype=np.float64).reshape(-1)
    n = xa.shape[0]
    ya = _floats(y, n, "y")
    d = _floats(direction_deg, n, "direction_deg")
    f = np.clip(_floats(fov_deg, n, "fov_deg"), 0.0, 360.0)
    r = _floats(range_m, n, "range_m")
    circle = ~np.isfinite(d) | (f >= 360.0)
    t = np.linspace(0.0, 1.0, arc_points)
    cone_ang = np.where(circle, 0.0, d)[:, None] + (t - 0.5)[None, :] * f[:, None]
    circle_ang = np.linspace(0.0, 360.0, arc_points + 2)
    rings = np.empty((n, arc_points + 2, 2))
    ang = np.radians(cone_ang)
    rings[:, 1:-1, 0] = xa[:, None] + r[:, None] * np.sin(ang)
    rings[:, 1:-1, 1] = ya[:, None] + r[:, None] * np.cos(ang)
    rings[:, 0, 0] = rings[:, -1, 0] = xa
    rings[:, 0, 1] = rings[:, -1, 1] = ya
    if circle.any():
        ca = np.radians(circle_ang)[None, :]
        rc = r[circle][:, None]
        rings[circle, :, 0] = xa[circle][:, None] + rc * np.sin(ca)
        rings[circle, :, 1] = ya[circle][:, None] + rc * np.cos(ca)
        rings[circle, -1] = rings[circle, 0]  # exactly closed, whatever sin(2 pi) rounds to
    return rings


def cone_polygons(
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    direction_deg: npt.ArrayLike | Sequence[float | None],
    fov_deg: npt.ArrayLike,
    range_m: npt.ArrayLike,
    *,
    arc_points: int = 16,
) -> FloatArray:
    """`cone_rings` for cameras given in WGS84, as the store holds them."""
    x, y = to_map(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    return cone_rings(x, y, direction_deg, fov_deg, range_m, arc_points=arc_points)


def short_title(camera_id: int, name: str) -> str:
    """A camera's one-line title, what tells it apart first.

    Registry names are built like "성동구 뚝섬로 273 · 공원관리 · 동측"
    (address · purpose · view direction, see ``db.importers.cameras``), and
    the cameras around one place share the address, so anything showing
    the start of the name (a narrow CCTV tile, a demo camera's picture)
    showed the same "성동구 뚝섬로 273 · …" for all of them.  The title
    leads with the camera's short id and puts the name's parts most
    specific first: "#12 동측 · 공원관리 · 성동구 뚝섬로 273".
    """
    parts = [p.strip() for p in name.split("·") if p.strip()]
    shown = " · ".join(reversed(parts)) if len(parts) > 1 else name.strip()
    return f"#{camera_id} {shown}".strip()


# -- 촬영방면정보 (the national data's "view direction" free text) ----------------

DEFAULT_FOV_DEG = 90.0  # a typical fixed box or dome camera


@dataclass(frozen=True, slots=True)
class ViewDirection:
    """What 촬영방면정보 says about where a camera looks.

    ``deg`` None: unknown (or several directions at once); ``ptz``: the
    text says the camera turns (회전, PTZ, 360도), so it covers all around.
    """

    deg: float | None
    fov_deg: float
    ptz: bool


_KO_POINT = {"북": 0.0, "동": 90.0, "남": 180.0, "서": 270.0}
_KO_INTER = {"북동": 45.0, "동북": 45.0, "남동": 135.0, "동남": 135.0,
             "남서": 225.0, "서남": 225.0, "북서": 315.0, "서북": 315.0}
# A compass word is a token of its own ("북측", "남동 방향", "정북"), never the
# tail of a place name ("성수동 방향", "서울방면").
_KO_RUN = re.compile(r"(?<![가-힣])정?([동서남북]{1,3})(?=측|쪽|방향|방면|향|편|방|[^가-힣]|$)")
_EN_ABBR = {a: i * 22.5 for i, a in enumerate(
    ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE",
     "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"))}
_EN_WORD = {"north": 0.0, "northeast": 45.0, "east": 90.0, "southeast": 135.0,
            "south": 180.0, "southwest": 225.0, "west": 270.0, "northwest": 315.0}
_EN_JOIN = re.compile(r"(north|south)[\s\-]+(east|west)", re.I)
_DEGREES = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d+)?)\s*(?:°|도(?!로)|deg|degrees?)", re.I)
_BEARING = re.compile(r"방위각?\s*[:=]?\s*(\d{1,3}(?:\.\d+)?)")
_OMNI = re.compile(r"360|전방위|전방향|회전|ptz|팬\s*틸트|스피드\s*돔", re.I)


def _mid(a: float, b: float) -> float:
    return (a + ((b - a + 180.0) % 360.0 - 180.0) / 2.0) % 360.0


def _ko_run(run: str) -> float | None:
    if len(run) == 1:
        return _KO_POINT[run]
    if len(run) == 2:
        return _KO_INTER.get(run)  # "남북", "동서": an axis, two ways at once
    if run[1:] in _KO_INTER and run[0] in run[1:]:  # 북북동, 동남동: 16-point names
        return _mid(_KO_POINT[run[0]], _KO_INTER[run[1:]])
    return None


@functools.lru_cache(maxsize=4096)  # a registry repeats a few hundred phrasings
def parse_view_direction(text: str) -> ViewDirection:
    """Read 촬영방면정보: compass words (Korean or English) or degrees.

    One clear direction gives it with the default field of view; words that
    say the camera turns give a PTZ with a 360-degree field; anything else
    (empty, "정면", "도로", several directions) is unknown.
    """
    t = unicodedata.normalize("NFC", text).strip()
    unknown = ViewDirection(None, DEFAULT_FOV_DEG, False)
    if not t:
        return unknown
    if _OMNI.search(t):
        return ViewDirection(None, 360.0, True)
    found: list[float | None] = []
    try:
        whole = float(t)  # the whole text is a number: degrees
        found.append(whole % 360.0 if math.isfinite(whole) else None)
    except ValueError:
        found += [float(m) % 360.0 for m in _DEGREES.findall(t)]
        found += [float(m) % 360.0 for m in _BEARING.findall(t)]
        found += [_ko_run(m) for m in _KO_RUN.findall(t)]
        for word in re.findall(r"[A-Za-z]+", _EN_JOIN.sub(r"\1\2", t)):
            if word in _EN_ABBR:
                found.append(_EN_ABBR[word])
            elif word.lower() in _EN_WORD:
                found.append(_EN_WORD[word.lower()])
    distinct = {None if d is None else round(d, 1) for d in found}
    if len(distinct) != 1 or None in distinct:
        return unknown
    (deg,) = distinct
    return ViewDirection(deg, DEFAULT_FOV_DEG, False)
