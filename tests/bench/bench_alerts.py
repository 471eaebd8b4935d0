"""Alert-desk benchmark: operator commands through the engine, and SOS
latency while alerts are being worked.

A private installation in a fresh ``/tmp`` dir on SQLite (bus, engine,
recorder and gateway; no media relay — the engine only logs that its
pre-alarm holds go nowhere), seeded with a few thousand children and
``operators`` operator accounts (``db.accounts.add_user``), each signed in
over the engine's request socket.

- **Phase 1, command throughput**: SOS alerts are opened (real OsmAnd HTTP
  GETs with ``alarm=sos``, one per distinct child, ``PHASE1_CHUNK`` at a
  time with the clock stopped, before the operators run short), and for
  ``seconds`` of working time the operators work them through one DEALER
  socket with at most ``window`` commands outstanding: ack → take → every
  mandatory step of the alert kind's procedure (``Procedures.load()``) →
  resolve, each alert by one operator, up to ``window`` alerts at once.
  For ``race_share`` of the alerts a second operator acks at the same time
  with the same version, as two people clicking one new row do: one of the
  two is refused as stale. Reported: accepted and refused commands per
  second (refusals by code), and each command's reply latency (sent →
  ``CommandReply`` with ``ref`` = its ``seq``), p50/p99/max.
- **Phase 2, SOS under load**: for ``seconds``, SOS at ``sos_rate`` per
  second for distinct children (a few keep-alive connections), while the
  same operators work every alert opened in this phase to resolution as
  fast as the window allows. Latency is from just before the SOS request is
  written to the alert appearing in a ``console.feed.LiveFeed`` Frame's
  ``alerts`` (the console's bus worker; the bench takes a Frame every 5 ms
  as a GUI timer would): p50/p99/max against DESIGN.md's 100 ms budget.
  A bus ``Subscriber`` on ``alert.opened`` in the bench gives a second,
  earlier point (the alert on the bus) and the per-stage split.

The bench's own process (load, operators, console feed) shares the two
cores with the system under test; the CPU of every process is reported.
Nothing is asserted: numbers to compare with DESIGN.md's budgets.

``python -m tests.bench.bench_alerts --help`` runs it standalone.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.bench_pipeline import parse_replies, percentile
from tests.bench.measure import CLK_TCK, cpu_ticks, fmt, machine_ticks, ratio_line
from tests.services import free_tcp_port

DEFAULT_CHILDREN = 3_000
SERVICES = ("bus", "engine", "recorder", "gateway")
OPERATORS = 4
WINDOW = 16  # commands outstanding at once, over all operators
RACE_SHARE = 0.2  # of alerts acked by two operators at once
SOS_RATE = 100.0  # phase 2: new SOS alerts per second
SOS_CONNECTIONS = 4
BUDGET_SOS_P99_MS = 100.0
PHASE1_CHUNK = 100  # phase 1 opens alerts this many at a time, as the operators need them
MAX_PHASE1_ALERTS_PER_S = 400  # phase 1 opens at most this many per second of the phase
OPEN_TIMEOUT_S = 30.0  # for the phase 1 batch to appear in the console
SOS_TIMEOUT_S = 10.0  # an SOS not in a console Frame by then is lost
DRAIN_S = 5.0  # commands still in flight when a phase ends: wait this long
READY_TIMEOUT_S = 60.0
MAX_RETRIES = 5  # an alert's command refused this often in a row: abandoned
POLL_S = 0.005  # how often the bench takes a Frame, like a GUI timer
PASSWORD = "bench-password-1"
HOST = "127.0.0.1"


def _say(msg: str) -> None:
    print(f"  [alerts] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------- population
@dataclass(frozen=True)
class Device:
    device_id: str
    lat: float
    lon: float


def _prepare(url: str, children: int, operators: list[str]) -> list[Device]:
    """Seed the store and the operator accounts; one device per child, each
    placed well inside its home zone, in a fixed random order."""
    from db import accounts
    from db import repositories as repo
    from db.seed import seed_demo
    from db.store import open_store

    engine, sessions = open_store(url)
    try:
        with sessions() as s:
            seed_demo(s, children)
            for name in operators:
                accounts.add_user(s, name, ["operator"], PASSWORD)
            s.commit()
            roster = repo.roster(s)
            zones = {z.id: (z.lat, z.lon, z.radius_m) for z in repo.zones(s)}
    finally:
        engine.dispose()
    rng = random.Random(11)
    out: list[Device] = []
    seen: set[int] = set()
    for r in roster:
        z = zones.get(r.zone_id) if r.zone_id is not None else None
        if z is None or r.child_id in seen:
            continue
        seen.add(r.child_id)
        lat0, lon0, radius = z
        d = rng.uniform(0.0, 0.4) * radius
        a = rng.uniform(0.0, 2 * math.pi)
        out.append(Device(r.device_id, lat0 + d * math.cos(a) / 111_320.0,
                          lon0 + d * math.sin(a) / (111_320.0 * math.cos(math.radians(lat0)))))
    rng.shuffle(out)
    return out


# --------------------------------------------------------------------- SOS side
class SosSender:
    """A few keep-alive OsmAnd connections pressing SOS, one distinct device
    each time; tracks each press until the console shows its alert."""

    def __init__(self, port: int, connections: int) -> None:
        self.socks: list[socket.socket] = []
        for _ in range(connections):
            sock = socket.create_connection((HOST, port), timeout=5)
            sock.settimeout(None)  # blocking sends; replies read with MSG_DONTWAIT
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks.append(sock)
        self.rx = [bytearray() for _ in self.socks]
        self.replies: Counter[str] = Counter()
        self.pending: dict[str, float] = {}  # device -> perf_counter at send
        self.marks: dict[str, dict[str, float]] = {}  # device -> stage -> wall clock
        self.console_ms: list[float] = []
        self.bus_ms: list[float] = []
        self.lost: list[str] = []
        self.sent = 0

    def reset(self) -> None:
        self.pending.clear()
        self.marks.clear()
        self.console_ms.clear()
        self.bus_ms.clear()
        self.lost.clear()
        self.replies.clear()
        self.sent = 0

    def press(self, d: Device) -> None:
        req = (f"GET /?id={d.device_id}&lat={d.lat:.7f}&lon={d.lon:.7f}"
               f"&timestamp={time.time():.3f}&accuracy=8.0&batt=70&alarm=sos HTTP/1.1\r\n"
               f"Host: gw\r\n\r\n").encode("ascii")
        sock = self.socks[self.sent % len(self.socks)]
        self.marks[d.device_id] = {"sent": time.time()}
        self.pending[d.device_id] = time.perf_counter()
        sock.sendall(req)
        self.sent += 1

    def read_replies(self) -> None:
        for sock, buf in zip(self.socks, self.rx, strict=True):
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while True:
                    data = sock.recv(65536, socket.MSG_DONTWAIT)
                    if not data:
                        break
                    buf += data
            parse_replies(buf, self.replies)

    def on_console(self, alert: Any, now: float, wall: float) -> None:
        """An alert seen for the first time in a console Frame."""
        t = self.pending.pop(alert.device_id, None) if alert.kind == "sos" else None
        if t is None:
            return
        self.console_ms.append((now - t) * 1000.0)
        self.marks[alert.device_id].update(opened=alert.opened_at, console=wall)

    def on_bus(self, device_id: str, published: float) -> None:
        m = self.marks.get(device_id)
        if m is not None and "bus" not in m:
            m.update(published=published, bus=time.time())
            self.bus_ms.append((m["bus"] - m["sent"]) * 1000.0)

    def expire(self, now: float, timeout_s: float = SOS_TIMEOUT_S) -> None:
        for device, t in list(self.pending.items()):
            if now - t > timeout_s:
                self.lost.append(device)
                del self.pending[device]

    def stages_ms(self) -> dict[str, tuple[float, float]]:
        """p50/p99 of each stage of the SOS that reached a console Frame."""
        stages = {"gateway → engine opens": ("sent", "opened"),
                  "engine: place name + store commit": ("opened", "published"),
                  "bus → console Frame (≤5 ms poll)": ("published", "console")}
        out: dict[str, tuple[float, float]] = {}
        for name, (a, b) in stages.items():
            v = [max(0.0, m[b] - m[a]) * 1000.0 for m in self.marks.values()
                 if a in m and b in m and "console" in m]
            out[name] = (percentile(v, 50), percentile(v, 99))
        return out

    def close(self) -> None:
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.close()


# ------------------------------------------------------------------- operators
@dataclass
class Work:
    """One alert being worked through its plan by one operator."""

    alert_id: int
    version: int
    user: int  # index of the operator working it
    plan: list[tuple[type, dict[str, Any]]]
    seen_at: float  # perf_counter when the console first showed it
    idx: int = 0  # the next command of the plan
    waiting: int = 0  # commands of plan[idx] in flight
    retries: int = 0


@dataclass
class Tally:
    """What the operators' commands got, from a moment on."""

    accepted: Counter[str] = field(default_factory=Counter)  # by action
    refused: Counter[str] = field(default_factory=Counter)  # by code
    latency_ms: dict[str, list[float]] = field(default_factory=dict)  # by action
    resolved: int = 0
    work_s: list[float] = field(default_factory=list)  # seen in the console → resolved

    def all_latencies(self) -> list[float]:
        return [v for vs in self.latency_ms.values() for v in vs]


