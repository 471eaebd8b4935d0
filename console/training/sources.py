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
from pathlib import Path

import msgspec
import numpy as np

from db.tape import TapeReader, tape_dir
from models.geo import to_map, to_wgs84
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
    fix_columns,
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

    def __init__(self, data_dir: Path, t0: float, t1: float) -> None:
        self.reader = TapeReader(tape_dir(data_dir))
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



@dataclass
class Home:
    """Where a device's child belongs: its zone's centre (map metres) and radius."""

    x: float
    y: float
    radius_m: float


class ScriptedTape:
    """A recorded period with a scenario's incidents played on top of it
    (a ``[recording]`` base): an SOS is a fix of that device where it was
    last seen, with the alarm; a dying battery is one last fix at 3 %
    after which its recorded fixes are left out; a child leaving its zone
    walks straight away from the zone's centre from where it was, its
    recorded fixes left out while it is out; a camera going offline is
    its status. Incidents name the device (``ScriptedIncident.device``)."""

    WALK_MS = 3.0  # a child running off
    EVERY_S = 2.0  # its device reports this often meanwhile
    OUT_FOR_S = 90.0  # once out, then the recording has it again

    def __init__(self, tape: TapeSource, incidents: list[ScriptedIncident],
                 devices: list[str], homes: dict[str, Home]) -> None:
        self.tape = tape
        self.t0, self.t1 = tape.t0, tape.t1
        self.incidents = incidents
        self.devices = devices  # incident.index -> device id
        self.homes = homes
        self.restart()

    @property
    def skipped(self) -> int:
        return self.tape.skipped

    def restart(self) -> None:
        self.tape.restart()
        self.pending = sorted(self.incidents, key=lambda i: i.at)
        self.injected: list[Injected] = []
        self.last: dict[str, tuple[float, float, int]] = {}  # device -> lat, lon, battery
        self.silent: dict[str, float] = {}  # device -> its recorded fixes are left out until
        self.walks: list[Walk] = []
        self.clock = self.t0

    def done(self) -> bool:
        return self.tape.done() and not self.pending and not self.walks

    def marks(self) -> list[ReplayMark]:
        return [ReplayMark(t=self.t0 + i.at, kind=i.kind, label=i.id)
                for i in sorted(self.incidents, key=lambda i: i.at)]

    def take(self, until: float) -> list[Played]:
        out: list[Played] = []
        for item in self.tape.take(until):
            while self.pending and self.t0 + self.pending[0].at <= item.t:
                out += self._incident(self.pending.pop(0))
            out += self._walk(item.t)
            msg = self._recorded(item.msg, item.t)
            if msg is not None:
                out.append(Played(item.t, msg))
        while self.pending and self.t0 + self.pending[0].at <= until:
            out += self._incident(self.pending.pop(0))
        out += self._walk(until)
        self.clock = max(self.clock, until)
        return out

    def _recorded(self, msg: Message, t: float) -> Message | None:
        """A recorded message as played: fixes of scripted devices left out,
        and every device's last place and battery remembered."""
        if not isinstance(msg, FixBatch):
            return msg
        try:
            cols = fix_columns(msg)
        except BadMessage:
            return msg  # the training engine rejects it, and counts it
        keep = np.array([self.silent.get(d, -math.inf) < t for d in msg.device_ids], bool)
        for d, lat, lon, bat, k in zip(msg.device_ids, cols["lat"], cols["lon"],
                                        cols["battery"], keep, strict=True):
            if k and math.isfinite(lat):
                self.last[d] = (float(lat), float(lon), int(bat))
        if keep.all():
            return msg
        if not keep.any():
            return None
        ids = [d for d, k in zip(msg.device_ids, keep, strict=True) if k]
        readers = [r for r, k in zip(msg.readers, keep, strict=True) if k] if msg.readers else []
        return msgspec.structs.replace(
            msg, device_ids=ids, readers=readers,
            **{name: pack(name, col[keep]) for name, col in cols.items()})

    def _incident(self, inc: ScriptedIncident) -> list[Played]:
        at = self.t0 + inc.at
        device = self.devices[inc.index] if inc.index >= 0 else ""
        self.injected.append(Injected(incident=inc.id, kind=inc.kind, at=at, device_id=device,
                                      camera=inc.camera))
        if inc.kind == "camera_offline":
            return [Played(at, CamStatus(camera_id=inc.camera, state="offline",
                                         detail="scenario: camera offline"))]
        if device not in self.last:
            log.warning("incident %s: device %s has not reported yet in the recording; "
                        "nothing to play", inc.id, device)
            return []
        lat, lon, battery = self.last[device]
        if inc.kind in ("sos", "second_sos"):
            return [Played(at, one_fix(device, at, lat, lon, battery, FLAG_SOS))]
        if inc.kind == "battery_dies":
            self.silent[device] = math.inf
            return [Played(at, one_fix(device, at, lat, lon, 3, FLAG_LOW_BATTERY))]
        home = self.homes.get(device)
        if inc.kind == "leave_zone" and home is not None:
            x, y = to_map(lat, lon)
            dx, dy = x - home.x, y - home.y
            norm = math.hypot(dx, dy) or 1.0
            run_s = max(0.0, (home.radius_m + 120.0 - norm) / self.WALK_MS)
            walk = Walk(device, at, x, y, dx / norm, dy / norm, run_s, battery)
            self.silent[device] = walk.end
            self.walks.append(walk)
        return []

    def _walk(self, until: float) -> list[Played]:
        """The fixes of the children walking out, every EVERY_S up to ``until``."""
        out: list[Played] = []
        for w in self.walks:
            while w.next_t <= min(until, w.end):
                d = min(w.next_t - w.start, w.run_s) * self.WALK_MS
                lat, lon = to_wgs84(w.x + w.ux * d, w.y + w.uy * d)
                out.append(Played(w.next_t, one_fix(w.device, w.next_t, lat, lon, w.battery, 0)))
                w.next_t += self.EVERY_S
        self.walks = [w for w in self.walks if w.next_t <= w.end]
        return sorted(out, key=lambda p: p.t)


@dataclass
class Walk:
    """A child scripted out of its zone: from (x, y) along (ux, uy) for
    ``run_s``, then standing there until ``end``."""

    device: str
    start: float
    x: float
    y: float
    ux: float
    uy: float
    run_s: float
    battery: int
    next_t: float = 0.0

    def __post_init__(self) -> None:
        self.next_t = self.start + ScriptedTape.EVERY_S

    @property
    def end(self) -> float:
        return self.start + self.run_s + ScriptedTape.OUT_FOR_S


def one_fix(device: str, t: float, lat: float, lon: float, battery: int, flags: int
            ) -> FixBatch:
    """A single scripted fix, as a watch would report it (10 m accuracy)."""
    return FixBatch(device_ids=[device], t=pack("t", [t]), lat=pack("lat", [lat]),
                    lon=pack("lon", [lon]), speed=pack("speed", [0.0]),
                    bearing=pack("bearing", [0.0]), accuracy=pack("accuracy", [10.0]),
                    battery=pack("battery", [battery]), flags=pack("flags", [flags]),
                    protocol="replay")
