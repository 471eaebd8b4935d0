"""The engine: single writer of live state and alerts.

It consumes ``fix.batch`` from the gateway (live from the bus, and from the
gateway's journal after a gap or a restart, ``console.journal``), runs the
tracking pipeline,
hands device alarms and zone exits to the alert desk (``console.engine``),
and answers requests on a ROUTER socket through one command table:
snapshots for late-joining consoles, sign-in, and every operator command,
each with an explicit reply.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zmq

from console import keys
from console.bus import Publisher, Subscriber, socket
from console.engine.admin_services import admin_service_entries
from console.engine.cameras import camera_entries
from console.engine.child_card import child_card_entries
from console.engine.commands import CommandTable, Entry
from console.engine.consent_gate import ConsentGate
from console.engine.desk import BUSY_RETRY_S, AlertDesk, StoreBusy
from console.engine.privacy import privacy_entries
from console.engine.routine import Routine
from console.engine.sessions import SessionBook
from console.engine.state import camera_views, load_state, reload_roster
from console.journal import READ_CHUNK, Follower, JournalReader, journal_path
from console.media import tokens as media_tokens
from console.media.control import RelayControl
from console.media.holds import HoldKeeper, HoldTarget
from console.media.limits import MAX_REVOKED
from console.security import Security
from console.services.runtime import Runtime, settle_heap, start
from db import accounts, changes, cursors, usage_log
from db import alerts as db_alerts
from db import repositories as repo
from db.store import RARE_CHECKPOINT_PAGES, is_busy, no_wait_sessions, open_store
from models import health
from models.alerts import Actor, Policy, Refused, Trigger
from models.bus_rights import COMMANDS_FROM
from models.cameras import CameraIndex
from models.messages import (
    AckAlert,
    AddNote,
    AlertCommand,
    AlertDetail,
    AlertDetailRequest,
    AlertList,
    AlertsRequest,
    AlertView,
    AssignAlert,
    BadMessage,
    CameraRegistry,
    CamerasViewed,
    CommandReply,
    DispatchAlert,
    FixBatch,
    HoldAlert,
    MarkStep,
    PositionBatch,
    RecordEvidence,
    ReloadCameras,
    ReopenAlert,
    ReplayClock,
    Reply,
    ResolveAlert,
    ResumeAlert,
    RosterChanged,
    SessionCheck,
    ShiftReport,
    ShiftRequest,
    SignedIn,
    SignIn,
    SignOut,
    Snapshot,
    SnapshotRequest,
    TakeAlert,
    decode,
    encode,
    pack,
)
from models.replay_clock import SessionClock
from models.tracking import DeviceAlarm, check_batch, slots_of, urgent_rows

STORE_WAIT_S = 0.5  # the most the loop waits for a busy store (then retries later)
PREALARM_CAMERAS = 4  # nearest cameras held (and, for an SOS, clipped) per alert
REQUESTS_PER_TURN = 8  # requests answered before the loop looks at fixes again
MAX_PARKED = 256  # alert commands waiting for a busy store; more are refused "busy"
TRAIL_S = 15 * 60.0  # the trail an alert panel shows
MAX_ROWS = 5000  # alerts one list or shift report carries
# A drain turn stops reading after this long or this many fixes, and reads
# at most this many batches ahead of what it has applied (``_drain_fixes``).
# What it has read when it stops is applied without looking at the bus
# again: at most ``READ_AHEAD_FIXES``, tens of milliseconds on a busy machine
# (20,000 made an SOS wait 200 ms behind the tail of a turn).
TURN_S = 0.2
TURN_FIXES = 50_000
READ_AHEAD = 128
READ_AHEAD_FIXES = 2_500
# Routine fixes are applied in groups of about this many, or once the oldest
# has waited LINGER_S: the tracker's and the zones' numpy steps cost nearly
# as much per batch as per fix, and the gateway's batches under load are a
# few hundred fixes (5 ms of them). An alarm never lingers (``_open_alarms``).
APPLY_FIXES = 1_000
LINGER_S = 0.015
ALERT_COMMANDS = (AckAlert, TakeAlert, AssignAlert, HoldAlert, ResumeAlert, DispatchAlert,
                  ResolveAlert, ReopenAlert, MarkStep, AddNote)


@dataclass(slots=True)
class _Rows:
    """Rows of one fix batch as read from the bus or the journal, or the part
    of one that the alarm fast lane split off (``Engine._drain_fixes``)."""

    msg: FixBatch  # where the rows came from (its seq and origin, for the log)
    ids: list[str]
    readers: list[str]  # empty, or the tag reader of each row
    cols: dict[str, np.ndarray]
    slots: np.ndarray | None = None  # each row's child slot, once an alarm asked
    read_at: float = 0.0  # time.monotonic() when it was read

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def merged(queue: deque[_Rows], device_slots: dict[str, int]) -> _Rows:
        """The batches at the front of ``queue`` that share no child, taken
        out and made one, in order; ``msg`` is the last one's.

        A step keeps only each child's newest fix (the zones, the tracker),
        so a batch with a child already in the group starts the next one:
        a child whose fixes came in separate batches has each one looked
        at (it arrived at the first fix inside, not the last), as when
        every batch was a step of its own."""
        parts = [queue.popleft()]
        children = parts[0].slots_in(device_slots)
        while queue and not np.isin(queue[0].slots_in(device_slots), children[children >= 0]
                                    ).any():  # (-1: a device no child has, refused later)
            parts.append(queue.popleft())
            children = np.concatenate([children, parts[-1].slots_in(device_slots)])
        if len(parts) == 1:
            return parts[0]
        readers = [r for p in parts for r in (p.readers or [""] * len(p))] \
            if any(p.readers for p in parts) else []
        slots = None if any(p.slots is None for p in parts) else np.concatenate(
            [p.slots for p in parts if p.slots is not None])
        return _Rows(parts[-1].msg, [d for p in parts for d in p.ids], readers,
                     {name: np.concatenate([p.cols[name] for p in parts])
                      for name in parts[0].cols}, slots, parts[0].read_at)

    def slots_in(self, device_slots: dict[str, int]) -> np.ndarray:
        """Each row's child slot (-1: unknown device), looked up once: the
        alarms of a turn ask about the same queued rows again and again."""
        if self.slots is None:
            self.slots = slots_of(self.ids, device_slots)
        return self.slots

    def part(self, mask: np.ndarray) -> _Rows:
        """The rows where ``mask`` is set, in their order."""
        picked = mask.tolist()
        return _Rows(self.msg, [d for d, k in zip(self.ids, picked, strict=True) if k],
                     [r for r, k in zip(self.readers, picked, strict=True) if k]
                     if self.readers else self.readers,
                     {name: col[mask] for name, col in self.cols.items()},
                     None if self.slots is None else self.slots[mask], self.read_at)


def _ripe(queue: deque[_Rows]) -> bool:
    """Apply the queued routine rows now: enough of them, or waited enough."""
    return (sum(map(len, queue)) >= APPLY_FIXES
            or time.monotonic() - queue[0].read_at >= LINGER_S)


class Engine:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        cfg = rt.config
        _, self.sessions = open_store(cfg.db_url, busy_timeout_s=STORE_WAIT_S,
                                      checkpoint_pages=RARE_CHECKPOINT_PAGES)
        self.try_sessions = no_wait_sessions(cfg.db_url, self.sessions)
        # Alerts, deadlines and fix checks run on this clock: the wall's, or in
        # a training installation the replayed one (``models.replay_clock``).
        self.replay = SessionClock(cfg.replay_start) if cfg.training else None
        self.now: Callable[[], float] = self.replay.now if self.replay else time.time
        self._clock_tick_at = 0.0  # replayed time of the next clock work (training)
        self.roster_version = self._roster_version()
        self.state = load_state(self.sessions)
        self.policy = Policy.from_settings(cfg.alert_priorities, cfg.alert_sla)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        security = Security.of(cfg, "engine")
        self.guard = security.guard(self.ctx, {"engine": COMMANDS_FROM})
        self.pub = Publisher(self.ctx, cfg.bus_pub, origin="engine", source=cfg.bus_source,
                             security=security)
        self.sub = Subscriber(self.ctx, cfg.bus_sub,
                              ("fix.batch", "replay.clock") if cfg.training else ("fix.batch",),
                              security=security, sources=cfg.bus_sources)
        self.rpc = socket(self.ctx, zmq.ROUTER)
        security.server(self.rpc, "engine")
        self.rpc.bind(cfg.engine_rpc)
        with self.sessions() as s:
            epoch, seq = cursors.load(s, "engine")
        self.follow = Follower(JournalReader(journal_path(cfg.data_dir)), epoch, seq)
        self.saved_cursor = (epoch, seq)
        self.fixes_in = 0
        self.bad_requests = 0
        self.loop_errors = 0
        # Alert commands in arrival order, each tried without waiting for a
        # busy SQLite lock (``_answer_parked``): (reply address, command, came at).
        self.parked: deque[tuple[bytes, AlertCommand, float]] = deque()
        self.parked_retry_at = 0.0
        self.store_since: float | None = None  # the command being tried may not wait
        self.camera_index = CameraIndex.from_cameras(self.state.cameras)
        # The relay's tokens: consoles get a "view" one at sign-in, the
        # engine's own hold/clip/release carry a "control" one (None: the
        # relay runs open, bus_security off).
        self.media_secret = (keys.media_secret(cfg.data_dir)
                             if cfg.bus_security == "curve" else None)
        self.relay = RelayControl(
            cfg.relay_host, cfg.relay_port,
            token=None if self.media_secret is None
            else media_tokens.renewing(self.media_secret, "engine", "control"))
        self.holds = HoldKeeper(self.relay, cameras_per_point=PREALARM_CAMERAS)
        self.holds.use_index(self.camera_index)
        self.desk = AlertDesk(self.sessions, self.policy, self.state.tracker, self.state.alerts,
                              self.state.child_ids, self.state.zone_names,
                              self.state.device_kinds,
                              lambda m: self.pub.send(m, stamped=True),
                              opened=self._secure_video, seen=self._trigger_times(),
                              last_id=self._last_id(), stamp=self.pub.stamp,
                              unstamp=self.pub.unstamp, clock=self.now,
                              try_sessions=self.try_sessions)
        self.users = SessionBook(self.sessions, training=cfg.training)
        self.users.refresh(force=True)
        self._revoke_ended()
        self.consent = ConsentGate(self.sessions, self.state.child_ids,
                                   self.state.tracker.device_slots)
        self.consent.refresh(self._forget)
        self.routine = Routine(self.sessions, cfg, self.state, self.desk, self.consent,
                               lambda m: self.pub.send(m), clock=self.now)
        alert = Entry(self._alert_command)
        self.commands = CommandTable(self.users, {
            SnapshotRequest: Entry(lambda _r, _a: self._snapshot(), signed_in=False),
            SignIn: Entry(self._sign_in, signed_in=False),
            SignOut: Entry(self._sign_out, signed_in=False),
            SessionCheck: Entry(self._session_check, signed_in=False),
            **{kind: alert for kind in ALERT_COMMANDS},
            AlertDetailRequest: Entry(self._alert_detail),
            AlertsRequest: Entry(self._alert_list),
            ShiftRequest: Entry(self._shift),
            RecordEvidence: Entry(self._record_evidence),
            CamerasViewed: Entry(self._cameras_viewed),
            ReloadCameras: Entry(self._reload_cameras),
            **camera_entries(self),
            **admin_service_entries(self),
            **privacy_entries(self),
            **child_card_entries(self),
        })

    def _last_id(self) -> int:
        with self.sessions() as s:
            return db_alerts.last_id(s)

    def _trigger_times(self) -> dict[tuple[str, str], set[float]]:
        """Alarms already raised, for as long as a repeat of one can come
        back (the journal's span, or a device's resend within the day)."""
        since = self.now() - max(self.rt.config.journal_keep_s, 86400.0) - 3600.0
        with self.sessions() as s:
            return db_alerts.trigger_times(s, since)

    # ----------------------------------------------------------------- loop
    def run(self) -> None:
        tr = self.state.tracker
        self.rt.log.info("tracking %d children, %d zones, %d unresolved alerts",
                         len(tr), len(self.state.zones), len(self.state.alerts))
        settle_heap()
        poller = zmq.Poller()
        poller.register(self.sub.sock, zmq.POLLIN)
        poller.register(self.rpc, zmq.POLLIN)
        next_beat = 0.0
        window_start, window_fixes = time.monotonic(), 0
        while not self.rt.should_stop():
            try:
                window_fixes += self._turn(poller)
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + 1.0
                    self._beat(window_fixes / max(now - window_start, 1e-6))
                    window_start, window_fixes = now, 0
            except Exception:  # nothing may end the loop that raises alerts
                self.loop_errors += 1
                self.rt.log.exception("engine loop turn failed (%d so far); going on",
                                      self.loop_errors)
                time.sleep(0.05)
        self.close()

    def _turn(self, poller: zmq.Poller) -> int:
        """One pass of the loop: requests, fixes, the store, holds; fixes applied."""
        # a change waiting for a busy store is tried again within milliseconds
        events = dict(poller.poll(2 if self.desk.waiting() or self.parked else 100))
        n = 0
        if self.rpc in events:
            self._serve_requests()
        if self.sub.sock in events or self.follow.behind:
            n = self._drain_fixes()
        if self.desk.unsaved():
            self.desk.flush()
        self._answer_parked()
        self._keep_holds()
        return n

    def _beat(self, rate: float) -> None:
        """Once a second: the clock's work (SLA, holds, sessions), then the heartbeat."""
        tr = self.state.tracker
        if self.replay is None:
            self.desk.tick()
        if self.users.refresh():
            self._revoke_ended()
        self._refresh_roster()
        self.consent.refresh(self._forget)
        self._clock_work()
        self.follow.poll()
        self._save_cursor()
        f = self.follow
        self.pub.heartbeat({
            "children": len(tr), "fixes_per_s": rate, "fixes_in": self.fixes_in,
            "applied": tr.applied, "open_alerts": len(self.state.alerts),
            "unsaved_alerts": self.desk.unsaved(), "store_failures": self.desk.store_failures,
            "store_state": health.store_state(self.desk.store_error),
            "refused_commands": self.commands.refused,
            "rejected": sum(tr.rejected.values()) + sum(self.sub.rejected.values()),
            "loop_errors": self.loop_errors,
            "journal_seq": f.seq, "journal_behind": float(f.behind),
            "journal_gaps": f.gaps, "journal_recovered": f.recovered,
            "journal_lost": f.lost, "duplicate_batches": f.duplicates,
            "duplicate_alarms": self.desk.duplicates,
            **{k: float(v) for k, v in self.consent.dropped.items()},
            **self.routine.heartbeat(),
            **(self.guard.stats() if self.guard is not None else {}),
            **{f"rejected_{k}": v for k, v in self.sub.rejected.items()},
        })

    def _clock_work(self) -> None:
        """The routine's deadlines and silences; on the replayed clock also the
        desk's SLA breaches and holds (live, the desk ticks at the top of the
        beat, before sessions and the roster are refreshed). Replayed, it runs
        once per replayed second however fast the session plays, and not
        while it is paused."""
        if self.replay is None:
            self.routine.tick()
            return
        now = self.now()
        if now >= self._clock_tick_at:
            self._clock_tick_at = now + 1.0
            self.desk.tick()
            self.routine.tick()

    def _follow_replay(self, msg: ReplayClock) -> None:
        """The session's clock, in order with the batches it plays."""
        if self.replay is None:
            return
        self.replay.set(msg.t, msg.speed)
        self._clock_work()

    def _roster_version(self) -> int | None:
        """The roster's newest change: every enrolment, removal and device
        registration records one (``db.changes``), so a look at one index
        entry a second, not a count of the whole registry."""
        try:
            with self.sessions() as s:
                return changes.version(s, "roster")
        except Exception as exc:  # the store is busy: next second
            self.rt.log.warning("could not read the roster's version: %s", exc)
            return None

    def _refresh_roster(self) -> None:
        """Take children and devices enrolled or removed while running, within
        a second (``console.engine.state.reload_roster``), and tell consoles."""
        version = self._roster_version()
        if version is None or version == self.roster_version:
            return
        change = reload_roster(self.state, self.sessions)
        self.roster_version = version
        self.consent.version = None  # new slots: re-read whose consent is in force
        self.consent.refresh(self._forget)
        self.routine.roster_changed()
        if change.untracked:
            self._forget(change.untracked)
        tr = self.state.tracker
        self.rt.log.info("roster reloaded: %d new children, %d no longer tracked; %d devices",
                         len(change.added), len(change.untracked), len(tr.device_slots))
        if change.added:
            self.pub.send(RosterChanged(children=len(tr)))

    def _save_cursor(self) -> None:
        """Keep the engine's place in the journal, once every alert its
        batches raised is in the store: a restart resumes there, and the
        repeats it replays fold away (``AlertDesk.trigger``)."""
        here = (self.follow.epoch, self.follow.seq)
        if self.desk.unsaved() or (here == self.saved_cursor and not self.desk.store_error):
            return  # (after a refusal it writes anyway: that is how it sees the store back)
        try:
            with self.try_sessions() as s:  # never waits for the lock: next second
                cursors.save(s, "engine", *here)
                s.commit()
        except Exception as exc:  # the store is busy or full: next second
            if is_busy(exc):
                return
            self.desk.store_error = str(exc).splitlines()[0][:200]
            self.rt.log.warning("could not save the journal cursor: %s", self.desk.store_error)
            return
        self.saved_cursor = here
        self.desk.store_error = ""

    def _incoming(self, limit: int = 1000) -> list[FixBatch | ReplayClock]:
        """The next batches to apply, in journal order: read back from the
        journal while behind, else whatever the bus has brought (at most
        ``limit`` messages). On a training installation the session's clock
        comes among them, in the order it was played."""
        if self.follow.behind:
            return self.follow.catch_up(min(limit, READ_CHUNK))
        out: list[FixBatch | ReplayClock] = []
        while len(out) < limit:
            try:
                frames = self.sub.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            parsed = self.sub.parse(frames)
            if parsed is not None and isinstance(parsed[1], ReplayClock):
                out.append(parsed[1])
                continue
            if parsed is None or not isinstance(parsed[1], FixBatch):
                continue
            msg = parsed[1]
            if self.follow.admit(msg):
                out.append(msg)
            elif self.follow.behind:
                break  # the journal has it, and everything after it
        return out

    def _drain_fixes(self) -> int:
        """Apply the fix batches waiting now, alarms first; then publish one
        position batch. Returns the fixes taken.

        Alarms never wait behind routine work (issue 14): between any two
        routine batches the loop reads what the bus has brought since, and a
        batch carrying an SOS, fall or removal is applied (its alert opened
        and published) as soon as it is read, ahead of the routine batches
        read before it. The rule that keeps that safe: **an alarm overtakes
        other children's fixes, never its own child's.** Every fix of that
        child already read and not yet applied goes with it, in journal
        order, so each child sees exactly the sequence of steps it would
        have seen in order (an alarm without a position is raised at the
        same last known position). Children share no live state, so the
        reordering across children changes nothing but when.

        Everything read in a turn is applied in that turn: the follower's
        cursor, saved between turns, then never passes a batch not applied,
        and a restart replays from it (repeated alarms fold, older fixes
        are out of order). A turn stops reading after ``TURN_S`` or
        ``TURN_FIXES``, and reads at most ``READ_AHEAD`` batches (and
        ``READ_AHEAD_FIXES`` fixes) ahead of what it has applied, so it always
        ends soon and the heartbeat, requests and the clock's work keep their
        pace even when fixes come faster than they can be applied. A training
        installation keeps strict journal order: a replay must raise its
        alerts in the order they were taped.
        """
        moved: list[np.ndarray] = []
        queue: deque[_Rows] = deque()  # read, not yet applied, in journal order
        fast = self.replay is None
        deadline = time.monotonic() + TURN_S
        n = 0
        reading = True
        try:
            while True:
                room = READ_AHEAD - len(queue)
                batches: list[FixBatch | ReplayClock] = []
                # Live, a look at the bus costs one failed recv: look between
                # any two applies. Read back from the journal, refill in chunks
                # (each read is a few queries).
                can_read = reading and sum(map(len, queue)) < READ_AHEAD_FIXES and \
                    room >= (READ_AHEAD // 2 if self.follow.behind else 1)
                if can_read:
                    batches = self._incoming(room)
                    for msg in batches:
                        if isinstance(msg, ReplayClock):
                            # the clock's work (deadlines) only after every
                            # fix played before it
                            while queue:
                                self._take(self._merged(queue), moved)
                            self._follow_replay(msg)
                            continue
                        rows = self._read(msg)
                        if rows is None:
                            continue
                        n += len(rows)
                        if fast and urgent_rows(rows.cols["flags"]).any():
                            self._open_alarms(rows, queue, moved)
                        else:
                            queue.append(rows)
                    if not batches and not queue:
                        break
                    reading = n < TURN_FIXES and time.monotonic() < deadline
                if queue and (not can_read or _ripe(queue)):
                    self._take(self._merged(queue), moved)
                if self.desk.waiting():  # an alert waits for a busy store
                    self.desk.flush()
                if self.parked:
                    self._answer_parked()
                if not queue and not reading:
                    break
                if queue and not batches:  # the bus is quiet: wait for more, briefly
                    wait = queue[0].read_at + LINGER_S - time.monotonic()
                    if self.desk.waiting() or self.parked:  # and keep their retries' pace
                        wait = min(wait, BUSY_RETRY_S)
                    self.sub.sock.poll(max(1, int(wait * 1000) + 1))
        finally:
            while queue:  # read is admitted: applied even if reading failed
                self._take(self._merged(queue), moved)
            if moved:
                slots = np.unique(np.concatenate(moved))
                if len(slots):
                    self.pub.send(self._positions(slots))
        return n

    def _merged(self, queue: deque[_Rows]) -> _Rows:
        return _Rows.merged(queue, self.state.tracker.device_slots)

    def _read(self, msg: FixBatch) -> _Rows | None:
        """One batch's columns, checked; None (counted) when they do not decode."""
        cols = self.sub.columns(msg)
        if cols is None:
            return None
        self.fixes_in += len(msg.device_ids)
        return _Rows(msg, msg.device_ids, msg.readers, cols, read_at=time.monotonic())

    def _open_alarms(self, rows: _Rows, queue: deque[_Rows], moved: list[np.ndarray]) -> None:
        """The fast lane: apply ``rows``' alarms now, ahead of ``queue``.

        First every queued fix of the alarms' children, in journal order (the
        child's own fixes are never overtaken), then this batch's rows of
        those children; its other children's rows join the queue."""
        device_slots = self.state.tracker.device_slots
        slots = rows.slots_in(device_slots)
        children = np.unique(slots[urgent_rows(rows.cols["flags"]) & (slots >= 0)])
        if not len(children):  # unknown devices: counted by the tracker, in order
            queue.append(rows)
            return
        for i, queued in enumerate(queue):
            mine = np.isin(queued.slots_in(device_slots), children)
            if mine.any():
                self._take(queued.part(mine), moved)
                queue[i] = queued.part(~mine)
        mine = np.isin(slots, children)
        self._take(rows.part(mine), moved)
        if not mine.all():
            queue.append(rows.part(~mine))

    def _take(self, rows: _Rows, moved: list[np.ndarray]) -> None:
        """Apply one batch (or part of one); a bug costs those rows, never the loop."""
        if not rows.ids:
            return
        try:
            moved.append(self._apply(rows))
        except Exception:  # a bug must cost those rows, never the alerting loop
            self.sub.rejected["engine_error"] += 1
            self.rt.log.exception("%d fixes (batches up to seq %d from %s) failed; dropped",
                                  len(rows), rows.msg.seq, rows.msg.origin)

    def _apply(self, rows: _Rows) -> np.ndarray:
        """Check one batch, run the tracker, hand its alarms and exits to the desk."""
        msg, ids, readers, cols = rows.msg, rows.ids, rows.readers, rows.cols
        slots = rows.slots_in(self.state.tracker.device_slots)  # one lookup per row
        keep = self.consent.keep(ids)
        if keep is not None:  # children without consent are not tracked
            ids = [d for d, k in zip(ids, keep, strict=True) if k]
            readers = [r for r, k in zip(readers, keep, strict=True) if k] if readers else readers
            cols = {name: col[keep] for name, col in cols.items()}
            slots = slots[keep]
        ids, cols, readers, dropped, kept = check_batch(ids, cols, readers, self.now())
        if kept is not None:
            slots = slots[kept]
        if dropped:
            self.sub.rejected.update(dropped)
            self.rt.log.warning("fix batch seq %d from %s: %s", msg.seq, msg.origin,
                                ", ".join(f"{k} {v}" for k, v in dropped.items()))
        result = self.state.tracker.step(ids, cols, readers, slots)
        for alarm in result.alarms:
            if self.consent.emergency(alarm.slot):
                self.desk.trigger(self._trigger(alarm))
        self.routine.on_fixes(result)
        return result.slots

    def _forget(self, slots: list[int]) -> None:
        """A consent ended: forget where these children are, and tell the
        consoles (a position with no coordinates takes the marker away)."""
        self.state.tracker.forget(slots)
        self.routine.forget(slots)
        self.pub.send(self._positions(np.asarray(slots, dtype=np.int64)))

    def _positions(self, slots: np.ndarray) -> PositionBatch:
        tr = self.state.tracker
        return PositionBatch(
            slots=pack("slots", slots), t=pack("t", tr.t[slots]), lat=pack("lat", tr.lat[slots]),
            lon=pack("lon", tr.lon[slots]), inside=pack("inside", tr.inside[slots]),
            flags=pack("flags", tr.flags[slots]),
        )

    # --------------------------------------------------------------- alerts
    @staticmethod
    def _trigger(alarm: DeviceAlarm) -> Trigger:
        return Trigger(alarm.kind, alarm.slot, alarm.device_id,  # type: ignore[arg-type]
                       alarm.lat, alarm.lon, alarm.position_is_last_known, alarm.t,
                       alarm.battery)

    def _secure_video(self, alert: AlertView) -> None:
        """Hold the new alert's cameras now; for an SOS or a fall, save their video.

        Cameras already held for another open alert of the child (a zone
        exit just before) have been buffering, so the SOS clips start that
        far back; `_keep_holds` keeps every open alert's cameras held.
        """
        ids = self.holds.hold_now(self._hold_target(alert))
        if alert.kind in ("sos", "fall"):
            for camera_id in ids:
                self.relay.clip(camera_id, alert.id, "engine")

    def _keep_holds(self) -> None:
        """Assert (at start), renew and release the pre-alarm holds of every
        unresolved alert when due (``console.media.holds``)."""
        if not self.holds.due():
            return
        self.holds.sync(self._hold_targets())

    def _hold_targets(self) -> list[HoldTarget]:
        """Each unresolved alert's ``_hold_target``."""
        return [self._hold_target(a) for a in self.state.alerts.values()
                if a.state != "resolved"]

    def _hold_target(self, a: AlertView) -> HoldTarget:
        """Where the alert was raised, and where its child is now."""
        tr = self.state.tracker
        points = [(a.lat, a.lon)]
        if 0 <= a.child_slot < len(tr.lat):
            here = (float(tr.lat[a.child_slot]), float(tr.lon[a.child_slot]))
            if here != points[0]:
                points.append(here)
        return HoldTarget(a.id, points)

    # ------------------------------------------------------------- requests
    def _serve_requests(self) -> None:
        """Answer up to REQUESTS_PER_TURN requests, then let fixes in: operators
        working fast must never hold back an SOS (measured by bench alerts)."""
        for _ in range(REQUESTS_PER_TURN):
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
                reply: Reply = CommandReply(ok=False, error=f"bad request: {exc}", code="bad")
            else:
                if isinstance(req, ALERT_COMMANDS) and len(self.parked) < MAX_PARKED:
                    self.parked.append((ident, req, time.monotonic()))
                    self._answer_parked()
                    continue
                if isinstance(req, ALERT_COMMANDS):  # MAX_PARKED wait already
                    self.commands.refused += 1
                    reply = CommandReply(ok=False, code="busy", ref=int(getattr(req, "seq", 0)),
                                         error="the store is busy with other changes; try "
                                               "again in a moment")
                else:
                    reply = self.commands.handle(req)
            self.rpc.send_multipart([ident, b"", encode(reply)])

    def _answer_parked(self) -> None:
        """Answer the alert commands that came, in order. While SQLite's lock
        is busy (the recorder's writes), a command is tried again every few
        milliseconds and the loop goes on opening alarms meanwhile; after
        ``STORE_WAIT_S`` it waits for the store as any other request, and a
        refusal is the answer. (On PostgreSQL nothing waits: tried once.)"""
        now = time.monotonic()
        if now < self.parked_retry_at:
            return
        while self.parked:
            ident, req, came = self.parked[0]
            self.store_since = came if now - came < STORE_WAIT_S else None
            try:
                reply = self.commands.handle(req)
            except StoreBusy:
                self.parked_retry_at = now + BUSY_RETRY_S
                return
            finally:
                self.store_since = None
            self.parked.popleft()
            self.rpc.send_multipart([ident, b"", encode(reply)])

    def _snapshot(self) -> Snapshot:
        tr = self.state.tracker
        return Snapshot(
            seq=self.pub.seq, ts=time.time(), origin=self.pub.origin,
            children=tr.tokens, positions=self._positions(tr.known_slots()),
            alerts=self.desk.all_open(), zones=self.state.zones,
            readers=self.state.readers, cameras=self.state.cameras,
            last_readers=tr.last_readers(),
        )

    def _sign_in(self, req: SignIn, _actor: Actor | None) -> Reply:
        try:
            info = self.users.sign_in(req.user, req.password, req.console)
        except accounts.SignInRefused as exc:
            self.rt.log.warning("sign-in of %r refused: %s", req.user[:64], exc)
            return CommandReply(ok=False, error=str(exc), code="signin")
        self.rt.log.info("%s signed in (%s) at %s", info.user, ",".join(sorted(info.roles)),
                         req.console or "?")
        # Camera video, as the console's live picture, is for whoever works
        # or runs the system; an auditor-only session reads logs, not video.
        media = "" if self.media_secret is None or not info.roles - {"auditor"} \
            else media_tokens.issue(self.media_secret, info.user, "view", info.expires_at,
                                    media_tokens.session_id(accounts.token_hash(info.token)))
        return SignedIn(token=info.token, user=info.user, roles=sorted(info.roles),
                        expires_at=info.expires_at, media_token=media)

    def _sign_out(self, req: SignOut, _actor: Actor | None) -> Reply:
        user = self.users.sign_out(req.token)
        if user is None:
            return CommandReply(ok=False, error="no such session", code="unauthenticated")
        self.rt.log.info("%s signed out", user)
        self._revoke_ended()
        return CommandReply(ok=True)

    def _session_check(self, req: SessionCheck, _actor: Actor | None) -> Reply:
        """Any role's session may ask (no permission to check): live, or
        ``Refused`` as unauthenticated, which signs the console out."""
        self.users.live(req.token)
        return CommandReply(ok=True)

    def _revoke_ended(self) -> None:
        """Post the sessions that ended before they expired to the relay
        (``console.media.tokens``): at start, on each sign-out, and on each
        re-read of the sessions (every few seconds: that is what brings a
        restarted relay's list back, and a disabled account's sessions in).
        A training installation runs no relay: nothing to tell. An empty
        list is not posted: a session leaves it only once its tokens have
        expired, and the relay refuses those anyway."""
        ended = self.users.ended
        if self.media_secret is None or self.rt.config.training or not ended:
            return
        newest = sorted(ended.items(), key=lambda kv: kv[1], reverse=True)
        if len(newest) > MAX_REVOKED:
            self.rt.log.warning("%d sessions ended early; the relay is told of the %d that "
                                "expire last", len(newest), MAX_REVOKED)
        self.relay.revoke({media_tokens.session_id(h): until
                           for h, until in newest[:MAX_REVOKED]})

    def _alert_command(self, cmd: AlertCommand, actor: Actor | None) -> Reply:
        assert actor is not None
        view = self.desk.apply(cmd, actor, self.users.assignable, self.store_since)
        if view.state == "resolved":
            self.holds.release(view.id)
        return CommandReply(ok=True, alert=view)

    def _alert_detail(self, req: AlertDetailRequest, actor: Actor | None) -> Reply:
        """The alert, its history and, for whoever works alerts, its child's
        trail: each trail sent is a location use, written to the usage log
        with the reply. Auditors review the case, never where a child went."""
        assert actor is not None
        alert = self.desk.find(req.alert_id)
        end = alert.resolved_at or self.now()
        with self.sessions() as s:
            history = db_alerts.history(s, alert.id)
            if actor.roles & {"operator", "supervisor"} and alert.child_slot >= 0:
                # the child's devices from the store's index, not a scan of
                # every tracked device (580,000 at city scale)
                devices = repo.devices_of(s, self.state.child_ids[alert.child_slot])
                t, lat, lon = repo.trail(s, devices, end - TRAIL_S, end)
            else:
                t = lat = lon = np.empty(0)
            if len(t):
                usage_log.append(s, at=time.time(), actor=actor.user,
                                 subject=alert.child_token, action="trail",
                                 purpose=f"alert {alert.id} ({alert.kind})", alert_id=alert.id,
                                 detail=f"{len(t)} points over the {TRAIL_S / 60:.0f} min "
                                        f"before {'resolution' if alert.resolved_at else 'now'}")
                s.commit()
        return AlertDetail(alert=alert, history=history, trail_t=pack("t", t),
                           trail_lat=pack("lat", lat), trail_lon=pack("lon", lon))

    def _alert_list(self, req: AlertsRequest, _actor: Actor | None) -> Reply:
        limit = max(1, min(req.limit, MAX_ROWS))
        if req.open_only:
            return AlertList(alerts=self.desk.all_open()[:limit])
        return AlertList(alerts=self._alerts_since(req.since, limit))

    def _shift(self, req: ShiftRequest, _actor: Actor | None) -> Reply:
        alerts = self._alerts_since(req.since, MAX_ROWS)
        return ShiftReport(alerts=alerts, staff=self.users.staff(alerts))

    def _alerts_since(self, since: float, limit: int) -> list[AlertView]:
        """Every alert opened since ``since`` plus every unresolved one, the
        live copy winning over the stored one."""
        if not np.isfinite(since):
            raise Refused("bad_value", "since must be a time")
        tokens = self.state.tracker.tokens
        with self.sessions() as s:
            stored = {}
            for row, token in db_alerts.since(s, since, limit):
                slot = self.state.slot_of_child.get(row.child_id, -1)
                stored[row.id] = db_alerts.view_of(row, slot, tokens[slot] if slot >= 0
                                                   else token,
                                                   self.state.device_kinds.get(row.device_id, ""))
        stored.update(self.state.alerts)
        return sorted(stored.values(), key=lambda a: a.id)

    def _cameras_viewed(self, cmd: CamerasViewed, actor: Actor | None) -> Reply:
        assert actor is not None
        self.desk.viewed(cmd.alert_id, cmd.camera_ids, {c.id for c in self.state.cameras}, actor)
        return CommandReply(ok=True)

    def _reload_cameras(self, cmd: ReloadCameras, actor: Actor | None) -> Reply:
        with self.sessions() as s:
            self.state.cameras = camera_views(s)
        self.camera_index = CameraIndex.from_cameras(self.state.cameras)
        self.holds.use_index(self.camera_index)
        self.pub.send(CameraRegistry(cameras=self.state.cameras))
        self.rt.log.info("camera registry reloaded for %s: %d cameras",
                         actor.user if actor else "?", len(self.state.cameras))
        return CommandReply(ok=True)

    def _record_evidence(self, cmd: RecordEvidence, actor: Actor | None) -> Reply:
        assert actor is not None
        with self.sessions() as s:
            try:
                repo.record_evidence(s, cmd.alert_id, cmd.camera_id, cmd.kind, cmd.path,
                                     actor.user)
            except repo.CommandRejected as exc:
                raise Refused("bad_value", str(exc)) from exc
            s.commit()
        self.rt.log.info("evidence from camera %d for alert %s saved by %s", cmd.camera_id,
                         cmd.alert_id, actor.user)
        return CommandReply(ok=True)

    def close(self) -> None:
        self.relay.close()
        self.sub.close()
        self.pub.close()
        self.rpc.close(0)
        if self.guard is not None:
            self.guard.stop()
        self.ctx.term()


def main(argv: list[str] | None = None) -> int:
    rt = start("engine", argv)
    Engine(rt).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
