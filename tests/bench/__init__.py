"""Benchmarks behind ``childsafe bench [pipeline] [map] [alerts] --seconds S``.

Numbers, not pass/fail: each benchmark prints what it measured next to
DESIGN.md's "Performance budgets" as a ratio (1.00× = exactly the budget).
Nothing here asserts; a benchmark that cannot run says why and the others
still run.

- ``pipeline`` (``tests/bench/bench_pipeline.py``): device frames → gateway
  → engine → store, on SQLite in a fresh temp dir, and on PostgreSQL: the
  configuration's ``db_url`` (or ``CHILDSAFE_BENCH_PG_URL``) if it is a
  PostgreSQL URL (it writes fixes and SOS alerts there: use a throw-away
  database), otherwise a private cluster started for the run as the tests
  start one (fsync off); plus SOS frame-in → console-alert latency under
  that load.
  ``CHILDSAFE_BENCH_CHILDREN`` overrides the 100,000 seeded children.
- ``map`` (``tests/bench/bench_map.py``): 10,000, 100,000 and 580,000
  children on the map (``--markers N…``): live redraw with every child
  moving (30 fps budget) and pan/zoom (60 fps), the console's memory, and
  the cold start from a snapshot of that many children (2 s budget).
- ``ingest`` (``tests/bench/bench_ingest.py``): decoded frames/s per
  protocol on one core, and watch fixes/s delivered to the bus by a real
  gateway holding 10,000 concurrent watch connections.
- ``alerts`` (``tests/bench/bench_alerts.py``): operator commands (ack →
  take → procedure steps → resolve, by several signed-in operators through
  one DEALER socket, a bounded window outstanding) accepted per second by
  the engine, refusals by code (stale when two operators race) and reply
  latency; then SOS → console latency (a ``LiveFeed`` Frame) while 100
  alerts/s are opened and worked, against the 100 ms p99 budget. SQLite in a
  fresh temp dir, 3,000 seeded children; not part of the default set.
- ``security`` (``tests/bench/bench_security.py``): the bus and the whole
  pipeline with CURVE on beside the same runs with it off, as ratios; not
  part of the default set.
- ``zones`` (``tests/bench/bench_zones.py``): geofence fixes/s with 1,000 and
  10,000 polygon zones against PostGIS ``ST_Contains`` on the same data in a
  private cluster, as a ratio; not part of the default set.
- ``tape`` (``tests/bench/bench_tape.py``): the bus tape (``db.tape``) per
  hour of traffic at the demo's load and at 100,000 children: MB on disk,
  CPU spent writing, read-back times, zlib level 1 against none (60 s of
  traffic simulated and extrapolated; ``--seconds`` is not used); not part
  of the default set.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from console.config import Config

MAP_MARKERS = (10_000, 100_000, 580_000)
PG_URL_ENV = "CHILDSAFE_BENCH_PG_URL"
CHILDREN_ENV = "CHILDSAFE_BENCH_CHILDREN"


def _pipeline(cfg: Config, seconds: float) -> tuple[list[str], list[str]]:
    """(headline lines, detail lines)."""
    from tests.bench import bench_pipeline as bp

    children = int(os.environ.get(CHILDREN_ENV, 0)) or bp.DEFAULT_CHILDREN
    pg = os.environ.get(PG_URL_ENV) or (cfg.db_url if cfg.db_url.startswith("postgresql")
                                        else "")
    heads: list[str] = []
    out: list[str] = []
    server = None
    if not pg:  # always measured: a private cluster, as the tests start one
        from tests.services import PostgresServer

        try:
            server = PostgresServer()
            pg = server.start()
        except Exception as exc:
            server = None
            heads.append(f"pipeline postgresql: not run (no {PG_URL_ENV}, no PostgreSQL "
                         f"db_url, and no private server: {exc})")
    try:
        for url in [None, *([pg] if pg else [])]:
            label = bp.backend_of(url or "sqlite")
            if url is not None and server is not None:
                label += " (private cluster, fsync off)"
            try:
                r = bp.run(children=children, seconds=seconds, db_url=url)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                heads.append(f"pipeline {label}: could not run ({type(exc).__name__}: {exc})")
                continue
            heads += bp.headline(r)
            out.append(bp.format_result(r))
    finally:
        if server is not None:
            server.stop()
    return heads, out


def _fps_of(result: dict[str, Any], phase: str) -> float:
    """The frames per second of one phase of a bench_map result ("redraw" or "pan")."""
    v = result.get(f"{phase}_fps")
    return float(v) if isinstance(v, int | float) else math.nan


def _map(seconds: float, markers: list[int] | None = None) -> tuple[list[str], list[str]]:
    """(headline lines, detail lines): for each marker count the live redraw
    and pan/zoom rates and the console's memory, then the cold start from a
    snapshot of that many children."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from tests.bench import bench_map
    except ImportError as exc:
        return [f"map: not run — tests/bench/bench_map.py is missing or broken ({exc})"], []
    heads: list[str] = []
    details: list[str] = []
    for n in markers or MAP_MARKERS:
        try:
            r = bench_map.run(n, seconds)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            heads.append(f"map {n:,} markers: could not run ({type(exc).__name__}: {exc})")
            continue
        if not all(math.isfinite(_fps_of(r, phase)) for phase in ("redraw", "pan")):
            heads.append(f"map {n:,} markers: no redraw or pan/zoom fps in the result {r}")
            continue
        try:
            cold = bench_map.cold_start(n)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            heads += bench_map.headline(r)
            heads.append(f"map {n:,} cold start: could not run ({type(exc).__name__}: {exc})")
            details.append(bench_map.details(r))
            continue
        heads += bench_map.headline(r, cold)
        details.append(bench_map.details(r, cold))
    return heads, details


