"""Enrolling children and ending their enrolment.

Why a module of its own: the engine and the gateway hold the roster in
memory and reload it when the change log's ``roster`` scope moves, so every
enrolment change here writes its change-log row in the caller's
transaction (the edit and the signal to reload land together or not at
all). A new child gets a pseudonymous token of the seed's shape
("C-" and 7 hex digits) drawn from the OS's random source: tokens are what
the routine map and the alert queue show, and they must not be guessable
from enrolment order.

Removal ends tracking, not history: devices are unregistered (the gateway
refuses them from then on) and the timetable goes, but fixes stay under
retention, and consents and alerts stay as evidence. A child with an
unresolved alert is not removed: the case is closed first.

``import_roster`` enrols a school's roster from CSV with the same steps
(and, for guardians and consent, the same ``db.consent`` functions), all or
nothing: a half-imported roster would leave children enrolled whose
guardians or consent never arrived, and the admin would have to find them.
"""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db import changes
from db import consent as db_consent
from db.consent import check_email, check_phone
from db.registry import add_device, remove_device
from db.tables import (
    Alert,
    Child,
    Consent,
    Device,
    Guardian,
    Guardianship,
    TimetableSlot,
    Zone,
)
from models.consent import SERVICES, check_age_band, check_consent, parse_services
from models.enrolment import DEVICE_KINDS, PROFILES

NAME_MAX = 80


class EnrolmentError(ValueError):
    """An enrolment request that cannot be applied; the message says why and
    what to do instead."""


@dataclass(frozen=True, slots=True)
class ChildEntry:
    """A child as ``children list`` shows it: devices ``(id, kind)``,
    guardians ``(id, relation)`` and the services consented to now."""

    token: str
    name: str
    school: str
    profile: str
    removed_at: float | None
    devices: tuple[tuple[str, str], ...]
    guardians: tuple[tuple[int, str], ...]
    services: frozenset[str]

    def consent_summary(self) -> str:
        """E.g. "routine,location,emergency", or "no consent" (not tracked)."""
        if not self.services:
            return "no consent"
        return ",".join(s for s in SERVICES if s in self.services)


@dataclass(frozen=True, slots=True)
class Removal:
    """What ending a child's enrolment did, for the admin's confirmation."""

    token: str
    devices: tuple[str, ...]
    slots: int


def plain(field: str, value: str, limit: int, required: bool = True) -> str:
    """A text field as stored: trimmed, printable, at most ``limit`` characters."""
    value = value.strip()
    if required and not value:
        raise EnrolmentError(f"{field}: missing")
    if len(value) > limit:
        raise EnrolmentError(f"{field}: at most {limit} characters")
    if not value.isprintable():
        raise EnrolmentError(f"{field}: control characters are not allowed")
    return value


def check_name(name: str) -> str:
    return plain("name", name, NAME_MAX)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise EnrolmentError(f"profile: must be one of {', '.join(PROFILES)}, not {profile!r}")
    return profile


def zone_named(session: Session, name: str) -> Zone:
    """The zone a school name refers to, or an error listing a few that exist."""
    zone = session.scalar(select(Zone).where(Zone.name == name.strip()))
    if zone is None:
        known = list(session.scalars(select(Zone.name).order_by(Zone.name).limit(6)))
        hint = f" (zones: {', '.join(known[:5])}{', ...' if len(known) > 5 else ''})" \
            if known else " (no zones yet: childsafe import zones)"
        raise EnrolmentError(f"school: no zone named {name!r}{hint}")
    return zone


def new_token(session: Session) -> str:
    """A token no child has; 28 random bits, so a clash is rare and retried."""
    while True:
        token = f"C-{secrets.randbits(28):07X}"
        if session.scalar(select(Child.id).where(Child.token == token)) is None:
            return token