class Operators:
    """Signed-in operators sending alert commands through one DEALER socket,
    at most ``window`` outstanding; replies are matched by ``ref``."""

    def __init__(self, cfg: Any, names: list[str], window: int, race_share: float,
                 latest: Any) -> None:
        import zmq

        from console.bus import socket as zsocket
        from console.security import Security
        from models.messages import AckAlert, MarkStep, ResolveAlert, TakeAlert
        from models.procedures import Procedures

        self.zmq = zmq
        self.ctx: Any = zmq.Context()
        self.sock = zsocket(self.ctx, zmq.DEALER)
        Security.console(cfg).client(self.sock, "engine")
        self.sock.connect(cfg.engine_rpc)
        self.names = names
        self.tokens: list[str] = []
        self.window = window
        self.race_share = race_share
        self.latest = latest  # alert id -> the version the console last saw, or None
        self.rng = random.Random(5)
        self.seq = 0
        self.queue: deque[Work] = deque()  # seen, not started
        self.ready: deque[Work] = deque()  # started, the next command not yet sent
        self.active = 0  # started, not resolved: at most ``window`` at a time
        self.inflight: dict[int, tuple[Work, int, float, str, bool]] = {}
        self.works: dict[int, Work] = {}
        self.abandoned = 0
        self.tally = Tally()
        self.counting = True
        self._procedures = Procedures.load()
        self._cmds = (AckAlert, TakeAlert, MarkStep, ResolveAlert)
        self._plans: dict[str, list[tuple[type, dict[str, Any]]]] = {}

    def sign_in(self, timeout_s: float = 30.0) -> None:
        from models.messages import SignedIn, SignIn, decode, encode

        refs = {}
        for name in self.names:
            self.seq += 1
            refs[self.seq] = name
            self.sock.send_multipart([b"", encode(SignIn(user=name, password=PASSWORD,
                                                         console="bench", seq=self.seq))])
        tokens: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while len(tokens) < len(self.names):
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1):
                raise RuntimeError("the engine did not answer the operators' sign-ins")
            reply = decode(self.sock.recv_multipart()[-1])
            if not isinstance(reply, SignedIn):
                raise RuntimeError(f"sign-in refused: {reply}")
            tokens[refs[reply.ref]] = reply.token
        self.tokens = [tokens[n] for n in self.names]

    def plan(self, kind: str) -> list[tuple[type, dict[str, Any]]]:
        if kind not in self._plans:
            ack, take, step, resolve = self._cmds
            steps = [s.id for s in self._procedures.steps(kind) if s.mandatory]
            self._plans[kind] = [(ack, {}), (take, {}), *[(step, {"step": s}) for s in steps],
                                 (resolve, {"outcome": "child_safe",
                                            "note": "bench: worked through"})]
        return self._plans[kind]

    def add(self, alert: Any, now: float) -> None:
        if alert.id in self.works:
            return
        w = Work(alert.id, alert.version, len(self.works) % len(self.tokens),
                 self.plan(alert.kind), now)
        self.works[alert.id] = w
        self.queue.append(w)

    def new_tally(self) -> Tally:
        self.tally = Tally()
        return self.tally

    def _send(self, w: Work, user: int, racer: bool) -> None:
        from models.messages import encode

        cls, kw = w.plan[w.idx]
        self.seq += 1
        cmd = cls(token=self.tokens[user], alert_id=w.alert_id, alert_version=w.version,
                  seq=self.seq, **kw)
        self.inflight[self.seq] = (w, w.idx, time.perf_counter(), cls.__name__, racer)
        w.waiting += 1
        self.sock.send_multipart([b"", encode(cmd)])

    def pump(self) -> None:
        """Send the next command of ready alerts while the window has room;
        alerts in progress go first, then the oldest new one (each operator
        works a few alerts at once, up to ``window`` in all)."""
        while len(self.inflight) < self.window:
            if self.ready:
                w = self.ready.popleft()
            elif self.queue and self.active < self.window:
                w = self.queue.popleft()
                self.active += 1
            else:
                return
            self._send(w, w.user, False)
            # The raced second ack may take the window one over (it is bounded
            # still: the next pump waits until there is room again).
            if (w.idx == 0 and len(self.tokens) > 1
                    and self.rng.random() < self.race_share):
                self._send(w, (w.user + 1) % len(self.tokens), True)

    def receive(self) -> int:
        """Handle every reply waiting now; returns how many."""
        from models.messages import CommandReply, decode

        n = 0
        while True:
            try:
                frames = self.sock.recv_multipart(self.zmq.NOBLOCK)
            except self.zmq.Again:
                return n
            now = time.perf_counter()
            n += 1
            reply = decode(frames[-1])
            entry = self.inflight.pop(getattr(reply, "ref", 0), None)
            if entry is None or not isinstance(reply, CommandReply):
                continue
            w, idx, sent, action, _racer = entry
            tally = self.tally
            tally.latency_ms.setdefault(action, []).append((now - sent) * 1000.0)
            current = idx == w.idx
            if current:
                w.waiting -= 1
            if reply.ok and reply.alert is not None:
                tally.accepted[action] += 1
                if not current:
                    continue
                w.version, w.idx, w.waiting, w.retries = reply.alert.version, w.idx + 1, 0, 0
                if w.idx >= len(w.plan):
                    self.active -= 1
                    tally.resolved += 1
                    tally.work_s.append(now - w.seen_at)
                else:
                    self.ready.append(w)
                continue
            tally.refused[reply.code or "?"] += 1
            if not current or w.waiting > 0:
                continue  # the other operator's copy of this step may yet win
            w.retries += 1
            if w.retries > MAX_RETRIES:
                self.abandoned += 1
                self.active -= 1
                continue
            seen = self.latest(w.alert_id)
            if seen is not None and seen > w.version:
                w.version = seen
            self.ready.append(w)

    def idle(self) -> bool:
        return not (self.queue or self.ready or self.inflight)

    def stop(self) -> None:
        """Forget every alert in progress (after its replies were collected)."""
        self.inflight.clear()
        self.ready.clear()
        self.queue.clear()
        self.active = 0

    def unfinished(self) -> int:
        return sum(1 for w in self.works.values() if w.idx < len(w.plan))

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


