"""``childsafe zones …`` and ``childsafe import zones FILE``: safety zones
from the server's command line.

Why a command line beside the console's editor: zone files come from the
district's GIS desk as GeoJSON, often hundreds at a time, and an admin
loads them on the server; the engine picks the change up from the change
log within seconds. Every change is recorded under the OS user who typed it
(``cli:<user>``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from console.cli import AddCommand, SubParsers, _sessions
from models.zones import ZONE_KINDS, ZoneImportError


def _actor() -> str:
    return "cli:" + getpass.getuser()


def cmd_zones_list(args: argparse.Namespace) -> int:
    """id first, tab-separated: id, name, kind, circle|polygon, lat, lon,
    radius (a polygon's: its bounding circle), hours, district, version."""
    from db.zones import zone_views

    with _sessions(args)() as s:
        views = zone_views(s)
    for v in views:
        shape = "polygon" if v.shape else "circle"
        print("\t".join((str(v.id), v.name, v.kind, shape, f"{v.lat:.6f}", f"{v.lon:.6f}",
                         f"{v.radius_m:g}", v.hours or "-", v.district or "-",
                         f"v{v.version}")))
    return 0


def cmd_zones_export(args: argparse.Namespace) -> int:
    from db.zones import export_geojson, zone_views

    with _sessions(args)() as s:
        text = export_geojson(s)
        count = len(zone_views(s))
    if args.out is None:
        sys.stdout.write(text + "\n")
        return 0
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(f"exported {count} zone(s) to {args.out}")
    return 0


def cmd_zones_add(args: argparse.Namespace) -> int:
    """A circle zone; polygons come in a GeoJSON file (``import zones``)."""
    from shapely.geometry import Point

    from db.zones import add_zone
    from models.zones import make_spec

    spec = make_spec(args.name, args.kind, Point(args.lon, args.lat), args.radius,
                     args.hours, args.district or None)
    with _sessions(args)() as s:
        zone = add_zone(s, spec, _actor())
        s.commit()
        print(f"added zone {zone.id} {zone.name} ({zone.kind}, {zone.district or 'no district'})")
    return 0


def cmd_zones_remove(args: argparse.Namespace) -> int:
    from db.zones import find_zone, remove_zone

    with _sessions(args)() as s:
        zone = find_zone(s, args.name)
        zone_id, name = zone.id, zone.name
        remove_zone(s, zone_id, _actor())
        s.commit()
    print(f"removed zone {zone_id} {name}")
    return 0


def cmd_import_zones(args: argparse.Namespace) -> int:
    """All or nothing: on any problem, every one is printed and nothing is
    written (exit 2), so the file can be fixed in one go and loaded again."""
    from db.zones import import_geojson

    try:
        text = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    with _sessions(args)() as s:
        try:
            result = import_geojson(s, text, _actor())
        except ZoneImportError as exc:
            s.rollback()
            print(f"{args.file}: {len(exc.problems)} problem(s); nothing was imported",
                  file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
        s.commit()
    print(f"zones from {args.file}: {result.added} added, {result.updated} updated, "
          f"{result.unchanged} unchanged")
    return 0


def _db_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--db", default=None, help="database URL (default: SQLite in the data dir)")


def add_zones(sub: SubParsers, add: AddCommand) -> None:
    """The ``zones`` command group."""
    zones = sub.add_parser("zones", help="safety zones (in the store)")
    zones_sub = zones.add_subparsers(dest="zones_command", required=True)
    zl = add("list", cmd_zones_list, "zones, id first: name, kind, circle|polygon, lat, lon, "
             "radius, hours, district, version (tab-separated)", zones_sub)
    ze = add("export", cmd_zones_export, "every zone as GeoJSON (RFC 7946), for "
             "'import zones'", zones_sub)
    ze.add_argument("--out", type=Path, default=None, metavar="FILE",
                    help="write here instead of to stdout")
    za = add("add", cmd_zones_add, "add a circle zone (polygons: import a GeoJSON file)",
             zones_sub)
    za.add_argument("name")
    za.add_argument("--kind", required=True, choices=ZONE_KINDS)
    za.add_argument("--lat", type=float, required=True, help="centre, WGS84 degrees")
    za.add_argument("--lon", type=float, required=True, help="centre, WGS84 degrees")
    za.add_argument("--radius", type=float, required=True, help="metres (at most 5000)")
    za.add_argument("--hours", default="", help="when it is watched, e.g. 07:00-20:00 "
                    "(default: always)")
    za.add_argument("--district", default="", help="default: the gu at the centre")
    zr = add("remove", cmd_zones_remove, "remove a zone nothing uses any more", zones_sub)
    zr.add_argument("name", help="the zone's name (or id)")
    for sp in (zl, ze, za, zr):
        _db_option(sp)


def add_import_zones(imp_sub: SubParsers, add: AddCommand) -> None:
    """``import zones FILE``, beside ``import cameras``."""
    iz = add("zones", cmd_import_zones, "safety zones: a GeoJSON FeatureCollection (RFC 7946, "
             "WGS84) of Polygons and Points with radius_m; all or nothing", imp_sub)
    iz.add_argument("file", type=Path)
    _db_option(iz)
