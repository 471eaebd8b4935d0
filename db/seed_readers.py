"""Demo electronic-tag readers: a few in every safety zone of the store.

The pilot put readers where children pass: gates, crossings, the
playground. Real mounting points are not public, so each zone gets the
same pattern laid out around its centre (one at the centre, the others
inside the zone on different bearings) with ranges of 30-80 m, the span short-range tag
readers cover. Ids are derived from the zone id, so seeding twice, or after
more zones were added, creates only what is missing.
"""

from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.tables import Reader, Zone

M_PER_DEG_LAT = 111_320.0
# (name, bearing from the zone centre in degrees, distance as a share of the
# zone radius, range in metres)
PATTERN = (
    ("centre", 0.0, 0.0, 60.0),
    ("main gate", 0.0, 0.5, 50.0),
    ("back gate", 180.0, 0.55, 40.0),
    ("crosswalk", 90.0, 0.7, 30.0),
    ("playground", 300.0, 0.4, 80.0),
)


def reader_id(zone_id: int, n: int) -> str:
    return f"R{zone_id:03d}-{n}"


def seed_readers(session: Session) -> int:
    """Add the demo readers the store lacks; commits; returns how many."""
    existing = set(session.scalars(select(Reader.id)))
    created = 0
    for zone in session.scalars(select(Zone).order_by(Zone.id)):
        for n, (name, bearing, share, range_m) in enumerate(PATTERN, 1):
            rid = reader_id(zone.id, n)
            if rid in existing:
                continue
            north = zone.radius_m * share * math.cos(math.radians(bearing))
            east = zone.radius_m * share * math.sin(math.radians(bearing))
            session.add(Reader(
                id=rid, name=f"{zone.name} {name}", range_m=range_m, zone_id=zone.id,
                lat=zone.lat + north / M_PER_DEG_LAT,
                lon=zone.lon + east / (M_PER_DEG_LAT * math.cos(math.radians(zone.lat))),
            ))
            created += 1
    session.commit()
    return created