# --------------------------------------------------------------- the benchmark
CpuSnapshot = tuple[float, tuple[int, int], dict[str, int | None]]


class _Clock:
    """Wall time and CPU ticks summed over the intervals it was running."""

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot
        self.started: CpuSnapshot | None = None
        self.total = 0.0
        self.busy = 0  # machine-wide busy jiffies
        self.ticks: Counter[str] = Counter()

    def start(self) -> None:
        self.started = self.snapshot()

    def stop(self) -> None:
        if self.started is None:
            return
        (t0, m0, p0), (t1, m1, p1) = self.started, self.snapshot()
        self.total += t1 - t0
        self.busy += m1[0] - m0[0]
        for k, v in p0.items():
            w = p1.get(k)
            if v is not None and w is not None:
                self.ticks[k] += w - v
        self.started = None

    def elapsed(self) -> float:
        running = time.monotonic() - self.started[0] if self.started is not None else 0.0
        return self.total + running

    def cpu_percent(self) -> dict[str, float]:
        """% of one core per process, plus "everything else" on the machine
        (other people's work shares these cores)."""
        t = max(1e-6, self.total)
        out = {k: 100.0 * v / CLK_TCK / t for k, v in self.ticks.items()}
        busy = 100.0 * self.busy / CLK_TCK / t
        out["everything else on the machine"] = max(0.0, busy - sum(out.values()))
        return out


