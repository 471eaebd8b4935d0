"""The admin's safety zones and enrolment, as engine commands: an admin's
console draws, edits, imports and exports zones and enrols children through
the engine, the only writer.

The command table has checked the session and the role (admin, by
``models.accounts.PERMISSIONS``) when a handler runs. The rules are the
store's (``db.zones``, ``db.enrolment``, ``db.registry``): one set whatever
writes a zone or a child, the console's or the CLI's. A refusal lists every
problem of the request at once, so the admin fixes the form in one go.

Nothing here rebuilds live state by hand: every write lands in the change
log with its transaction, and the engine's once-a-second checks take it
(``Routine._reload`` rebuilds the geofence and publishes ``ZoneRegistry``;
``Engine._refresh_roster`` appends the new children and devices). So a
zone edited here, by the CLI or by another engine's admin is taken the same
way, within a second.

Privacy: children's names go only to the admin who asked (the enrolment
table); the access log records what was done with tokens and counts, never
a name or a search text, as it is read where children are pseudonymous.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

from shapely.geometry import Point, Polygon, shape
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from console.engine.cameras import clip, display_name
from console.engine.commands import Entry
from console.engine.sessions import SessionBook
from db import enrolment, registry
from db import zones as store
from db.tables import Child, Consent, Device, Guardianship, Zone
from models.alerts import Actor, Refused
from models.consent import SERVICES, parse_services
from models.enrolment import DEVICE_KINDS
from models.messages import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_PROBLEMS,
    MAX_LISTED_CHILDREN,
    AddDevice,
    ChildRemoved,
    ChildrenRequest,
    ChildRows,
    ChildSaved,
    CommandReply,
    EnrolChild,
    EnrolledChild,
    ExportZones,
    ImportRoster,
    ImportZones,
    RemoveChild,
    RemoveDevice,
    RemoveZone,
    Reply,
    RosterImportResult,
    SaveZone,
    ZoneExport,
    ZoneImportResult,
    ZoneSaved,
)
from models.zones import ZoneError, ZoneImportError, ZoneSpec, check_spec

log = logging.getLogger(__name__)

MAX_SEARCH = 80
_IN_CLAUSE = 500  # ids per IN (...), far under SQLite's and PostgreSQL's limits
# A shape any field check accepts: stands in when the request's own shape
# could not even be read, so the other fields' problems are still told.
_SOME_CIRCLE = Point(127.0, 37.5)


class AdminHost(Protocol):
    """What the handlers use of ``console.services.engine.Engine``."""

    sessions: sessionmaker[Session]
    users: SessionBook


def admin_service_entries(engine: AdminHost) -> dict[type, Entry]:
    """The command-table entries for zones and enrolment (admin only)."""
    zones = ZoneCommands(engine)
    roster = EnrolmentCommands(engine)
    return {
        SaveZone: Entry(zones.save),
        RemoveZone: Entry(zones.remove),
        ImportZones: Entry(zones.import_file),
        ExportZones: Entry(zones.export),
        ChildrenRequest: Entry(roster.list_children),
        EnrolChild: Entry(roster.enrol),
        RemoveChild: Entry(roster.remove),
        AddDevice: Entry(roster.add_device),
        RemoveDevice: Entry(roster.remove_device),
        ImportRoster: Entry(roster.import_file),
    }


def refuse(problems: list[str], code: str = "bad_value") -> Refused:
    """Every problem in one refusal (a list the console shows as is)."""
    return Refused(code, clip("; ".join(problems), 2000))


def _store_failed(what: str, actor: Actor, exc: SQLAlchemyError) -> Refused:
    log.exception("%s for %s failed", what, actor.user)
    return Refused("store", f"the store refused it ({type(exc).__name__}); nothing was written")


def _too_large(name: str, size: int) -> Refused:
    return Refused("too_large", f"{name} is {size / 2**20:.1f} MiB; an import takes at most "
                                f"{MAX_IMPORT_BYTES // 2**20} MiB: split the file")


# ------------------------------------------------------------------- zones

def read_shape(req: SaveZone, problems: list[str]) -> Point | Polygon | None:
    """The request's new shape (None: none given, or unreadable, then with
    its reason in ``problems``). GeoJSON first, else a centre."""
    if req.geometry.strip():
        try:
            doc = json.loads(req.geometry)
        except json.JSONDecodeError as exc:
            problems.append(f"geometry is not JSON: {exc}")
            return None
        kind = doc.get("type") if isinstance(doc, dict) else None
        if kind not in ("Polygon", "Point"):
            problems.append(f"geometry must be a GeoJSON Polygon or Point, not {kind!r}")
            return None
        try:
            geom = shape(doc)
        except Exception as exc:  # shapely's reasons are many; each is told
            problems.append(f"geometry: {exc}")
            return None
        if kind == "Point" and req.radius_m is None:
            problems.append("a Point zone needs radius_m (metres)")
        assert isinstance(geom, Point | Polygon)
        return geom
    if req.lat is None and req.lon is None:
        return None
    if req.lat is None or req.lon is None:
        problems.append("a circle's centre needs both lat and lon")
        return None
    return Point(req.lon, req.lat)


def field_problems(req: SaveZone) -> list[str]:
    """What is wrong with the name, kind, hours and district alone."""
    spec = ZoneSpec(req.name.strip(), req.kind, _SOME_CIRCLE, 100.0, req.hours.strip(),
                    req.district.strip())
    return check_spec(spec)


class ZoneCommands:
    def __init__(self, engine: AdminHost) -> None:
        self.engine = engine

    def save(self, req: SaveZone, actor: Actor | None) -> Reply:
        assert actor is not None
        problems: list[str] = []
        geometry = read_shape(req, problems)
        if problems:
            raise refuse(problems + field_problems(req))
        try:
            with self.engine.sessions() as s:
                if req.zone_id is None:
                    zone, before = self._add(s, req, geometry, actor), 0
                else:
                    zone, before = self._update(s, req, geometry, actor)
                view = store.view_of(zone)
                s.commit()
        except ZoneError as exc:
            raise refuse([str(exc)]) from None
        except SQLAlchemyError as exc:
            raise _store_failed(f"saving zone {req.zone_id or req.name!r}", actor, exc) from None
        changed = view.version != before
        if changed:
            what = "added" if before == 0 else f"saved as version {view.version}"
            self.engine.users.record(actor.user, "cmd.save_zone", True,
                                     f"zone {view.id} {view.name!r} {what}")
            log.info("zone %d %r %s by %s", view.id, view.name, what, actor.user)
        return ZoneSaved(zone=view, changed=changed)

    @staticmethod
    def _add(s: Session, req: SaveZone, geometry: Point | Polygon | None,
             actor: Actor) -> Zone:
        if geometry is None:
            raise refuse(["no shape: draw it on the map, or give a GeoJSON geometry or a "
                          "centre and radius", *field_problems(req)])
        radius = req.radius_m if isinstance(geometry, Point) else 0.0
        spec = ZoneSpec(req.name.strip(), req.kind, geometry,
                        0.0 if radius is None else radius, req.hours.strip(),
                        req.district.strip())
        problems = check_spec(spec)
        if problems:
            raise refuse([f"zone {spec.name!r}: " + "; ".join(problems)])
        return store.add_zone(s, spec, actor.user)

    @staticmethod
    def _update(s: Session, req: SaveZone, geometry: Point | Polygon | None,
                actor: Actor) -> tuple[Zone, int]:
        assert req.zone_id is not None
        zone = s.get(Zone, req.zone_id)
        if zone is None:
            raise Refused("not_found", f"no zone with id {req.zone_id} (deleted meanwhile?)")
        before = zone.version or 1
        if req.zone_version and req.zone_version != before:
            raise Refused("stale", f"zone {zone.name!r} changed since you opened it (version "
                                   f"{req.zone_version}, now {before}): reload and edit again")
        # An unchanged district is left to the store, which re-derives one it
        # derived itself when the zone moves; a new one (or "") is the admin's.
        district = None if req.district.strip() == (zone.district or "") \
            else req.district.strip()
        radius = req.radius_m
        if isinstance(geometry, Polygon) or (geometry is None and (zone.shape or "")):
            radius = None  # a polygon has none; the form may still send a bound
        updated = store.update_zone(s, zone.id, actor=actor.user, name=req.name,
                                    kind=req.kind, geometry=geometry, radius_m=radius,
                                    hours=req.hours, district=district)
        return updated, before

    def remove(self, req: RemoveZone, actor: Actor | None) -> Reply:
        assert actor is not None
        try:
            with self.engine.sessions() as s:
                zone = s.get(Zone, req.zone_id)
                if zone is None:
                    raise Refused("not_found", f"no zone with id {req.zone_id}")
                name, version = zone.name, zone.version or 1
                if req.zone_version and req.zone_version != version:
                    raise Refused("stale", f"zone {name!r} changed since you opened it "
                                           f"(version {req.zone_version}, now {version}): "
                                           "look at it again before deleting")
                store.remove_zone(s, zone.id, actor.user)
                s.commit()
        except ZoneError as exc:
            raise Refused("in_use", str(exc)) from None
        except SQLAlchemyError as exc:
            raise _store_failed(f"removing zone {req.zone_id}", actor, exc) from None
        detail = f"zone {req.zone_id} {name!r} removed"
        self.engine.users.record(actor.user, "cmd.remove_zone", True, detail)
        log.info("%s by %s", detail, actor.user)
        return CommandReply(ok=True)

    def import_file(self, req: ImportZones, actor: Actor | None) -> Reply:
        assert actor is not None
        name = display_name(req.filename) if req.filename else "zones.geojson"
        if len(req.data) > MAX_IMPORT_BYTES:
            raise _too_large(name, len(req.data))
        try:
            with self.engine.sessions() as s:
                result = store.import_geojson(s, req.data, actor.user)
                s.commit()
        except ZoneImportError as exc:
            return _zone_problems(name, exc.problems)
        except ZoneError as exc:
            return _zone_problems(name, [str(exc)])
        except SQLAlchemyError as exc:
            raise _store_failed(f"importing {name}", actor, exc) from None
        message = (f"{name}: {result.added:,} zones added, {result.updated:,} updated, "
                   f"{result.unchanged:,} unchanged.")
        if result.added or result.updated:
            self.engine.users.record(actor.user, "cmd.import_zones", True, message)
        log.info("zone import by %s: %s", actor.user, message)
        return ZoneImportResult(committed=True, message=message, filename=name,
                                added=result.added, updated=result.updated,
                                unchanged=result.unchanged)

    def export(self, _req: ExportZones, actor: Actor | None) -> Reply:
        assert actor is not None
        with self.engine.sessions() as s:
            text = store.export_geojson(s)
            count = int(s.scalar(select(func.count()).select_from(Zone)) or 0)
        self.engine.users.record(actor.user, "req.export_zones", True,
                                 f"{count} zones exported")
        return ZoneExport(geojson=text, zones=count)


def _zone_problems(name: str, problems: list[str]) -> ZoneImportResult:
    n = len(problems)
    return ZoneImportResult(
        committed=False, filename=name, problem_count=n,
        problems=[clip(p) for p in problems[:MAX_IMPORT_PROBLEMS]],
        message=f"{name}: {n:,} problem{'s' if n != 1 else ''}; nothing was imported.")


# --------------------------------------------------------------- enrolment

def decode_csv(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 (with or without Excel's BOM), else CP949,
    which Korean Excel writes; ValueError when it is neither."""
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return data.decode(encoding), encoding.removesuffix("-sig")
        except UnicodeDecodeError:
            continue
    raise ValueError("the file is neither UTF-8 nor CP949 text: save it as CSV UTF-8")


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _IN_CLAUSE):
        yield ids[i:i + _IN_CLAUSE]


