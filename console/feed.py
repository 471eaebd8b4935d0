"""The console's bus worker: all ZeroMQ I/O of the GUI process, in one thread.

The worker keeps the console's state in step with the engine (snapshot,
then live updates, resync on a gap) and hands the GUI thread *coalesced*
frames: the latest positions, the alert changes and the status, taken at
the GUI's own frame rate. It never touches a widget and emits no Qt
signals, so bursts on the bus cannot flood the GUI's event loop.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import msgspec
import numpy as np
import zmq

from console.bus import Subscriber, socket
from console.config import Config
from console.security import Security
from models import health
from models.console_state import BusState, ConsoleState
from models.health import HealthSummary, ProcessHealth
from models.messages import (
    AnyMessage,
    BadMessage,
    CameraView,
    CommandReply,
    NoticeStatus,
    ReaderView,
    ReplayClock,
    ReplayControl,
    Reply,
    Snapshot,
    SnapshotRequest,
    UnregisteredView,
    ZoneView,
    decode,
    encode,
)
from models.replay_clock import SessionClock

log = logging.getLogger(__name__)

SNAPSHOT_RETRY_S = 3.0
TOPICS = ("pos.", "alert.", "zone.", "roster.", "notice.", "cam.", "gw.", "sys.heartbeat")


def topics(config: Config) -> tuple[str, ...]:
    """A trainee console also follows the session's clock (``replay.clock``)."""
    return (*TOPICS, "replay.") if config.training else TOPICS


@dataclass
class Frame:
    """Everything the GUI needs to repaint, taken at once."""

    state: BusState
    children: int
    fixes_per_s: float
    degraded: list[str] = field(default_factory=list)  # why, when the state is DEGRADED
    zones: list[ZoneView] | None = None  # set after a (re)snapshot
    readers: list[ReaderView] | None = None
    zone_counts: dict[int, tuple[int, int]] | None = None  # zone id -> (inside, uncertain)
    cameras: list[CameraView] | None = None  # the registry, after a (re)snapshot
    camera_states: dict[int, tuple[str, str]] | None = None  # when any changed
    x: np.ndarray | None = None  # positions, when they changed
    y: np.ndarray | None = None
    status: np.ndarray | None = None
    alerts: list[object] | None = None  # the whole ordered queue, when it changed
    # Answers to this console's requests (CommandReply, SignedIn, AlertDetail,
    # ...), each with ``ref`` = the number ``LiveFeed.send`` returned.
    replies: list[Reply] = field(default_factory=list)
    resyncs: int = 0
    gateway_stats: dict[str, float] = field(default_factory=dict)
    unregistered: list[UnregisteredView] = field(default_factory=list)
    notices: list[NoticeStatus] = field(default_factory=list)  # delivery changes since the last
    # The health strip's processes and store, read at the same moment as ``degraded``.
    health: list[ProcessHealth] = field(default_factory=list)
    health_summary: HealthSummary = field(default_factory=HealthSummary)