def add_child(session: Session, *, name: str, school_zone: str, profile: str = "walking",
              actor: str, now: float | None = None) -> Child:
    """Enrol a child at a school zone; the caller commits. The change-log
    detail names the school and profile, never the child's name (the log is
    read where children are pseudonymous)."""
    return enrol(session, check_name(name), zone_named(session, school_zone),
                 check_profile(profile), actor, now)


def enrol(session: Session, name: str, zone: Zone, profile: str, actor: str,
          now: float | None) -> Child:
    """``add_child`` once its arguments are checked (the roster import checks
    a whole file first)."""
    child = Child(token=new_token(session), name=name, zone_id=zone.id, profile=profile,
                  removed_at=None)
    session.add(child)
    session.flush()
    changes.record(session, "roster", child.token, "add", actor,
                   f"school {zone.name}; profile {profile}", at=now)
    return child


def list_children(session: Session, include_removed: bool = False) -> list[ChildEntry]:
    """Children by id with their devices, guardians and consent in force:
    four queries whatever the roster's size."""
    q = (select(Child.id, Child.token, Child.name, Zone.name, Child.profile, Child.removed_at)
         .outerjoin(Zone, Zone.id == Child.zone_id).order_by(Child.id))
    if not include_removed:
        q = q.where(Child.removed_at.is_(None))
    rows = session.execute(q).all()
    devices: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for child_id, device_id, kind in session.execute(
            select(Device.child_id, Device.id, Device.kind).order_by(Device.id)):
        devices[child_id].append((device_id, kind))
    guardians: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for child_id, guardian_id, relation in session.execute(
            select(Guardianship.child_id, Guardianship.guardian_id, Guardianship.relation)
            .order_by(Guardianship.guardian_id)):
        guardians[child_id].append((guardian_id, relation))
    services: dict[int, set[str]] = defaultdict(set)
    for child_id, chosen in session.execute(
            select(Consent.child_id, Consent.services).where(Consent.withdrawn_at.is_(None))):
        services[child_id] |= parse_services(chosen)
    return [ChildEntry(token, name, school or "", profile, removed_at,
                       tuple(devices[cid]), tuple(guardians[cid]), frozenset(services[cid]))
            for cid, token, name, school, profile, removed_at in rows]


def remove_child(session: Session, token: str, actor: str,
                 now: float | None = None) -> Removal:
    """End a child's enrolment; the caller commits.

    Refused while an alert of the child is unresolved: its case still needs
    the devices, the timetable and the child on the map.
    """
    now = time.time() if now is None else now
    child = session.scalar(select(Child).where(Child.token == token))
    if child is None:
        raise EnrolmentError(f"child: no child with token {token!r}")
    if child.removed_at is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(child.removed_at))
        raise EnrolmentError(f"child: {token} was already removed ({when})")
    open_alerts = session.execute(
        select(Alert.id, Alert.kind, Alert.state)
        .where(Alert.child_id == child.id, Alert.state != "resolved").order_by(Alert.id)).all()
    if open_alerts:
        listed = ", ".join(f"{a} ({kind}, {state})" for a, kind, state in open_alerts[:5])
        plural = "s" if len(open_alerts) > 1 else ""
        raise EnrolmentError(f"child: {token} has unresolved alert{plural} {listed}; "
                             "resolve the case first, then remove the child")
    device_ids = tuple(session.scalars(
        select(Device.id).where(Device.child_id == child.id).order_by(Device.id)))
    for device_id in device_ids:
        remove_device(session, device_id, actor, now)
    slots = session.execute(delete(TimetableSlot).where(TimetableSlot.child_id == child.id),
                            execution_options={"synchronize_session": "fetch"})
    slot_count = int(slots.rowcount or 0)  # type: ignore[attr-defined]
    child.removed_at = now
    detail = (f"devices unregistered: {', '.join(device_ids) or 'none'}; "
              f"timetable slots deleted: {slot_count}")
    changes.record(session, "roster", token, "remove", actor, detail, at=now)
    if slot_count:
        changes.record(session, "timetables", token, "remove", actor,
                       f"{slot_count} slots of a removed child", at=now)
    return Removal(token, device_ids, slot_count)


