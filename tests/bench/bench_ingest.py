"""Device ingest benchmark: decoders on one core, and a real gateway holding
10,000 watch connections.

Two parts, both numbers rather than pass/fail:

1. **Decode micro-benchmarks**, in this process, on one thread pinned to one
   CPU. Rates are per CPU-second of that thread (``time.thread_time``), so
   other work on the 2-core machine costs wall time, not the figure; the
   wall-clock rate is printed next to it. Covered: watch ``UD`` and ``AL``
   frames (``FrameSplitter.feed`` one frame per read, as a watch sends them,
   then ``decode``), OsmAnd query strings and JSON bodies, tag-read and
   carrier batches (items/s, JSON parsing included), and the ``Intake``
   (registry check, validation, de-duplication, batching into columnar
   ``FixBatch``es and their msgpack encoding) measured apart. "watch UD
   end to end" is what the gateway does with a read that is one UD frame
   (``decode_plain_uds``, one match, then the intake): its CPU per frame
   with no socket and no event loop.

2. **The gateway under 10,000 watch connections**: a fresh installation
   under a short ``/tmp`` dir, a seeded SQLite store (20,000 children by
   default, so 10,000 wear a watch), a supervisor running only ``bus`` and
   ``gateway``, and 2–4 load processes (asyncio, raw transports) that each
   open their share of the connections, one per watch, and then send ``UD``
   frames round-robin so every connection sends at the same steady rate
   (``rate / connections`` frames/s). Every frame has a new position, so
   none is a duplicate. This process subscribes to ``fix.batch`` and
   ``sys.heartbeat`` on the bus and reports the watch fixes delivered to
   the bus per second over the measuring window (after a warm-up), next to
   what was offered, what the gateway read and accepted (heartbeat
   counters), how many connections were held (the load processes' view and
   the gateway's), and the CPU of every process. The fixes/s are compared
   with DESIGN.md's pipeline budget, 100,000 fixes/s.

Every load is bounded in count and time and stops by itself: the load
processes exit after their phase (or after a timeout if this process never
tells them to start), the supervisor stops the backend.

``python -m tests.bench.bench_ingest --help`` runs it standalone;
``--profile DIR`` records the gateway with py-spy during the window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.measure import (
    CLK_TCK,
    cpu_ticks,
    fmt,
    machine_ticks,
    ratio_line,
)
from tests.bench.measure import rate as series_rate  # `rate` is the offered load here
from tests.services import free_tcp_port

# Only the standard library at module level: the load processes are spawned
# and import this module; they should start fast and lean.

BUDGET_FIXES_PER_S = 100_000  # DESIGN.md: the pipeline, device frames in
DEFAULT_CONNECTIONS = 10_000
DEFAULT_CHILDREN = 20_000  # every other seeded child wears a watch
HOST = "127.0.0.1"
CONNECT_BATCH = 200  # connects in flight per load process (listen backlog 1024)
TICK_S = 0.005
MAX_WRITE_BUFFER = 32 * 1024  # a connection further behind than this skips frames
GO_TIMEOUT_S = 120.0  # a load process whose parent never says "go" gives up
READY_TIMEOUT_S = 60.0
DRAIN_MAX_S = 10.0  # after the load: the gateway works off what the kernel buffered
SPY_RATE = 50

# A UD frame as the test suite's watch sends it: after date, time, validity
# and position come km/h, course, altitude, satellites, rssi, battery, steps,
# rolls, status, then two cell towers and two access points (~230 bytes).
UD_TAIL = (b"7.2,181.5,31.0,9,88,64,2051,3,00000000,2,1,450,5,8801,40561,152,8801,40562,"
           b"139,2,sinhak-ap,0a:1b:2c:3d:4e:5f,-61,,66:55:44:33:22:11,-80,18.0")
AL_TAIL = UD_TAIL.replace(b",00000000,", b",00010000,")  # status bit 16: SOS


def raise_nofile() -> tuple[int, int]:
    """Raise this process's open-files soft limit to the hard limit (children
    inherit it); returns (soft, hard) afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _ulimit_n() -> str:
    """What ``ulimit -n`` says in a shell started from here."""
    try:
        out = subprocess.run(["sh", "-c", "ulimit -n; ulimit -Hn"], capture_output=True,
                             text=True, timeout=5).stdout.split()
        return f"soft {out[0]}, hard {out[1]}"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _proc_nofile(pid: int) -> int | None:
    """The soft open-files limit of another process."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _proc_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return math.nan


def ud_clock(t: float) -> bytes:
    """``ddmmyy,hhmmss`` in UTC, as a watch with a UTC clock sends it."""
    return time.strftime("%d%m%y,%H%M%S", time.gmtime(t)).encode("ascii")


def watch_frame(head: bytes, clock: bytes, lat: float, lon: float, kind: bytes = b"UD",
                tail: bytes = UD_TAIL) -> bytes:
    """``[3G*<id>*LLLL*UD,…]``; ``head`` is ``b"[3G*<id>*"``. Same framing as
    ``console.gateway.watch.encode`` without the str round trip (the load
    processes build ~25,000 of these a second each)."""
    content = b"%s,%s,A,%.6f,N,%.6f,E,%s" % (kind, clock, lat, lon, tail)
    return b"%s%04X*%s]" % (head, len(content), content)


# ------------------------------------------------------------- load processes
class _Watch(asyncio.Protocol):
    """One watch's connection: writes frames, counts reply bytes."""

    __slots__ = ("closed", "hanging_up", "lost", "rx", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.hanging_up = False
        self.lost = False
        self.rx = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.rx += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = not self.hanging_up


async def _load_main(port: int, devices: list[tuple[str, float, float]], rate: float,
                     seconds: float, pipe: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    out: dict[str, Any] = {"pid": os.getpid(), "devices": len(devices)}
    out["nofile"] = raise_nofile()
    conns: list[_Watch] = []
    heads: list[bytes] = []
    base: list[tuple[float, float]] = []
    errors: dict[str, int] = {}
    t_conn = time.monotonic()
    for i in range(0, len(devices), CONNECT_BATCH):
        chunk = devices[i:i + CONNECT_BATCH]
        got = await asyncio.gather(*(loop.create_connection(_Watch, HOST, port)
                                     for _ in chunk), return_exceptions=True)
        for (dev, lat, lon), res in zip(chunk, got, strict=True):
            if isinstance(res, BaseException):
                key = type(res).__name__ + (f"[{res.errno}]" if isinstance(res, OSError) else "")
                errors[key] = errors.get(key, 0) + 1
                continue
            conns.append(res[1])
            heads.append(b"[3G*%s*" % dev.encode("ascii"))
            base.append((lat, lon))
    out.update(connected=len(conns), connect_errors=errors,
               connect_s=time.monotonic() - t_conn)
    pipe.send({"stage": "connected", **out})
    # Wait for "go" (all load processes connected), bounded.
    deadline = time.monotonic() + GO_TIMEOUT_S
    while not pipe.poll():
        if time.monotonic() > deadline:
            out["error"] = "no go from the bench"
            return out
        await asyncio.sleep(0.02)
    pipe.recv()
    n = len(conns)
    counters = [0] * n
    sent = skipped = lagged = 0
    issued = 0  # frames due so far, sent or not
    cursor = 0
    cap = max(1, int(rate * 0.05))  # at most 50 ms worth in one tick
    timeline: list[tuple[float, int]] = []
    t0 = time.monotonic()
    next_mark = t0
    last_sec = -1
    clock = b""
    while n:
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        if now >= next_mark:
            timeline.append((now, sent))
            next_mark = now + 0.25
        wall = time.time()
        if int(wall) != last_sec:
            last_sec = int(wall)
            clock = ud_clock(wall)
        due = int(rate * (now - t0)) - issued
        if due > cap:  # this process fell behind: those frames are not offered
            lagged += due - cap
            issued += due - cap
            due = cap
        issued += max(0, due)
        for _ in range(due):
            c = conns[cursor]
            tr = c.transport
            if c.closed or tr is None or tr.get_write_buffer_size() > MAX_WRITE_BUFFER:
                skipped += 1
            else:
                k = counters[cursor] = counters[cursor] + 1
                lat, lon = base[cursor]
                # A new position every frame (1e-6° steps): never a duplicate.
                tr.write(watch_frame(heads[cursor], clock, lat + (k % 1000) * 1e-6, lon))
                sent += 1
            cursor = cursor + 1 if cursor + 1 < n else 0
        await asyncio.sleep(TICK_S)
    t_end = time.monotonic()
    timeline.append((t_end, sent))
    await asyncio.sleep(0.5)  # let a server-side close arrive before counting
    alive = sum(1 for c in conns if not c.closed)
    lost = sum(1 for c in conns if c.lost)
    rx = sum(c.rx for c in conns)
    buffered = sum(c.transport.get_write_buffer_size() for c in conns
                   if c.transport is not None and not c.closed)
    for c in conns:
        c.hanging_up = True
        if c.transport is not None:
            c.transport.close()
    await asyncio.sleep(0.2)
    out.update(stage="done", sent=sent, skipped_backpressure=skipped, lagged=lagged,
               alive_at_end=alive, lost_connections=lost, reply_bytes=rx,
               write_buffered_at_end=buffered, timeline=timeline, t_start=t0, t_end=t_end)
    return out


def _load_entry(port: int, devices: list[tuple[str, float, float]], rate: float,
                seconds: float, pipe: Any) -> None:
    try:
        result = asyncio.run(_load_main(port, devices, rate, seconds, pipe))
    except Exception as exc:  # reported, never raised into the bench
        result = {"stage": "done", "error": f"{type(exc).__name__}: {exc}"}
    with contextlib.suppress(OSError, ValueError):
        pipe.send(result)


# ------------------------------------------------------- decode micro-benchmarks
def _timed(step: Any, min_s: float) -> dict[str, float]:
    """Run ``step()`` (returns units done) until ``min_s`` of wall time; rates
    per CPU-second of this thread and per wall second."""
    step()  # warm caches (regexes, day table)
    units = 0
    w0, c0 = time.perf_counter(), time.thread_time()
    while True:
        units += step()
        wall = time.perf_counter() - w0
        if wall >= min_s:
            break
    cpu = time.thread_time() - c0
    return {"units": units, "wall_s": wall, "cpu_s": cpu,
            "per_s": units / cpu if cpu > 0 else math.nan, "wall_per_s": units / wall,
            "us_each": 1e6 * cpu / units if units else math.nan}


def _micro(min_s: float) -> dict[str, Any]:
    import json
    import random

    from console.gateway.feeds import ReaderPos, decode_carrier, decode_tag_reads
    from console.gateway.intake import Intake
    from console.gateway.osmand import decode_json, decode_query
    from console.gateway.watch import FrameSplitter, decode, decode_plain_uds
    from models.fixes import Report
    from models.messages import encode as encode_msg

    rng = random.Random(3)
    now = time.time()
    n_dev = 2_000
    ids = [f"88{rng.randrange(10**8):08d}" for _ in range(n_dev)]
    pos = [(37.45 + rng.random() * 0.2, 126.9 + rng.random() * 0.25) for _ in range(n_dev)]
    devs = list(zip(ids, pos, strict=True))
    clock = ud_clock(now - 5)
    ud = [watch_frame(b"[3G*%s*" % d.encode(), clock, la, lo) for d, (la, lo) in devs]
    al = [watch_frame(b"[3G*%s*" % d.encode(), clock, la, lo, b"AL", AL_TAIL)
          for d, (la, lo) in devs]

    def split_decode(frames: list[bytes]) -> Any:
        def step() -> int:
            sp = FrameSplitter()
            n = 0
            for f in frames:
                for fr in sp.feed(f):
                    decode(fr, now)
                    n += 1
            return n
        return step

    def split_only() -> int:
        sp = FrameSplitter()
        return sum(len(sp.feed(f)) for f in ud)

    def decode_only() -> int:
        for f in ud:
            decode(f, now)
        return len(ud)

    published: list[int] = []

    def publish(batch: Any) -> None:
        published.append(len(encode_msg(batch)))

    registered = set(ids)
    # Two reports per device (different times) per round, a fresh Intake per
    # round so nothing is a duplicate of the round before.
    reports = [Report(d, now - 20 + k, la, lo, 2.0, 90.0, 8.0, 77)
               for k in range(2) for d, (la, lo) in devs]

    def intake_only() -> int:
        it = Intake(publish)
        it.registered = registered
        for r in reports:
            it.accept(r, "watch", now)
        it.flush()
        return len(reports)

    import tempfile

    from console.journal import Journal
    journal_dir = Path(tempfile.mkdtemp(prefix="cs-bench-journal-"))
    journal = Journal(journal_dir / "gateway.sqlite3")

    def intake_journaled(group: int) -> Any:
        """The same, each ``group`` reports journaled in one commit before
        publishing: the cost of a durable acknowledgement (one commit per
        group the gateway's event loop gathers)."""
        def step() -> int:
            it = Intake(publish, journal)
            it.registered = registered
            for i, r in enumerate(reports, 1):
                it.accept(r, "watch", now)
                if i % group == 0:
                    it.flush()
            it.flush()
            return len(reports)
        return step

    def plain_only() -> int:
        for f in ud:
            decode_plain_uds(f)
        return len(ud)

    def watch_end_to_end() -> int:
        it = Intake(publish)
        it.registered = registered
        for f in ud:
            for r in decode_plain_uds(f)[0]:
                it.accept(r, "watch", now)
        it.flush()
        return len(ud)

    queries = [f"id={d}&lat={la:.7f}&lon={lo:.7f}&speed=2.50&bearing=90.0&accuracy=8.0"
               f"&batt=77&timestamp={now - 5:.3f}" for d, (la, lo) in devs]

    def osmand_query() -> int:
        for q in queries:
            decode_query(q, now)
        return len(queries)

    iso = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 5))
    bodies = [json.dumps({"device_id": d, "location": {
        "timestamp": iso, "coords": {"latitude": la, "longitude": lo, "accuracy": 8.0,
                                     "speed": 1.2, "heading": 90.0, "altitude": 31.0},
        "is_moving": True, "event": "motionchange", "battery": {"level": 0.77},
        "extras": {}}}).encode() for d, (la, lo) in devs]

    def osmand_json() -> int:
        for b in bodies:
            decode_json(b, now)
        return len(bodies)

    readers = {f"R{i:03d}-1": ReaderPos(37.5 + i * 1e-3, 127.0, 30.0, i) for i in range(50)}
    rids = list(readers)
    per_batch, batches = 500, 8
    tag_bodies = [json.dumps({"reads": [
        {"reader_id": rng.choice(rids), "tag_id": f"E200{rng.getrandbits(32):08X}",
         "rssi": round(-40 - 40 * rng.random(), 1), "t": round(now - rng.random() * 5, 3)}
        for _ in range(per_batch)]}).encode() for _ in range(batches)]
    carrier_bodies = [json.dumps({"fixes": [
        {"device_id": f"86{rng.randrange(10**12):012d}", "lat": 37.45 + rng.random() * 0.2,
         "lon": 126.9 + rng.random() * 0.25, "accuracy_m": rng.choice((15, 80, 350)),
         "t": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - rng.random() * 30)),
         "method": rng.choice(("gps", "cell", "wifi"))}
        for _ in range(per_batch)]}).encode() for _ in range(batches)]

    def tag_reads() -> int:
        return sum(len(decode_tag_reads(b, readers)[0]) for b in tag_bodies)

    def carrier() -> int:
        return sum(len(decode_carrier(b)[0]) for b in carrier_bodies)

    cases = [
        ("watch UD: split + decode", "frames", split_decode(ud)),
        ("watch UD: split only", "frames", split_only),
        ("watch UD: decode only", "frames", decode_only),
        ("watch UD: one match (decode_plain_uds)", "frames", plain_only),
        ("watch AL (SOS): split + decode + reply", "frames", split_decode(al)),
        ("OsmAnd query: decode_query", "requests", osmand_query),
        ("OsmAnd JSON: decode_json", "requests", osmand_json),
        (f"tag reads: decode_tag_reads ({per_batch}/batch)", "reads", tag_reads),
        (f"carrier: decode_carrier ({per_batch}/batch)", "fixes", carrier),
        ("intake: registry + validate + dedupe + batch + encode", "reports", intake_only),
        ("intake + journal, one commit per 4,000 reports", "reports", intake_journaled(4000)),
        ("intake + journal, one commit per 20 reports", "reports", intake_journaled(20)),
        ("watch UD end to end: one match + intake", "frames", watch_end_to_end),
    ]
    # Check the frames are what the gateway would accept, once, before timing.
    probe = Intake(lambda b: None)
    probe.registered = registered
    if len(decode_plain_uds(ud[0])[0]) != 1:
        raise RuntimeError("bench UD frame is not read in one match")
    for f in (ud[0], al[0]):
        for r in decode(f, now).reports:
            v = probe.accept(r, "watch", now)
            if not v.accepted:
                raise RuntimeError(f"bench frame refused by the intake: {v.reason}")
    sizes = {"ud_frame_bytes": len(ud[0]), "al_frame_bytes": len(al[0]),
             "osmand_query_bytes": len(queries[0]), "osmand_json_bytes": len(bodies[0]),
             "tag_batch_bytes": len(tag_bodies[0]), "carrier_batch_bytes": len(carrier_bodies[0])}
    out: dict[str, Any] = {"cases": [], "sizes": sizes}
    old = os.sched_getaffinity(0)
    cpu = min(old)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        cpu = -1
    try:
        for label, unit, step in cases:
            out["cases"].append({"name": label, "unit": unit, **_timed(step, min_s)})
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, old)
        journal.close()
        shutil.rmtree(journal_dir, ignore_errors=True)
    out["pinned_cpu"] = cpu
    return out


