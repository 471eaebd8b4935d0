"""The child-safety services end to end: real gateway, engine, notifier and a
real SMTP server on 127.0.0.1, with the local clock placed just before noon
(``local_utc_offset_s``) so that every timetable here is today's.

One backend plays a school morning for six children of Sindorim Elementary
and Sinhak Elementary: an arrival is mailed to the guardian; a child who
does not arrive raises "not arrived" at start + grace, which clears when
the child comes; leaving at dismissal is a notice and leaving during class
an alert; a school closed today expects no one. Lost signal has a backend
of its own (every expected phone would fall silent otherwise)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from db import repositories as repo
from db import timetables
from db.store import open_store
from db.tables import Child, Fix, Guardian, Guardianship, Notice
from models.geo import to_map, to_wgs84
from models.timetable import local_day
from tests.console.conftest import (
    Backend,
    make_config,
    running_backend,
    wait_for,
    wait_for_heartbeat,
)
from tests.console.smtp_server import Mailbox, smtp_server

NOON = 12 * 3600.0
LEAD_S = 12.0  # local time when the backend starts: this long before noon
GRACE_S = 5.0


def offset_for_noon_in(seconds: float) -> float:
    """A UTC offset (>= 0) that makes local time noon ``seconds`` from now."""
    return (NOON - (time.time() + seconds)) % 86400.0


def away(lat: float, lon: float, north_m: float) -> tuple[float, float]:
    x, y = to_map(lat, lon)
    return to_wgs84(x, y + north_m)


def alerts_of(b: Backend, token: str, kind: str) -> list[object]:
    return [a for a in b.snapshot().alerts if a.child_token == token and a.kind == kind]


@pytest.fixture
def morning(data_dir: Path) -> Iterator[tuple[Backend, Mailbox, dict[str, tuple[str, str]]]]:
    """The backend at 11:59:48 local, six children's timetables set (a slow
    start only brings the noon deadlines nearer)."""
    with smtp_server() as (box, port):
        offset = offset_for_noon_in(LEAD_S)
        cfg = make_config(data_dir, children=120, local_utc_offset_s=offset,
                          arrival_grace_s=GRACE_S, departure_grace_s=GRACE_S,
                          dismissal_window_s=600.0, deadline_settle_s=0.0,
                          notifier_adapter="smtp", smtp_port=port,
                          lost_signal_s={"watch": 0.0, "phone": 0.0, "tag": 0.0})
        cast: dict[str, tuple[str, str]] = {}

        def seed(s: Session) -> None:
            roster = repo.roster(s)
            zones = {z.name: z for z in repo.zones(s)}
            kinds = {r.device_id: r.kind for r in roster}
            phones = {name: [r for r in roster if r.zone_id == z.id
                             and kinds[r.device_id] == "phone"] for name, z in zones.items()}
            sindorim, sinhak = phones["Sindorim Elementary"], phones["Sinhak Elementary"]
            roles = {"arrives": (sindorim[0], 11 * 60 + 59, 12 * 60 + 30),
                     "absent": (sindorim[1], 12 * 60, 12 * 60 + 30),
                     "goes_home": (sindorim[2], 11 * 60 + 30, 12 * 60 + 5),
                     "runs_off": (sindorim[3], 11 * 60, 13 * 60),
                     "closed": (sinhak[0], 12 * 60, 12 * 60 + 30)}
            weekday = local_day(time.time() + LEAD_S, offset).weekday()
            for role, (r, start, end) in roles.items():
                zone = next(n for n, z in zones.items() if z.id == r.zone_id)
                timetables.set_slot(s, r.token, weekday, zone, "school", start, end, "test")
                cast[role] = (r.token, r.device_id)
                for g in s.scalars(select(Guardian).join(Guardianship).where(
                        Guardianship.child_id == select(Child.id).where(
                            Child.token == r.token).scalar_subquery())):
                    g.email = f"guardian.{r.token.lower()}@example.kr"
            today = local_day(time.time() + LEAD_S, offset)
            timetables.add_day(s, today, "개교기념일", "test", zone_name="Sinhak Elementary")

        with running_backend(cfg, seed=seed) as b:
            yield b, box, cast


def test_a_school_morning(morning: tuple[Backend, Mailbox, dict[str, tuple[str, str]]]) -> None:
    b, box, cast = morning
    sindorim = next(z for z in b.snapshot().zones if z.name == "Sindorim Elementary")
    inside = (sindorim.lat, sindorim.lon)
    outside = away(*inside, sindorim.radius_m + 300)
    t = time.time()

    # arrives: seen on the way, then inside: an arrival notice, mailed
    token, device = cast["arrives"]
    assert b.fix(device, *outside, t=t)[0] == 200
    time.sleep(0.3)
    assert b.fix(device, *inside, t=t + 1)[0] == 200
    wait_for(lambda: any(token.lower() in str(m["To"]) for m in box.messages), 20,
             "the arrival notice by e-mail")
    mail = next(m for m in box.messages if token.lower() in str(m["To"]))
    assert "도착" in str(mail["Subject"]) and "Sindorim Elementary" in str(mail["Subject"])

    # goes_home: in school, then out inside the dismissal window: a notice, no alert
    token_h, device_h = cast["goes_home"]
    assert b.fix(device_h, *inside, t=t)[0] == 200
    time.sleep(0.3)
    assert b.fix(device_h, *outside, t=t + 1)[0] == 200
    # runs_off: in class until 13:00, out now: an alert
    token_r, device_r = cast["runs_off"]
    assert b.fix(device_r, *inside, t=t)[0] == 200
    time.sleep(0.3)
    assert b.fix(device_r, *outside, t=t + 1)[0] == 200
    wait_for(lambda: alerts_of(b, token_r, "zone_exit"), 10, "the runaway's zone exit alert")
    assert alerts_of(b, token_r, "zone_exit")[0].zone == "Sindorim Elementary"

    # absent: nothing by 12:00 + grace: "not arrived"; the school closed today expects no one
    token_a, device_a = cast["absent"]
    wait_for(lambda: alerts_of(b, token_a, "not_arrived"), LEAD_S + 30, "not arrived")
    token_c, _ = cast["closed"]
    assert not alerts_of(b, token_c, "not_arrived")
    assert not alerts_of(b, token_h, "zone_exit")

    # the absent child turns up: the untouched alert clears itself
    now = time.time()
    assert b.fix(device_a, *outside, t=now)[0] == 200
    time.sleep(0.3)
    assert b.fix(device_a, *inside, t=now + 1)[0] == 200
    wait_for(lambda: not alerts_of(b, token_a, "not_arrived"), 10, "not arrived cleared")

    engine, sessions = open_store(b.config.db_url)
    try:
        def notices(tok: str) -> list[tuple[str, str]]:
            with sessions() as s:
                child = s.scalar(select(Child.id).where(Child.token == tok))
                return [(n.kind, n.state) for n in s.scalars(
                    select(Notice).where(Notice.child_id == child))]

        wait_for(lambda: ("school_departure", "sent") in notices(token_h), 20,
                 "the departure notice sent")
        assert ("school_arrival", "sent") in notices(token)
        assert not any(kind == "school_departure" for kind, _ in notices(token_r))
    finally:
        engine.dispose()


def test_lost_signal_raises_and_a_fix_clears_it(data_dir: Path) -> None:
    offset = offset_for_noon_in(0.0)
    cfg = make_config(data_dir, children=30, local_utc_offset_s=offset, deadline_settle_s=0.0,
                      lost_signal_s={"watch": 0.0, "phone": 4.0, "tag": 0.0})
    cast: dict[str, tuple[str, str]] = {}

    def seed(s: Session) -> None:
        roster = repo.roster(s)
        kinds = {r.device_id: r.kind for r in roster}
        zones = {z.id: z.name for z in repo.zones(s)}
        r = next(r for r in roster if kinds[r.device_id] == "phone"
                 and zones[r.zone_id].endswith("Elementary"))
        weekday = local_day(time.time(), offset).weekday()
        timetables.set_slot(s, r.token, weekday, zones[r.zone_id], "school", 11 * 60,
                            13 * 60, "test")
        cast["child"] = (r.token, r.device_id)

    with running_backend(cfg, seed=seed) as b:
        token, device = cast["child"]
        zone = next(z for z in b.snapshot().zones
                    if z.id == next(r.zone_id for r in b.roster if r.token == token))
        assert b.fix(device, zone.lat, zone.lon)[0] == 200
        wait_for(lambda: alerts_of(b, token, "lost_signal"), 15, "the lost signal alert")
        alert = alerts_of(b, token, "lost_signal")[0]
        assert alert.position_is_last_known
        # the engine restarts while the child is lost: still one open alert,
        # and it is the next fix, not the restart, that ends it
        old = b.supervisor.pid("engine")
        assert old is not None
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: b.supervisor.pid("engine") not in (None, old), 15, "engine restart")
        wait_for(lambda: alerts_of(b, token, "lost_signal"), 15, "the alert after the restart")
        time.sleep(1.5)
        assert [a.id for a in alerts_of(b, token, "lost_signal")] == [alert.id]
        assert b.fix(device, zone.lat, zone.lon)[0] == 200
        wait_for(lambda: not alerts_of(b, token, "lost_signal"), 10, "the alert cleared")
        # a child not expected anywhere (no timetable) is never "lost"
        other = next(r for r in b.roster if r.token != token)
        assert not alerts_of(b, other.token, "lost_signal")


def test_far_off_the_usual_routes_is_unusual_movement(data_dir: Path) -> None:
    """Four days of a child's walks to school in the store: the engine learns
    the corridor at start; a fix 3 km off it is an alert, and being back on
    the route is written on it."""
    cfg = make_config(data_dir, children=30)
    cast: dict[str, tuple[str, str]] = {}

    def seed(s: Session) -> None:
        r = next(r for r in repo.roster(s) if r.kind == "phone")
        zone = next(z for z in repo.zones(s) if z.id == r.zone_id)
        cast["child"] = (r.token, r.device_id)
        now = time.time()
        rows = []
        for day in range(5, 0, -1):
            for i in range(30):  # 1.5 km home to school, a fix every 10 minutes of replay
                lat, lon = away(zone.lat, zone.lon, -1500 + i * 50)
                rows.append(dict(device_id=r.device_id, t=now - day * 86400 + i * 600, lat=lat,
                                 lon=lon, speed=1.0, bearing=0.0, accuracy=8.0, battery=80,
                                 flags=0))
        s.execute(insert(Fix), rows)

    with running_backend(cfg, seed=seed) as b:
        token, device = cast["child"]
        zone = next(z for z in b.snapshot().zones
                    if z.id == next(r.zone_id for r in b.roster if r.token == token))
        wait_for_heartbeat(b.config, "engine", "corridors_learned", 1.0)
        assert b.fix(device, *away(zone.lat, zone.lon, -800))[0] == 200  # on the way
        time.sleep(1.0)
        assert not alerts_of(b, token, "unusual_movement")
        assert b.fix(device, *away(zone.lat, zone.lon, 3500))[0] == 200
        wait_for(lambda: alerts_of(b, token, "unusual_movement"), 10, "unusual movement")
        assert b.fix(device, *away(zone.lat, zone.lon, -500))[0] == 200
        wait_for(lambda: alerts_of(b, token, "unusual_movement")[0].last_note
                 == "back on the usual routes", 10, "the return noted")


def test_jitter_and_vague_fixes_at_a_fence_raise_nothing_a_real_exit_does(
        data_dir: Path) -> None:
    """Through the gateway: a phone jittering ±20 m across its school's fence,
    then cell-sized fixes outside it, never make an exit; staying out for
    the zone kind's dwell does, once."""
    cfg = make_config(data_dir, children=30, fence_dwell_s={"school": 6.0, "park": 6.0})
    with running_backend(cfg) as b:
        zones = {z.id: z for z in b.snapshot().zones}
        engine, sessions = open_store(cfg.db_url)
        with sessions() as s:
            kinds = {r.device_id: r.kind for r in repo.roster(s)}
        engine.dispose()
        r = next(r for r in b.roster if kinds[r.device_id] == "phone"
                 and zones[r.zone_id].kind == "school")
        zone = zones[r.zone_id]
        t0 = time.time() - 120.0

        def at(i: float, metres_out: float, accuracy: float = 8.0) -> None:
            lat, lon = away(zone.lat, zone.lon, zone.radius_m + metres_out)
            assert b.send(id=r.device_id, lat=lat, lon=lon, timestamp=t0 + i,
                          accuracy=accuracy)[0] == 200

        at(0, -150)  # well inside: seen there first
        for i in range(1, 21):  # 20 s of ±20 m jitter, a fix a second
            at(i, 20 if i % 2 else -20)
        for i in range(21, 41):  # 20 s of a carrier's cell fixes just outside
            at(i, 60, accuracy=400.0)
        time.sleep(1.5)
        assert not alerts_of(b, r.token, "zone_exit")
        for i in range(41, 51):  # out for 10 s, past the 6 s dwell
            at(i, 120)
        wait_for(lambda: alerts_of(b, r.token, "zone_exit"), 10, "the real exit's alert")
        assert alerts_of(b, r.token, "zone_exit")[0].count == 1
