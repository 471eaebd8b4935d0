"""Zone benchmark: fixes/s through the geofence with a city's worth of polygon
zones, beside the same containment done by PostGIS on the same data.

Why: the engine evaluates zones itself, vectorized, instead of asking the
store (DESIGN.md "engine"); this says what that buys over the obvious
alternative, PostGIS ``ST_Contains`` on a GIST index, measured in the same
run on the same zones and the same fixes, as a ratio. The two do not do
the same work: the geofence also keeps each child's state (hysteresis,
dwell, enter/exit events), PostGIS only answers "which zones contain this
point". The ratio is therefore what the geofence's whole step costs against
bare containment in the database.

The data (deterministic for a seed):

- **zones**: 1,000 and 10,000 school-sized polygons, 200–600 m across,
  centres spread over Seoul's extent: convex n-gons and rotated rectangles
  (school lots), and 30% concave (L-shaped lots and star-shaped outlines).
  They are ``ZoneView``s with a WGS84 GeoJSON ``shape``, as the store hands
  them to the engine; PostGIS gets the same text and projects it to
  EPSG:5179 itself.
- **fixes**: children moving near a zone each (walking, some on a bus,
  pulled back when they stray past twice the zone's size), GPS accuracy
  mostly 3–60 m with some Wi-Fi and carrier fixes; one round in which every
  child reports once (the geofence's first sightings, untimed), then the
  timed fixes in batches (5,000 by default), each batch a slice of one
  round, as the gateway would hand them on.

What is measured, over the same timed fixes:

- **geofence**: ``Geofence.step`` per batch (x/y already EPSG:5179 metres,
  as the engine has them); fixes/s over the time spent in ``step``, and the
  (fix, zone) candidate pairs it classified per fix.
- **shapely**: a reference, raw containment with an ``STRtree`` query
  (``within``), no state kept.
- **PostGIS**: zones in a table with a GIST index on ``geometry(Polygon,
  5179)``; each batch either sent as two ``float8[]`` arrays and joined
  through ``unnest`` (``unnest``), or COPYed into a temporary table and
  joined (``copy``), with ``ST_Contains``; fixes/s over the wall time of
  sending, joining and fetching the pairs, and the server backend's CPU.
  The session runs with ``jit = off``: a 5,000-fix join's cost estimate
  trips PostgreSQL's JIT, whose compile time is pure overhead for a query
  this short (about 10% here), and an OLTP server would have it off.
- **agreement**: PostGIS's (fix, zone) inside pairs against shapely's raw
  containment over every fix PostGIS was sent, and the geofence's first sightings against
  the same raw containment: every pair it confirms inside is inside, and a
  raw-inside pair it does not confirm must lie within that fix's hysteresis
  margin of the fence (where it holds "unknown" by design).

If PostGIS cannot be had (package missing, server not starting), its rows
say why and the geofence rows are still reported. Nothing is asserted:
numbers to read, not a pass/fail test.

``python -m tests.bench.bench_zones [--zones 1000 10000] [--children N]
[--fixes N] [--batch N] [--no-postgis] [--pg-url URL] [--json]``; a
``--pg-url`` is a running server's URL, in which a throw-away database is
created and dropped; without it a private cluster is started in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import psycopg

    from models.messages import ZoneView

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ZONE_COUNTS = (1_000, 10_000)
CHILDREN = 50_000
FIXES = 250_000  # timed, after the round of first sightings: 5 more rounds
BATCH = 5_000
DIAMETER_M = (200.0, 600.0)
CONCAVE_SHARE = 0.3
SEOUL_LAT = (37.43, 37.70)
SEOUL_LON = (126.76, 127.18)
PIPELINE_BUDGET_FIXES_PER_S = 100_000  # DESIGN.md: the whole pipeline, PostgreSQL
PG_METHODS = ("unnest", "copy")
SRID = 5179


# ------------------------------------------------------------------------ the data

@dataclass(frozen=True)
class ZoneSet:
    """The zones as the engine gets them, plus what the fixes are generated from."""

    views: list[ZoneView]
    cx: FloatArray  # generating centre and half-size, EPSG:5179 metres
    cy: FloatArray
    r: FloatArray
    concave: int


@dataclass(frozen=True)
class Fixes:
    """Every fix in the order sent; ``batches`` are (start, stop) rows, the
    first ``warm`` of them the untimed round of first sightings."""

    slot: IntArray
    x: FloatArray
    y: FloatArray
    acc: FloatArray
    t: FloatArray
    batches: list[tuple[int, int]]
    warm: int

    @property
    def warm_rows(self) -> int:
        return self.batches[self.warm][0] if self.warm < len(self.batches) else len(self.slot)

    @property
    def timed(self) -> int:
        return len(self.slot) - self.warm_rows

    def postgis_rows(self) -> npt.NDArray[np.bool_]:
        """Per row: sent to PostGIS (its first batch, to warm up, and the timed ones)."""
        sent = np.zeros(len(self.slot), dtype=bool)
        sent[self.warm_rows:] = True
        if self.batches:
            sent[self.batches[0][0]:self.batches[0][1]] = True
        return sent


def _outline(rng: np.random.Generator, style: int, r: float) -> FloatArray:
    """One polygon's ring around (0, 0), counter-clockwise, closed, at most
    ``r`` from the centre: 0 convex n-gon, 1 rotated rectangle, 2 L-shape,
    3 concave star (the last two concave)."""
    if style == 0:
        k = int(rng.integers(6, 25))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        ring = np.column_stack([np.cos(a), np.sin(a)]) * r
    elif style in (1, 2):
        aspect = rng.uniform(1.0, 2.0)
        h = 1.0 / math.hypot(1.0, aspect)  # half-height, so the half-diagonal is 1
        w = aspect * h
        if style == 1:
            ring = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
        else:  # a corner cut away: the classic L-shaped school lot
            cw, ch = rng.uniform(0.3, 0.6) * 2 * w, rng.uniform(0.3, 0.6) * 2 * h
            ring = np.array([[-w, -h], [w, -h], [w, h - ch], [w - cw, h - ch], [w - cw, h],
                             [-w, h]])
        turn = rng.uniform(0, np.pi)
        rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        ring = ring @ rot.T * r
    else:  # star-shaped around the centre with deep notches: simple, concave
        k = int(rng.integers(8, 25))
        a = (np.arange(k) + rng.uniform(-0.3, 0.3, k)) * (2 * np.pi / k)
        rad = r * np.where(np.arange(k) % 2 == 0, 1.0, rng.uniform(0.4, 0.7, k))
        ring = np.column_stack([np.cos(a), np.sin(a)]) * rad[:, None]
    return np.vstack([ring, ring[:1]])


def make_zones(n: int, seed: int = 1) -> ZoneSet:
    """``n`` polygon zones over Seoul, as ``ZoneView``s (deterministic)."""
    from models.geo import to_wgs84
    from models.messages import ZoneView

    rng = np.random.default_rng(seed)
    (x0, x1), (y0, y1) = _seoul_box()
    cx, cy = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
    r = rng.uniform(*DIAMETER_M, n) / 2
    concave = rng.random(n) < CONCAVE_SHARE
    style = np.where(concave, rng.integers(2, 4, n), rng.integers(0, 2, n))
    rings = [_outline(rng, int(s), float(rr)) + np.array([x, y])
             for s, rr, x, y in zip(style, r, cx, cy, strict=True)]
    sizes = np.array([len(ring) for ring in rings])
    lat, lon = to_wgs84(*np.vstack(rings).T)
    ends = np.cumsum(sizes)
    views = []
    for i, (lo, hi) in enumerate(zip(ends - sizes, ends, strict=True)):
        shape = json.dumps({"type": "Polygon", "coordinates": [
            np.column_stack([lon[lo:hi], lat[lo:hi]]).tolist()]})
        clat, clon = to_wgs84(float(cx[i]), float(cy[i]))
        views.append(ZoneView(id=i + 1, name=f"zone {i + 1}", kind="school", lat=clat,
                              lon=clon, radius_m=float(r[i]), shape=shape))
    return ZoneSet(views, cx, cy, r, int(concave.sum()))


def _seoul_box() -> tuple[tuple[float, float], tuple[float, float]]:
    """((x0, x1), (y0, y1)): Seoul's bounding box in EPSG:5179 metres."""
    from models.geo import to_map

    x, y = to_map(np.array(SEOUL_LAT), np.array(SEOUL_LON))
    return (float(x.min()), float(x.max())), (float(y.min()), float(y.max()))