def _alerts(seconds: float) -> tuple[list[str], list[str]]:
    """(headline lines, detail lines)."""
    from tests.bench import bench_alerts as ba

    try:
        r = ba.run(seconds)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return [f"alerts: could not run ({type(exc).__name__}: {exc})"], []
    return ba.headline(r), [ba.format_result(r)]


def run_benchmarks(which: list[str], cfg: Config, seconds: float,
                   markers: list[int] | None = None) -> int:
    """Run the named benchmarks (default: all), print a table; always 0.
    ``markers``: the map's children counts (default ``MAP_MARKERS``)."""
    names = [w.lower() for w in which] or ["pipeline", "map"]
    heads: list[str] = []
    details: list[str] = []
    started = time.monotonic()
    for name in names:
        if name == "pipeline":
            h, d = _pipeline(cfg, seconds)
        elif name == "map":
            h, d = _map(seconds, markers)
        elif name == "cameras":
            from tests.bench import bench_cameras as bc

            h, d = [bc.headline(bc.run(n, seconds)) for n in bc.CAMERAS], []
        elif name == "cctv":
            from tests.bench import bench_cctv

            r = bench_cctv.run(seconds, tiles=9)
            h, d = [f"cctv 3x3 grid: {', '.join(f'{k}={v}' for k, v in r.items())}"], []
        elif name == "ingest":
            from tests.bench import bench_ingest as bi

            r = bi.run(seconds)
            h, d = bi.headline(r), [bi.format_result(r)]
        elif name == "alerts":
            h, d = _alerts(seconds)
        elif name == "security":
            from tests.bench import bench_security as bs

            children = int(os.environ.get(CHILDREN_ENV, 0)) or None
            r = bs.run(seconds, children)
            h, d = bs.headline(r), [bs.format_result(r)]
        elif name == "zones":
            from tests.bench import bench_zones as bz

            try:
                r = bz.run()
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                h, d = [f"zones: could not run ({type(exc).__name__}: {exc})"], []
            else:
                h, d = bz.headline(r), [bz.format_result(r)]
        elif name == "tape":
            from tests.bench import bench_tape as bt

            r = bt.run()
            h, d = bt.headline(r), [bt.format_result(r)]
        else:
            h, d = [f"{name}: unknown benchmark (pipeline, map, cameras, cctv, ingest, "
                    "alerts, security, zones, tape)"], []
        heads += h
        details += d
    print(f"childsafe bench: {', '.join(names)}; {seconds:g} s per load phase; "
          f"{os.cpu_count()} CPUs; {time.monotonic() - started:.0f} s in all")
    print("against DESIGN.md 'Performance budgets' (1.00× = exactly the budget):")
    for line in heads:
        print(f"  {line}")
    for block in details:
        print()
        print(block)
    sys.stdout.flush()
    return 0
