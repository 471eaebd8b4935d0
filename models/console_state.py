"""What one console knows of the live system, and how it stays in step.

zguide's Clone pattern, Qt-free: subscribe first, then ask the engine for a
snapshot stamped with its publish sequence; updates at or below that seq
are already in the snapshot and are dropped, later ones are applied in
order. A gap in the engine's sequence, or a heartbeat announcing a seq we
never saw, means something was lost: the state turns STALE and a new
snapshot is fetched. Nothing is applied twice and nothing is missed.
"""

from __future__ import annotations

import time
from enum import Enum

import numpy as np

from models import health
from models.alerts import AlertBook
from models.geo import to_map
from models.messages import (
    AlertOpened,
    AlertUpdated,
    AnyMessage,
    BadMessage,
    CameraRegistry,
    CameraView,
    CamStatus,
    Heartbeat,
    NoticeStatus,
    PositionBatch,
    ReaderView,
    ReplayClock,
    RosterChanged,
    Snapshot,
    UnregisteredSeen,
    UnregisteredView,
    ZoneCounts,
    ZoneRegistry,
    ZoneView,
    position_columns,
)
from models.replay_clock import SessionClock

HEARTBEAT_STALE_S = 3.0
HEARTBEAT_LOST_S = 10.0
MAX_NOTICES = 500  # notice changes kept between two frames (the newest)
ENGINE = "engine"


def is_engine(origin: str) -> bool:
    return origin.partition(":")[0] == ENGINE


class BusState(Enum):
    DISCONNECTED = "DISCONNECTED"
    STALE = "STALE"
    DEGRADED = "DEGRADED"  # in step with the engine, but something is held back or down
    LIVE = "LIVE"


