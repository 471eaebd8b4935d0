"""Training scenarios: what a trainer replays and what trainees are expected to do.

A scenario is a TOML file in ``resources/scenarios/`` (its id is the file
name), authored by trainers, not in code. It says what the session runs on
(a simulated ``[population]`` or a period of the live ``[recording]``), which
incidents happen when (``[[incident]]``, seconds from the start), and what a
trainee must do about them (``[[expect]]``), so the training engine can play
it and ``models.scoring`` can score the trainees against it::

    title = "School morning: SOS at the gate"
    description = "..."
    site = "Sindorim Elementary"
    duration_s = 900

    [population]              # or [recording] from = ..., to = ... (ISO-8601 with offset)
    children = 400
    seed = 20081001
    zones = ["Sindorim Elementary"]   # optional: every demo zone by default

    [[incident]]
    id = "sos"
    at_s = 120
    kind = "sos"
    child = 137               # index into the population (a device id on a recording)

    [[incident]]
    id = "sos-again"
    at_s = 160
    kind = "second_sos"
    of = "sos"                # the same child pressing again: folds into that alert

    [[incident]]
    id = "gate-camera"
    at_s = 150
    kind = "camera_offline"
    camera = 10

    [[expect]]
    incident = "sos"
    ack_within_s = 30
    cameras_within_s = 60
    steps = ["cctv", "call_device", "call_guardian", "decide_dispatch"]
    outcome = "dispatched"
    dispatch_to = "police"
    outcome_within_s = 300

    [[expect]]
    incident = "sos-again"
    noted_within_s = 90

Every deadline counts from the incident's ``at_s`` (for a zone exit that
includes the geofence's dwell). A file is checked whole before it is used:
``ScenarioError`` lists every problem, each naming the table (incidents and
expects are counted from 1 in file order) and the field, so an author fixes
them in one pass rather than one per reload. Unknown keys are errors: a
misspelt ``ack_whithin_s`` would otherwise silently expect nothing.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, get_args

from models.alerts import DISPATCH_TARGETS, OUTCOMES
from models.messages import AlertKind
from models.procedures import Procedures
from resources import path as resource_path

SCENARIO_DIR: Path = resource_path("scenarios")
DEMO_ZONES_FILE: Path = resource_path("demo", "zones.json")

IncidentKind = Literal["sos", "second_sos", "leave_zone", "battery_dies", "camera_offline"]
INCIDENT_KINDS: tuple[IncidentKind, ...] = get_args(IncidentKind)

# The alert kind each incident raises: the one place the training engine,
# the validation of ``steps`` and the scoring's matching agree on. A
# ``second_sos`` raises no alert of its own: the engine folds the second
# press into its ``of`` incident's open SOS alert (its count becomes 2). A
# camera going offline raises no alert at all (the relay reports it).
RAISES: dict[IncidentKind, AlertKind | None] = {
    "sos": "sos",
    "second_sos": "sos",
    "leave_zone": "zone_exit",
    "battery_dies": "low_battery",
    "camera_offline": None,
}
FOLDS: frozenset[IncidentKind] = frozenset({"second_sos"})  # fold into ``of``'s alert

# "dispatched" (to police or fire) or resolved with one of the lifecycle's outcomes.
DISPATCHED = "dispatched"
EXPECTED_OUTCOMES: tuple[str, ...] = (DISPATCHED, *OUTCOMES)

MAX_CHILDREN = 5000
MAX_DURATION_S = 4 * 3600.0
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")

_TOP_KEYS = ("title", "description", "site", "duration_s", "population", "recording",
             "incident", "expect")
_POPULATION_KEYS = ("children", "seed", "zones")
_RECORDING_KEYS = ("from", "to")
_INCIDENT_KEYS = ("id", "at_s", "kind", "child", "camera", "of")
_DEADLINES = ("ack_within_s", "cameras_within_s", "outcome_within_s", "noted_within_s")
_EXPECT_KEYS = ("incident", "ack_within_s", "cameras_within_s", "steps", "outcome",
                "dispatch_to", "outcome_within_s", "noted_within_s")


class ScenarioError(ValueError):
    """A scenario file (or directory) that cannot be used; ``problems`` lists
    every fault found, each naming where it is and which field."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        count = f"{len(self.problems)} problem" + ("s" if len(self.problems) != 1 else "")
        super().__init__(f"{path.name}: {count}:\n" +
                         "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True, slots=True)
class Population:
    """A simulated population: ``children`` spread over ``zones`` (demo zone
    names) as the demo seed spreads them, reproducible from ``seed``."""

    children: int
    seed: int
    zones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Recording:
    """A period of the live tape (the recorder's event log), replayed as it was."""

    start: datetime  # the file's ``from`` (timezone-aware)
    end: datetime  # the file's ``to``

    @property
    def length_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Incident:
    """One thing that happens ``at_s`` seconds into the session.

    ``child`` is an index into the population, or a device id on a
    recording; None for ``camera_offline`` (which has ``camera``). A
    ``second_sos`` carries its ``of`` incident's child.
    """

    id: str
    at_s: float
    kind: IncidentKind
    child: int | str | None = None
    camera: int | None = None
    of: str | None = None

    @property
    def raises(self) -> AlertKind | None:
        return RAISES[self.kind]


@dataclass(frozen=True, slots=True)
class Expect:
    """What a trainee must do about one incident; None/empty: not asked.

    ``outcome`` is ``"dispatched"`` (optionally ``dispatch_to`` police or
    fire) or one of the lifecycle's resolve outcomes; ``outcome_within_s``
    gives it a deadline (without one: by the end of the session).
    """

    incident: str
    ack_within_s: float | None = None
    cameras_within_s: float | None = None
    steps: tuple[str, ...] = ()
    outcome: str | None = None
    dispatch_to: str | None = None
    outcome_within_s: float | None = None
    noted_within_s: float | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    description: str
    site: str
    duration_s: float
    base: Population | Recording
    incidents: tuple[Incident, ...]
    expects: tuple[Expect, ...]
    source: Path = field(compare=False)

    def incident(self, incident_id: str) -> Incident:
        """The incident named ``incident_id`` (KeyError when there is none)."""
        for inc in self.incidents:
            if inc.id == incident_id:
                return inc
        raise KeyError(incident_id)

    def expect_for(self, incident_id: str) -> Expect | None:
        return next((e for e in self.expects if e.incident == incident_id), None)


def demo_zone_names() -> tuple[str, ...]:
    """The demo's zones (the pilot's schools and park), read from the file
    ``db.seed.demo_zones`` seeds from: ``models`` may not import ``db``."""
    data = json.loads(DEMO_ZONES_FILE.read_text(encoding="utf-8"))
    return tuple(z["name"] for z in data["zones"])


def load_scenarios(directory: Path = SCENARIO_DIR,
                   procedures: Procedures | None = None) -> list[Scenario]:
    """Every ``*.toml`` in ``directory``, by file name. One bad file fails the
    lot, with every file's problems in one ``ScenarioError``: a trainer's
    list never silently lacks the scenario they were editing."""
    if not directory.is_dir():
        raise ScenarioError(directory, [f"{directory} is not a directory"])
    procedures = procedures or Procedures.load()
    zones = demo_zone_names()
    loaded: list[Scenario] = []
    problems: list[str] = []
    for file in sorted(directory.glob("*.toml")):
        try:
            loaded.append(load_scenario(file, procedures=procedures, zone_names=zones))
        except ScenarioError as exc:
            problems += [f"{file.name}: {p}" for p in exc.problems]
    if problems:
        raise ScenarioError(directory, problems)
    return loaded


def load_scenario(path: Path, *, procedures: Procedures | None = None,
                  zone_names: Sequence[str] | None = None) -> Scenario:
    """Read and check one scenario file; ``ScenarioError`` lists all its faults.

    ``procedures`` (the SOP that ``steps`` are checked against) and
    ``zone_names`` (the zones a population may use) default to the shipped ones.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(path, [f"cannot read it: {exc}"]) from exc
    checker = _Checker(procedures or Procedures.load(),
                       tuple(zone_names) if zone_names is not None else demo_zone_names())
    scenario = checker.scenario(path, data)
    if checker.problems or scenario is None:
        raise ScenarioError(path, checker.problems or ["nothing usable in it"])
    return scenario


# ------------------------------------------------------------------ checking


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _num(v: float) -> str:
    """A number as an author wrote it: 900, not 900.0."""
    return str(int(v)) if float(v).is_integer() else str(v)


class _Table:
    """One TOML table being checked: reads typed fields and records what is
    wrong with each under the table's name, never stopping at the first."""

    def __init__(self, data: Mapping[str, Any], where: str, problems: list[str]) -> None:
        self.data = data
        self.where = where
        self.problems = problems

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.where}: {text}" if self.where else text)

    def unknown(self, allowed: Sequence[str]) -> None:
        for key in self.data:
            if key not in allowed:
                hint = " (the id is the file name)" if key == "id" and not self.where else ""
                self.problem(f"unknown key {key!r}{hint}; known: {', '.join(allowed)}")

    def text(self, key: str, required: bool = True) -> str | None:
        v = self.data.get(key)
        if v is None:
            if required:
                self.problem(f"{key} is missing")
            return None
        if not isinstance(v, str) or not v.strip():
            self.problem(f"{key} must be a non-empty string, not {v!r}")
            return None
        return v.strip()

    def integer(self, key: str, lo: int, hi: int | None = None,
                required: bool = True) -> int | None:
        v = self.data.get(key)
        if v is None:
            if required:
                self.problem(f"{key} is missing")
            return None
        if not _is_int(v) or v < lo or (hi is not None and v > hi):
            bound = f"from {lo} to {hi}" if hi is not None else f"{lo} or more"
            self.problem(f"{key} must be a whole number {bound}, not {v!r}")
            return None
        return int(v)

    def seconds(self, key: str, required: bool = True, zero_ok: bool = False
                ) -> float | None:
        v = self.data.get(key)
        if v is None:
            if required:
                self.problem(f"{key} is missing")
            return None
        if not _is_number(v) or v < 0 or (v == 0 and not zero_ok):
            more = "0 or more" if zero_ok else "more than 0"
            self.problem(f"{key} must be a number of seconds, {more}, not {v!r}")
            return None
        return float(v)

    def moment(self, key: str) -> datetime | None:
        """An ISO-8601 time with its UTC offset: a TOML offset date-time, or
        a string. A time without an offset is refused: the tape is in
        absolute time, and guessing the zone shifts the replay by hours."""
        v = self.data.get(key)
        if v is None:
            self.problem(f"{key} is missing")
            return None
        if isinstance(v, str):
            try:
                v = datetime.fromisoformat(v)
            except ValueError:
                self.problem(f"{key} {v!r} is not an ISO-8601 time "
                             "(e.g. 2008-10-01T08:00:00+09:00)")
                return None
        if not isinstance(v, datetime):
            what = ("a date alone" if isinstance(v, date)
                    else "a time of day alone" if isinstance(v, time) else repr(v))
            self.problem(f"{key} must be a date and time with its offset, not {what}")
            return None
        if v.tzinfo is None or v.utcoffset() is None:
            self.problem(f"{key} {v.isoformat()} has no UTC offset (add e.g. +09:00)")
            return None
        return v


