"""One training session: a training installation running, a player feeding
it, the trainer's controls, and at the end the trainees' scores.

``childsafe replay`` runs one (``run``). It builds a fresh training
installation (``console.training.install``), starts its bus, engine and
recorder under a supervisor of their own, waits until that engine listens,
then plays. Trainee consoles (``childsafe console --training``) connect to
the training bus; the trainer's window sends ``cmd.replay`` to the control
socket here, with a trainer's session on the training engine. When the
session ends, a scenario is scored for every trainee who worked its alerts
and the printable report is written beside the live data
(``training-reports/``), since the training folder is wiped by the next
session.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from console.bus import Publisher, Subscriber, role_of, socket
from console.config import Config
from console.engine.commands import CommandTable, Entry
from console.engine.sessions import SessionBook
from console.security import Security
from console.supervisor import Supervisor
from console.training import install
from console.training.player import Player, Refused
from console.training.sources import (
    Home,
    PopulationSource,
    ScriptedIncident,
    ScriptedTape,
    TapeSource,
)
from db import alerts as db_alerts
from db import repositories as repo
from db import tables, usage_log
from db.seed import seed_demo
from db.seed_cameras import seed_cameras
from db.seed_readers import seed_readers
from db.store import open_store
from models.alerts import Actor
from models.bus_rights import COMMANDS_FROM
from models.geo import to_map
from models.messages import (
    AlertView,
    BadMessage,
    CommandReply,
    Heartbeat,
    HistoryEntry,
    ReplayControl,
    ReplayStatus,
    Reply,
    decode,
    encode,
)
from models.scenario import Incident, Population, Recording, Scenario
from models.scoring import TraineeScore, score_all
from models.simulation import SimZone

log = logging.getLogger(__name__)

SERVICES = ("bus", "engine", "recorder")
ENGINE_UP_S = 60.0  # the most a start (or a seek's restart) waits for the engine


Source = TapeSource | PopulationSource | ScriptedTape


@dataclass
class Plan:
    """What to play: a scenario, or a recorded period (``t0``, ``t1``)."""

    scenario: Scenario | None = None
    t0: float = 0.0
    t1: float = 0.0
    by: str = ""  # who asked (the usage log names them for a recorded period)
    utc_offset_s: float = 32400.0  # the period is named in local time (Config.local_utc_offset_s)

    @property
    def title(self) -> str:
        if self.scenario is not None:
            return self.scenario.title
        tz = dt.timezone(dt.timedelta(seconds=self.utc_offset_s))
        start, end = (dt.datetime.fromtimestamp(t, tz) for t in (self.t0, self.t1))
        return f"{start:%Y-%m-%d %H:%M} – {end:%H:%M}"


@dataclass
class Outcome:
    scores: list[TraineeScore] = field(default_factory=list)
    report: Path | None = None


def gather(session: Session, names: tuple[str, ...]) -> None:
    """Move the seeded children into the scenario's zones (the demo seed
    spreads them over all of its zones), round robin."""
    zones = {z.name: z.id for z in session.scalars(select(tables.Zone))}
    keep = [zones[n] for n in names if n in zones]
    if not keep or set(keep) == set(zones.values()):
        return
    for i, child in enumerate(session.scalars(select(tables.Child).order_by(tables.Child.id))):
        if child.zone_id not in keep:
            child.zone_id = keep[i % len(keep)]
    session.commit()


class TrainingSession:
    def __init__(self, live: Config, plan: Plan) -> None:
        self.live = live
        self.plan = plan
        plan.utc_offset_s = live.local_utc_offset_s
        self.stop_event = threading.Event()
        self.idle = threading.Event()  # set while ``run`` is not running
        self.idle.set()
        self.ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self.sup: Supervisor | None = None
        self.store: Engine | None = None

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        sc = self.plan.scenario
        if sc is not None and isinstance(sc.base, Recording):
            self.plan.t0 = sc.base.start.timestamp()
            self.plan.t1 = self.plan.t0 + sc.duration_s
        start = self.plan.t0 if sc is None or isinstance(sc.base, Recording) else time.time()
        self.train = install.fresh(self.live, start)
        self.store, self.sessions = open_store(self.train.db_url)  # the scratch store
        self.source = self._prepare(start)
        self.sup = Supervisor(self.train, SERVICES)
        self.sup.start()
        self.ctx = zmq.Context()
        security = Security.of(self.train, "replayer")
        self.guard = security.guard(self.ctx, {"replay": COMMANDS_FROM})
        self.pub = Publisher(self.ctx, self.train.bus_pub, origin="replayer",
                             source="replay", security=security)
        self.beats = Subscriber(self.ctx, self.train.bus_sub, ("sys.heartbeat",),
                                security=security, sources=("replay",))
        self.rpc = socket(self.ctx, zmq.ROUTER)
        security.server(self.rpc, "replay")
        self.rpc.bind(self.train.replay_rpc)
        self.users = SessionBook(self.sessions, training=True)
        self.commands = CommandTable(self.users, {ReplayControl: Entry(self._control)})
        self.player = Player(self.source, self.pub.send, self._restart_engine,
                             title=self.plan.title)
        self.engine_pid = self._wait_for_engine(0)
        log.info("training session ready: %s (%s), bus %s", self.plan.title,
                 "scenario" if self.plan.scenario else "recorded period", self.train.bus_sub)

    def _prepare(self, start: float) -> Source:
        """The scratch store and the source that plays into it."""
        sc = self.plan.scenario
        if sc is None or isinstance(sc.base, Recording):
            children = install.copy_reference(self.live, self.train)
            self._log_replay(children)
            tape = TapeSource(self.live.data_dir, self.plan.t0, self.plan.t1)
            return tape if sc is None else self._scripted_tape(sc, tape)
        assert isinstance(sc.base, Population)
        with self.sessions() as s:
            seed_demo(s, sc.base.children)
            seed_readers(s)
            seed_cameras(s, lambda camera_id: f"rtsp://127.0.0.1/training/{camera_id}")
            s.commit()
            gather(s, sc.base.zones)
            roster = [r for r in repo.roster(s) if r.zone_id is not None]
            zones = repo.zones(s)
        install.copy_accounts(self.live, self.train)
        zone_idx = {z.id: i for i, z in enumerate(zones)}
        kinds = [r.kind for r in roster]
        incidents = [self._scripted(i, kinds) for i in sc.incidents]
        self.plan.t0, self.plan.t1 = start, start + sc.duration_s
        return PopulationSource(
            device_ids=[r.device_id for r in roster], kinds=kinds,
            zones=[SimZone(z.lat, z.lon, z.radius_m) for z in zones],
            zone_of=np.array([zone_idx[r.zone_id] for r in roster], dtype=np.int64),
            seed=sc.base.seed, t0=start, t1=start + sc.duration_s, incidents=incidents)

    def _scripted_tape(self, sc: Scenario, tape: TapeSource) -> ScriptedTape:
        """A recording with the scenario's incidents on its devices."""
        devices = sorted({str(i.child) for i in sc.incidents if i.child is not None}
                         | {str(sc.incident(i.of).child) for i in sc.incidents if i.of})
        with self.sessions() as s:
            zones = {z.id: z for z in repo.zones(s)}
            roster = {r.device_id: r for r in repo.roster(s)}
        homes: dict[str, Home] = {}
        for d in devices:
            entry = roster.get(d)
            if entry is None:
                raise RuntimeError(f"scenario {sc.id}: device {d} is not in the roster")
            zone = zones.get(entry.zone_id) if entry.zone_id is not None else None
            if zone is not None:
                x, y = to_map(zone.lat, zone.lon)
                homes[d] = Home(x, y, zone.radius_m)
        index = {d: i for i, d in enumerate(devices)}
        incidents = [ScriptedIncident(
            i.id, i.kind, i.at_s,
            -1 if i.kind == "camera_offline" else index[str(
                i.child if i.kind != "second_sos" else sc.incident(i.of or "").child)],
            i.camera or 0) for i in sc.incidents]
        return ScriptedTape(tape, incidents, devices, homes)

    def _scripted(self, inc: Incident, kinds: list[str]) -> ScriptedIncident:
        """A scenario incident on its population row (``child`` is the row:
        the seeded children in id order; an SOS needs a device with a button)."""
        sc = self.plan.scenario
        assert sc is not None
        child = inc.child if inc.kind != "second_sos" else sc.incident(inc.of or "").child
        if inc.kind == "camera_offline":
            return ScriptedIncident(inc.id, inc.kind, inc.at_s, camera=inc.camera or 0)
        if not isinstance(child, int) or not 0 <= child < len(kinds):
            raise RuntimeError(f"scenario {sc.id}: incident {inc.id} names child {child!r}; "
                               f"the population has {len(kinds)}")
        if kinds[child] == "tag":
            raise RuntimeError(f"scenario {sc.id}: incident {inc.id}: child {child} carries a "
                               "tag (no button, no battery to run out): pick a watch or phone")
        return ScriptedIncident(inc.id, inc.kind, inc.at_s, child)

    def _log_replay(self, children: int) -> None:
        """A recorded period holds every child's positions: replaying it is a
        use of them, in the live usage log."""
        engine, sessions = open_store(self.live.db_url)
        try:
            with sessions() as s:
                usage_log.append(s, at=time.time(), actor=self.plan.by or "trainer",
                                 subject="", action="replay", purpose="operator training",
                                 detail=f"{self.plan.title} ({children} children in the roster)")
                s.commit()
        finally:
            engine.dispose()

    def _wait_for_engine(self, old_pid: int) -> int:
        """Until an engine other than ``old_pid`` beats on the training bus (it
        has subscribed by then: nothing played is lost to a slow joiner)."""
        deadline = time.monotonic() + ENGINE_UP_S
        while time.monotonic() < deadline and not self.stop_event.is_set():
            got = self.beats.recv(timeout_ms=200)
            if got is None or not isinstance(got[1], Heartbeat):
                continue
            name, _, pid = got[1].origin.partition(":")
            if role_of(got[1].origin) == "engine" and name and pid.isdigit() \
                    and int(pid) != old_pid:
                return int(pid)
        raise RuntimeError("the training engine did not start; see "
                           f"{self.train.log_dir / 'engine.log'}")

    def _restart_engine(self, start: float) -> None:
        """A seek back: the engine starts again on an earlier clock, its
        alerts and stored fixes gone (trainees stay signed in)."""
        assert self.sup is not None
        self.train = install.training_config(self.live, start)
        self.sup.restart("engine", self.train,
                         between=lambda: install.clear_session_state(self.train))
        self.engine_pid = self._wait_for_engine(self.engine_pid)

    # ------------------------------------------------------------------- run
    def run(self, until_end: bool = False, speed: float | None = None,
            play: bool = True) -> None:
        """Play (at ``speed``) and answer the trainer until stopped; with
        ``until_end``, stop by itself once the period has been played."""
        self.idle.clear()
        if speed is not None:
            self.player.set_speed(speed)  # paused too: play resumes at it
        try:
            self._run(until_end, speed, play)
        finally:
            self.idle.set()

    def _run(self, until_end: bool, speed: float | None, play: bool) -> None:
        if play:
            self.player.play(speed)
        next_beat = 0.0
        while not self.stop_event.is_set():
            if self.rpc.poll(20):
                self._serve()
            self.player.turn()
            self._drain_beats()
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + 1.0
                self.pub.heartbeat({"replay_t": self.player.t,
                                    "replay_speed": self.player.running_speed()})
            if until_end and self.player.t >= self.source.t1 and self.player.target is None:
                break

    def _drain_beats(self) -> None:
        while self.beats.sock.poll(0):
            self.beats.sock.recv_multipart()

    def _serve(self) -> None:
        while True:
            try:
                frames = self.rpc.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            reply = self.control(frames[-1])
            self.rpc.send_multipart([frames[0], b"", encode(reply)])

    def control(self, body: bytes) -> Reply:
        """One trainer's command, through the same checks as the engine's
        (a trainer's session on the training engine, the access log), then
        where the replay stands."""
        try:
            cmd = decode(body)
        except BadMessage as exc:
            return CommandReply(ok=False, error=f"bad request: {exc}", code="bad")
        self.users.refresh(force=True)  # the trainer signed in at the training engine
        return self.commands.handle(cmd)

    def _control(self, cmd: ReplayControl, actor: Actor | None) -> Reply:
        try:
            self._follow(cmd)
        except Refused as exc:
            return self.status(error=str(exc))
        if cmd.action != "status":
            log.info("%s: %s%s", actor.user if actor else "?", cmd.action,
                     f" {cmd.speed:g}x" if cmd.action in ("speed", "play") else
                     f" {cmd.t:.0f}" if cmd.action == "seek" else "")
        return self.status()

    def _follow(self, cmd: ReplayControl) -> None:
        p = self.player
        match cmd.action:
            case "play":
                p.play(cmd.speed)
            case "pause":
                p.pause()
            case "speed":
                p.set_speed(cmd.speed)
            case "seek":
                p.seek(cmd.t)
            case "step":
                p.step()
            case "stop":
                self.stop_event.set()

    def status(self, error: str = "") -> ReplayStatus:
        p = self.player
        sc = self.plan.scenario
        return ReplayStatus(ok=not error, error=error, title=self.plan.title,
                            scenario=sc.id if sc else "", t0=self.source.t0, t1=self.source.t1,
                            t=p.t, speed=p.speed, playing=p.playing or p._resume,
                            seeking=p.target is not None, marks=self.source.marks(),
                            skipped=getattr(self.source, "skipped", 0))

    # ------------------------------------------------------------------ end
    def finish(self) -> Outcome:
        """Score the scenario and write its report; then stop everything."""
        out = Outcome()
        try:
            if self.plan.scenario is not None:
                out = self.score()
        finally:
            self.close()
        return out

    def score(self) -> Outcome:
        from console.training_report import write_report

        sc = self.plan.scenario
        assert sc is not None and not isinstance(self.source, TapeSource)
        alerts, histories = self.alerts()
        scores = score_all(sc, self.source.injected, alerts, histories)
        if not scores:
            return Outcome()
        tz = dt.timezone(dt.timedelta(seconds=self.live.local_utc_offset_s))
        label = f"{dt.datetime.fromtimestamp(self.source.t0, tz):%Y%m%d-%H%M%S}"
        folder = install.reports_dir(self.live) / f"{sc.id}-{label}"
        files = write_report(scores, sc, folder, f"{sc.title} · {label}")
        log.info("report for %s: %s", ", ".join(s.trainee for s in scores), files.html)
        return Outcome(scores, files.html)

    def alerts(self) -> tuple[list[AlertView], dict[int, list[HistoryEntry]]]:
        """Every alert of the session and its history, from the scratch store."""
        with self.sessions() as s:
            rows = db_alerts.since(s, 0.0, 100_000)
            views = [db_alerts.view_of(row, -1, token) for row, token in rows]
            return views, {v.id: db_alerts.history(s, v.id) for v in views}

    def close(self) -> None:
        """Stop playing (waiting for ``run`` in another thread), then stop
        the training installation's processes."""
        self.stop_event.set()
        self.idle.wait(10)
        if self.ctx is not None:
            self.pub.close()
            self.beats.close()
            self.rpc.close(0)
            if self.guard is not None:
                self.guard.stop()
            self.ctx.term()
            self.ctx = None
        if self.sup is not None:
            self.sup.stop()
            self.sup = None
        if self.store is not None:
            self.store.dispose()
            self.store = None
