"""Simulated children for the demo and for training: Qt-free and deterministic.

Each child walks a commute path inside its safety zone, between a home-side
point and a gate (where the zone's tag readers stand, when it has any), at
walking pace, and its device reports on its own schedule. A script injects
incidents on a fixed schedule: an SOS press, and a child who walks out of
its zone and later comes back.

Positions are metres east/north of the zone's centre on the map grid
(EPSG:5179), the grid the engine measures zones on, so "2 m inside the
edge" here is 2 m inside for the engine's tracker too.

The device mix (how phones upload, which children the carrier also
locates, when watches send heartbeats) is decided here too, from the seed,
so a run is reproducible; the simulator service only encodes and sends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.geo import to_map, to_wgs84
from models.geofence import FenceRule

# The exit script. A leaver waits at the fence, EDGE_GAP_M inside the edge,
# then runs out. The engine's geofence takes a fix radius + hysteresis out
# as evidence of leaving (the hysteresis being the fix's accuracy within
# 15..100 m), and counts the exit once that evidence lasted the zone kind's
# dwell. Phones report an accuracy (5-12 m here, so the 15 m minimum),
# watches' frames carry none: the leaver is a phone child where there is
# one, and it starts running RUN_LEAD_S before the incident time, so that
# its report (every LEAVER_REPORT_S) past radius + 15 m lands at the
# incident time, with the SOS. It runs LEAVER_OUT_M out, past the widest
# hysteresis, and stays out OUT_FOR_S, longer than any dwell.
EDGE_GAP_M = 26.0  # past the 25 m a watch fix (no accuracy) needs: seen inside first
LEAVER_SPEED_MS = 3.0  # a child running off
LEAVER_REPORT_S = 2.0  # devices report more often while moving fast
MIN_HYSTERESIS_M = FenceRule().hysteresis_min_m
RUN_LEAD_S = (EDGE_GAP_M + MIN_HYSTERESIS_M + 1.0) / LEAVER_SPEED_MS
LEAVER_OUT_M = 120.0  # how far past the edge it runs, then lingers there
OUT_FOR_S = 90.0  # then the child turns back
RETURN_SPEED_MS = 1.2
STAGE_LEAD_S = 120.0  # the next leaver starts drifting to the edge this early
STAGE_MAX_SPEED_MS = 2.0
# Watches stamp reports to the second: a report forced sooner after the last
# one could repeat it exactly (a child standing still), which is a duplicate.
MIN_REPORT_GAP_S = 1.5
STRIDE_M = 0.55  # a child's step, for the watches' pedometer
PHONE_FORMS = ("get", "form", "json")
CARRIER_METHODS = ("gps", "wifi", "cell")
# Accuracy radius (m) carriers quote per method in a dense city.
CARRIER_ACCURACY_M = {"gps": (5.0, 20.0), "wifi": (15.0, 60.0), "cell": (150.0, 800.0)}


@dataclass(frozen=True)
class SimZone:
    lat: float
    lon: float
    radius_m: float


def _check_shares(shares: Mapping[str, float], known: Sequence[str], what: str) -> None:
    unknown = sorted(set(shares) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    if any(not v >= 0 for v in shares.values()) or not sum(shares.values()) > 0:
        raise ValueError(f"{what} shares must be >= 0 and not all 0: {dict(shares)}")


@dataclass(frozen=True)
class DeviceMix:
    """How the simulated devices reach the gateway; the config sets these.

    ``phone_forms``: shares of phones uploading by OsmAnd GET, form POST and
    the JSON POST of Traccar Client 9+ (each phone keeps one app). Carrier
    LBS: ``carrier_share`` of the children with a SIM device (watches and
    phones) are also located by the carrier every ``carrier_every_s``, by
    ``carrier_methods``. Watches send an ``LK`` heartbeat every
    ``heartbeat_every_s`` between their position reports.
    """

    phone_forms: Mapping[str, float] = field(
        default_factory=lambda: {"get": 0.35, "form": 0.15, "json": 0.5})
    carrier_share: float = 0.1
    carrier_every_s: float = 60.0
    carrier_methods: Mapping[str, float] = field(
        default_factory=lambda: {"gps": 0.5, "wifi": 0.3, "cell": 0.2})
    heartbeat_every_s: float = 300.0

    def __post_init__(self) -> None:
        _check_shares(self.phone_forms, PHONE_FORMS, "phone forms")
        _check_shares(self.carrier_methods, CARRIER_METHODS, "carrier methods")
        if not 0.0 <= self.carrier_share <= 1.0:
            raise ValueError(f"carrier share must be within 0..1: {self.carrier_share}")
        if not (self.carrier_every_s > 0 and self.heartbeat_every_s > 0):
            raise ValueError("carrier and heartbeat periods must be > 0")


@dataclass(frozen=True, slots=True)
class SimReport:
    """One position report of a child's own device."""

    index: int
    t: float
    lat: float
    lon: float
    speed_ms: float
    bearing: float
    accuracy: float
    battery: int
    sos: bool
    steps: int = 0

    @property
    def moving(self) -> bool:
        return self.speed_ms > 0.2


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A watch's ``LK``: no position, only pedometer and battery."""

    index: int
    t: float
    steps: int
    battery: int


