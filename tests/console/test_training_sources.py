"""What a training session plays, without processes: a taped period with a
scenario's incidents on top (``ScriptedTape``), a seeded population
(``PopulationSource``), and the player's pace (``Player``) on a fake clock."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from console.training.player import SEEK_SPEED, STEP_S, Player, Refused, merge
from console.training.sources import (
    Home,
    Played,
    PopulationSource,
    ScriptedIncident,
    ScriptedTape,
    TapeSource,
    one_fix,
)
from db.tape import TapeWriter, tape_dir
from models.geo import to_map, to_wgs84
from models.messages import (
    FLAG_LOW_BATTERY,
    FLAG_SOS,
    CamStatus,
    FixBatch,
    ReplayClock,
    encode,
    fix_columns,
    topic_of,
)
from models.simulation import SimZone

T0 = 1_796_000_000.0
HOME = (37.5080, 126.8900)  # a school's centre
A, B = "8800000001", "8800000002"


def tape_with_two_devices(data_dir: Path, seconds: int = 120) -> None:
    """A and B inside the school, reporting every 2 s, journal fields set as
    the live gateway sets them."""
    writer = TapeWriter(tape_dir(data_dir))
    x, y = to_map(*HOME)
    for k in range(0, seconds, 2):
        t = T0 + k
        for i, dev in enumerate((A, B)):
            lat, lon = to_wgs84(x + 20 * i + k * 0.1, y + 10)
            msg = msgspec.structs.replace(one_fix(dev, t, lat, lon, 80, 0), journal="e1",
                                          journal_seq=k + i + 1)
            writer.append(t + 0.01 * i, topic_of(msg), encode(msg))
    writer.close()


def fixes(played: list[Played], device: str) -> list[tuple[float, float, float, int, int]]:
    out = []
    for p in played:
        if isinstance(p.msg, FixBatch):
            cols = fix_columns(p.msg)
            for d, t, lat, lon, bat, fl in zip(p.msg.device_ids, cols["t"], cols["lat"],
                                               cols["lon"], cols["battery"], cols["flags"],
                                               strict=True):
                if d == device:
                    out.append((float(t), float(lat), float(lon), int(bat), int(fl)))
    return out


def test_a_taped_period_plays_with_the_scenario_incidents_on_top(data_dir: Path) -> None:
    tape_with_two_devices(data_dir)
    x, y = to_map(*HOME)
    incidents = [ScriptedIncident("cam", "camera_offline", 5.0, camera=7),
                 ScriptedIncident("sos", "sos", 11.0, 0),
                 ScriptedIncident("flat", "battery_dies", 21.0, 1),
                 ScriptedIncident("out", "leave_zone", 31.0, 0)]
    src = ScriptedTape(TapeSource(data_dir, T0, T0 + 120), incidents, [A, B],
                       {A: Home(x, y, 100.0), B: Home(x, y, 100.0)})
    played = src.take(T0 + 120)
    assert [p.t for p in played] == sorted(p.t for p in played)

    cams = [p for p in played if isinstance(p.msg, CamStatus)]
    assert len(cams) == 1 and cams[0].msg.camera_id == 7 and cams[0].t == T0 + 5

    a = fixes(played, A)
    sos = [f for f in a if f[4] & FLAG_SOS]
    assert len(sos) == 1 and sos[0][0] == T0 + 11
    before = [f for f in a if f[0] < T0 + 11 and not f[4]][-1]
    assert sos[0][1:3] == before[1:3]  # where the device was last seen

    b = fixes(played, B)
    flat = [f for f in b if f[4] & FLAG_LOW_BATTERY]
    assert len(flat) == 1 and flat[0][3] == 3 and flat[0][0] == T0 + 21
    assert not [f for f in b if f[0] > T0 + 21]  # its recorded fixes are left out

    walk = [f for f in a if f[0] > T0 + 31]
    dist = [math.hypot(*(np.subtract(to_map(f[1], f[2]), (x, y)))) for f in walk]
    assert max(dist) > 100.0 + 100.0  # well out of the zone
    out_until = T0 + 31 + (220.0 - dist[0]) / 3.0 + 90.0
    during = [f for f in walk if f[0] < out_until - 2]
    assert all(abs(f[0] - round(f[0])) < 1e-6 and (f[0] - T0 - 31) % 2 == 0 for f in during)
    assert [i.incident for i in src.injected] == ["cam", "sos", "flat", "out"]
    # the journal's numbering of the live bus is dropped on the way
    assert all(p.msg.journal_seq == 0 for p in played if isinstance(p.msg, FixBatch))

    src.restart()  # a seek back: the same messages again
    again = src.take(T0 + 120)
    assert [(p.t, encode(p.msg)) for p in again] == [(p.t, encode(p.msg)) for p in played]


def test_a_population_plays_its_incidents_on_its_clock() -> None:
    zone = SimZone(HOME[0], HOME[1], 150.0)
    ids = [f"88000001{i:02d}" for i in range(20)]
    src = PopulationSource(device_ids=ids, kinds=["watch"] * 20, zones=[zone],
                           zone_of=np.zeros(20, dtype=np.int64), seed=3, t0=T0, t1=T0 + 60,
                           incidents=[ScriptedIncident("sos", "sos", 10.0, 4),
                                      ScriptedIncident("cam", "camera_offline", 12.0,
                                                       camera=3)])
    played = src.take(T0 + 60)
    assert src.done()
    sos = [f for f in fixes(played, ids[4]) if f[4] & FLAG_SOS]
    assert len(sos) == 1 and T0 + 10 <= sos[0][0] <= T0 + 11
    assert {i.incident for i in src.injected} == {"sos", "cam"}
    assert [m.label for m in src.marks()] == ["sos", "cam"]
    first = [(p.t, encode(p.msg)) for p in played]
    src.restart()
    assert [(p.t, encode(p.msg)) for p in src.take(T0 + 60)] == first


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Listed:
    """A source of one fix every second."""

    def __init__(self) -> None:
        self.t0, self.t1 = T0, T0 + 100
        self.restarts = 0
        self.restart()

    def restart(self) -> None:
        self.restarts += 1
        self.next = self.t0 + 1

    def take(self, until: float) -> list[Played]:
        out = []
        while self.next <= until:
            out.append(Played(self.next, one_fix(A, self.next, *HOME, 80, 0)))
            self.next += 1
        return out

    def marks(self) -> list:
        return []


def test_the_player_paces_pauses_steps_and_seeks() -> None:
    clock, sent, restarts = Clock(), [], []
    src = Listed()
    p = Player(src, sent.append, restarts.append, monotonic=clock)  # type: ignore[arg-type]

    def played() -> list[FixBatch]:
        return [m for m in sent if isinstance(m, FixBatch)]

    p.play(8.0)
    clock.now += 1.0
    p.turn()
    assert p.t == pytest.approx(T0 + 8)
    # one merged batch per turn, after the clock saying what time it is
    assert len(played()) == 1 and len(played()[0].device_ids) == 8
    clocks = [m for m in sent if isinstance(m, ReplayClock)]
    assert clocks[-1].t == pytest.approx(T0 + 8) and clocks[-1].speed == 8.0
    assert sent.index(clocks[-1]) < sent.index(played()[0])

    p.pause()
    clock.now += 5.0
    p.turn()
    assert p.t == pytest.approx(T0 + 8)
    assert [m for m in sent if isinstance(m, ReplayClock)][-1].speed == 0.0
    p.step()
    assert p.t == pytest.approx(T0 + 8 + STEP_S)
    with pytest.raises(Refused):
        p.set_speed(3.0)

    p.seek(T0 + 50)  # forward: played through at SEEK_SPEED
    assert not restarts
    clock.now += 42.0 / SEEK_SPEED + 0.01
    p.turn()
    assert p.t == pytest.approx(T0 + 50) and p.target is None and not p.playing
    n = sum(len(b.device_ids) for b in played())
    assert n == 50  # every fix on the way, none twice

    p.seek(T0 + 20)  # back: the engine restarts, the source plays again from t0
    assert restarts == [T0] and src.restarts == 2 and p.t == T0
    clock.now += 1.0
    p.turn()
    assert p.t == pytest.approx(T0 + 20)
    with pytest.raises(Refused):
        p.seek(T0 + 500)


def test_merge_keeps_order_and_readers() -> None:
    a = one_fix(A, T0, *HOME, 80, 0)
    b = msgspec.structs.replace(one_fix(B, T0 + 1, *HOME, 70, FLAG_SOS), readers=["R1"])
    m = merge([a, b])
    cols = fix_columns(m)
    assert m.device_ids == [A, B] and m.readers == ["", "R1"]
    assert list(cols["battery"]) == [80, 70] and list(cols["flags"]) == [0, FLAG_SOS]