class AlertsBench:
    def __init__(self, children: int, seconds: float, operators: int, window: int,
                 race_share: float, sos_rate: float, keep: bool, say: Any) -> None:
        from console.config import Config

        self.children, self.seconds = children, seconds
        self.n_operators, self.window, self.race_share = operators, window, race_share
        self.sos_rate = sos_rate
        self.keep, self.say = keep, say
        self.data_dir = Path(tempfile.mkdtemp(prefix="csa-", dir="/tmp"))
        ports = {name: free_tcp_port() for name in ("osmand_port", "watch_port", "feeds_port",
                                                    "relay_port")}
        self.cfg = Config(data_dir=self.data_dir, **ports)  # type: ignore[arg-type]
        self.cfg.ensure_dirs()
        self.info: dict[str, Any] = {}
        self.sup: Any = None
        self.ctx: Any = None
        self.sub: Any = None
        self.feed: Any = None
        self.sender: SosSender | None = None
        self.ops: Operators | None = None
        self.known: set[int] = set()  # alert ids a Frame has shown
        self.engine_stats: dict[str, float] = {}
        self.beating: set[str] = set()  # roles whose heartbeat came
        self.pids: dict[str, int] = {}
        self.poller: Any = None

    # ------------------------------------------------------------ set-up
    def start(self) -> None:
        import zmq

        from console import keys
        from console.bus import Subscriber
        from console.feed import LiveFeed
        from console.security import Security
        from console.supervisor import Supervisor

        names = [f"benchop{i + 1}" for i in range(self.n_operators)]
        t = time.monotonic()
        self.say(f"seeding {self.children:,} children and {len(names)} operators in "
                 f"{self.data_dir}")
        self.devices = _prepare(self.cfg.db_url, self.children, names)
        self.info["seed_s"] = time.monotonic() - t
        t_start = time.monotonic()
        self.sup = Supervisor(self.cfg, SERVICES)
        self.ctx = zmq.Context()
        keys.init(self.cfg.data_dir)
        self.sub = Subscriber(self.ctx, self.cfg.bus_sub, ("alert.opened", "sys.heartbeat"),
                              security=Security.console(self.cfg))
        self.sup.start()
        self.pids = {name: self.sup.pid(name) for name in SERVICES}
        deadline = t_start + READY_TIMEOUT_S
        self.feed = LiveFeed(self.cfg)
        self.feed.start()
        while not (self.feed.state.synced and {"engine", "gateway"} <= self.beating):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the backend did not come up; see {self.cfg.log_dir}")
            self.feed.take()
            self.drain_bus()
            time.sleep(0.05)
        self.sender = SosSender(self.cfg.osmand_port, SOS_CONNECTIONS)
        self.ops = Operators(self.cfg, names, self.window, self.race_share, self._console_version)
        self.ops.sign_in()
        self.poller = zmq.Poller()
        self.poller.register(self.ops.sock, zmq.POLLIN)
        self.poller.register(self.sub.sock, zmq.POLLIN)
        self.info["startup_s"] = time.monotonic() - t_start
        self.say(f"backend up in {self.info['startup_s']:.1f} s (pids {self.pids}); "
                 f"{len(names)} operators signed in")

    def _console_version(self, alert_id: int) -> int | None:
        """The version of an alert as the console last saw it (a dict read
        across the feed's thread; the GIL makes it atomic)."""
        a = self.feed.state.alerts.get(alert_id)
        return a.version if a is not None else None

    def drain_bus(self) -> None:
        import zmq

        while True:
            try:
                frames = self.sub.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            parsed = self.sub.parse(frames)
            if parsed is None:
                continue
            topic, msg = parsed
            if topic == "alert.opened":
                if self.sender is not None:
                    self.sender.on_bus(msg.alert.device_id, msg.ts)
                continue
            who = msg.origin.partition(":")[0]
            self.beating.add(who)
            if who == "engine":
                self.engine_stats = dict(msg.stats)

    def poll_feed(self, work: bool) -> None:
        """Take a Frame as the GUI would; new alerts go to the operators."""
        assert self.sender is not None and self.ops is not None
        frame = self.feed.take()
        rows = frame.alerts
        if not rows:
            return
        now, wall = time.perf_counter(), time.time()
        for a in rows:  # the queue puts every "new" alert first (models.alerts.sort_key)
            if a.state != "new":
                break
            if a.id in self.known:
                continue
            self.known.add(a.id)
            self.sender.on_console(a, now, wall)
            if work:
                self.ops.add(a, now)

    def wait_events(self, until: float) -> None:
        """Sleep until ``until`` (perf_counter) or a reply/bus message comes."""
        assert self.ops is not None
        ms = max(0, math.ceil((until - time.perf_counter()) * 1000.0))
        events = dict(self.poller.poll(ms))
        if self.ops.sock in events:
            self.ops.receive()
        if self.sub.sock in events:
            self.drain_bus()

    def cpu_snapshot(self) -> CpuSnapshot:
        pids = {**self.pids, "bench (load + operators + console feed)": os.getpid()}
        return time.monotonic(), machine_ticks(), {k: cpu_ticks(p) for k, p in pids.items()}

    @staticmethod
    def engine_ms_per_command(cpu: dict[str, float], accepted_per_s: float) -> float:
        """Engine CPU per accepted command (everything it did meanwhile, too)."""
        if "engine" not in cpu or not accepted_per_s > 0:
            return math.nan
        return 10.0 * cpu["engine"] / accepted_per_s

    def open_batch(self, devices: list[Device], timeout_s: float) -> int:
        """Press SOS for every device and wait until the console shows them."""
        sender = self.sender
        assert sender is not None
        sender.reset()
        for i, d in enumerate(devices):
            sender.press(d)
            if i % 20 == 19:
                sender.read_replies()
                self.poll_feed(work=True)
                self.drain_bus()
        deadline = time.perf_counter() + timeout_s
        while sender.pending and time.perf_counter() < deadline:
            sender.read_replies()
            self.poll_feed(work=True)
            self.wait_events(time.perf_counter() + POLL_S)
        sender.read_replies()
        sender.expire(math.inf, 0.0)
        return len(sender.console_ms)

    # ------------------------------------------------------------- phase 1
    def commands_phase(self, pool: list[Device]) -> dict[str, Any]:
        """Work SOS alerts for ``seconds`` of working time. Alerts are opened
        ``PHASE1_CHUNK`` at a time, before the operators would run short of
        new ones; while a chunk opens, the operators finish what they sent
        and pause, and the clock stops (so the engine's work here is only
        commands, and few alerts are left open for phase 2)."""
        ops, sender = self.ops, self.sender
        assert ops is not None and sender is not None
        cursor, opened, open_s, chunks = 0, 0, 0.0, 0

        def refill() -> None:
            nonlocal cursor, opened, open_s, chunks
            part = pool[cursor:cursor + PHASE1_CHUNK]
            cursor += len(part)
            t = time.monotonic()
            opened += self.open_batch(part, OPEN_TIMEOUT_S + 0.02 * len(part))
            open_s += time.monotonic() - t
            chunks += 1

        refill()
        self.say(f"phase 1: working SOS alerts for {self.seconds:g} s, window {self.window}, "
                 f"{len(ops.tokens)} operators (alerts opened {PHASE1_CHUNK} at a time)")
        warmup = min(1.0, 0.2 * self.seconds)
        clock = _Clock(self.cpu_snapshot)  # the warm-up's, then the measured time's
        measuring = False
        ran_out = math.nan
        clock.start()
        while True:
            if not measuring and clock.elapsed() >= warmup:
                clock.stop()
                ops.new_tally()
                clock, measuring = _Clock(self.cpu_snapshot), True
                clock.start()
            if measuring and clock.elapsed() >= self.seconds - warmup:
                break
            if not ops.queue and cursor >= len(pool):
                ran_out = clock.elapsed() + (warmup if measuring else 0.0)
                break
            if len(ops.queue) < self.window and cursor < len(pool):
                if ops.inflight:  # pause: collect what is in flight, on the clock
                    self.wait_events(time.perf_counter() + 0.05)
                    continue
                clock.stop()
                refill()
                clock.start()
                continue
            ops.pump()
            self.wait_events(time.perf_counter() + 0.05)
        clock.stop()
        tally = ops.tally
        snap = (Counter(tally.accepted), Counter(tally.refused))
        lat = tally.all_latencies()
        self._drain_commands()
        window_s = clock.total
        cpu = clock.cpu_percent()
        accepted, refused = sum(snap[0].values()), sum(snap[1].values())
        rate = accepted / window_s if window_s > 0 else math.nan
        return {
            "alerts_requested": cursor, "alerts_opened": opened, "open_s": open_s,
            "chunks": chunks, "warmup_s": warmup, "window_s": window_s,
            "ran_out_after_s": ran_out, "accepted": accepted, "refused": refused,
            "accepted_per_s": rate, "refused_per_s": refused / window_s if window_s > 0
            else math.nan,
            "accepted_by_action": dict(snap[0]), "refused_by_code": dict(snap[1]),
            "reply_p50_ms": percentile(lat, 50), "reply_p99_ms": percentile(lat, 99),
            "reply_max_ms": max(lat, default=math.nan), "replies": len(lat),
            "reply_by_action_ms": {a: (len(v), percentile(v, 50), percentile(v, 99))
                                   for a, v in tally.latency_ms.items()},
            "alerts_resolved": tally.resolved, "alerts_abandoned": ops.abandoned,
            "alerts_left_open": ops.unfinished(),
            "cpu_percent": cpu, "engine_cpu_ms_per_command": self.engine_ms_per_command(cpu, rate),
        }

    def _drain_commands(self) -> None:
        """Collect the replies still in flight (bounded), sending nothing new."""
        assert self.ops is not None
        deadline = time.perf_counter() + DRAIN_S
        while self.ops.inflight and time.perf_counter() < deadline:
            self.wait_events(time.perf_counter() + 0.05)
        self.ops.stop()

    # ------------------------------------------------------------- phase 2
    def load_phase(self, devices: list[Device]) -> dict[str, Any]:
        ops, sender = self.ops, self.sender
        assert ops is not None and sender is not None
        sender.reset()
        ops.works.clear()
        ops.abandoned = 0
        tally = ops.new_tally()
        # Alerts still open from phase 1 stay open (and in the console's
        # queue) but are not worked: the load is this phase's alerts.
        self.poll_feed(work=False)
        self.say(f"phase 2: SOS at {self.sos_rate:g}/s for {self.seconds:g} s "
                 f"({len(devices):,} distinct children), every one worked to resolution")
        t0 = time.perf_counter()
        t_end = t0 + self.seconds
        next_feed = t0
        sent = 0
        clock = _Clock(self.cpu_snapshot)
        clock.start()
        while True:
            now = time.perf_counter()
            if now >= t_end:
                break
            due = min(len(devices), int(self.sos_rate * (now - t0)) + 1)
            while sent < due:
                sender.press(devices[sent])
                sent += 1
            if now >= next_feed:
                self.poll_feed(work=True)
                sender.read_replies()
                sender.expire(now)
                next_feed = now + POLL_S
            ops.pump()
            next_sos = t0 + (sent / self.sos_rate) if sent < len(devices) else t_end
            self.wait_events(min(next_feed, next_sos, t_end))
        t_stop = time.perf_counter()
        clock.stop()
        snap = (Counter(tally.accepted), Counter(tally.refused), tally.resolved)
        lat_window = tally.all_latencies()
        seen_at_stop, pending_at_stop = len(sender.console_ms), len(sender.pending)
        backlog = ops.unfinished()
        # Wind-down, bounded: no new commands; the replies in flight and the
        # SOS still on their way to the console are collected.
        deadline = t_stop + SOS_TIMEOUT_S
        while (sender.pending or ops.inflight) and time.perf_counter() < deadline:
            self.poll_feed(work=False)
            sender.read_replies()
            sender.expire(time.perf_counter())
            self.wait_events(time.perf_counter() + POLL_S)
        sender.read_replies()
        sender.expire(math.inf, 0.0)
        ops.stop()
        window_s = t_stop - t0
        cpu = clock.cpu_percent()
        accepted, refused = sum(snap[0].values()), sum(snap[1].values())
        c, b = sender.console_ms, sender.bus_ms
        return {
            "sos_rate": self.sos_rate, "window_s": window_s, "sos_sent": sender.sent,
            "sos_http_ok": sender.replies["ok"], "sos_http_refused": sender.replies["refused"],
            "sos_samples": len(c), "sos_lost": len(sender.lost),
            "sos_p50_ms": percentile(c, 50), "sos_p99_ms": percentile(c, 99),
            "sos_max_ms": max(c, default=math.nan),
            "bus_p50_ms": percentile(b, 50), "bus_p99_ms": percentile(b, 99),
            "bus_samples": len(b), "sos_stages_ms": sender.stages_ms(),
            "accepted": accepted, "refused": refused,
            "accepted_per_s": accepted / window_s, "refused_per_s": refused / window_s,
            "accepted_by_action": dict(snap[0]), "refused_by_code": dict(snap[1]),
            "reply_p50_ms": percentile(lat_window, 50),
            "reply_p99_ms": percentile(lat_window, 99),
            "reply_max_ms": max(lat_window, default=math.nan),
            "alerts_resolved_in_window": snap[2], "alerts_worked": len(ops.works),
            "alerts_backlog_at_stop": backlog, "sos_in_console_at_stop": seen_at_stop,
            "sos_not_in_console_at_stop": pending_at_stop, "alerts_abandoned": ops.abandoned,
            "work_p50_s": percentile(tally.work_s, 50), "work_p99_s": percentile(tally.work_s, 99),
            "cpu_percent": cpu,
            "engine_cpu_ms_per_command": self.engine_ms_per_command(cpu, accepted / window_s),
        }

    def cold_sos(self, device: Device) -> float:
        """One SOS before any load: the first alert pays one-off costs."""
        assert self.sender is not None
        self.open_batch([device], 15.0)
        return self.sender.console_ms[0] if self.sender.console_ms else math.nan

    def close(self) -> None:
        if self.ops is not None:
            self.ops.close()
        if self.sender is not None:
            self.sender.close()
        if self.feed is not None:
            self.feed.stop()
        if self.sub is not None:
            self.sub.close()
        if self.ctx is not None:
            self.ctx.term()
        if self.sup is not None:
            self.sup.stop()
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def run(seconds: float = 10.0, children: int = DEFAULT_CHILDREN, operators: int = OPERATORS,
        window: int = WINDOW, race_share: float = RACE_SHARE, sos_rate: float = SOS_RATE,
        keep: bool = False, log: Any = None) -> dict[str, Any]:
    """Run both phases on one fresh installation; returns their numbers
    (``commands`` for phase 1, ``load`` for phase 2)."""
    bench = AlertsBench(children, seconds, operators, window, race_share, sos_rate, keep,
                        log or _say)
    result: dict[str, Any] = {
        "children": children, "operators": operators, "window": window,
        "race_share": race_share, "seconds": seconds, "data_dir": str(bench.data_dir),
        "latency_seen_by": "console.feed.LiveFeed Frame (taken every 5 ms)",
    }
    try:
        bench.start()
        devs = bench.devices  # one per child: [cold SOS, phase 1 ..., ... phase 2]
        n_load = max(1, math.ceil(sos_rate * seconds))
        n_pool = min(len(devs) - n_load - 1, PHASE1_CHUNK + int(MAX_PHASE1_ALERTS_PER_S * seconds))
        if n_pool < 1:
            raise RuntimeError(f"{children} children are too few for {n_load} SOS in phase 2")
        result.update(bench.info, sos_cold_ms=bench.cold_sos(devs[0]))
        assert bench.ops is not None
        bench.ops.works.clear()  # the cold alert is not part of phase 1's numbers
        bench.ops.stop()
        result["commands"] = bench.commands_phase(devs[1:1 + n_pool])
        result["load"] = bench.load_phase(devs[len(devs) - n_load:])
        result["engine_stats"] = bench.engine_stats
        return result
    finally:
        bench.close()