@dataclass(frozen=True, slots=True)
class CarrierFix:
    """Where the carrier's network located a child's SIM device, measured at ``t``."""

    index: int
    t: float
    lat: float
    lon: float
    accuracy_m: float
    method: str


@dataclass
class Incident:
    kind: str  # "sos" | "exit"
    index: int
    at: float


def exact_shares(n: int, shares: Mapping[str, float], rng: np.random.Generator) -> list[str]:
    """``n`` labels in exactly these proportions (largest remainder), in a
    seeded random order: a small population still gets every label its
    share allows, and the same seed gives the same assignment."""
    if n == 0:
        return []
    names = list(shares)
    weights = np.array([shares[k] for k in names], dtype=float)
    quota = weights / weights.sum() * n
    counts = np.floor(quota).astype(int)
    short = n - int(counts.sum())
    counts[np.argsort(-(quota - counts), kind="stable")[:short]] += 1
    labels = [name for name, c in zip(names, counts, strict=True) for _ in range(c)]
    return [labels[i] for i in rng.permutation(n)]


class Population:
    """Every simulated child, as columns (one row per child)."""

    def __init__(self, device_ids: list[str], kinds: Sequence[str], zones: list[SimZone],
                 zone_of: np.ndarray, *, interval_s: float = 10.0, seed: int = 7,
                 first_incident_s: float = 15.0, incident_every_s: float = 180.0,
                 mix: DeviceMix | None = None,
                 gates: Sequence[Sequence[tuple[float, float]]] | None = None,
                 scheduled: Sequence[bool] | None = None) -> None:
        """``kinds`` is each child's device (watch, phone, tag: a tag has no
        GPS and no SOS button, and is seen only by readers). ``gates`` lists,
        per zone, the (lat, lon) points commutes lead to (the readers').
        ``scheduled`` marks children with a timetable: their exits at
        dismissal are routine, so the scripted leavers are the others, whose
        exit is an incident at any hour the demo runs."""
        n = len(device_ids)
        if len(kinds) != n or len(zone_of) != n:
            raise ValueError("device_ids, kinds and zone_of must have the same length")
        self.device_ids = device_ids
        self.kinds = np.array(kinds, dtype=object)
        self.zones = zones
        self.zone_of = np.asarray(zone_of, dtype=np.int64)
        self.interval_s = interval_s
        self.first_incident_s = first_incident_s
        self.incident_every_s = incident_every_s
        self.mix = mix or DeviceMix()
        self.rng = np.random.default_rng(seed)
        self.incidents: list[Incident] = []
        self.clock = 0.0
        self.self_locating = self.kinds != "tag"
        self.sends_accuracy = self.kinds == "phone"  # the watch protocol has no field for it
        self.may_leave = ~np.asarray(scheduled, dtype=bool) if scheduled is not None \
            else np.ones(n, dtype=bool)
        if not self.may_leave.any():
            self.may_leave[:] = True  # everyone has a timetable: script them anyway
        self._place(gates)
        self._devices()
        self.next_incident = first_incident_s
        self.staged = -1  # the child waiting at the edge for the next exit
        self._ran_for = -math.inf  # the incident time whose leaver has run
        self._return_at: dict[int, float] = {}
        if self.next_incident <= STAGE_LEAD_S:
            self._stage(at_start=True)  # the first leaver starts at the edge

    def __len__(self) -> int:
        return len(self.device_ids)

    # ------------------------------------------------------------ set-up
    def _place(self, gates: Sequence[Sequence[tuple[float, float]]] | None) -> None:
        n, rng = len(self), self.rng
        zx, zy = to_map(np.array([z.lat for z in self.zones], dtype=float),
                        np.array([z.lon for z in self.zones], dtype=float))
        self.cx, self.cy = zx[self.zone_of], zy[self.zone_of]
        r = np.array([z.radius_m for z in self.zones], dtype=float)[self.zone_of]
        self.radius = r
        ang = rng.uniform(0, 2 * math.pi, n)
        dist = r * np.sqrt(rng.uniform(0.05, 0.7, n))
        self.home = np.stack([dist * np.cos(ang), dist * np.sin(ang)], axis=1)
        self.gate = rng.normal(0.0, 0.08, (n, 2)) * r[:, None]
        for z, points in enumerate(gates or []):
            mine = np.flatnonzero(self.zone_of == z)
            if len(points) and len(mine):
                gx, gy = to_map(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
                pick = rng.integers(0, len(points), len(mine))
                self.gate[mine, 0] = gx[pick] - zx[z] + rng.normal(0.0, 3.0, len(mine))
                self.gate[mine, 1] = gy[pick] - zy[z] + rng.normal(0.0, 3.0, len(mine))
        along = rng.uniform(0, 1, n)[:, None]
        self.pos = self.home + (self.gate - self.home) * along
        self.to_gate = rng.uniform(0, 1, n) < 0.5
        self.target = np.where(self.to_gate[:, None], self.gate, self.home)
        self.speed = rng.uniform(0.7, 1.5, n)
        self.moved = np.zeros(n)  # metres per second over the last step
        self.heading = np.zeros(n)
        self.walked = rng.uniform(0, 3000, n)  # metres so far today
        self.battery = rng.uniform(30, 100, n)
        self.drain = rng.uniform(2, 6, n) / 3600  # % per second
        self.accuracy = rng.uniform(5.0, 12.0, n)
        self.scripted = np.zeros(n, dtype=bool)  # the exit script moves these
        self.leaving = np.zeros(n, dtype=bool)
        self.left_before = np.zeros(n, dtype=bool)
        self.sos_pending = np.zeros(n, dtype=bool)
        self.dying = np.zeros(n, dtype=bool)  # reports once more, then never (battery_dies)

    def _devices(self) -> None:
        n, rng, mix = len(self), self.rng, self.mix
        self.next_report = rng.uniform(0, self.interval_s, n)
        self.report_every = np.full(n, self.interval_s)
        self.last_report = np.full(n, -math.inf)
        self.phone_form = np.full(n, "", dtype=object)
        phones = np.flatnonzero(self.kinds == "phone")
        self.phone_form[phones] = exact_shares(len(phones), mix.phone_forms, rng)
        sims = np.flatnonzero(self.self_locating)
        located = exact_shares(len(sims), {"yes": mix.carrier_share,
                                           "no": 1 - mix.carrier_share}, rng)
        self.carrier = np.zeros(n, dtype=bool)
        self.carrier[sims[np.array(located, dtype=object) == "yes"]] = True
        self.next_carrier = rng.uniform(0, mix.carrier_every_s, n)
        self.next_beat = rng.uniform(0, mix.heartbeat_every_s, n)

    # ------------------------------------------------------------ motion
    def advance(self, dt: float) -> None:
        """Move every child ``dt`` seconds along its path, then run the script."""
        self.clock += dt
        delta = self.target - self.pos
        dist = np.hypot(delta[:, 0], delta[:, 1])
        step = np.minimum(self.speed * dt, dist)
        moving = dist > 1e-6
        unit = np.zeros_like(delta)
        unit[moving] = delta[moving] / dist[moving, None]
        self.pos += unit * step[:, None]
        self.heading[moving] = np.degrees(np.arctan2(unit[moving, 0], unit[moving, 1])) % 360
        self.moved = step / dt if dt > 0 else np.zeros_like(step)
        self.walked += step
        self.battery = np.maximum(1.0, self.battery - self.drain * dt)
        turn = (dist - step < 0.5) & ~self.scripted
        self.to_gate[turn] = ~self.to_gate[turn]
        self.target[turn] = np.where(self.to_gate[turn, None], self.gate[turn], self.home[turn])
        self._script()

    def distance_from_centre(self) -> np.ndarray:
        return np.hypot(self.pos[:, 0], self.pos[:, 1])

    # ------------------------------------------------------------ script
    def _script(self) -> None:
        self._bring_back()
        if len(self) == 0:
            return
        due = self.next_incident
        if self._ran_for < due:
            if self.staged < 0 and self.clock >= due - STAGE_LEAD_S:
                self._stage()
            if self.clock >= due - RUN_LEAD_S:
                self._ran_for = due
                self._run_out()
        if self.clock >= due:
            self.next_incident += self.incident_every_s
            self._press_sos()

    def _calm(self) -> np.ndarray:
        return self.self_locating & ~self.scripted & ~self.sos_pending

    def _stage(self, at_start: bool = False) -> None:
        """Pick the next leaver (the calm child with the shortest way to its
        edge, preferring phones and children who have not left before) and
        send it to the fence, or, at the start, put it there."""
        to_edge = self.radius - EDGE_GAP_M - self.distance_from_centre()
        base = self._calm() & (to_edge > 0) & self.may_leave
        for prefer in (self.sends_accuracy & ~self.left_before, self.sends_accuracy,
                       ~self.left_before, base):
            cand = np.flatnonzero(base & prefer)
            if len(cand):
                break
        else:
            return
        i = int(cand[np.argmin(to_edge[cand])])
        edge = self._outward(i) * (self.radius[i] - EDGE_GAP_M)
        self.scripted[i] = True
        self.staged = i
        self.target[i] = edge
        if at_start:
            self.pos[i] = edge
            out = self._outward(i)
            self.heading[i] = math.degrees(math.atan2(out[0], out[1])) % 360
        else:
            dist = float(np.hypot(*(edge - self.pos[i])))
            self.speed[i] = min(max(dist / (0.8 * STAGE_LEAD_S), self.speed[i]),
                                STAGE_MAX_SPEED_MS)

    def _outward(self, i: int) -> np.ndarray:
        """The unit vector from the zone's centre through child ``i``."""
        r = float(np.hypot(*self.pos[i]))
        if r < 1.0:
            ang = float(self.rng.uniform(0, 2 * math.pi))
            return np.array([math.cos(ang), math.sin(ang)])
        return self.pos[i] / r

    def _press_sos(self) -> None:
        calm = np.flatnonzero(self._calm())
        if len(calm) == 0:
            return
        self.press_sos(int(self.rng.choice(calm)))

    def _run_out(self) -> None:
        if self.staged < 0:
            self._stage()
        i, self.staged = self.staged, -1
        if i < 0:
            return
        self.leave(i, staged=True)

    # ------------------------------------------- incidents, scripted from outside
    def press_sos(self, i: int) -> None:
        """Child ``i`` presses SOS: its device reports now, with the alarm."""
        self.sos_pending[i] = True
        self.next_report[i] = self.clock
        self.incidents.append(Incident("sos", i, self.clock))

    def leave(self, i: int, staged: bool = False) -> None:
        """Child ``i`` runs out of its zone, lingers, then comes back: after
        OUT_FOR_S for a leaver staged at the edge, else OUT_FOR_S after it
        is out there (however deep inside it started)."""
        self.scripted[i] = True
        self.target[i] = self._outward(i) * (self.radius[i] + LEAVER_OUT_M)
        run_s = float(np.hypot(*(self.target[i] - self.pos[i]))) / LEAVER_SPEED_MS
        self.leaving[i] = True
        self.left_before[i] = True
        self.speed[i] = LEAVER_SPEED_MS
        self.report_every[i] = LEAVER_REPORT_S
        self.next_report[i] = max(self.clock, self.last_report[i] + MIN_REPORT_GAP_S)
        self._return_at[i] = self.clock + (0.0 if staged else run_s) + OUT_FOR_S
        self.incidents.append(Incident("exit", i, self.clock))

    def battery_dies(self, i: int) -> None:
        """Child ``i``'s device reports once more with an empty battery, then
        never again."""
        self.battery[i] = 3.0
        self.drain[i] = 0.0
        self.next_report[i] = self.clock
        self.dying[i] = True

    def _bring_back(self) -> None:
        for i, at in list(self._return_at.items()):
            if self.clock >= at:
                self.leaving[i] = False
                self.scripted[i] = False
                self.to_gate[i] = False
                self.target[i] = self.home[i]
                self.speed[i] = RETURN_SPEED_MS
                self.report_every[i] = self.interval_s
                del self._return_at[i]

    # ------------------------------------------------------------ output
    def lat_lon(self, idx: np.ndarray, offset: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 of children ``idx`` (plus ``offset`` metres, for errors)."""
        p = self.pos[idx] if offset is None else self.pos[idx] + offset
        lat, lon = to_wgs84(self.cx[idx] + p[:, 0], self.cy[idx] + p[:, 1])
        return lat, lon

    def map_xy(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map-grid coordinates of children ``idx`` (what tag readers range on)."""
        return self.cx[idx] + self.pos[idx, 0], self.cy[idx] + self.pos[idx, 1]

    def tags(self) -> np.ndarray:
        return np.flatnonzero(~self.self_locating)

    def due_reports(self, now: float) -> list[SimReport]:
        """The reports of every device whose schedule has come up, stamped
        ``now`` (epoch seconds). Tags never report: readers see them."""
        due = np.flatnonzero(self.self_locating & (self.next_report <= self.clock))
        if len(due) == 0:
            return []
        self.next_report[due] += self.report_every[due]
        self.last_report[due] = self.clock
        lat, lon = self.lat_lon(due)
        out = [
            SimReport(int(i), now, float(a), float(o), float(self.moved[i]),
                      float(self.heading[i]), round(float(self.accuracy[i]), 1),
                      int(self.battery[i]), bool(self.sos_pending[i]),
                      int(self.walked[i] / STRIDE_M))
            for i, a, o in zip(due, lat, lon, strict=True)
        ]
        self.sos_pending[due] = False
        dead = due[self.dying[due]]
        self.next_report[dead] = math.inf  # that was its last report
        return out

    def due_heartbeats(self, now: float) -> list[Heartbeat]:
        """The watches whose ``LK`` heartbeat is due."""
        due = np.flatnonzero((self.kinds == "watch") & (self.next_beat <= self.clock))
        self.next_beat[due] += self.mix.heartbeat_every_s
        return [Heartbeat(int(i), now, int(self.walked[i] / STRIDE_M), int(self.battery[i]))
                for i in due]

    def due_carrier_fixes(self, now: float) -> list[CarrierFix]:
        """The carrier's fixes of the children it locates, measured now:
        each method has its own accuracy radius, and the position is off
        by an error of that size (the radius holds ~68% of fixes)."""
        due = np.flatnonzero(self.carrier & (self.next_carrier <= self.clock))
        if len(due) == 0:
            return []
        self.next_carrier[due] += self.mix.carrier_every_s
        names = list(self.mix.carrier_methods)
        w = np.array([self.mix.carrier_methods[k] for k in names], dtype=float)
        methods = [names[k] for k in self.rng.choice(len(names), len(due), p=w / w.sum())]
        lo_hi = np.array([CARRIER_ACCURACY_M[m] for m in methods])
        acc = self.rng.uniform(lo_hi[:, 0], lo_hi[:, 1])
        error = self.rng.normal(0.0, 1.0, (len(due), 2)) * (acc / 1.51)[:, None]
        lat, lon = self.lat_lon(due, error)
        return [CarrierFix(int(i), now, float(a), float(o), round(float(m), 1), method)
                for i, a, o, m, method in zip(due, lat, lon, acc, methods, strict=True)]