class LiveFeed:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.clock = SessionClock(time.time()) if config.training else None
        self.state = ConsoleState(health.TRAINING_PROCESSES if config.training
                                  else health.PROCESSES, self.clock)
        self._lock = threading.Lock()
        self._commands: queue.SimpleQueue[AnyMessage] = queue.SimpleQueue()
        self._replies: list[Reply] = []
        self._next_ref = 0
        self._ref_lock = threading.Lock()
        self._zones_changed = False
        self._stop = threading.Event()
        self._asked_at = 0.0
        self._asked = 0  # snapshot requests sent since the last connection was made
        self._clock_heard = False  # a training session has said what time it is
        self._thread = threading.Thread(target=self._run, name="bus-worker", daemon=True)
        self.received = 0
        self.rejected = 0

    # ------------------------------------------------------ GUI-thread API
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def send(self, command: AnyMessage) -> int:
        """Queue a command or request; its reply comes back in a later Frame
        with ``ref`` equal to the number returned here."""
        with self._ref_lock:
            self._next_ref += 1
            ref = self._next_ref
        self._commands.put(msgspec.structs.replace(command, seq=ref))
        return ref

    def now(self) -> float:
        """The console's "now" for countdowns: a training session's replayed
        time (as its engine keeps it), else the wall's."""
        if self.clock is None:
            return time.time()
        with self._lock:
            return self.clock.now()

    def replay_clock(self) -> tuple[float, float, str] | None:
        """A training session's replayed time, speed and title, once it has
        told them (None before, and on a live console)."""
        if self.clock is None:
            return None
        with self._lock:
            if not self._clock_heard:
                return None
            return self.clock.now(), self.clock.speed, self.state.replay_title

    def token_of(self, slot: int) -> str:
        """The token of the child in ``slot`` ("" if there is none): what a
        click on the map's marker turns into for a request."""
        with self._lock:
            tokens = self.state.tokens
            return tokens[slot] if 0 <= slot < len(tokens) else ""

    def take(self) -> Frame:
        with self._lock:
            st = self.state
            now = time.monotonic()
            frame = Frame(
                state=st.bus_state(now), children=len(st.tokens), degraded=st.degraded(now),
                fixes_per_s=float(st.engine_stats.get("fixes_per_s", 0.0)), resyncs=st.resyncs,
                gateway_stats=st.gateway_stats, unregistered=st.unregistered,
            )
            frame.health, frame.health_summary = st.health(now)
            frame.notices, st.notices = st.notices, []
            if self._zones_changed or st.zones_dirty:
                frame.zones = list(st.zones)
                frame.readers = list(st.readers)
                self._zones_changed = st.zones_dirty = False
            if st.counts_dirty:
                frame.zone_counts = dict(st.zone_counts)
                st.counts_dirty = False
            if st.positions_dirty or st.alerts_dirty:
                frame.x, frame.y, frame.status = st.x.copy(), st.y.copy(), st.marker_status()
                st.positions_dirty = False
            if st.registry_dirty:
                frame.cameras = list(st.cameras)
                st.registry_dirty = False
            if st.cameras_dirty:
                frame.camera_states = dict(st.camera_states)
                st.cameras_dirty = False
            if st.alerts_dirty:
                frame.alerts = list(st.alerts.rows)
                st.alerts_dirty = False
            frame.replies, self._replies = self._replies, []
        return frame

    # --------------------------------------------------------- the worker
    def _run(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        security = Security.console(self.config)
        sub = Subscriber(ctx, self.config.bus_sub, topics(self.config), security=security,
                         sources=self.config.bus_sources)
        poller = zmq.Poller()
        poller.register(sub.sock, zmq.POLLIN)
        rpc = self._dealer(ctx, security, "engine", self.config.engine_rpc, poller)
        # A trainer's controls go to the training session's own socket; its
        # answers carry ``ref`` like the engine's and join the same replies.
        replay: zmq.Socket[bytes] | None = None
        if self.config.training:
            replay = self._dealer(ctx, security, "replayer", self.config.replay_rpc, poller)
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if not self.state.synced and now - self._asked_at > SNAPSHOT_RETRY_S:
                    self._asked_at = now
                    if not self._try_send(rpc, SnapshotRequest()) or self._asked > 1:
                        # no connection to the engine (down, or our key was
                        # refused before it was admitted): connect afresh
                        poller.unregister(rpc)
                        rpc.close(0)
                        rpc = self._dealer(ctx, security, "engine", self.config.engine_rpc,
                                           poller)
                        self._asked = 0
                    self._asked += 1
                while not self._commands.empty():
                    cmd = self._commands.get()
                    to = replay if replay is not None and isinstance(cmd, ReplayControl) else rpc
                    if not self._try_send(to, cmd):
                        self._unreachable(cmd)
                events = dict(poller.poll(50))
                if sub.sock in events:
                    self._drain_bus(sub)
                if rpc in events:
                    self._drain_replies(rpc)
                if replay is not None and replay in events:
                    self._drain_replies(replay)
        finally:
            while not self._commands.empty():  # a sign-out as the window closes
                with contextlib.suppress(zmq.ZMQError):
                    rpc.send_multipart([b"", encode(self._commands.get())], zmq.NOBLOCK)
            sub.close()
            rpc.close(100)
            if replay is not None:
                replay.close(0)
            ctx.term()

    @staticmethod
    def _dealer(ctx: zmq.Context[zmq.Socket[bytes]], security: Security, server: str,
                endpoint: str, poller: zmq.Poller) -> zmq.Socket[bytes]:
        sock = socket(ctx, zmq.DEALER)
        security.client(sock, server)
        sock.connect(endpoint)
        poller.register(sock, zmq.POLLIN)
        return sock

    @staticmethod
    def _try_send(sock: zmq.Socket[bytes], msg: AnyMessage) -> bool:
        """Never block the worker: a DEALER with no connection (the engine
        down, or a handshake refused) would hold every bus read behind it."""
        try:
            sock.send_multipart([b"", encode(msg)], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _unreachable(self, cmd: AnyMessage) -> None:
        """A command that could not leave: answered here, so the window says so."""
        what = "training session" if isinstance(cmd, ReplayControl) else "engine"
        with self._lock:
            self._replies.append(CommandReply(
                ok=False, code="unreachable", ref=int(getattr(cmd, "seq", 0)),
                error=f"the {what} cannot be reached: nothing was done, try again"))

    def _drain_bus(self, sub: Subscriber) -> None:
        with self._lock:
            for _ in range(1000):
                try:
                    frames = sub.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                parsed = sub.parse(frames)
                if parsed is None:
                    self.rejected += 1
                    continue
                self.received += 1
                if isinstance(parsed[1], ReplayClock):
                    self._clock_heard = True
                if not self.state.apply(parsed[1]):
                    log.warning("engine sequence gap at seq %d; resyncing", self.state.seq)
                    self.state.begin_resync()
                    self._asked_at = 0.0  # ask for a snapshot now, not at the next retry

    def _drain_replies(self, rpc: zmq.Socket[bytes]) -> None:
        while True:
            try:
                frames = rpc.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = decode(frames[-1])
            except BadMessage as exc:
                log.warning("bad reply from the engine: %s", exc)
                continue
            with self._lock:
                if isinstance(reply, Snapshot):
                    self._asked = 0  # the engine answers on this connection
                    if self.state.synced:
                        continue  # an answer to a retried request; we have one
                    if not self.state.apply_snapshot(reply):
                        self.state.begin_resync()
                    self._zones_changed = True
                    log.info("snapshot at seq %d: %d children, %d alerts", reply.seq,
                             len(reply.children), len(reply.alerts))
                else:
                    self._replies.append(reply)  # type: ignore[arg-type]