def make_fixes(zones: ZoneSet, children: int, fixes: int, batch: int,
               seed: int = 2) -> Fixes:
    """One round of first sightings, then ``fixes`` more, of ``children``
    moving near a zone each (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    home = rng.integers(0, len(zones.cx), children)
    hx, hy, hr = zones.cx[home], zones.cy[home], zones.r[home]
    dist = hr * 2.0 * np.sqrt(rng.random(children))
    a = rng.uniform(0, 2 * np.pi, children)
    px, py = hx + dist * np.cos(a), hy + dist * np.sin(a)
    heading = rng.uniform(0, 2 * np.pi, children)
    speed = np.where(rng.random(children) < 0.1, 8.0, 1.4)  # some ride a bus
    t_now = np.full(children, 1.7e9) + rng.uniform(0, 10, children)
    rounds = 1 + math.ceil(fixes / children)
    cols: dict[str, list[Any]] = {k: [] for k in ("slot", "x", "y", "acc", "t")}
    batches: list[tuple[int, int]] = []
    warm = 0
    at = 0
    for rnd in range(rounds):
        n = children if rnd == 0 else min(children, fixes - (at - children))
        order = rng.permutation(children)[:n]
        if rnd:  # everyone moves on between fixes; order within the round is random
            dt = rng.uniform(6.0, 12.0, children)
            heading += rng.normal(0.0, 0.6, children)
            far = np.hypot(px - hx, py - hy) > 2.0 * hr + 50.0
            heading[far] = np.arctan2(hy - py, hx - px)[far]
            px += speed * dt * np.cos(heading)
            py += speed * dt * np.sin(heading)
            t_now += dt
        kind = rng.random(n)
        acc = np.where(kind < 0.90, np.clip(rng.lognormal(np.log(8.0), 0.5, n), 3.0, 60.0),
                       np.where(kind < 0.97, rng.uniform(60.0, 300.0, n),
                                rng.uniform(300.0, 1500.0, n)))
        noise = rng.normal(0.0, 1.0, (2, n)) * (acc / 2.0)
        cols["slot"].append(order)
        cols["x"].append(px[order] + noise[0])
        cols["y"].append(py[order] + noise[1])
        cols["acc"].append(acc)
        cols["t"].append(t_now[order])
        batches += [(at + s, at + min(s + batch, n)) for s in range(0, n, batch)]
        if rnd == 0:
            warm = len(batches)
        at += n
    cat = {k: np.concatenate(v) for k, v in cols.items()}
    return Fixes(cat["slot"].astype(np.int64), cat["x"], cat["y"], cat["acc"], cat["t"],
                 batches, warm)


def _timed_batches(f: Fixes) -> Iterator[tuple[int, int]]:
    yield from f.batches[f.warm:]


# ------------------------------------------------------------------------ geofence

def run_geofence(zones: ZoneSet, f: Fixes) -> dict[str, Any]:
    """Fixes/s through ``Geofence.step`` over the timed batches, after the
    round of first sightings; the confirmed pairs after that round, for the
    agreement check."""
    from models.geofence import Geofence

    t0 = time.perf_counter()
    fence = Geofence(zones.views)
    load_s = time.perf_counter() - t0
    for lo, hi in f.batches[:f.warm]:
        fence.step(f.slot[lo:hi], f.x[lo:hi], f.y[lo:hi], f.acc[lo:hi], f.t[lo:hi])
    zc = len(zones.views)
    first = np.array(sorted(s * zc + z for s in range(int(f.slot.max()) + 1)
                            for z in fence.zones_of(s)), dtype=np.int64)
    per_batch: list[float] = []
    candidates = events = 0
    cpu0 = time.process_time()
    for lo, hi in _timed_batches(f):
        t = time.perf_counter()
        events += len(fence.step(f.slot[lo:hi], f.x[lo:hi], f.y[lo:hi], f.acc[lo:hi],
                                 f.t[lo:hi]))
        per_batch.append(time.perf_counter() - t)
        candidates += fence.candidates
    cpu = time.process_time() - cpu0
    busy = math.fsum(per_batch)
    return {"load_s": load_s, "seconds": busy, "cpu_s": cpu,
            "fixes_per_s": f.timed / busy if busy else math.nan,
            "candidates_per_fix": candidates / f.timed if f.timed else math.nan,
            "batch_ms_p50": float(np.median(per_batch)) * 1e3 if per_batch else math.nan,
            "batch_ms_max": max(per_batch) * 1e3 if per_batch else math.nan,
            "events": events, "pairs_held": fence.pairs, "first_inside": first}


# ------------------------------------------------------------------------ shapely

def run_shapely(zones: ZoneSet, f: Fixes) -> dict[str, Any]:
    """Raw containment of every fix (``(row, zone index)`` codes, sorted),
    timed over the timed batches: the reference both others are checked
    against."""
    import shapely

    from models.zones import metric_geometries

    polys = metric_geometries(zones.views)
    t0 = time.perf_counter()
    tree = shapely.STRtree(polys)
    tree.query(shapely.points(0.0, 0.0))  # the tree is built on first use: time that here
    load_s = time.perf_counter() - t0
    zc = len(zones.views)
    codes: list[IntArray] = []
    busy = 0.0
    for i, (lo, hi) in enumerate(f.batches):
        t = time.perf_counter()
        q, z = tree.query(shapely.points(f.x[lo:hi], f.y[lo:hi]), predicate="within")
        if i >= f.warm:
            busy += time.perf_counter() - t
        codes.append((q.astype(np.int64) + lo) * zc + z)
    return {"load_s": load_s, "seconds": busy,
            "fixes_per_s": f.timed / busy if busy else math.nan,
            "codes": np.sort(np.concatenate(codes)) if codes else np.empty(0, np.int64),
            "polys": polys}


# ------------------------------------------------------------------------ PostGIS

_UNNEST = ("SELECT f.i, z.id FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY "
           "AS f(x, y, i) JOIN zone z ON ST_Contains(z.geom, "
           f"ST_SetSRID(ST_MakePoint(f.x, f.y), {SRID}))")
_COPY_JOIN = ("SELECT f.i, z.id FROM fix f JOIN zone z ON ST_Contains(z.geom, "
              f"ST_SetSRID(ST_MakePoint(f.x, f.y), {SRID}))")


def _backend_cpu_s(conn: psycopg.Connection[Any]) -> float:
    """CPU seconds the server process serving ``conn`` has used (it runs on
    this machine: the server is private and on 127.0.0.1)."""
    from tests.bench.measure import CLK_TCK, cpu_ticks

    ticks = cpu_ticks(conn.info.backend_pid)
    return ticks / CLK_TCK if ticks is not None else math.nan


def load_postgis(conn: psycopg.Connection[Any], zones: ZoneSet) -> float:
    """The zones into a fresh table (COPY of the GeoJSON text, projected by
    PostGIS, GIST index, ANALYZE); returns the seconds that took."""
    t0 = time.perf_counter()
    conn.execute("DROP TABLE IF EXISTS zone")
    conn.execute(f"CREATE TABLE zone (id integer PRIMARY KEY, shape text NOT NULL, "
                 f"geom geometry(Polygon, {SRID}))")
    with conn.cursor().copy("COPY zone (id, shape) FROM STDIN") as copy:
        for v in zones.views:
            copy.write_row((v.id, v.shape))
    conn.execute(f"UPDATE zone SET geom = ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(shape), "
                 f"4326), {SRID})")
    conn.execute("CREATE INDEX zone_geom ON zone USING GIST (geom)")
    conn.execute("ANALYZE zone")
    conn.commit()
    return time.perf_counter() - t0


def _query_unnest(conn: psycopg.Connection[Any], x: FloatArray, y: FloatArray
                  ) -> list[tuple[int, int]]:
    with conn.cursor(binary=True) as cur:
        cur.execute(_UNNEST, (x.tolist(), y.tolist()))
        return cur.fetchall()


def _query_copy(conn: psycopg.Connection[Any], x: FloatArray, y: FloatArray
                ) -> list[tuple[int, int]]:
    text = "".join(f"{i}\t{a!r}\t{b!r}\n" for i, (a, b) in
                   enumerate(zip(x.tolist(), y.tolist(), strict=True), start=1))
    with conn.cursor() as cur:
        cur.execute("TRUNCATE fix")
        with cur.copy("COPY fix (i, x, y) FROM STDIN") as copy:
            copy.write(text)
        cur.execute(_COPY_JOIN)
        return cur.fetchall()


def run_postgis(url: str, zones: ZoneSet, f: Fixes, methods: Sequence[str] = PG_METHODS
                ) -> dict[str, Any]:
    """Per method: fixes/s over the timed batches and the inside codes of
    every fix; plus the load time and the plan the join got."""
    import psycopg

    from tests.bench.postgis import libpq_url

    out: dict[str, Any] = {}
    zc = len(zones.views)
    with psycopg.connect(libpq_url(url)) as conn:
        out["load_s"] = load_postgis(conn, zones)
        conn.execute("SET jit = off")  # see the module's docstring
        conn.execute("CREATE TEMP TABLE fix (i bigint, x float8, y float8)")
        conn.commit()
        lo, hi = f.batches[-1]
        plan = conn.execute("EXPLAIN " + _UNNEST, (f.x[lo:hi].tolist(),
                                                   f.y[lo:hi].tolist())).fetchall()
        conn.rollback()
        out["plan"] = " / ".join(str(r[0]).strip() for r in plan)
        for method in methods:
            query = _query_unnest if method == "unnest" else _query_copy
            codes: list[IntArray] = []
            busy = 0.0
            cpu0 = _backend_cpu_s(conn)
            for i, (lo, hi) in enumerate(f.batches):
                if 0 < i < f.warm:
                    continue  # one batch of the first round warms the caches: enough
                if i == f.warm:
                    cpu0 = _backend_cpu_s(conn)
                t = time.perf_counter()
                rows = query(conn, f.x[lo:hi], f.y[lo:hi])
                got = np.array(rows, dtype=np.int64).reshape(-1, 2)
                if i >= f.warm:
                    busy += time.perf_counter() - t
                codes.append((got[:, 0] - 1 + lo) * zc + (got[:, 1] - 1))
            conn.rollback()  # read-only: nothing to keep, and no long transaction
            out[method] = {"seconds": busy, "server_cpu_s": _backend_cpu_s(conn) - cpu0,
                           "fixes_per_s": f.timed / busy if busy else math.nan,
                           "codes": np.sort(np.concatenate(codes))}
    return out


# ------------------------------------------------------------------------ agreement

def first_sighting_check(zones: ZoneSet, f: Fixes, raw: IntArray, confirmed: IntArray,
                         polys: npt.NDArray[np.object_]) -> dict[str, int]:
    """The geofence's confirmed-inside pairs after the first round against
    raw containment of that round: ``extra`` (confirmed but not inside)
    must be 0, and of the raw-inside pairs it does not confirm, ``unexplained``
    (deeper inside than the fix's hysteresis margin) must be 0 too."""
    import shapely

    from models.geofence import FenceRule

    zc = len(zones.views)
    n = f.warm_rows
    raw = raw[raw < n * zc]
    row, zone = np.divmod(raw, zc)
    raw_pairs = f.slot[row] * zc + zone  # by child, as the geofence holds them
    extra = np.setdiff1d(confirmed, raw_pairs)
    missing = ~np.isin(raw_pairs, confirmed)
    rule = FenceRule()
    a = f.acc[row[missing]]
    margin = np.maximum(a, np.clip(a, rule.hysteresis_min_m, rule.hysteresis_max_m))
    depth = shapely.distance(shapely.boundary(polys[zone[missing]]),
                             shapely.points(f.x[row[missing]], f.y[row[missing]]))
    return {"raw": len(raw_pairs), "confirmed": len(confirmed), "extra": len(extra),
            "held_at_fence": int(missing.sum()),
            "unexplained": int((depth >= margin).sum())}


def _differ(a: IntArray, b: IntArray) -> int:
    return len(np.setxor1d(a, b, assume_unique=True))


# ------------------------------------------------------------------------ the run

def run_one(zone_count: int, children: int = CHILDREN, fixes: int = FIXES,
            batch: int = BATCH, pg_url: str | None = None,
            pg_methods: Sequence[str] = PG_METHODS, seed: int = 1) -> dict[str, Any]:
    """All rows for one zone count; ``pg_url`` None skips PostGIS."""
    zones = make_zones(zone_count, seed)
    f = make_fixes(zones, children, fixes, batch, seed + 1)
    geo = run_geofence(zones, f)
    ref = run_shapely(zones, f)
    r: dict[str, Any] = {"zones": zone_count, "concave": zones.concave, "children": children,
                         "fixes": f.timed, "batch": batch, "geofence": geo,
                         "shapely": ref, "inside_pairs": len(ref["codes"]),
                         "first_sighting": first_sighting_check(
                             zones, f, ref["codes"], geo["first_inside"], ref["polys"])}
    if pg_url is not None:
        try:
            pg = run_postgis(pg_url, zones, f, pg_methods)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            r["postgis_error"] = f"{type(exc).__name__}: {exc}"
        else:
            seen = f.postgis_rows()
            raw = ref["codes"][seen[ref["codes"] // zone_count]]
            for m in pg_methods:
                pg[m]["differ"] = _differ(pg[m]["codes"], raw)
                pg[m]["compared"] = len(raw)
            r["postgis"] = pg
    return r


def run(zone_counts: Sequence[int] = ZONE_COUNTS, children: int = CHILDREN,
        fixes: int = FIXES, batch: int = BATCH, postgis: bool = True,
        pg_url: str | None = None, pg_methods: Sequence[str] = PG_METHODS,
        seed: int = 1) -> dict[str, Any]:
    """Every zone count's figures; one PostGIS database for all of them (or
    ``postgis_error`` saying why there is none)."""
    from tests.bench.postgis import PostGISUnavailable, postgis_database

    result: dict[str, Any] = {"runs": [], "postgis_error": None if postgis else
                              "--no-postgis given"}
    if not postgis:
        result["runs"] = [run_one(n, children, fixes, batch, None, pg_methods, seed)
                          for n in zone_counts]
        return result
    try:
        with postgis_database(pg_url) as url:
            result["runs"] = [run_one(n, children, fixes, batch, url, pg_methods, seed)
                              for n in zone_counts]
    except PostGISUnavailable as exc:
        result["postgis_error"] = str(exc)
    if not result["runs"]:  # PostGIS never came up: the geofence rows still count
        result["runs"] = [run_one(n, children, fixes, batch, None, pg_methods, seed)
                          for n in zone_counts]
    return result


# ------------------------------------------------------------------------ report

def _n(v: Any, digits: int = 0) -> str:
    ok = isinstance(v, int | float) and math.isfinite(v)
    return f"{v:,.{digits}f}" if ok else "n/a"


def _ratio(a: float, b: float) -> str:
    ok = all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in (a, b))
    return f"{a / b:.2f}×" if ok else "n/a"


def _pg_why(result: dict[str, Any], r: dict[str, Any]) -> str | None:
    return r.get("postgis_error") or (None if "postgis" in r else
                                      result.get("postgis_error") or "not run")


def headline(result: dict[str, Any]) -> list[str]:
    """One line per zone count: the geofence against PostGIS, as a ratio."""
    out = []
    for r in result["runs"]:
        g = r["geofence"]
        line = (f"zones {r['zones']:,} polygons: geofence {_n(g['fixes_per_s'])} fixes/s "
                f"({_n(g['candidates_per_fix'], 2)} candidates/fix; "
                f"{_ratio(g['fixes_per_s'], PIPELINE_BUDGET_FIXES_PER_S)} the "
                f"{PIPELINE_BUDGET_FIXES_PER_S:,} fixes/s pipeline budget)")
        why = _pg_why(result, r)
        if why:
            line += f"; PostGIS: {why}"
        else:
            pg = r["postgis"]
            best = max((m for m in PG_METHODS if m in pg), key=lambda m: pg[m]["fixes_per_s"])
            agree = all(pg[m]["differ"] == 0 for m in PG_METHODS if m in pg)
            line += (f" = {_ratio(g['fixes_per_s'], pg[best]['fixes_per_s'])} PostGIS "
                     f"ST_Contains ({best}, {_n(pg[best]['fixes_per_s'])} fixes/s) on the same "
                     f"{r['fixes']:,} fixes; containment "
                     + ("agrees" if agree else "DISAGREES")
                     + f" ({pg[best]['compared']:,} inside pairs)")
        out.append(line)
    return out


def _row(name: str, fps: float, base: float, cand: str, load: float, notes: str) -> str:
    return (f"  {name:<34}{_n(fps):>12}{_ratio(fps, base):>11}{cand:>10}"
            f"{_n(load, 2):>9}  {notes}")


def format_result(result: dict[str, Any]) -> str:
    """The table: per zone count, one row per method, with ratios to PostGIS."""
    lines = ["zones: geofence vs PostGIS ST_Contains on the same zones and fixes"]
    for r in result["runs"]:
        g, s = r["geofence"], r["shapely"]
        pg = r.get("postgis", {})
        base = pg.get("unnest", {}).get("fixes_per_s", math.nan)
        lines += ["",
                  f"  {r['zones']:,} polygon zones, {DIAMETER_M[0]:.0f}–{DIAMETER_M[1]:.0f} m "
                  f"across over Seoul ({r['concave']:,} concave); {r['children']:,} children; "
                  f"{r['fixes']:,} timed fixes in batches of {r['batch']:,}",
                  f"  {'method':<34}{'fixes/s':>12}{'vs unnest':>11}{'cand/fix':>10}"
                  f"{'load s':>9}  notes"]
        lines.append(_row("geofence (Geofence.step)", g["fixes_per_s"], base,
                          _n(g["candidates_per_fix"], 2), g["load_s"],
                          f"batch p50 {_n(g['batch_ms_p50'], 1)} ms, max "
                          f"{_n(g['batch_ms_max'], 1)} ms; cpu {_n(g['cpu_s'], 2)} s in "
                          f"{_n(g['seconds'], 2)} s; {g['events']:,} events; "
                          f"{g['pairs_held']:,} pairs held"))
        lines.append(_row("shapely STRtree within (no state)", s["fixes_per_s"], base, "",
                          s["load_s"], "reference for the agreement check"))
        why = _pg_why(result, r)
        if why:
            lines.append(f"  {'PostGIS ST_Contains':<34}  not run: {why}")
        else:
            for m in PG_METHODS:
                if m in pg:
                    p = pg[m]
                    lines.append(_row(f"PostGIS ST_Contains ({m})", p["fixes_per_s"], base,
                                      "", pg["load_s"],
                                      f"server cpu {_n(p['server_cpu_s'], 2)} s in "
                                      f"{_n(p['seconds'], 2)} s; differs from shapely on "
                                      f"{p['differ']:,} of {p['compared']:,} inside pairs"))
            lines.append(f"  PostGIS plan: {pg.get('plan', '')}")
        fs = r["first_sighting"]
        lines.append(f"  geofence first sightings: {fs['confirmed']:,} pairs confirmed inside "
                     f"of {fs['raw']:,} raw-inside; {fs['extra']:,} confirmed but not inside; "
                     f"{fs['held_at_fence']:,} held as unknown within the hysteresis margin of "
                     f"the fence ({fs['unexplained']:,} deeper, unexplained)")
    return "\n".join(lines)


def _jsonable(result: dict[str, Any]) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if not isinstance(x, np.ndarray)}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    out: dict[str, Any] = clean(result)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_zones",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--zones", type=int, nargs="+", default=list(ZONE_COUNTS), metavar="N")
    p.add_argument("--children", type=int, default=CHILDREN)
    p.add_argument("--fixes", type=int, default=FIXES, help="timed fixes per zone count")
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--methods", nargs="+", choices=PG_METHODS, default=list(PG_METHODS))
    p.add_argument("--no-postgis", action="store_true")
    p.add_argument("--pg-url", default=None,
                   help="a running PostgreSQL server (SQLAlchemy or libpq URL); a throw-away "
                        "database is made in it (default: a private cluster in a temp dir)")
    p.add_argument("--json", action="store_true", help="the figures as JSON, not the table")
    args = p.parse_args(argv)
    result = run(args.zones, args.children, args.fixes, args.batch, not args.no_postgis,
                 args.pg_url, args.methods)
    if args.json:
        print(json.dumps(_jsonable(result), default=str))
    else:
        print("\n".join(headline(result)))
        print(format_result(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
