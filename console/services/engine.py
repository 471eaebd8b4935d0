"""The engine: single writer of live state and alerts.

It consumes ``fix.batch`` from the gateway, runs the tracking pipeline,
opens alerts (committed to the store *before* they are published), and
answers requests on a ROUTER socket: snapshots for late-joining consoles
and operator commands, each with an explicit reply.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from math import nan

import numpy as np
import zmq
from sqlalchemy.orm import Session, sessionmaker

from console.bus import Publisher, SequenceTracker, Subscriber, socket
from console.media.control import RelayControl
from console.media.holds import HoldKeeper, HoldTarget
from console.services.runtime import Runtime, start
from db import repositories as repo
from db.store import open_store
from db.tables import Alert
from models.cameras import CameraIndex
from models.geo import place_name
from models.messages import (
    AckAlert,
    AlertOpened,
    AlertUpdated,
    AlertView,
    BadMessage,
    CameraRegistry,
    CameraView,
    CommandReply,
    FixBatch,
    PositionBatch,
    ReaderView,
    RecordEvidence,
    ReloadCameras,
    Snapshot,
    SnapshotRequest,
    ZoneView,
    decode,
    encode,
    fix_columns,
    pack,
)
from models.tracking import SosPress, Tracker

PRIORITY = {"sos": 1, "zone_exit": 2}
PREALARM_CAMERAS = 4  # nearest cameras held (and, for an SOS, clipped) per alert


@dataclass
class EngineState:
    tracker: Tracker
    alerts: dict[int, AlertView]  # unresolved alerts by id
    zone_names: dict[int, str]  # zone index -> name
    readers: list[ReaderView]
    cameras: list[CameraView]


def load_state(sessions: sessionmaker[Session]) -> EngineState:
    with sessions() as s:
        roster = repo.roster(s)
        zones = [ZoneView(id=z.id, name=z.name, kind=z.kind, lat=z.lat, lon=z.lon,
                          radius_m=z.radius_m) for z in repo.zones(s)]
        open_rows = repo.unresolved_alerts(s)
        readers = [ReaderView(id=r.id, name=r.name, lat=r.lat, lon=r.lon, range_m=r.range_m)
                   for r in repo.readers(s)]
        cameras = camera_views(s)
    # One slot per child, in roster order; a child may own several devices.
    slot_of_child: dict[int, int] = {}
    tokens: list[str] = []
    home: list[int] = []
    device_slots: dict[str, int] = {}
    for r in roster:
        if r.child_id not in slot_of_child:
            slot_of_child[r.child_id] = len(tokens)
            tokens.append(r.token)
            home.append(r.zone_id if r.zone_id is not None else -1)
        device_slots[r.device_id] = slot_of_child[r.child_id]
    tracker = Tracker(tokens, device_slots, home, zones)
    alerts = {a.id: view_of(a, slot_of_child.get(a.child_id, -1), tokens) for a in open_rows}
    return EngineState(tracker, alerts, {i: z.name for i, z in enumerate(zones)}, readers,
                       cameras)


def camera_views(session: Session) -> list[CameraView]:
    return [CameraView(id=c.id, name=c.name, lat=c.lat, lon=c.lon,
                       direction_deg=c.direction_deg, fov_deg=c.fov_deg, range_m=c.range_m,
                       ptz=c.ptz, status=c.status, has_stream=bool((c.stream_url or "").strip()))
            for c in repo.cameras(session)]


def view_of(a: Alert, slot: int, tokens: list[str]) -> AlertView:
    return AlertView(
        id=a.id, kind=a.kind, priority=a.priority, state=a.state,  # type: ignore[arg-type]
        child_token=tokens[slot] if slot >= 0 else "?", child_slot=slot,
        device_id=a.device_id, lat=nan if a.lat is None else a.lat,
        lon=nan if a.lon is None else a.lon, place=a.place, opened_at=a.opened_at,
        position_is_last_known=a.position_is_last_known, zone=a.zone,
        acked_by=a.acked_by or "", acked_at=a.acked_at or 0.0,
        last_reader=a.last_reader or "", last_reader_at=a.last_reader_at or 0.0,
        position_from_reader=bool(a.position_from_reader),
    )


class Engine:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        cfg = rt.config
        _, self.sessions = open_store(cfg.db_url)
        self.state = load_state(self.sessions)
        self.child_ids = self._child_ids()
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pub = Publisher(self.ctx, cfg.bus_pub, origin="engine")
        self.sub = Subscriber(self.ctx, cfg.bus_sub, ("fix.batch",))
        self.rpc = socket(self.ctx, zmq.ROUTER)
        self.rpc.bind(cfg.engine_rpc)
        self.seqs = SequenceTracker()
        self.fixes_in = 0
        self.bad_requests = 0
        self._unsaved: list[tuple[str, int, str, float, float, bool, float]] = []
        self.camera_index = CameraIndex.from_cameras(self.state.cameras)
        self.relay = RelayControl(cfg.relay_host, cfg.relay_port)
        self.holds = HoldKeeper(self.relay, cameras_per_point=PREALARM_CAMERAS)
        self.holds.use_index(self.camera_index)

    def _child_ids(self) -> list[int]:
        with self.sessions() as s:
            roster = repo.roster(s)
        ids: list[int] = []
        seen: set[int] = set()
        for r in roster:
            if r.child_id not in seen:
                seen.add(r.child_id)
                ids.append(r.child_id)
        return ids

    # ----------------------------------------------------------------- loop
    def run(self) -> None:
        tr = self.state.tracker
        self.rt.log.info("tracking %d children, %d zones, %d unresolved alerts",
                         len(tr), len(tr.zones), len(self.state.alerts))
        poller = zmq.Poller()
        poller.register(self.sub.sock, zmq.POLLIN)
        poller.register(self.rpc, zmq.POLLIN)
        next_beat = 0.0
        window_start, window_fixes, rate = time.monotonic(), 0, 0.0
        while not self.rt.should_stop():
            events = dict(poller.poll(100))
            if self.rpc in events:
                self._serve_requests()
            if self.sub.sock in events:
                window_fixes += self._drain_fixes()
            if self._unsaved:
                self._save_pending_alerts()
            self._keep_holds()
            now = time.monotonic()
            if now >= next_beat:
                rate = window_fixes / max(now - window_start, 1e-6)
                window_start, window_fixes = now, 0
                self.pub.heartbeat({
                    "children": len(tr), "fixes_per_s": rate, "fixes_in": self.fixes_in,
                    "applied": tr.applied, "open_alerts": len(self.state.alerts),
                    "rejected": sum(tr.rejected.values()) + sum(self.sub.rejected.values()),
                    "gateway_gaps": self.seqs.gaps,
                })
                next_beat = now + 1.0
        self.close()

    def _drain_fixes(self) -> int:
        """Apply every fix batch waiting now, then publish one position batch."""
        moved: list[np.ndarray] = []
        n = 0
        while True:
            try:
                frames = self.sub.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            parsed = self.sub.parse(frames)
            if parsed is None:
                continue
            _, msg = parsed
            if not isinstance(msg, FixBatch):
                continue
            if not self.seqs.check(msg.origin, msg.seq):
                self.rt.log.warning("gap in %s fixes before seq %d", msg.origin, msg.seq)
            try:
                cols = fix_columns(msg)
            except BadMessage as exc:
                self.sub.rejected["bad_columns"] += 1
                self.rt.log.warning("rejected fix batch: %s", exc)
                continue
            n += len(msg.device_ids)
            self.fixes_in += len(msg.device_ids)
            result = self.state.tracker.step(msg.device_ids, cols, msg.readers)
            moved.append(result.slots)
            for press in result.sos:
                self._open_sos(press)
            for slot in result.exits:
                self._open_zone_exit(slot)
            if n >= 50_000:
                break
        if moved:
            slots = np.unique(np.concatenate(moved))
            if len(slots):
                self.pub.send(self._positions(slots))
        return n

    def _positions(self, slots: np.ndarray) -> PositionBatch:
        tr = self.state.tracker
        return PositionBatch(
            slots=pack("slots", slots), t=pack("t", tr.t[slots]), lat=pack("lat", tr.lat[slots]),
            lon=pack("lon", tr.lon[slots]), inside=pack("inside", tr.inside[slots]),
            flags=pack("flags", tr.flags[slots]),
        )

    # --------------------------------------------------------------- alerts
    def _has_open(self, slot: int, kind: str) -> bool:
        return any(a.child_slot == slot and a.kind == kind and a.state != "resolved"
                   for a in self.state.alerts.values()) or any(
            u[0] == kind and u[1] == slot for u in self._unsaved)

    def _open_sos(self, press: SosPress) -> None:
        if self._has_open(press.slot, "sos"):
            return  # devices repeat alarms; one case per child until resolved
        self._open_alert("sos", press.slot, press.device_id, press.lat, press.lon,
                         press.position_is_last_known)

    def _open_zone_exit(self, slot: int) -> None:
        if self._has_open(slot, "zone_exit"):
            return
        tr = self.state.tracker
        device = next((d for d, s in tr.device_slots.items() if s == slot), "")
        self._open_alert("zone_exit", slot, device, float(tr.lat[slot]), float(tr.lon[slot]),
                         False)

    def _open_alert(self, kind: str, slot: int, device_id: str, lat: float, lon: float,
                    last_known: bool) -> None:
        """Commit, then publish. If the store refuses (e.g. locked past its busy
        timeout) the alert is kept and retried on every loop, never dropped."""
        self._unsaved.append((kind, slot, device_id, lat, lon, last_known, time.time()))
        self._save_pending_alerts()

    def _save_pending_alerts(self) -> None:
        while self._unsaved:
            kind, slot, device_id, lat, lon, last_known, opened_at = self._unsaved[0]
            try:
                view = self._commit_alert(kind, slot, device_id, lat, lon, last_known,
                                          opened_at)
            except Exception:
                self.rt.log.exception("could not store a %s alert; will retry", kind)
                return
            self._unsaved.pop(0)
            self.state.alerts[view.id] = view
            self.pub.send(AlertOpened(alert=view))
            self._secure_video(view)
            self.rt.log.info("alert %d opened: %s %s at %s", view.id, kind, view.child_token,
                             view.place)

    def _commit_alert(self, kind: str, slot: int, device_id: str, lat: float, lon: float,
                      last_known: bool, opened_at: float) -> AlertView:
        tr = self.state.tracker
        known = bool(np.isfinite(lat) and np.isfinite(lon))
        place = place_name(lat, lon) if known else "위치 미상"
        zone = self.state.zone_names.get(int(tr.home[slot]), "")
        reader, read_at = tr.breadcrumb(slot) or (None, None)  # the tag reader that last saw them
        with self.sessions() as s:
            row = repo.open_alert(
                s, kind=kind, priority=PRIORITY[kind], child_id=self.child_ids[slot],
                device_id=device_id, lat=lat if known else None, lon=lon if known else None,
                place=place, zone=zone, position_is_last_known=last_known, opened_at=opened_at,
                last_reader=reader, last_reader_at=read_at,
                position_from_reader=known and tr.located_by_reader(slot, lat, lon),
            )
            s.commit()  # committed before it is published
            return view_of(row, slot, tr.tokens)

    def _secure_video(self, alert: AlertView) -> None:
        """Hold the new alert's cameras now; for an SOS, save their video.

        Cameras already held for another open alert of the child (a zone
        exit just before) have been buffering, so the SOS clips start that
        far back; `_keep_holds` keeps every open alert's cameras held.
        """
        target = next((t for t in self._hold_targets() if t.alert_id == alert.id), None)
        ids = self.holds.hold_now(target) if target is not None else []
        if alert.kind == "sos":
            for camera_id in ids:
                self.relay.clip(camera_id, alert.id, "engine")

    def _keep_holds(self) -> None:
        """Assert (at start), renew and release the pre-alarm holds of every
        unresolved alert when due (``console.media.holds``)."""
        if not self.holds.due():
            return
        self.holds.sync(self._hold_targets())

    def _hold_targets(self) -> list[HoldTarget]:
        """Each unresolved alert with where it was raised and where its child is now."""
        tr = self.state.tracker
        targets: list[HoldTarget] = []
        for a in self.state.alerts.values():
            if a.state == "resolved":
                continue
            points = [(a.lat, a.lon)]
            if 0 <= a.child_slot < len(tr.lat):
                here = (float(tr.lat[a.child_slot]), float(tr.lon[a.child_slot]))
                if here != points[0]:
                    points.append(here)
            targets.append(HoldTarget(a.id, points))
        return targets

    # ------------------------------------------------------------- requests
    def _serve_requests(self) -> None:
        while True:
            try:
                frames = self.rpc.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                self.bad_requests += 1
                continue
            ident, body = frames[0], frames[-1]
            try:
                req = decode(body)
            except BadMessage as exc:
                self.bad_requests += 1
                reply: Snapshot | CommandReply = CommandReply(ok=False, error=f"bad request: {exc}")
            else:
                reply = self._handle(req)
            self.rpc.send_multipart([ident, b"", encode(reply)])

    def _handle(self, req: object) -> Snapshot | CommandReply:
        if isinstance(req, SnapshotRequest):
            return self._snapshot()
        if isinstance(req, AckAlert):
            return self._ack(req)
        if isinstance(req, RecordEvidence):
            return self._record_evidence(req)
        if isinstance(req, ReloadCameras):
            return self._reload_cameras(req)
        return CommandReply(ok=False, error=f"unsupported request {type(req).__name__}")

    def _snapshot(self) -> Snapshot:
        tr = self.state.tracker
        return Snapshot(
            seq=self.pub.seq, ts=time.time(), origin=self.pub.origin,
            children=tr.tokens, positions=self._positions(tr.known_slots()),
            alerts=sorted(self.state.alerts.values(), key=lambda a: a.id), zones=tr.zones,
            readers=self.state.readers, cameras=self.state.cameras,
            last_readers=tr.last_readers(),
        )

    def _ack(self, cmd: AckAlert) -> CommandReply:
        tr = self.state.tracker
        with self.sessions() as s:
            try:
                row = repo.acknowledge(s, cmd.alert_id, cmd.operator)
            except repo.CommandRejected as exc:
                return CommandReply(ok=False, error=str(exc))
            s.commit()
            old = self.state.alerts.get(row.id)
            view = view_of(row, old.child_slot if old else -1, tr.tokens)
        self.state.alerts[view.id] = view
        self.pub.send(AlertUpdated(alert=view, action="ack", actor=cmd.operator))
        self.rt.log.info("alert %d acknowledged by %s", view.id, cmd.operator)
        return CommandReply(ok=True, alert=view)

    def _reload_cameras(self, cmd: ReloadCameras) -> CommandReply:
        with self.sessions() as s:
            self.state.cameras = camera_views(s)
        self.camera_index = CameraIndex.from_cameras(self.state.cameras)
        self.holds.use_index(self.camera_index)
        self.pub.send(CameraRegistry(cameras=self.state.cameras))
        self.rt.log.info("camera registry reloaded for %s: %d cameras", cmd.operator,
                         len(self.state.cameras))
        return CommandReply(ok=True)

    def _record_evidence(self, cmd: RecordEvidence) -> CommandReply:
        with self.sessions() as s:
            try:
                repo.record_evidence(s, cmd.alert_id, cmd.camera_id, cmd.kind, cmd.path,
                                     cmd.operator)
            except repo.CommandRejected as exc:
                return CommandReply(ok=False, error=str(exc))
            s.commit()
        self.rt.log.info("evidence from camera %d for alert %s saved by %s", cmd.camera_id,
                         cmd.alert_id, cmd.operator)
        return CommandReply(ok=True)

    def close(self) -> None:
        self.relay.close()
        self.sub.close()
        self.pub.close()
        self.rpc.close(0)
        self.ctx.term()


def main(argv: list[str] | None = None) -> int:
    rt = start("engine", argv)
    Engine(rt).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
