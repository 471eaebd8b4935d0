"""What a training session plays: a recorded period, or a scenario's
simulated population with its scripted incidents.

A source hands out, in time order, the messages the live system's inputs
would have carried (device fixes, camera states) up to a replayed time;
the training engine turns them into positions and alerts as the live one
did. Both can start again from the beginning (a seek back) and give the
same messages again: a recording is what it is, a population is seeded.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import msgspec
import numpy as np

from db.tape import TapeReader, tape_dir
from models.messages import (
    FLAG_LOW_BATTERY,
    FLAG_SOS,
    AlertOpened,
    BadMessage,
    CamStatus,
    FixBatch,
    Message,
    ReplayMark,
    decode,
    pack,
)
from models.scoring import Injected
from models.simulation import Population, SimReport, SimZone

log = logging.getLogger(__name__)

PLAYED = (b"fix.batch", b"cam.status")  # the inputs a training engine replays
LOW_BATTERY = 15  # percent: what the gateway flags as low


@dataclass
class Played:
    t: float  # replayed time it happened
    msg: Message


class TapeSource:
    """A period of the live tape (``db.tape``): fix batches and camera states
    as the bus carried them, at the times they were received."""

    def __init__(self, data_dir: object, t0: float, t1: float) -> None:
        self.reader = TapeReader(tape_dir(data_dir))  # type: ignore[arg-type]
        self.t0, self.t1 = t0, t1
        self.skipped = 0  # recorded bodies that did not decode
        self.restart()

    def restart(self) -> None:
        self._records = self.reader.read(self.t0, self.t1, PLAYED)
        self._next: Played | None = None
        self._advance()

    def _advance(self) -> None:
        self._next = None
        for rec in self._records:
            try:
                msg = decode(rec.body)
            except BadMessage as exc:
                self.skipped += 1
                log.warning("recorded %s at %.3f skipped: %s", rec.topic, rec.recv_ts, exc)
                continue
            if isinstance(msg, FixBatch):
                # the live journal's numbering means nothing on the training bus
                msg = msgspec.structs.replace(msg, journal="", journal_seq=0)
            elif not isinstance(msg, CamStatus):
                continue
            self._next = Played(rec.recv_ts, msg)
            return

    def take(self, until: float) -> list[Played]:
        out: list[Played] = []
        while self._next is not None and self._next.t <= until:
            out.append(self._next)
            self._advance()
        return out

    def done(self) -> bool:
        return self._next is None

    def marks(self) -> list[ReplayMark]:
        """The alerts the live engine opened in the period."""
        out: list[ReplayMark] = []
        for rec in self.reader.read(self.t0, self.t1, (b"alert.opened",)):
            try:
                msg = decode(rec.body)
            except BadMessage:
                continue
            if isinstance(msg, AlertOpened):
                a = msg.alert
                out.append(ReplayMark(t=rec.recv_ts, kind=a.kind,
                                      label=f"{a.kind} {a.child_token}"))
        return out


@dataclass
class ScriptedIncident:
    """One scenario incident as the population plays it."""

    id: str
    kind: str
    at: float  # seconds from the start
    index: int = -1  # population row (-1: none)
    camera: int = 0


@dataclass
class PopulationSource:
    """A seeded population of the scratch store's children moving as the
    demo simulator moves them (``models.simulation``), with the scenario's
    incidents at their offsets. A scenario's ``child`` N is the N-th child
    whose device reports by itself (a watch or a phone: a tag has no SOS
    button and no battery to run out)."""

    device_ids: list[str]
    kinds: list[str]
    zones: list[SimZone]
    zone_of: np.ndarray
    seed: int
    t0: float
    t1: float
    incidents: list[ScriptedIncident]
    step_s: float = 1.0
    injected: list[Injected] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.pop = Population(self.device_ids, self.kinds, self.zones, self.zone_of,
                              seed=self.seed, first_incident_s=math.inf,
                              incident_every_s=math.inf)
        self.clock = self.t0
        self.pending = sorted(self.incidents, key=lambda i: i.at)
        self.injected = []

    def self_locating(self) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.kinds, dtype=object) != "tag")

    def take(self, until: float) -> list[Played]:
        out: list[Played] = []
        until = min(until, self.t1)
        while self.clock + self.step_s <= until + 1e-9:
            self.clock += self.step_s
            self.pop.advance(self.step_s)
            out += self._incidents()
            reports = self.pop.due_reports(self.clock)
            if reports:
                out.append(Played(self.clock, self._batch(reports)))
        return out

    def done(self) -> bool:
        return self.clock + self.step_s > self.t1

    def _incidents(self) -> list[Played]:
        out: list[Played] = []
        while self.pending and self.t0 + self.pending[0].at <= self.clock:
            inc = self.pending.pop(0)
            device = self.device_ids[inc.index] if inc.index >= 0 else ""
            self.injected.append(Injected(incident=inc.id, kind=inc.kind, at=self.clock,
                                          device_id=device, camera=inc.camera))
            if inc.kind in ("sos", "second_sos"):
                self.pop.press_sos(inc.index)
            elif inc.kind == "leave_zone":
                self.pop.leave(inc.index)
            elif inc.kind == "battery_dies":
                self.pop.battery_dies(inc.index)
            elif inc.kind == "camera_offline":
                out.append(Played(self.clock, CamStatus(
                    camera_id=inc.camera, state="offline", detail="scenario: camera offline")))
        return out

    def _batch(self, reports: list[SimReport]) -> FixBatch:
        flags = [(FLAG_SOS if r.sos else 0) | (FLAG_LOW_BATTERY if r.battery < LOW_BATTERY
                                                 else 0) for r in reports]
        return FixBatch(
            device_ids=[self.device_ids[r.index] for r in reports],
            t=pack("t", [r.t for r in reports]), lat=pack("lat", [r.lat for r in reports]),
            lon=pack("lon", [r.lon for r in reports]),
            speed=pack("speed", [r.speed_ms for r in reports]),
            bearing=pack("bearing", [r.bearing for r in reports]),
            accuracy=pack("accuracy", [r.accuracy for r in reports]),
            battery=pack("battery", [r.battery for r in reports]),
            flags=pack("flags", flags), protocol="replay")

    def marks(self) -> list[ReplayMark]:
        return [ReplayMark(t=self.t0 + i.at, kind=i.kind, label=i.id)
                for i in sorted(self.incidents, key=lambda i: i.at)]