class ConsoleState:
    def __init__(self, processes: tuple[str, ...] = health.PROCESSES,
                 clock: SessionClock | None = None) -> None:
        """``processes``: what the health strip lists (a training session
        runs fewer); ``clock``: a trainee console's replayed time, set from
        the session's ``replay.clock`` (None: the wall's)."""
        self.processes = processes
        self.clock = clock
        self.replay_title = ""  # a training session's title, from its clock
        self.tokens: list[str] = []
        self.zones: list[ZoneView] = []
        self.zones_dirty = False
        # zone id -> (children inside, uncertain), from the engine's zone.counts
        self.zone_counts: dict[int, tuple[int, int]] = {}
        self.counts_dirty = False
        self.readers: list[ReaderView] = []
        self.cameras: list[CameraView] = []
        self.camera_states: dict[int, tuple[str, str]] = {}  # id -> (state, detail)
        self.cameras_dirty = False
        self.registry_dirty = False  # the camera list itself changed
        self.alerts = AlertBook()
        self.lat = np.empty(0)
        self.lon = np.empty(0)
        self.x = np.empty(0)
        self.y = np.empty(0)
        self.inside = np.empty(0, dtype=np.uint8)
        self.seq = -1  # last engine seq applied; -1 = no snapshot yet
        self.origin = ""  # the engine incarnation the snapshot came from
        self.synced = False
        self.pending: list[AnyMessage] = []  # engine updates seen while resyncing
        self.last_heartbeat = 0.0
        self.engine_stats: dict[str, float] = {}
        self.gateway_stats: dict[str, float] = {}
        self.supervisor_stats: dict[str, float] = {}
        self.relay_stats: dict[str, float] = {}
        self.recorder_stats: dict[str, float] = {}
        self.heard: dict[str, float] = {}  # role -> monotonic time of its last heartbeat
        self.unregistered: list[UnregisteredView] = []
        self.notices: list[NoticeStatus] = []  # delivery changes since the last frame
        self.resyncs = 0
        self.dropped_old = 0
        self.positions_dirty = False
        self.alerts_dirty = False

    # ------------------------------------------------------------- status
    def bus_state(self, now: float | None = None) -> BusState:
        now = time.monotonic() if now is None else now
        age = now - self.last_heartbeat
        if self.last_heartbeat == 0.0 or age > HEARTBEAT_LOST_S:
            return BusState.DISCONNECTED
        if not self.synced or age > HEARTBEAT_STALE_S:
            return BusState.STALE
        return BusState.DEGRADED if self.degraded(now) else BusState.LIVE

    def degraded(self, now: float | None = None) -> list[str]:
        """Why the system is not healthy, in words (``models.health``)."""
        now = time.monotonic() if now is None else now
        return health.reasons(self.engine_stats, self.supervisor_stats, self.heard, now,
                              relay=self.relay_stats, gateway=self.gateway_stats,
                              recorder=self.recorder_stats)

    def health(self, now: float | None = None
               ) -> tuple[list[health.ProcessHealth], health.HealthSummary]:
        """Each process and the store, for the health strip; from the same
        heartbeats as ``degraded`` so that the two never disagree (the
        engine counts as silent when the console turns STALE)."""
        now = time.monotonic() if now is None else now
        heard = dict(self.heard)
        if self.last_heartbeat:
            heard[ENGINE] = self.last_heartbeat
        processes = health.process_health(
            self.engine_stats, self.supervisor_stats, heard, now, relay=self.relay_stats,
            gateway=self.gateway_stats, recorder=self.recorder_stats,
            engine_late_s=HEARTBEAT_STALE_S, processes=self.processes)
        return processes, health.health_summary(self.engine_stats, self.supervisor_stats,
                                                gateway=self.gateway_stats,
                                                recorder=self.recorder_stats)

    # ----------------------------------------------------------- snapshot
    def apply_snapshot(self, snap: Snapshot) -> bool:
        """Replace everything with ``snap``, then replay the updates that
        arrived meanwhile. False if those reveal a further gap."""
        n = len(snap.children)
        self.tokens = list(snap.children)
        self.zones = list(snap.zones)
        self.zones_dirty = True
        self.readers = list(snap.readers)
        self.cameras = list(snap.cameras)
        self.registry_dirty = True
        self.camera_states.update({c.id: (c.status, "") for c in snap.cameras
                                   if c.id not in self.camera_states})
        self.cameras_dirty = True
        self.lat = np.full(n, np.nan)
        self.lon = np.full(n, np.nan)
        self.x = np.full(n, np.nan)
        self.y = np.full(n, np.nan)
        self.inside = np.zeros(n, dtype=np.uint8)
        self.alerts.reset(list(snap.alerts))
        self.seq = snap.seq
        self.origin = snap.origin
        self.synced = True
        self._apply_positions(snap.positions)
        self.alerts_dirty = True
        pending, self.pending = self.pending, []
        for i, msg in enumerate(pending):
            if msg.origin != snap.origin:
                continue  # from an engine incarnation before the snapshot's
            if not self.apply(msg):
                self.pending = pending[i + 1:]
                return False
        return True

    def begin_resync(self) -> None:
        self.synced = False
        self.resyncs += 1

    # ------------------------------------------------------------ updates
    def apply(self, msg: AnyMessage, now: float | None = None) -> bool:
        """Apply one engine message. False means a gap: call ``begin_resync``
        and fetch a snapshot."""
        if isinstance(msg, ReplayClock):  # a training session's time
            if self.clock is not None:
                self.clock.set(msg.t, msg.speed, msg.epoch)
                self.replay_title = msg.title
            return True
        if isinstance(msg, CamStatus):  # the relay's word; not part of the engine's state
            self.camera_states[msg.camera_id] = (msg.state, msg.detail)
            self.cameras_dirty = True
            return True
        if isinstance(msg, UnregisteredSeen):
            self.unregistered = list(msg.devices)
            return True
        if isinstance(msg, NoticeStatus):  # the notifier's word, for the child card
            self.notices.append(msg)
            del self.notices[:-MAX_NOTICES]
            return True
        if isinstance(msg, Heartbeat) and not is_engine(msg.origin):
            role = msg.origin.partition(":")[0]
            self.heard[role] = time.monotonic() if now is None else now
            if role == "gateway":
                self.gateway_stats = dict(msg.stats)
            elif role == "supervisor":
                self.supervisor_stats = dict(msg.stats)
            elif role == "relay":
                self.relay_stats = dict(msg.stats)
            elif role == "recorder":
                self.recorder_stats = dict(msg.stats)
            return True
        if not is_engine(msg.origin):
            return True
        if isinstance(msg, Heartbeat):
            self.last_heartbeat = time.monotonic() if now is None else now
            self.engine_stats = dict(msg.stats)
            if not self.synced:
                return True
            return msg.origin == self.origin and msg.last_seq <= self.seq
        if not self.synced:
            self.pending.append(msg)
            return True
        if msg.origin != self.origin:
            self.pending.append(msg)
            return False  # a restarted engine: its seq means nothing to us
        if msg.seq <= self.seq:
            self.dropped_old += 1
            return True
        if msg.seq != self.seq + 1:
            self.pending.append(msg)
            return False
        self.seq = msg.seq
        if isinstance(msg, PositionBatch):
            return self._apply_positions(msg)
        if isinstance(msg, AlertOpened | AlertUpdated):
            self.alerts.upsert(msg.alert)
            self.alerts_dirty = True
        elif isinstance(msg, CameraRegistry):
            self.cameras = list(msg.cameras)
            self.registry_dirty = True
        elif isinstance(msg, ZoneRegistry):
            self.zones = list(msg.zones)
            self.zones_dirty = True
        elif isinstance(msg, ZoneCounts):
            self.zone_counts = {z: (i, u) for z, i, u in
                                zip(msg.zone_ids, msg.inside, msg.uncertain, strict=False)}
            self.counts_dirty = True
        elif isinstance(msg, RosterChanged):
            return msg.children <= len(self.tokens)  # new children: take a snapshot
        return True

    def _apply_positions(self, batch: PositionBatch) -> bool:
        try:
            cols = position_columns(batch)
        except BadMessage:
            return False  # not what the engine sends: resync from a snapshot
        slots = cols["slots"].astype(np.int64)
        if len(slots) and slots.max() >= len(self.tokens):
            return False  # a child we do not know: the roster changed
        x, y = to_map(cols["lat"], cols["lon"])
        self.lat[slots] = cols["lat"]
        self.lon[slots] = cols["lon"]
        self.x[slots] = x
        self.y[slots] = y
        self.inside[slots] = cols["inside"]
        self.positions_dirty = True
        return True

    def marker_status(self) -> np.ndarray:
        """0 outside any zone, 1 inside, 2 the child of an unresolved alert."""
        status = self.inside.copy()
        slots = [s for s in self.alerts.unresolved_slots() if s < len(status)]
        status[slots] = 2
        return status
