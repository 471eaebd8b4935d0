"""The demo installation: three real safety zones and their children.

Seeding is deterministic (fixed RNG seed) and idempotent, so the demo's
children keep their tokens and devices across restarts. Every demo child
comes with a guardian and that guardian's consent to all services: without
consent nothing may locate a child (Location Information Act §15, §25).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import cast

from sqlalchemy import func, insert, literal, select, text
from sqlalchemy.orm import Session

from db import changes
from db.tables import Child, Consent, Device, DeviceHolding, Guardian, Guardianship, Zone
from models.consent import SERVICES, format_services
from resources import path

_FAMILY = "김이박최정강조윤장임한오서신권황안송류홍"
_GIVEN = "민서준지우하윤도현예은시우수아주원지호서연하준채원유진건우"


@dataclass(frozen=True)
class DemoZone:
    name: str
    kind: str
    lat: float
    lon: float
    radius_m: float
    children: int


def demo_zones() -> list[DemoZone]:
    data = json.loads(path("demo", "zones.json").read_text(encoding="utf-8"))
    return [DemoZone(**z) for z in data["zones"]]


def split_children(total: int | None, zones: list[DemoZone]) -> list[int]:
    """Children per zone: the pilot's numbers, or ``total`` spread in the same
    proportions (every zone gets at least one child when total >= len(zones))."""
    pilot = [z.children for z in zones]
    if total is None:
        return pilot
    if total < 0:
        raise ValueError("children must be >= 0")
    weight = sum(pilot)
    counts = [total * c // weight for c in pilot]
    counts[0] += total - sum(counts)
    return counts


def device_kind(n: int) -> str:
    """Half the demo children wear a GPS watch, a third carry a phone, the
    rest an electronic tag read in the safety zones (u-Seoul's mix today)."""
    k = n % 20
    return "watch" if k < 10 else "phone" if k < 17 else "tag"


def new_device_id(rng: random.Random, kind: str) -> str:
    """Ids shaped like the real ones: a watch's 10-digit id, a phone app's
    IMEI-like number, a tag's EPC-like hex."""
    if kind == "watch":
        return f"88{rng.randrange(10**8):08d}"
    if kind == "phone":
        return f"86{rng.randrange(10**12):012d}"
    return f"E200{rng.getrandbits(32):08X}"


def guardian_phone(n: int) -> str:
    """The n-th demo guardian's mobile number: synthetic, unique up to ten
    million, and in the middle block 0xxx, which is not issued to
    subscribers, so a demo never texts a real person."""
    return f"010-0{n // 10_000 % 1000:03d}-{n % 10_000:04d}"


def _seed_consents(session: Session, children_rows: list[dict[str, object]],
                   now: float) -> None:
    """One guardian per demo child and their consent to every service, as an
    elementary pupil's (under 14) needs. Bulk inserts like the children's:
    guardian ids follow the child ids, so the links and the consents are
    copied from the children table inside the store in one statement each."""
    if not children_rows:
        return
    base = session.scalar(select(func.coalesce(func.max(Guardian.id), 0))) or 0
    session.execute(insert(Guardian), [
        dict(id=base + cast(int, c["id"]), name=f"{c['name']} 보호자",
             phone=guardian_phone(cast(int, c["id"])), email="", created_at=now)
        for c in children_rows])
    if session.get_bind().dialect.name == "postgresql":
        # Explicit ids leave the sequence behind; guardians added later need it ahead.
        session.execute(text("SELECT setval(pg_get_serial_sequence('guardians', 'id'), "
                             "(SELECT max(id) FROM guardians))"))
    guardian_id = (Child.id + base).label("guardian_id")
    session.execute(insert(Guardianship).from_select(
        ["child_id", "guardian_id", "relation"],
        select(Child.id, guardian_id, literal("parent"))))
    session.execute(insert(Consent).from_select(
        ["child_id", "guardian_id", "services", "age_band", "given_at", "recorded_by",
         "withdrawn_by"],
        select(Child.id, guardian_id, literal(format_services(SERVICES)), literal("under14"),
               literal(now), literal("seed"), literal(""))))


def seed_demo(session: Session, children: int | None = None) -> int:
    """Create the demo zones, children, devices, guardians and consents unless
    children are already present. Returns the number of children created
    (0 when already seeded)."""
    if session.scalar(select(func.count()).select_from(Child)):
        return 0
    rng = random.Random(20081001)  # u-Seoul's pilot started in 2008
    now = time.time()
    zones = demo_zones()
    tokens: set[str] = set()
    device_ids: set[str] = set()
    created = 0
    children_rows: list[dict[str, object]] = []
    device_rows: list[dict[str, object]] = []
    for z, count in zip(zones, split_children(children, zones), strict=True):
        zone = Zone(name=z.name, kind=z.kind, lat=z.lat, lon=z.lon, radius_m=z.radius_m)
        session.add(zone)
        session.flush()
        for _ in range(count):
            token = f"C-{rng.getrandbits(28):07X}"
            while token in tokens:
                token = f"C-{rng.getrandbits(28):07X}"
            tokens.add(token)
            name = rng.choice(_FAMILY) + rng.choice(_GIVEN) + rng.choice(_GIVEN)
            created += 1
            children_rows.append(dict(id=created, token=token, name=name, zone_id=zone.id))
            kind = device_kind(created)
            device_id = new_device_id(rng, kind)
            while device_id in device_ids:
                device_id = new_device_id(rng, kind)
            device_ids.add(device_id)
            device_rows.append(
                dict(id=device_id, kind=kind, child_id=created, registered_at=now)
            )
    # Core bulk inserts: a city-scale seed (580k children) takes seconds, not minutes.
    session.execute(insert(Child), children_rows)
    if children_rows and session.get_bind().dialect.name == "postgresql":
        # explicit ids do not move PostgreSQL's sequence: children enrolled
        # later would collide with the seed's
        session.execute(text("SELECT setval(pg_get_serial_sequence('children', 'id'), "
                             "(SELECT max(id) FROM children))"))
    session.execute(insert(Device), device_rows)
    if device_rows:
        session.execute(insert(DeviceHolding), [
            dict(device_id=d["id"], child_id=d["child_id"], since=now) for d in device_rows])
    _seed_consents(session, children_rows, now)
    # what a running engine and gateway follow to reload their roster
    changes.record(session, "roster", "", "seed", "seed", f"{created} children")
    session.commit()
    return created