# ------------------------------------------------------------ roster import

ROSTER_COLUMNS = ("name", "school", "device_id", "device_kind", "guardian_name",
                  "guardian_phone", "guardian_email", "relation", "consent", "age_band",
                  "profile")
OPTIONAL_COLUMNS = frozenset({"profile"})  # and "school" when the import names one
_IN_CLAUSE = 500  # ids per IN (...): far below SQLite's and PostgreSQL's limits


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """Why one line of a roster cannot be imported (line 1 is the header)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Enrolled:
    line: int
    token: str
    name: str
    device_id: str


@dataclass(frozen=True, slots=True)
class RosterResult:
    """What an import did, or why it did nothing: with any ``problems``,
    nothing was written."""

    problems: tuple[Problem, ...] = ()
    enrolled: tuple[Enrolled, ...] = ()
    guardians_added: int = 0
    guardians_known: int = 0  # rows' guardians already in the store (siblings)

    @property
    def ok(self) -> bool:
        return not self.problems


GuardianKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _Contact:
    name: str
    phone: str
    email: str
    line: int


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    name: str
    zone: Zone
    device_id: str
    kind: str
    guardian: GuardianKey | None
    relation: str
    services: str
    age_band: str
    profile: str


def guardian_key(name: str, phone: str, email: str) -> GuardianKey:
    """One guardian per name and phone number, however the number is
    written ("010-1234-5678" is "01012345678"); by e-mail when there is no
    phone."""
    digits = "".join(c for c in phone if c.isdigit())
    return (name, "tel:" + digits) if digits else (name, "mail:" + email.lower())


def _header(cells: list[str], school: Zone | None,
            problems: list[Problem]) -> list[str] | None:
    """Column names in file order (normalized), or None when rows cannot be read."""
    names = [c.strip().lower().replace(" ", "_").replace("-", "_") for c in cells]
    usable = True
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(1, f"column {name!r} appears twice"))
        usable = False
    for name in names:
        if name not in ROSTER_COLUMNS:
            problems.append(Problem(1, f"unknown column {name!r} (columns: "
                                       f"{', '.join(ROSTER_COLUMNS)})"))
    optional = OPTIONAL_COLUMNS | ({"school"} if school is not None else set())
    missing = [c for c in ROSTER_COLUMNS if c not in names and c not in optional]
    if missing:
        problems.append(Problem(1, "missing column" + ("s " if len(missing) > 1 else " ")
                                + ", ".join(missing)
                                + (" (or give --school)" if "school" in missing else "")))
        usable = False
    return names if usable else None


def _check_row(line: int, cells: dict[str, str], zones: dict[str, Zone],
               school: Zone | None, reasons: list[str],
               contacts: dict[GuardianKey, _Contact]) -> _Row | None:
    """The row's values, checked one by one so that every reason is told."""
    def field(name: str, check: Callable[[str], str]) -> str | None:
        try:
            return check(cells.get(name, ""))
        except ValueError as exc:
            text = str(exc)
            reasons.append(text if text.startswith(name) else f"{name}: {text}")
            return None

    def required(name: str, limit: int) -> Callable[[str], str]:
        return lambda v: plain(name, v, limit)

    name = field("name", check_name)
    zone = school
    zone_name = cells.get("school", "")
    if zone_name and school is not None and zone_name != school.name:
        reasons.append(f"school: {zone_name!r}, but the import is for {school.name!r}")
    elif zone_name:
        zone = zones.get(zone_name)
        if zone is None:
            reasons.append(f"school: no zone named {zone_name!r}")
    elif school is None:
        reasons.append("school: missing (or give --school)")
    device_id = field("device_id", required("device_id", 64))
    kind = cells.get("device_kind", "")
    if kind not in DEVICE_KINDS:
        reasons.append(f"device_kind: must be one of {', '.join(DEVICE_KINDS)}, "
                       f"not {kind!r}" if kind else "device_kind: missing")
    profile = cells.get("profile", "") or "walking"
    if profile not in PROFILES:
        reasons.append(f"profile: must be one of {', '.join(PROFILES)}, not {profile!r}")
    g_name = field("guardian_name", lambda v: plain("guardian_name", v, 80, required=False))
    phone = field("guardian_phone", check_phone)
    email = field("guardian_email", check_email)
    relation = field("relation", lambda v: plain("relation", v, 20, required=False))
    key: GuardianKey | None = None
    if g_name:
        if phone == "" and email == "":
            reasons.append("guardian_phone: a guardian needs a phone or an e-mail "
                           "(to be told of disclosures)")
        elif phone is not None and email is not None:
            key = guardian_key(g_name, phone, email)
            _same_guardian(key, _Contact(g_name, phone, email, line), contacts, reasons)
    elif g_name is not None and (phone or email or relation):
        reasons.append("guardian_name: missing (the row gives a guardian's phone, "
                       "e-mail or relation)")
    services = cells.get("consent", "")
    age_band = cells.get("age_band", "")
    try:
        check_age_band(age_band)
    except ValueError as exc:
        reasons.append(f"age_band: {exc}" if age_band else "age_band: missing")
    else:
        if not services:
            reasons.append("consent: missing (no child is tracked without consent)")
        else:
            try:
                check_consent(services, age_band,
                              0 if cells.get("guardian_name") else None)
            except ValueError as exc:
                reasons.append(f"consent: {exc}")
    if reasons or name is None or zone is None or device_id is None:
        return None
    return _Row(line, name, zone, device_id, kind, key, relation or "", services, age_band,
                profile)


