"""Safety zones in the store: add, edit, remove, import and export, versioned.

Every change writes a ``changes`` row (scope "zones", key the zone id, the
feature's GeoJSON as it became; for a removal, as it was) in the caller's
transaction, so the engine and the consoles see the zone list move on, and
an auditor sees who drew which fence when. The caller commits.

A polygon zone keeps its smallest enclosing circle in ``lat``/``lon``/
``radius_m``: readers that only know circles still point at the right place.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapely.geometry import Point, Polygon
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import changes
from db.tables import CalendarDay, Child, Reader, TimetableException, TimetableSlot, Zone
from models.messages import ZoneView
from models.zones import (
    ZoneError,
    ZoneSpec,
    centre_and_radius,
    derive_district,
    feature_json,
    make_spec,
    parse_geojson,
    shape_json,
    spec_of,
    to_geojson,
)

__all__ = ["ImportResult", "add_zone", "export_geojson", "find_zone", "import_geojson",
           "remove_zone", "update_zone", "zone_views"]


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int = 0  # same as stored: no new version, no change row


def view_of(zone: Zone) -> ZoneView:
    return ZoneView(id=zone.id, name=zone.name, kind=zone.kind, lat=zone.lat, lon=zone.lon,
                    radius_m=zone.radius_m, shape=zone.shape or "", hours=zone.hours or "",
                    district=zone.district or "", version=zone.version or 1)


def zone_views(session: Session) -> list[ZoneView]:
    """Every zone, by id (the order the engine indexes them in)."""
    return [view_of(z) for z in session.scalars(select(Zone).order_by(Zone.id))]


def find_zone(session: Session, name_or_id: str | int) -> Zone:
    """By name, or by id when given a number that is no zone's name."""
    zone = session.scalar(select(Zone).where(Zone.name == str(name_or_id)))
    if zone is None and str(name_or_id).isdigit():
        zone = session.get(Zone, int(name_or_id))
    if zone is None:
        raise ZoneError(f"no zone {name_or_id!r}")
    return zone


def _write(zone: Zone, spec: ZoneSpec) -> None:
    lat, lon, radius = centre_and_radius(spec)
    zone.name, zone.kind, zone.hours, zone.district = spec.name, spec.kind, spec.hours, \
        spec.district
    zone.lat, zone.lon, zone.radius_m, zone.shape = lat, lon, radius, shape_json(spec)


def _record(session: Session, zone: Zone, action: str, actor: str, spec: ZoneSpec) -> None:
    changes.record(session, "zones", str(zone.id), action, actor,
                   feature_json(spec, id=zone.id, version=zone.version))


def _name_free(session: Session, name: str, zone_id: int | None = None) -> None:
    q = select(Zone.id).where(Zone.name == name)
    other = session.scalar(q)
    if other is not None and other != zone_id:
        raise ZoneError(f"a zone named {name!r} exists already (id {other})")


def add_zone(session: Session, spec: ZoneSpec, actor: str) -> Zone:
    """A new zone from a spec (checked again here: specs can be built by hand)."""
    spec = make_spec(spec.name, spec.kind, spec.geometry, spec.radius_m, spec.hours,
                     spec.district or None)
    _name_free(session, spec.name)
    zone = Zone(version=1)
    _write(zone, spec)
    session.add(zone)
    session.flush()
    _record(session, zone, "add", actor, spec)
    return zone


def update_zone(session: Session, zone_id: int, *, actor: str, name: str | None = None,
                kind: str | None = None, geometry: Point | Polygon | None = None,
                radius_m: float | None = None, hours: str | None = None,
                district: str | None = None) -> Zone:
    """Rename, move or reshape a zone: a ``geometry`` (a circle's new centre
    as a ``Point``, or a ``Polygon``) and/or a circle's ``radius_m``. A
    district derived from the old place follows the zone when it moves; one
    typed in stays unless given anew. Nothing changed: no new version."""
    zone = session.get(Zone, zone_id)
    if zone is None:
        raise ZoneError(f"no zone with id {zone_id}")
    old = spec_of(view_of(zone))
    new_geom = old.geometry if geometry is None else geometry
    if isinstance(new_geom, Polygon):
        if radius_m is not None:
            raise ZoneError(f"zone {old.name!r}: a polygon has no radius_m")
        new_radius = 0.0
    elif radius_m is not None:
        new_radius = radius_m
    elif old.is_circle:
        new_radius = old.radius_m
    else:
        raise ZoneError(f"zone {old.name!r}: a circle needs radius_m")
    if district is None and new_geom != old.geometry and old.district == derive_district(
            old.geometry):
        district = ""  # derive it again at the new place
    spec = make_spec(old.name if name is None else name, old.kind if kind is None else kind,
                     new_geom, new_radius, old.hours if hours is None else hours,
                     old.district if district is None else (district or None))
    return _apply(session, zone, old, spec, actor)


def _apply(session: Session, zone: Zone, old: ZoneSpec, spec: ZoneSpec, actor: str) -> Zone:
    if spec == old:
        return zone
    if spec.name != old.name:
        _name_free(session, spec.name, zone.id)
    _write(zone, spec)
    zone.version = (zone.version or 1) + 1
    session.flush()
    _record(session, zone, "update", actor, spec)
    return zone


_REFERENCES = (
    (Child, Child.zone_id, "child(ren)"),
    (Reader, Reader.zone_id, "tag reader(s)"),
    (TimetableSlot, TimetableSlot.zone_id, "timetable slot(s)"),
    (CalendarDay, CalendarDay.zone_id, "calendar day(s)"),
    (TimetableException, TimetableException.zone_id, "timetable exception(s)"),
)


def remove_zone(session: Session, zone_id: int, actor: str) -> None:
    """Delete a zone nothing refers to; otherwise ZoneError saying what does
    (children's schools, readers, timetables, the calendar must move first:
    a deleted fence would silently end their watch)."""
    zone = session.get(Zone, zone_id)
    if zone is None:
        raise ZoneError(f"no zone with id {zone_id}")
    users = []
    for table, column, what in _REFERENCES:
        n = int(session.scalar(select(func.count()).select_from(table)
                               .where(column == zone_id)) or 0)
        if n:
            users.append(f"{n} {what}")
    if users:
        raise ZoneError(f"zone {zone.name!r} is still used by {', '.join(users)}: move them "
                        "to another zone first")
    spec = spec_of(view_of(zone))
    _record(session, zone, "remove", actor, spec)
    session.delete(zone)
    session.flush()


def import_geojson(session: Session, text: str | bytes, actor: str) -> ImportResult:
    """All or nothing: the file is checked whole first (ZoneImportError
    lists every problem); then a zone whose name exists is updated (a new
    version), any other added."""
    specs = parse_geojson(text)
    existing = {z.name: z for z in session.scalars(select(Zone))}
    added = updated = unchanged = 0
    for spec in specs:
        zone = existing.get(spec.name)
        if zone is None:
            add_zone(session, spec, actor)
            added += 1
            continue
        old = spec_of(view_of(zone))
        if spec == old:
            unchanged += 1
            continue
        _apply(session, zone, old, spec, actor)
        updated += 1
    return ImportResult(added, updated, unchanged)


def export_geojson(session: Session) -> str:
    """Every zone as a FeatureCollection that ``import_geojson`` takes back."""
    return to_geojson(spec_of(v) for v in zone_views(session))
