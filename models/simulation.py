"""Simulated children for the demo and for training: Qt-free and deterministic.

Each child walks a commute path inside its safety zone, between a home-side
point and the school gate (or between park spots), at walking pace, and
reports on its own schedule. A script injects incidents: an SOS press, and
a child who walks out of its zone and later comes back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True)
class SimZone:
    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True)
class SimReport:
    index: int
    t: float
    lat: float
    lon: float
    speed_ms: float
    bearing: float
    accuracy: float
    battery: int
    sos: bool


@dataclass
class Incident:
    kind: str  # "sos" | "exit"
    index: int
    at: float


@dataclass
class Population:
    """Positions are metres east/north of each child's zone centre."""

    device_ids: list[str]
    zones: list[SimZone]
    zone_of: np.ndarray
    interval_s: float = 10.0
    seed: int = 7
    first_incident_s: float = 15.0
    incident_every_s: float = 180.0
    incidents: list[Incident] = field(default_factory=list)
    can_alarm: np.ndarray | None = None  # False for children whose device has no SOS (tags)

    def __post_init__(self) -> None:
        n = len(self.device_ids)
        self.rng = np.random.default_rng(self.seed)
        r = np.array([z.radius_m for z in self.zones])[self.zone_of]
        self.radius = r
        self.clat = np.array([z.lat for z in self.zones])[self.zone_of]
        self.clon = np.array([z.lon for z in self.zones])[self.zone_of]
        ang = self.rng.uniform(0, 2 * math.pi, n)
        dist = r * np.sqrt(self.rng.uniform(0.05, 0.7, n))
        self.home = np.stack([dist * np.cos(ang), dist * np.sin(ang)], axis=1)
        self.gate = self.rng.normal(0.0, 0.08, (n, 2)) * r[:, None]
        along = self.rng.uniform(0, 1, n)[:, None]
        self.pos = self.home + (self.gate - self.home) * along
        self.target = np.where(self.rng.uniform(0, 1, n)[:, None] < 0.5, self.home, self.gate)
        self.speed = self.rng.uniform(0.7, 1.5, n)
        self.heading = np.zeros(n)
        self.battery = self.rng.integers(30, 101, n)
        self.next_report = self.rng.uniform(0, self.interval_s, n)
        self.report_every = np.full(n, self.interval_s)
        self.leaving = np.zeros(n, dtype=bool)
        self.sos_pending = np.zeros(n, dtype=bool)
        self.clock = 0.0
        self.next_incident = self.first_incident_s
        self._return_at: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.device_ids)

    def advance(self, dt: float) -> None:
        """Move every child ``dt`` seconds along its path."""
        self.clock += dt
        delta = self.target - self.pos
        dist = np.hypot(delta[:, 0], delta[:, 1])
        step = np.minimum(self.speed * dt, dist)
        moving = dist > 1e-6
        unit = np.zeros_like(delta)
        unit[moving] = delta[moving] / dist[moving, None]
        self.pos += unit * step[:, None]
        self.heading[moving] = np.degrees(np.arctan2(unit[moving, 0], unit[moving, 1])) % 360
        arrived = (dist - step < 0.5) & ~self.leaving
        at_home = np.all(np.isclose(self.target, self.home), axis=1)
        self.target[arrived & at_home] = self.gate[arrived & at_home]
        self.target[arrived & ~at_home] = self.home[arrived & ~at_home]
        self._script()

    def _script(self) -> None:
        for index, at in list(self._return_at.items()):
            if self.clock >= at:
                self.leaving[index] = False
                self.target[index] = self.home[index]
                self.speed[index] = 1.2
                self.report_every[index] = self.interval_s
                del self._return_at[index]
        if self.clock < self.next_incident or len(self) == 0:
            return
        self.next_incident += self.incident_every_s
        able = np.ones(len(self), dtype=bool) if self.can_alarm is None else self.can_alarm
        calm = np.flatnonzero(~self.leaving & ~self.sos_pending & able)
        if len(calm) < 2:
            return
        sos = int(self.rng.choice(calm))
        self.sos_pending[sos] = True
        self.next_report[sos] = self.clock
        self.incidents.append(Incident("sos", sos, self.clock))
        # The child nearest its zone's edge walks out briskly, then comes back.
        frac = np.hypot(self.pos[calm, 0], self.pos[calm, 1]) / self.radius[calm]
        frac[calm == sos] = -1
        leaver = int(calm[np.argmax(frac)])
        out = self.pos[leaver] / max(float(np.hypot(*self.pos[leaver])), 1.0)
        self.target[leaver] = out * self.radius[leaver] * 1.8
        self.leaving[leaver] = True
        self.speed[leaver] = 3.0
        self.report_every[leaver] = 2.0
        self.next_report[leaver] = self.clock
        self._return_at[leaver] = self.clock + 90.0
        self.incidents.append(Incident("exit", leaver, self.clock))

    def due_reports(self, now: float) -> list[SimReport]:
        """Reports every child whose schedule has come up, stamped ``now``
        (epoch seconds)."""
        due = np.flatnonzero(self.next_report <= self.clock)
        if len(due) == 0:
            return []
        self.next_report[due] += self.report_every[due]
        lat = self.clat[due] + self.pos[due, 1] / M_PER_DEG_LAT
        m_per_deg_lon = M_PER_DEG_LAT * np.cos(np.radians(self.clat[due]))
        lon = self.clon[due] + self.pos[due, 0] / m_per_deg_lon
        moving = self.speed[due]
        out = [
            SimReport(int(i), now, float(a), float(o), float(s), float(self.heading[i]), 8.0,
                      int(self.battery[i]), bool(self.sos_pending[i]))
            for i, a, o, s in zip(due, lat, lon, moving, strict=True)
        ]
        self.sos_pending[due] = False
        return out