# ------------------------------------------------------------------- reporting
def _codes(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}%" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))


def headline(r: dict[str, Any]) -> list[str]:
    """The one-line-per-number summary ``childsafe bench`` prints first."""
    out = []
    c = r.get("commands")
    if c:
        out.append(
            f"alerts: {fmt(c['accepted_per_s'], ' commands/s')} accepted through the engine "
            f"({fmt(c['refused_per_s'], '/s')} refused: {_codes(c['refused_by_code']) or 'none'}"
            f"); reply p50 {c['reply_p50_ms']:.1f} ms, p99 {c['reply_p99_ms']:.1f} ms "
            f"(window {r['window']}, {r['operators']} operators; no DESIGN budget)")
    ld = r.get("load")
    if ld:
        out.append(ratio_line(
            f"alerts: SOS → console p99 while {ld['sos_rate']:g} alerts/s are worked "
            f"({ld['sos_samples']} samples, {fmt(ld['accepted_per_s'], ' commands/s')})",
            ld["sos_p99_ms"], BUDGET_SOS_P99_MS, " ms", False))
    return out


def format_result(r: dict[str, Any]) -> str:
    lines = [f"alerts (sqlite, {r['data_dir']}): {r['children']:,} children, "
             f"{r['operators']} operators on one DEALER, window {r['window']}, "
             f"{r['race_share']:.0%} of acks raced by a second operator; seeded in "
             f"{r.get('seed_s', math.nan):.1f} s, backend up in "
             f"{r.get('startup_s', math.nan):.1f} s; cold first SOS "
             f"{r.get('sos_cold_ms', math.nan):.0f} ms"]
    c = r.get("commands")
    if c:
        ran_out = c["ran_out_after_s"]
        lines += [
            f"  phase 1 'commands': {c['alerts_opened']:,} of {c['alerts_requested']:,} SOS "
            f"alerts opened ({c['chunks']} chunks, {c['open_s']:.1f} s off the clock); worked "
            f"for {c['window_s']:.1f} s measured after {c['warmup_s']:.1f} s warm-up"
            + (f" (ran out of alerts after {ran_out:.1f} s)" if math.isfinite(ran_out) else ""),
            f"    accepted {c['accepted']:,} = {fmt(c['accepted_per_s'], ' commands/s')} "
            f"({_codes(c['accepted_by_action'])})",
            f"    refused {c['refused']:,} = {fmt(c['refused_per_s'], '/s')} "
            f"({_codes(c['refused_by_code']) or 'none'}; stale = the raced second ack)",
            f"    reply latency over {c['replies']:,} replies: p50 {c['reply_p50_ms']:.1f} ms, "
            f"p99 {c['reply_p99_ms']:.1f} ms, max {c['reply_max_ms']:.1f} ms; by command "
            "(n, p50/p99 ms): " + "; ".join(
                f"{a} {n:,} {p50:.1f}/{p99:.1f}"
                for a, (n, p50, p99) in sorted(c["reply_by_action_ms"].items())),
            f"    alerts resolved {c['alerts_resolved']:,}, abandoned "
            f"{c['alerts_abandoned']}, left open {c['alerts_left_open']:,}",
            f"    CPU (100% = one core): {_cpu(c['cpu_percent'])}; engine "
            f"{c['engine_cpu_ms_per_command']:.1f} ms CPU per accepted command",
        ]
    ld = r.get("load")
    if ld:
        lines += [
            f"  phase 2 'SOS under load': {ld['sos_sent']:,} SOS at {ld['sos_rate']:g}/s over "
            f"{ld['window_s']:.1f} s (HTTP 200 {ld['sos_http_ok']:,}, refused "
            f"{ld['sos_http_refused']})",
            f"    when the SOS stopped: {ld['sos_in_console_at_stop']:,} of them in the console "
            f"({ld['sos_not_in_console_at_stop']:,} still on their way); "
            f"{ld['alerts_worked']:,} taken up by the operators, "
            f"{ld['alerts_resolved_in_window']:,} resolved, "
            f"{ld['alerts_backlog_at_stop']:,} not yet; console → resolved p50 "
            f"{ld['work_p50_s']:.2f} s, p99 {ld['work_p99_s']:.2f} s",
            f"    commands meanwhile: accepted {fmt(ld['accepted_per_s'], '/s')}, refused "
            f"{fmt(ld['refused_per_s'], '/s')} ({_codes(ld['refused_by_code']) or 'none'}); "
            f"reply p50 {ld['reply_p50_ms']:.1f} ms, p99 {ld['reply_p99_ms']:.1f} ms, max "
            f"{ld['reply_max_ms']:.1f} ms",
            f"    SOS request sent → alert in a console LiveFeed Frame (5 ms polls): p50 "
            f"{ld['sos_p50_ms']:.1f} ms, p99 {ld['sos_p99_ms']:.1f} ms, max "
            f"{ld['sos_max_ms']:.1f} ms over {ld['sos_samples']} samples "
            f"({ld['sos_lost']} lost)",
            f"    SOS request sent → alert.opened at a bus Subscriber: p50 "
            f"{ld['bus_p50_ms']:.1f} ms, p99 {ld['bus_p99_ms']:.1f} ms",
            "      stages p50/p99 ms: " + "; ".join(
                f"{k} {p50:.1f}/{p99:.1f}" for k, (p50, p99) in ld["sos_stages_ms"].items()),
            "    " + ratio_line("SOS p99", ld["sos_p99_ms"], BUDGET_SOS_P99_MS, " ms", False),
            f"    CPU (100% = one core): {_cpu(ld['cpu_percent'])}; engine "
            f"{ld['engine_cpu_ms_per_command']:.1f} ms CPU per accepted command",
        ]
    stats = r.get("engine_stats") or {}
    if stats:
        lines.append(f"  engine at the end: open alerts {fmt(stats.get('open_alerts'))}, "
                     f"refused commands {fmt(stats.get('refused_commands'))}, unsaved "
                     f"{fmt(stats.get('unsaved_alerts'))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_alerts",
                                description="alert commands through the engine, and SOS "
                                            "latency while alerts are worked")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    p.add_argument("--children", type=int, default=DEFAULT_CHILDREN)
    p.add_argument("--operators", type=int, default=OPERATORS)
    p.add_argument("--window", type=int, default=WINDOW, help="commands outstanding")
    p.add_argument("--race", type=float, default=RACE_SHARE,
                   help="share of alerts acked by two operators at once")
    p.add_argument("--sos-rate", type=float, default=SOS_RATE, help="phase 2 SOS per second")
    p.add_argument("--keep", action="store_true", help="keep the data dir (logs)")
    args = p.parse_args(argv)
    r = run(seconds=args.seconds, children=args.children, operators=args.operators,
            window=args.window, race_share=args.race, sos_rate=args.sos_rate, keep=args.keep)
    print("\n".join(headline(r)))
    print(format_result(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