# ---------------------------------------------------------------- the gateway
class GatewayBench:
    def __init__(self, connections: int, children: int, say: Any) -> None:
        from console.config import Config

        self.say = say
        self.connections = connections
        self.children = max(children, 2 * connections + 20)
        self.data_dir = Path(tempfile.mkdtemp(prefix="csi-", dir="/tmp"))
        self.cfg = Config(data_dir=self.data_dir, osmand_port=free_tcp_port(),
                          watch_port=free_tcp_port(), feeds_port=free_tcp_port())
        self.cfg.ensure_dirs()
        self.sup: Any = None
        self.ctx: Any = None
        self.sub: Any = None
        self.watch_fixes = 0  # watch fixes seen in fix.batch
        self.other_fixes = 0
        self.batches = 0
        self.bus_series: list[tuple[float, float]] = []
        self.hb: dict[str, list[tuple[float, float]]] = {}
        self.last_stats: dict[str, float] = {}
        self.info: dict[str, Any] = {}

    def start(self) -> list[tuple[str, float, float]]:
        import zmq

        from console import keys
        from console.bus import Subscriber
        from console.security import Security
        from console.supervisor import Supervisor
        from db import repositories as repo
        from db.seed import seed_demo
        from db.store import open_store

        t = time.monotonic()
        engine, sessions = open_store(self.cfg.db_url)
        with sessions() as s:
            seed_demo(s, self.children)
            roster = repo.roster(s)
            zones = {z.id: z for z in repo.zones(s)}
        engine.dispose()
        watches = []
        for r in roster:
            if r.kind != "watch":
                continue
            z = zones.get(r.zone_id) if r.zone_id is not None else None
            lat, lon = (z.lat, z.lon) if z is not None else (37.5665, 126.9780)
            watches.append((r.device_id, lat, lon))
        self.info.update(children=self.children, watch_devices=len(watches),
                         seed_s=time.monotonic() - t)
        self.say(f"seeded {self.children:,} children ({len(watches):,} watches) in "
                 f"{self.info['seed_s']:.1f} s; starting bus and gateway")
        t = time.monotonic()
        self.sup = Supervisor(self.cfg, ("bus", "gateway"))
        self.ctx = zmq.Context()
        keys.init(self.cfg.data_dir)
        self.sub = Subscriber(self.ctx, self.cfg.bus_sub, ("fix.batch", "sys.heartbeat"),
                              security=Security.console(self.cfg))
        self.sup.start()
        deadline = t + READY_TIMEOUT_S
        while "connections.watch" not in self.last_stats:
            if time.monotonic() > deadline or self.sup.status().get("gateway") != "running":
                raise RuntimeError(f"no gateway heartbeat; see {self.cfg.log_dir}")
            self.drain(0.05)
        self.info["startup_s"] = time.monotonic() - t
        self.pids = {name: self.sup.pid(name) for name in ("bus", "gateway")}
        self.info["gateway_nofile"] = _proc_nofile(self.pids["gateway"])
        return watches

    def drain(self, wait_s: float = 0.0) -> None:
        """Take everything waiting on the bus; wait up to ``wait_s`` for the first."""
        import zmq

        sock = self.sub.sock
        if wait_s > 0 and not sock.poll(int(wait_s * 1000)):
            return
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            parsed = self.sub.parse(frames)
            if parsed is None:
                continue
            topic, msg = parsed
            now = time.monotonic()
            if topic == "fix.batch":
                self.batches += 1
                if msg.protocol == "watch":
                    self.watch_fixes += len(msg.device_ids)
                    self.bus_series.append((now, self.watch_fixes))
                else:
                    self.other_fixes += len(msg.device_ids)
            elif msg.origin.partition(":")[0] == "gateway":
                self.last_stats = dict(msg.stats)
                for key in ("accepted.watch", "frames.watch", "connections.watch",
                            "bytes_in.watch"):
                    self.hb.setdefault(key, []).append((now, float(msg.stats.get(key, 0.0))))

    def phase(self, watches: list[tuple[str, float, float]], seconds: float, rate: float,
              procs: int, profile_dir: Path | None) -> dict[str, Any]:
        import multiprocessing as mp

        spawn = mp.get_context("spawn")
        devices = watches[:self.connections]
        share = math.ceil(len(devices) / procs)
        gens: list[tuple[Any, Any]] = []
        spy: tuple[subprocess.Popen[bytes], Path] | None = None
        r: dict[str, Any] = {"connections_target": self.connections, "load_procs": procs,
                             "offered_target_per_s": rate, "seconds": seconds,
                             "per_connection_per_s": rate / max(1, len(devices))}
        try:
            for i in range(procs):
                mine, theirs = spawn.Pipe(duplex=True)
                p = spawn.Process(target=_load_entry, name=f"ingest-load-{i}", daemon=True,
                                  args=(self.cfg.watch_port, devices[i * share:(i + 1) * share],
                                        rate / procs, seconds, theirs))
                p.start()
                theirs.close()
                gens.append((p, mine))
            # Connect phase: everyone connected (or failed) before any load.
            t_conn = time.monotonic()
            connected: list[dict[str, Any]] = []
            for p, pipe in gens:
                while not pipe.poll(0.05):
                    self.drain()
                    if time.monotonic() - t_conn > GO_TIMEOUT_S or not p.is_alive():
                        raise RuntimeError("a load process did not connect; "
                                           f"alive={p.is_alive()} exit={p.exitcode}")
                connected.append(pipe.recv())
            r["connect_s"] = time.monotonic() - t_conn
            r["connected"] = sum(c.get("connected", 0) for c in connected)
            errs: dict[str, int] = {}
            for c in connected:
                for k, v in c.get("connect_errors", {}).items():
                    errs[k] = errs.get(k, 0) + v
            r["connect_errors"] = errs
            r["load_nofile"] = [tuple(c.get("nofile", ())) for c in connected]
            # Let the gateway's heartbeat catch up with the connections.
            settle = time.monotonic() + 2.0
            while time.monotonic() < settle and \
                    self.last_stats.get("connections.watch", 0) < r["connected"]:
                self.drain(0.1)
            r["gateway_connections_before"] = self.last_stats.get("connections.watch", 0)
            r["gateway_fds"] = _proc_fds(self.pids["gateway"])
            r["gateway_rss_mb_idle"] = _rss_mb(self.pids["gateway"])
            self.say(f"{r['connected']:,} watch connections open in {r['connect_s']:.1f} s "
                     f"(gateway counts {r['gateway_connections_before']:,.0f}); offering "
                     f"{rate:,.0f} UD frames/s for {seconds:.0f} s from {procs} load processes")

            for _p, pipe in gens:
                pipe.send("go")
            t0 = time.monotonic()
            warmup = min(3.0, 0.2 * seconds)
            win_start, win_end = t0 + warmup, t0 + seconds
            cpu_pids = {**self.pids, "bench": os.getpid(),
                        **{f"load{i}": p.pid for i, (p, _) in enumerate(gens) if p.pid}}
            cpu0: dict[str, int | None] = {}
            machine0 = (0, 0)
            hb_conn_min = math.inf
            while True:
                now = time.monotonic()
                if not cpu0 and now >= win_start:
                    cpu0 = {k: cpu_ticks(p) for k, p in cpu_pids.items()}
                    machine0 = machine_ticks()
                    spy = self._start_spy(profile_dir, max(1, int(win_end - now)))
                if now >= win_end:
                    break
                self.drain(0.02)
                if cpu0 and "connections.watch" in self.last_stats:
                    hb_conn_min = min(hb_conn_min, self.last_stats["connections.watch"])
            cpu1 = {k: cpu_ticks(p) for k, p in cpu_pids.items()}
            machine1 = machine_ticks()
            elapsed = time.monotonic() - win_start
            r["cpu_percent"] = {k: 100.0 * (cpu1[k] - cpu0[k]) / CLK_TCK / elapsed  # type: ignore[operator]
                                for k in cpu_pids
                                if cpu0.get(k) is not None and cpu1.get(k) is not None}
            busy = machine1[0] - machine0[0]
            r["machine_busy_percent"] = 100.0 * busy / max(1, machine1[1] - machine0[1])
            r["other_cpu_percent"] = max(
                0.0, 100.0 * busy / CLK_TCK / elapsed - sum(r["cpu_percent"].values()))
            r["gateway_rss_mb_load"] = _rss_mb(self.pids["gateway"])

            results: list[dict[str, Any]] = []
            deadline = time.monotonic() + 15.0
            for p, pipe in gens:
                while not pipe.poll(0.05):
                    self.drain()
                    if time.monotonic() > deadline or not p.is_alive():
                        break
                else:
                    results.append(pipe.recv())
                p.join(5.0)
            load_end = max((g.get("t_end", 0.0) for g in results), default=time.monotonic())
            sent = sum(g.get("sent", 0) for g in results)
            # Frames the gateway has not read yet sit in the kernel's socket
            # buffers (10,000 connections hold megabytes), so the load
            # processes never see backpressure: the gateway works that
            # backlog off after the load, with the CPU no longer shared with
            # them. Wait (bounded) until everything sent is on the bus or
            # nothing more arrives.
            on_bus_at_end = max((v for t, v in self.bus_series if t <= load_end), default=0.0)
            caught_up = math.nan
            last_val, last_change = self.watch_fixes, time.monotonic()
            while time.monotonic() < load_end + DRAIN_MAX_S:
                self.drain(0.05)
                now = time.monotonic()
                if self.watch_fixes >= sent:
                    caught_up = now - load_end
                    break
                if self.watch_fixes != last_val:
                    last_val, last_change = self.watch_fixes, now
                elif now - last_change > 1.5:
                    break
            drained_until = self.bus_series[-1][0] if self.bus_series else load_end
            # One more gateway heartbeat for the totals (its timer runs late under load).
            beats = len(self.hb.get("frames.watch", []))
            until = time.monotonic() + 3.0
            while time.monotonic() < until and len(self.hb.get("frames.watch", [])) <= beats:
                self.drain(0.05)
            beat_times = [t for t, _ in self.hb.get("frames.watch", [])
                          if win_start <= t <= win_end + 1.0]
            offered = sum(series_rate([(t, float(s)) for t, s in g.get("timeline", [])],
                                win_start, win_end) for g in results if g.get("timeline"))
            r.update(
                window_s=min(win_end, load_end) - win_start,
                sent=sent,
                skipped_backpressure=sum(g.get("skipped_backpressure", 0) for g in results),
                lagged=sum(g.get("lagged", 0) for g in results),
                alive_at_end=sum(g.get("alive_at_end", 0) for g in results),
                lost_connections=sum(g.get("lost_connections", 0) for g in results),
                reply_bytes=sum(g.get("reply_bytes", 0) for g in results),
                write_buffered_at_end=sum(g.get("write_buffered_at_end", 0) for g in results),
                load_errors=[g["error"] for g in results if "error" in g],
                load_results=len(results),
                offered_per_s=offered,
                gateway_frames_per_s=series_rate(self.hb.get("frames.watch", []), win_start,
                                           win_end + 1.0),
                gateway_accepted_per_s=series_rate(self.hb.get("accepted.watch", []), win_start,
                                             win_end + 1.0),
                bus_fixes_per_s=series_rate(self.bus_series, win_start, win_end),
                backlog_at_load_end=sent - on_bus_at_end,
                caught_up_s=caught_up,
                drain_per_s=series_rate(self.bus_series, load_end + 0.3, drained_until),
                drain_s=drained_until - load_end,
                heartbeat_max_gap_s=max((b - a for a, b in itertools.pairwise(beat_times)),
                                        default=math.nan),
                bus_fixes_total=self.watch_fixes,
                bus_batches=self.batches,
                bus_other_fixes=self.other_fixes,
                gateway_connections_min=hb_conn_min,
                gateway_connections_end=self.last_stats.get("connections.watch", math.nan),
                gateway_accepted_total=self.last_stats.get("accepted.watch", math.nan),
                gateway_frames_total=self.last_stats.get("frames.watch", math.nan),
                gateway_rejected={k.partition(".")[2]: v for k, v in self.last_stats.items()
                                  if k.startswith("rejected.watch")},
                subscriber_rejected=dict(self.sub.rejected),
            )
            if spy is not None:
                proc, out = spy
                try:
                    proc.wait(max(5.0, seconds))
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    proc.wait(5)
                if out.exists():
                    from tests.bench.bench_pipeline import summarize_profile

                    r["profile"] = summarize_profile(out, SPY_RATE * (win_end - win_start),
                                                     top=16)
            return r
        finally:
            if spy is not None and spy[0].poll() is None:
                spy[0].terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy[0].wait(5)
            for p, pipe in gens:
                if p.is_alive():
                    p.terminate()
                    p.join(5)
                pipe.close()

    def _start_spy(self, profile_dir: Path | None,
                   duration: int) -> tuple[subprocess.Popen[bytes], Path] | None:
        if profile_dir is None:
            return None
        from tests.bench.bench_pipeline import _py_spy

        spy = _py_spy()
        if spy is None:
            self.say("py-spy not found (set PY_SPY or put it on PATH); no profile")
            return None
        profile_dir.mkdir(parents=True, exist_ok=True)
        out = profile_dir / "ingest-gateway.txt"
        cmd = [spy, "record", "--pid", str(self.pids["gateway"]), "--rate", str(SPY_RATE),
               "--duration", str(duration), "--format", "raw", "--nonblocking",
               "--output", str(out)]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out

    def close(self, keep: bool = False) -> None:
        if self.sub is not None:
            self.sub.close()
        if self.ctx is not None:
            self.ctx.term()
        if self.sup is not None:
            self.sup.stop()
        if not keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def run(seconds: float, connections: int = DEFAULT_CONNECTIONS, rate: float | None = None,
        load_procs: int | None = None, children: int = DEFAULT_CHILDREN,
        micro_s: float | None = None, profile_dir: Path | None = None, keep: bool = False,
        micro: bool = True, gateway: bool = True, log: Any = None) -> dict[str, Any]:
    """Decode micro-benchmarks, then the gateway under ``connections`` watch
    connections offering ``rate`` UD frames/s in all (default: the 100,000
    fixes/s budget) for ``seconds``. Returns the numbers; never asserts."""
    say = log or (lambda msg: print(f"  [ingest] {msg}", file=sys.stderr, flush=True))
    nofile = raise_nofile()
    result: dict[str, Any] = {"seconds": seconds, "connections": connections,
                              "budget": BUDGET_FIXES_PER_S, "nofile": nofile,
                              "ulimit_n": _ulimit_n(), "cpus": os.cpu_count()}
    if micro:
        m_s = micro_s if micro_s is not None else min(2.0, max(0.5, seconds / 15.0))
        say(f"decode micro-benchmarks, {m_s:.1f} s each on one pinned core")
        try:
            result["micro"] = _micro(m_s)
        except Exception as exc:
            import traceback

            traceback.print_exc(file=sys.stderr)
            result["micro_error"] = f"{type(exc).__name__}: {exc}"
    if not gateway:
        return result
    procs = load_procs or max(2, min(4, math.ceil(connections / 2_500)))
    need = connections + 64
    if nofile[0] != resource.RLIM_INFINITY and nofile[0] < need:
        result["gateway_error"] = (f"open-files limit {nofile[0]} < {need} needed by the gateway "
                                   f"for {connections:,} connections")
        say(result["gateway_error"])
        return result
    bench = GatewayBench(connections, children, say)
    result["data_dir"] = str(bench.data_dir)
    try:
        watches = bench.start()
        if len(watches) < connections:
            say(f"only {len(watches):,} watch devices seeded; {len(watches):,} connections")
        result.update(bench.info)
        result["gateway"] = bench.phase(watches, seconds, float(rate or BUDGET_FIXES_PER_S),
                                        procs, profile_dir)
        result["gateway_nofile"] = bench.info.get("gateway_nofile")
    except Exception as exc:
        import traceback

        traceback.print_exc(file=sys.stderr)
        result["gateway_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        bench.close(keep)
    return result


# ------------------------------------------------------------------- reporting
def headline(r: dict[str, Any]) -> list[str]:
    """One line per figure for ``childsafe bench``'s summary."""
    out: list[str] = []
    m = r.get("micro")
    if m:
        short = {"watch UD: split + decode": "watch UD",
                 "watch UD: one match (decode_plain_uds)": "watch UD one match",
                 "watch AL (SOS): split + decode + reply": "watch AL",
                 "OsmAnd query: decode_query": "OsmAnd query",
                 "OsmAnd JSON: decode_json": "OsmAnd JSON"}
        parts = []
        for c in m["cases"]:
            name = short.get(c["name"]) or (
                "tag reads" if c["name"].startswith("tag") else "carrier"
                if c["name"].startswith("carrier") else
                ("intake+journal/" + c["name"].split("per ")[1].split(" ")[0]
                 if "journal" in c["name"] else "intake") if c["name"].startswith("intake") else
                "watch UD+intake" if "end to end" in c["name"] else None)
            if name:
                parts.append(f"{name} {c['per_s'] / 1000:,.0f}k")
        out.append("ingest decode on one core (items/s): " + ", ".join(parts))
    elif r.get("micro_error"):
        out.append(f"ingest decode: could not run ({r['micro_error']})")
    g = r.get("gateway")
    if g:
        out.append(ratio_line(
            f"ingest watch TCP, {g['alive_at_end']:,} of {g['connections_target']:,} "
            f"connections held, fix.batch on the bus", g["bus_fixes_per_s"],
            BUDGET_FIXES_PER_S, " fixes/s")
            + f" [offered {fmt(g['offered_per_s'])}/s, gateway CPU "
              f"{g['cpu_percent'].get('gateway', math.nan):.0f}%]")
    elif r.get("gateway_error"):
        out.append(f"ingest watch TCP: could not run ({r['gateway_error']})")
    return out


def format_result(r: dict[str, Any]) -> str:
    lines: list[str] = []
    m = r.get("micro")
    if m:
        cpu = m.get("pinned_cpu", -1)
        lines.append(f"ingest decode micro-benchmarks: one thread pinned to CPU {cpu}; rate per "
                     f"CPU-second of that thread (wall-clock rate in brackets)")
        for c in m["cases"]:
            lines.append(f"  {c['name']:<55} {c['per_s']:>11,.0f} {c['unit']}/s "
                         f"{c['us_each']:7.2f} µs each  [wall {c['wall_per_s']:,.0f}/s]")
        s = m["sizes"]
        lines.append(f"  sizes: UD frame {s['ud_frame_bytes']} B, AL frame {s['al_frame_bytes']} "
                     f"B, OsmAnd query {s['osmand_query_bytes']} B, JSON body "
                     f"{s['osmand_json_bytes']} B, tag batch {s['tag_batch_bytes']:,} B, carrier "
                     f"batch {s['carrier_batch_bytes']:,} B")
    elif r.get("micro_error"):
        lines.append(f"ingest decode micro-benchmarks: could not run ({r['micro_error']})")
    g = r.get("gateway")
    soft, hard = r["nofile"]
    if g:
        lines.append(
            f"ingest gateway: {r.get('children', 0):,} children seeded "
            f"({r.get('watch_devices', 0):,} watches) in {r.get('seed_s', math.nan):.1f} s; bus "
            f"+ gateway up in {r.get('startup_s', math.nan):.1f} s; open-files limit: bench "
            f"{soft}/{hard} (ulimit -n: {r['ulimit_n']}), gateway {r.get('gateway_nofile')}, "
            f"load processes {sorted(set(g['load_nofile']))}")
        lines.append(
            f"  connections: {g['connected']:,} of {g['connections_target']:,} opened in "
            f"{g['connect_s']:.1f} s from {g['load_procs']} load processes "
            f"(errors {g['connect_errors'] or 'none'}); gateway counted "
            f"{fmt(g['gateway_connections_before'])}, {fmt(g['gateway_fds'])} fds, "
            f"RSS {g['gateway_rss_mb_idle']:.0f} MB idle / {g['gateway_rss_mb_load']:.0f} MB "
            f"under load")
        lines.append(
            f"  held: {g['alive_at_end']:,} open at the end of the load (lost "
            f"{g['lost_connections']}); gateway's count during the window min "
            f"{fmt(g['gateway_connections_min'])} (after the load processes hung up: "
            f"{fmt(g['gateway_connections_end'])})")
        lines.append(f"  load: {g['per_connection_per_s']:.2f} UD frames/s per connection "
                     f"(target {g['offered_target_per_s']:,.0f}/s in all), "
                     f"{g['window_s']:.1f} s measured after warm-up")
        budget = float(BUDGET_FIXES_PER_S)
        for name, key in (("offered (load processes)", "offered_per_s"),
                          ("read + decoded (gateway frames)", "gateway_frames_per_s"),
                          ("accepted (gateway intake)", "gateway_accepted_per_s"),
                          ("fix.batch on the bus (watch)", "bus_fixes_per_s")):
            v = g[key]
            ratio = f"{v / budget:5.2f}×" if math.isfinite(v) else "  n/a"
            lines.append(f"    {name:<34} {fmt(v, '/s'):>12}  {ratio} of {budget:,.0f}/s")
        lines.append("  " + ratio_line("watch fixes delivered to the bus", g["bus_fixes_per_s"],
                                        budget, " fixes/s"))
        caught = g["caught_up_s"]
        lines.append(
            f"  backlog when the load stopped: {fmt(g['backlog_at_load_end'])} frames sent but "
            f"not yet on the bus (in socket buffers); "
            + (f"all on the bus {caught:.1f} s later" if math.isfinite(caught) else
               f"not worked off within {g['drain_s']:.1f} s")
            + f"; the gateway alone (load processes idle) delivered "
              f"{fmt(g['drain_per_s'], ' fixes/s')} meanwhile")
        lines.append(f"  gateway timers under load: longest gap between its 1 s heartbeats "
                     f"{g['heartbeat_max_gap_s']:.1f} s (the 50 ms batch flush shares that loop)")
        lines.append(
            f"  totals: sent {g['sent']:,} frames; gateway read {fmt(g['gateway_frames_total'])}"
            f", accepted {fmt(g['gateway_accepted_total'])}, refused "
            f"{g['gateway_rejected'] or 'none'}; bus got {g['bus_fixes_total']:,} watch fixes "
            f"in {g['bus_batches']:,} batches; not sent: {g['skipped_backpressure']:,} "
            f"(connection's send buffer > {MAX_WRITE_BUFFER // 1024} KiB) + {g['lagged']:,} "
            f"(load process behind); {g['write_buffered_at_end']:,} bytes still unsent at the end")
        cpu = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(g["cpu_percent"].items(),
                                                          key=lambda kv: -kv[1]))
        lines.append(f"  CPU (100% = one core): {cpu}; everything else on the machine "
                     f"{g['other_cpu_percent']:.0f}%; machine busy "
                     f"{g['machine_busy_percent']:.0f}% of {r['cpus']} cores")
        if g["load_errors"] or g["load_results"] < g["load_procs"]:
            lines.append(f"  load process problems: {g['load_errors']}; "
                         f"{g['load_results']} of {g['load_procs']} reported")
        prof = g.get("profile")
        if prof:
            lines.append(f"  py-spy gateway: {prof['samples']} non-idle samples = busy "
                         f"{prof['active_pct']:.0f}% of the time; top (self%, total%):")
            for fn, self_pct, total_pct in prof["rows"]:
                lines.append(f"    {self_pct:5.1f}% {total_pct:5.1f}%  {fn}")
    elif r.get("gateway_error"):
        lines.append(f"ingest gateway: could not run ({r['gateway_error']}); open-files limit "
                     f"{soft}/{hard}, ulimit -n: {r['ulimit_n']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_ingest",
                                description="decoders on one core; gateway under 10,000 "
                                            "watch connections")
    p.add_argument("--seconds", type=float, default=20.0, help="load phase duration")
    p.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    p.add_argument("--rate", type=float, default=None,
                   help=f"UD frames/s offered over all connections "
                        f"(default {BUDGET_FIXES_PER_S:,})")
    p.add_argument("--load-procs", type=int, default=None, help="2-4 by default")
    p.add_argument("--children", type=int, default=DEFAULT_CHILDREN)
    p.add_argument("--micro-seconds", type=float, default=None,
                   help="per decode micro-benchmark")
    p.add_argument("--no-micro", action="store_true")
    p.add_argument("--no-gateway", action="store_true")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="py-spy record the gateway into DIR (py-spy on PATH or $PY_SPY)")
    p.add_argument("--keep", action="store_true", help="keep the data dir (logs)")
    args = p.parse_args(argv)
    r = run(args.seconds, args.connections, rate=args.rate, load_procs=args.load_procs,
            children=args.children, micro_s=args.micro_seconds, profile_dir=args.profile,
            keep=args.keep, micro=not args.no_micro, gateway=not args.no_gateway)
    print("\n".join(headline(r)))
    print(format_result(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