class _Checker:
    """Builds a ``Scenario`` from parsed TOML, collecting every problem."""

    def __init__(self, procedures: Procedures, zone_names: tuple[str, ...]) -> None:
        self.procedures = procedures
        self.zone_names = zone_names
        self.problems: list[str] = []

    def scenario(self, path: Path, data: dict[str, Any]) -> Scenario | None:
        top = _Table(data, "", self.problems)
        top.unknown(_TOP_KEYS)
        if not ID_PATTERN.fullmatch(path.stem):
            top.problem(f"the file name {path.stem!r} makes a poor scenario id: use letters, "
                        "digits, '-', '_' or '.' (at most 40)")
        title = top.text("title")
        description = top.text("description", required=False) or ""
        site = top.text("site")
        duration = top.seconds("duration_s")
        if duration is not None and duration > MAX_DURATION_S:
            top.problem(f"duration_s {_num(duration)} is longer than {_num(MAX_DURATION_S)} "
                        "(4 hours)")
            duration = None
        base = self.base(data, duration)
        if isinstance(base, Population) and site is not None and site not in base.zones:
            top.problem(f"site {site!r} is not one of the population's zones "
                        f"({', '.join(base.zones)})")
        incidents = self.incidents(self.tables(data, "incident"), base, duration)
        expects = self.expects(self.tables(data, "expect"), incidents, duration)
        if (title is None or site is None or duration is None or base is None
                or self.problems):
            return None
        return Scenario(id=path.stem, title=title, description=description, site=site,
                        duration_s=duration, base=base, incidents=tuple(incidents.values()),
                        expects=tuple(expects), source=path)

    def tables(self, data: dict[str, Any], key: str) -> list[Mapping[str, Any]]:
        """``[[key]]`` tables; a wrong shape is reported and yields none."""
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            self.problems.append(f"{key} must be written as [[{key}]] tables")
            return []
        return items

    # -------------------------------------------------------------- the base

    def base(self, data: dict[str, Any], duration: float | None
             ) -> Population | Recording | None:
        pop, rec = data.get("population"), data.get("recording")
        if (pop is None) == (rec is None):
            self.problems.append("give exactly one base: [population] (simulated children) "
                                 "or [recording] (a period of the live tape)")
            return None
        if pop is not None:
            if not isinstance(pop, dict):
                self.problems.append("population must be a [population] table")
                return None
            return self.population(_Table(pop, "[population]", self.problems))
        if not isinstance(rec, dict):
            self.problems.append("recording must be a [recording] table")
            return None
        return self.recording(_Table(rec, "[recording]", self.problems), duration)

    def population(self, t: _Table) -> Population | None:
        t.unknown(_POPULATION_KEYS)
        children = t.integer("children", 1, MAX_CHILDREN)
        seed = t.integer("seed", 0)
        zones = self.zones(t)
        if children is None or seed is None or zones is None:
            return None
        return Population(children, seed, zones)

    def zones(self, t: _Table) -> tuple[str, ...] | None:
        v = t.data.get("zones")
        if v is None:
            return self.zone_names
        if not isinstance(v, list) or not v or not all(isinstance(z, str) for z in v):
            t.problem(f"zones must be a non-empty list of demo zone names, not {v!r}")
            return None
        bad = [z for z in v if z not in self.zone_names]
        if bad:
            t.problem(f"zones {', '.join(map(repr, bad))} are not demo zones "
                      f"({', '.join(self.zone_names)})")
        if len(set(v)) != len(v):
            t.problem("zones names a zone twice")
        return None if bad or len(set(v)) != len(v) else tuple(v)

    def recording(self, t: _Table, duration: float | None) -> Recording | None:
        t.unknown(_RECORDING_KEYS)
        start, end = t.moment("from"), t.moment("to")
        if start is None or end is None:
            return None
        rec = Recording(start, end)
        if rec.length_s <= 0:
            t.problem(f"to {end.isoformat()} is not after from {start.isoformat()}")
            return None
        if duration is not None and duration > rec.length_s:
            t.problem(f"the recording lasts {_num(rec.length_s)} s, shorter than duration_s "
                      f"{_num(duration)}")
        return rec

    # ------------------------------------------------------------- incidents

    def incidents(self, items: list[Mapping[str, Any]], base: Population | Recording | None,
                  duration: float | None) -> dict[str, Incident]:
        """Incidents by id, in file order; second presses are checked against
        their ``of`` once every incident has been read."""
        found: dict[str, Incident] = {}
        tables: dict[str, _Table] = {}
        for n, item in enumerate(items, 1):
            raw_id = item.get("id")
            t = _Table(item, f"incident {n}" + (f" ({raw_id})" if isinstance(raw_id, str)
                                                else ""), self.problems)
            inc = self.incident(t, base, duration)
            if inc is None:
                continue
            if inc.id in found:
                t.problem(f"id {inc.id!r} is used by an earlier incident")
                continue
            found[inc.id] = inc
            tables[inc.id] = t
        for inc in list(found.values()):
            if inc.kind == "second_sos":
                fixed = self.second_press(tables[inc.id], inc, found)
                if fixed is None:
                    del found[inc.id]
                else:
                    found[inc.id] = fixed
        if not items:
            self.problems.append("a scenario needs at least one [[incident]]")
        return found

    def incident(self, t: _Table, base: Population | Recording | None,
                 duration: float | None) -> Incident | None:
        t.unknown(_INCIDENT_KEYS)
        ident = t.text("id")
        if ident is not None and not ID_PATTERN.fullmatch(ident):
            t.problem(f"id {ident!r} must be letters, digits, '-', '_' or '.' (at most 40)")
            ident = None
        at = t.seconds("at_s", zero_ok=True)
        if at is not None and duration is not None and at >= duration:
            t.problem(f"at_s {_num(at)} is past duration_s {_num(duration)}")
            at = None
        kind = t.data.get("kind")
        if kind is None:
            t.problem("kind is missing")
        elif kind not in INCIDENT_KINDS:
            t.problem(f"kind {kind!r} is not one of {', '.join(INCIDENT_KINDS)}")
            kind = None
        if kind is None:
            return None
        subject = self.subject(t, kind, base)
        if ident is None or at is None or subject is None:
            return None
        return Incident(ident, at, kind, *subject)

    def subject(self, t: _Table, kind: IncidentKind, base: Population | Recording | None
                ) -> tuple[int | str | None, int | None, str | None] | None:
        """(child, camera, of) as ``kind`` needs them, or None when one is wrong."""
        data = t.data
        if kind == "camera_offline":
            extra = [key for key in ("child", "of") if key in data]
            for key in extra:
                t.problem(f"{key} does not apply to camera_offline (it names a camera)")
            camera = t.integer("camera", 1)
            return None if camera is None or extra else (None, camera, None)
        ok = True
        if "camera" in data:
            t.problem(f"camera applies only to camera_offline, not {kind}")
            ok = False
        of = None
        if kind == "second_sos":
            of = t.text("of")
            ok = ok and of is not None
        elif "of" in data:
            t.problem(f"of applies only to second_sos, not {kind}")
            ok = False
        if kind == "second_sos" and "child" not in data:
            return (None, None, of) if ok else None  # the child comes from ``of``
        child = self.child(t, base)
        return (child, None, of) if ok and child is not None else None

    def child(self, t: _Table, base: Population | Recording | None) -> int | str | None:
        v = t.data.get("child")
        if v is None:
            t.problem("child is missing")
            return None
        if isinstance(base, Population):
            if not _is_int(v) or not 0 <= v < base.children:
                t.problem(f"child must be an index into the population, 0 to "
                          f"{base.children - 1}, not {v!r}")
                return None
            return int(v)
        if isinstance(base, Recording):
            if not isinstance(v, str) or not v.strip():
                t.problem(f"child must be a device id (a string) on a recording, not {v!r}")
                return None
            return v.strip()
        return v if _is_int(v) or isinstance(v, str) else None  # base already reported

    def second_press(self, t: _Table, inc: Incident, found: dict[str, Incident]
                     ) -> Incident | None:
        first = found.get(inc.of or "")
        if first is None:
            t.problem(f"of {inc.of!r} names no incident")
            return None
        if first.kind != "sos":
            t.problem(f"of {inc.of!r} is a {first.kind} incident; a second press needs an sos")
            return None
        if first.at_s >= inc.at_s:
            t.problem(f"at_s {_num(inc.at_s)} is not after {first.id}'s at_s "
                      f"{_num(first.at_s)}: the second press comes after the first")
            return None
        if inc.child is not None and inc.child != first.child:
            t.problem(f"child {inc.child!r} is not {first.id}'s child {first.child!r}; "
                      "a second press is the same child's (leave child out)")
            return None
        return Incident(inc.id, inc.at_s, inc.kind, first.child, None, first.id)

    # --------------------------------------------------------------- expects

    def expects(self, items: list[Mapping[str, Any]], incidents: dict[str, Incident],
                duration: float | None) -> list[Expect]:
        out: list[Expect] = []
        seen: dict[str, int] = {}
        for n, item in enumerate(items, 1):
            raw = item.get("incident")
            t = _Table(item, f"expect {n}" + (f" ({raw})" if isinstance(raw, str) else ""),
                       self.problems)
            exp = self.expect(t, incidents, duration)
            if exp is None:
                continue
            if exp.incident in seen:
                t.problem(f"incident {exp.incident!r} already has expect {seen[exp.incident]}; "
                          "put everything expected of it in one")
                continue
            seen[exp.incident] = n
            out.append(exp)
        if not items:
            self.problems.append("a scenario needs at least one [[expect]]: without one "
                                 "nobody can be scored")
        return out

    def expect(self, t: _Table, incidents: dict[str, Incident], duration: float | None
               ) -> Expect | None:
        t.unknown(_EXPECT_KEYS)
        before = len(self.problems)
        name = t.text("incident")
        inc = incidents.get(name) if name is not None else None
        if name is not None and inc is None:
            t.problem(f"incident {name!r} names no (valid) incident")
        deadlines = {k: t.seconds(k, required=False) for k in _DEADLINES}
        steps = self.steps(t, inc)
        outcome, target = self.outcome(t)
        if inc is not None:
            self.applies(t, inc, deadlines, steps, outcome)
            if duration is not None:
                self.within_session(t, inc, deadlines, duration)
        if not any(k in t.data for k in _EXPECT_KEYS if k != "incident"):
            t.problem("expects nothing: give ack_within_s, cameras_within_s, steps, outcome "
                      "or noted_within_s")
        if len(self.problems) > before or name is None:
            return None
        return Expect(name, deadlines["ack_within_s"], deadlines["cameras_within_s"], steps,
                      outcome, target, deadlines["outcome_within_s"],
                      deadlines["noted_within_s"])

    def steps(self, t: _Table, inc: Incident | None) -> tuple[str, ...]:
        v = t.data.get("steps")
        if v is None:
            return ()
        if not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v):
            t.problem(f"steps must be a non-empty list of SOP step ids, not {v!r}")
            return ()
        if len(set(v)) != len(v):
            t.problem("steps names a step twice")
        alert_kind = inc.raises if inc is not None else None
        if alert_kind is not None:
            known = [s.id for s in self.procedures.steps(alert_kind)]
            bad = [s for s in v if s not in known]
            if bad:
                t.problem(f"steps {', '.join(map(repr, bad))} are not in the {alert_kind} "
                          f"procedure ({', '.join(known) or 'it has none'})")
        return tuple(v)

    def outcome(self, t: _Table) -> tuple[str | None, str | None]:
        outcome = t.data.get("outcome")
        target = t.data.get("dispatch_to")
        if outcome is not None and outcome not in EXPECTED_OUTCOMES:
            t.problem(f"outcome {outcome!r} is not one of {', '.join(EXPECTED_OUTCOMES)}")
            outcome = None
        if target is not None:
            if target not in DISPATCH_TARGETS:
                t.problem(f"dispatch_to {target!r} is not one of "
                          f"{', '.join(DISPATCH_TARGETS)}")
                target = None
            elif outcome != DISPATCHED:
                t.problem(f"dispatch_to needs outcome = {DISPATCHED!r}")
        if "outcome_within_s" in t.data and "outcome" not in t.data:
            t.problem("outcome_within_s needs an outcome")
        return outcome, target

    def applies(self, t: _Table, inc: Incident, deadlines: dict[str, float | None],
                steps: tuple[str, ...], outcome: str | None) -> None:
        """Which expectations make sense for the incident's kind."""
        if inc.kind == "camera_offline":
            t.problem(f"{inc.id} is a camera_offline incident, which raises no alert: "
                      "nothing can be expected of it")
            return
        asked = [k for k, v in deadlines.items() if v is not None and k != "noted_within_s"]
        asked += ["steps"] * bool(steps) + ["outcome"] * bool(outcome)
        if inc.kind == "second_sos" and asked:
            t.problem(f"{', '.join(asked)} belong on the expect of {inc.of} (the alert the "
                      "second press folds into); a second_sos expects only noted_within_s")
        if inc.kind != "second_sos" and deadlines["noted_within_s"] is not None:
            t.problem(f"noted_within_s applies only to a second_sos, not {inc.kind}")

    def within_session(self, t: _Table, inc: Incident, deadlines: dict[str, float | None],
                       duration: float) -> None:
        for key, v in deadlines.items():
            if v is not None and inc.at_s + v > duration:
                t.problem(f"{key} {_num(v)} ends past the session ({inc.id} at_s "
                          f"{_num(inc.at_s)} + {_num(v)} > duration_s {_num(duration)})")