def _same_guardian(key: GuardianKey, contact: _Contact, contacts: dict[GuardianKey, _Contact],
                   reasons: list[str]) -> None:
    """Rows naming one guardian (same name and phone) must not disagree on
    the e-mail; a row that leaves it empty takes the other rows' address."""
    seen = contacts.get(key)
    if seen is None or (not seen.email and contact.email):
        contacts[key] = contact  # ``line``: where the e-mail (if any) came from
    elif contact.email and contact.email.lower() != seen.email.lower():
        reasons.append(f"guardian_email: {contact.email!r}, but line {seen.line} gives "
                       f"{seen.email!r} for the same guardian ({seen.name}, {seen.phone})")


def _read_rows(text: str, school: Zone | None, zones: dict[str, Zone],
               problems: list[Problem], contacts: dict[GuardianKey, _Contact],
               devices: list[tuple[int, str]]) -> list[_Row]:
    """Every data row checked; what is wrong goes to ``problems``, and every
    row's device id (good row or not) to ``devices``."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    rows: list[_Row] = []
    header: list[str] | None = None
    line = 1
    try:
        for cells in reader:
            if header is None:
                header = _header(cells, school, problems)
                if header is None:
                    return []
                line = reader.line_num + 1
                continue
            if not any(c.strip() for c in cells):
                line = reader.line_num + 1
                continue  # blank lines, and Excel's rows of empty cells
            if len(cells) != len(header):
                problems.append(Problem(line, f"wrong column count: {len(cells)} fields, "
                                              f"the header has {len(header)}"))
            else:
                reasons: list[str] = []
                values = dict(zip(header, (c.strip() for c in cells), strict=True))
                if values.get("device_id"):
                    devices.append((line, values["device_id"]))
                row = _check_row(line, values, zones, school, reasons, contacts)
                problems.extend(Problem(line, r) for r in reasons)
                if row is not None:
                    rows.append(row)
            line = reader.line_num + 1
    except csv.Error as exc:
        problems.append(Problem(line, f"not readable as CSV: {exc}"))
        return rows
    if header is None:
        problems.append(Problem(1, "empty file: expected a header row "
                                   f"({', '.join(ROSTER_COLUMNS)})"))
    elif not rows and not problems:
        problems.append(Problem(line, "no children after the header"))
    return rows


def _devices_taken(session: Session, devices: list[tuple[int, str]],
                   problems: list[Problem]) -> None:
    """What no row shows alone: a device twice in the file, or already registered."""
    first: dict[str, int] = {}
    for line, device_id in devices:
        if device_id in first:
            problems.append(Problem(line, f"device_id: {device_id} is also on line "
                                          f"{first[device_id]}"))
        else:
            first[device_id] = line
    ids = list(first)
    for i in range(0, len(ids), _IN_CLAUSE):
        for device_id in session.scalars(
                select(Device.id).where(Device.id.in_(ids[i:i + _IN_CLAUSE]))):
            problems.append(Problem(first[device_id],
                                    f"device_id: {device_id} is already registered"))


def _known_guardians(session: Session, keys: list[GuardianKey]) -> dict[GuardianKey, int]:
    """Guardians of these rows already in the store (a sibling enrolled
    before): their id, the lowest when the same person was entered twice."""
    names = sorted({name for name, _ in keys})
    wanted = set(keys)
    found: dict[GuardianKey, int] = {}
    for i in range(0, len(names), _IN_CLAUSE):
        for g in session.scalars(select(Guardian).where(Guardian.name.in_(
                names[i:i + _IN_CLAUSE])).order_by(Guardian.id)):
            key = guardian_key(g.name, g.phone, g.email)
            if key in wanted:
                found.setdefault(key, g.id)
    return found


def import_roster(session: Session, text: str, actor: str, school: str | None = None,
                  now: float | None = None) -> RosterResult:
    """Enrol a school's roster (CSV text, header first), all or nothing.

    Every line is checked before anything is written, and every problem is
    returned (the admin fixes the file once). Without problems each row
    becomes a child (``enrol``), its device (``add_device``), its guardian
    (one per name and phone, in the file and in the store, via
    ``db.consent.add_guardian`` and ``link``) and its consent
    (``db.consent.give``, with its usage record). The caller commits; if a
    write fails midway (another admin registered a device meanwhile) the
    exception propagates and the caller's rollback leaves nothing behind.
    ``school`` (a zone name) fills an empty or missing school column.
    """
    now = time.time() if now is None else now
    zones = {z.name: z for z in session.scalars(select(Zone))}
    default = None
    if school is not None:
        default = zones.get(school.strip())
        if default is None:
            zone_named(session, school)  # raises, naming some zones that exist
    problems: list[Problem] = []
    contacts: dict[GuardianKey, _Contact] = {}
    devices: list[tuple[int, str]] = []
    rows = _read_rows(text, default, zones, problems, contacts, devices)
    _devices_taken(session, devices, problems)
    if problems:
        return RosterResult(tuple(sorted(problems, key=lambda p: p.line)))
    known = _known_guardians(session, list(contacts))
    ids = dict(known)
    enrolled: list[Enrolled] = []
    for row in rows:
        child = enrol(session, row.name, row.zone, row.profile, actor, now)
        add_device(session, row.device_id, row.kind, child.token, actor, now)
        guardian_id = None
        if row.guardian is not None:
            guardian_id = ids.get(row.guardian)
            if guardian_id is None:
                c = contacts[row.guardian]
                guardian_id = db_consent.add_guardian(session, c.name, c.phone, c.email,
                                                      now).id
                ids[row.guardian] = guardian_id
            db_consent.link(session, child.token, guardian_id, row.relation)
        db_consent.give(session, child.token, guardian_id, row.services, row.age_band,
                        actor, now)
        enrolled.append(Enrolled(row.line, child.token, row.name, row.device_id))
    return RosterResult((), tuple(enrolled), len(ids) - len(known), len(known))