def child_rows(s: Session, school: str = "", search: str = "",
               limit: int = MAX_LISTED_CHILDREN) -> tuple[list[EnrolledChild], int]:
    """Enrolled children matching, by id, at most ``limit``, and how many
    match: devices, guardians and consent read for the listed ones only, so
    a city roster costs a page, not the whole table, in the engine's loop."""
    where = [Child.removed_at.is_(None)]
    if school:
        where.append(Zone.name == school)
    if search:
        needle = search.lower()
        where.append(or_(func.lower(Child.token).contains(needle, autoescape=True),
                         func.lower(Child.name).contains(needle, autoescape=True),
                         Child.id.in_(select(Device.child_id).where(
                             func.lower(Device.id).contains(needle, autoescape=True)))))
    base = select(Child.id).outerjoin(Zone, Zone.id == Child.zone_id).where(*where)
    total = int(s.scalar(select(func.count()).select_from(base.subquery())) or 0)
    rows = s.execute(select(Child.id, Child.token, Child.name, Zone.name, Child.profile)
                     .outerjoin(Zone, Zone.id == Child.zone_id).where(*where)
                     .order_by(Child.id).limit(limit)).all()
    ids = [r[0] for r in rows]
    devices: dict[int, list[tuple[str, str]]] = defaultdict(list)
    relations: dict[int, list[str]] = defaultdict(list)
    services: dict[int, set[str]] = defaultdict(set)
    for chunk in _chunks(ids):
        for child_id, device_id, kind in s.execute(
                select(Device.child_id, Device.id, Device.kind)
                .where(Device.child_id.in_(chunk)).order_by(Device.id)):
            devices[child_id].append((device_id, kind))
        for child_id, relation in s.execute(
                select(Guardianship.child_id, Guardianship.relation)
                .where(Guardianship.child_id.in_(chunk)).order_by(Guardianship.guardian_id)):
            relations[child_id].append(relation or "")
        for child_id, chosen in s.execute(
                select(Consent.child_id, Consent.services)
                .where(Consent.child_id.in_(chunk), Consent.withdrawn_at.is_(None))):
            services[child_id] |= parse_services(chosen)
    out = []
    for cid, token, name, zone_name, profile in rows:
        given = services[cid]
        out.append(EnrolledChild(
            token=token, name=name, school=zone_name or "", profile=profile,
            devices=[d for d, _ in devices[cid]], device_kinds=[k for _, k in devices[cid]],
            guardians=relations[cid],
            consent=",".join(x for x in SERVICES if x in given) if given else "no consent"))
    return out, total


def one_child(s: Session, token: str) -> EnrolledChild:
    child = s.scalar(select(Child).where(Child.token == token))
    if child is None or child.removed_at is not None:
        raise Refused("not_found", f"no enrolled child with token {token!r}")
    school = s.get(Zone, child.zone_id) if child.zone_id is not None else None
    rows, _ = child_rows(s, school.name if school else "", token, MAX_LISTED_CHILDREN)
    for row in rows:
        if row.token == token:
            return row
    raise Refused("not_found", f"no enrolled child with token {token!r}")


def device_problems(s: Session, device_id: str, kind: str) -> list[str]:
    """``db.registry.add_device``'s rules, each told (it stops at the first)."""
    problems = []
    d = device_id.strip()
    if not d or len(d) > 64 or not d.isprintable():
        problems.append(f"device id {device_id!r} must be 1-64 printable characters")
    elif s.get(Device, d) is not None:
        problems.append(f"device {d} is already registered")
    if kind not in DEVICE_KINDS:
        problems.append(f"device kind must be one of {', '.join(DEVICE_KINDS)}, "
                        f"not {kind!r}")
    return problems


class EnrolmentCommands:
    def __init__(self, engine: AdminHost) -> None:
        self.engine = engine

    def list_children(self, req: ChildrenRequest, actor: Actor | None) -> Reply:
        assert actor is not None
        limit = max(1, min(req.limit, MAX_LISTED_CHILDREN))
        search = req.search.strip()[:MAX_SEARCH]
        with self.engine.sessions() as s:
            rows, total = child_rows(s, req.school.strip(), search, limit)
        scope = f" at {req.school.strip()!r}" if req.school.strip() else ""
        self.engine.users.record(actor.user, "req.enrolled", True,
                                 f"listed {len(rows)} of {total} children{scope}"
                                 + (" (a search)" if search else ""))
        return ChildRows(rows=rows, total=total)

    def enrol(self, req: EnrolChild, actor: Actor | None) -> Reply:
        assert actor is not None
        device = req.device_id.strip()
        try:
            with self.engine.sessions() as s:
                problems = []
                for check in (lambda: enrolment.check_name(req.name),
                              lambda: enrolment.zone_named(s, req.school),
                              lambda: enrolment.check_profile(req.profile)):
                    try:
                        check()
                    except enrolment.EnrolmentError as exc:
                        problems.append(str(exc))
                if device or req.device_kind:
                    problems += device_problems(s, device, req.device_kind)
                if problems:
                    raise refuse(problems)
                child = enrolment.add_child(s, name=req.name, school_zone=req.school,
                                            profile=req.profile, actor=actor.user)
                if device:
                    registry.add_device(s, device, req.device_kind, child.token, actor.user)
                s.commit()
                row = one_child(s, child.token)
        except (enrolment.EnrolmentError, registry.RegistryError) as exc:
            raise refuse([str(exc)]) from None
        except SQLAlchemyError as exc:
            raise _store_failed("enrolling a child", actor, exc) from None
        what = f"child {row.token} enrolled at {row.school!r}" + (
            f" with {req.device_kind} {device}" if device else "")
        self.engine.users.record(actor.user, "cmd.enrol", True, what)
        log.info("%s by %s", what, actor.user)
        note = "" if device else " Add a device to track them."
        return ChildSaved(child=row, message=f"Enrolled {row.token} at {row.school}. "
                                             "Not tracked until a guardian's consent is "
                                             f"recorded (roster import).{note}")

    def remove(self, req: RemoveChild, actor: Actor | None) -> Reply:
        assert actor is not None
        try:
            with self.engine.sessions() as s:
                if s.scalar(select(Child.id).where(Child.token == req.child)) is None:
                    raise Refused("not_found", f"no child with token {req.child!r}")
                done = enrolment.remove_child(s, req.child, actor.user)
                s.commit()
        except enrolment.EnrolmentError as exc:
            text = str(exc)
            raise Refused("in_use" if "unresolved" in text else "bad_value", text) from None
        except SQLAlchemyError as exc:
            raise _store_failed(f"removing child {req.child}", actor, exc) from None
        message = (f"{done.token} removed; devices unregistered: "
                   f"{', '.join(done.devices) or 'none'}; timetable slots deleted: "
                   f"{done.slots}.")
        self.engine.users.record(actor.user, "cmd.unenrol", True, message)
        log.info("child %s by %s", message, actor.user)
        return ChildRemoved(child=done.token, devices=list(done.devices), slots=done.slots,
                            message=message)

    def add_device(self, req: AddDevice, actor: Actor | None) -> Reply:
        assert actor is not None
        device = req.device_id.strip()
        try:
            with self.engine.sessions() as s:
                child = s.scalar(select(Child).where(Child.token == req.child))
                problems = [] if child is not None and child.removed_at is None else \
                    [f"no enrolled child with token {req.child!r}"]
                problems += device_problems(s, device, req.kind)
                if problems:
                    raise refuse(problems)
                registry.add_device(s, device, req.kind, req.child, actor.user)
                s.commit()
                row = one_child(s, req.child)
        except registry.RegistryError as exc:
            raise refuse([str(exc)]) from None
        except SQLAlchemyError as exc:
            raise _store_failed(f"adding device {device!r}", actor, exc) from None
        what = f"{req.kind} {device} registered to {req.child}"
        self.engine.users.record(actor.user, "cmd.add_device", True, what)
        log.info("%s by %s", what, actor.user)
        return ChildSaved(child=row, message=f"{what.capitalize()}.")

    def remove_device(self, req: RemoveDevice, actor: Actor | None) -> Reply:
        assert actor is not None
        device = req.device_id.strip()
        try:
            with self.engine.sessions() as s:
                found = s.execute(select(Device.id, Child.token)
                                  .outerjoin(Child, Child.id == Device.child_id)
                                  .where(Device.id == device)).first()
                if found is None:
                    raise Refused("not_found", f"no device {device!r}")
                token = found[1] or ""
                registry.remove_device(s, device, actor.user)
                s.commit()
                row = one_child(s, token) if token else None
        except registry.RegistryError as exc:
            raise refuse([str(exc)]) from None
        except SQLAlchemyError as exc:
            raise _store_failed(f"removing device {device!r}", actor, exc) from None
        what = f"device {device} unregistered" + (f" from {token}" if token else "")
        self.engine.users.record(actor.user, "cmd.remove_device", True, what)
        log.info("%s by %s", what, actor.user)
        if row is None:
            return CommandReply(ok=True)
        return ChildSaved(child=row, message=f"{what.capitalize()}.")

    def import_file(self, req: ImportRoster, actor: Actor | None) -> Reply:
        assert actor is not None
        name = display_name(req.filename) if req.filename else "roster.csv"
        if len(req.data) > MAX_IMPORT_BYTES:
            raise _too_large(name, len(req.data))
        try:
            text, encoding = decode_csv(req.data)
        except ValueError as exc:
            return _roster_problems(name, "", [str(exc)])
        try:
            with self.engine.sessions() as s:
                result = enrolment.import_roster(s, text, actor.user,
                                                 school=req.school.strip() or None)
                if result.ok:
                    s.commit()
        except enrolment.EnrolmentError as exc:
            return _roster_problems(name, encoding, [str(exc)])
        except (SQLAlchemyError, registry.RegistryError) as exc:
            # Another admin registered one of its devices meanwhile: rolled back.
            log.exception("roster import %s by %s failed", name, actor.user)
            raise Refused("store", f"the import was rolled back ({exc}); nothing was "
                                   "written: import it again") from None
        if not result.ok:
            return _roster_problems(name, encoding, [str(p) for p in result.problems])
        n = len(result.enrolled)
        message = (f"{name}: {n:,} children enrolled, {result.guardians_added:,} guardians "
                   f"added, {result.guardians_known:,} already known.")
        self.engine.users.record(actor.user, "cmd.import_roster", True, message)
        log.info("roster import by %s: %s", actor.user, message)
        return RosterImportResult(committed=True, message=message, filename=name,
                                  encoding=encoding, enrolled=n,
                                  guardians_added=result.guardians_added,
                                  guardians_known=result.guardians_known)


def _roster_problems(name: str, encoding: str, problems: list[str]) -> RosterImportResult:
    n = len(problems)
    return RosterImportResult(
        committed=False, filename=name, encoding=encoding, problem_count=n,
        problems=[clip(p) for p in problems[:MAX_IMPORT_PROBLEMS]],
        message=f"{name}: {n:,} problem{'s' if n != 1 else ''}; nothing was imported.")

