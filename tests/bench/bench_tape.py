"""Tape benchmark (``childsafe bench tape``): what recording the whole bus
(``db.tape``) costs per hour of traffic, compressed (zlib level 1) and not.

Why: the recorder keeps every bus frame for replay and training; this says
how much disk an hour takes, how much of a core writing it costs, and how
long a trainer waits to read a period back, at the demo's load and at a
city district's.

The traffic is real encoded bus messages (``models.messages``) of the
topics the recorder tapes (``TAPE_TOPICS``: not the engine's position
batches), one ``FixBatch`` from the gateway per 50 ms batch window, for:

- **demo**: 2,600 children (the pilot's), one fix per child every 10 s;
- **100k**: 100,000 children, one fix every 8 s.

Children walk from random points of Seoul (speeds and bearings drift, GPS
accuracy 3-40 m, batteries draining); device ids are shaped like the
demo's (``db.seed.new_device_id``: watch, phone and tag ids in the demo's
mix). The engine also publishes ``zone.counts`` once a second (one count
per school: 2 for the demo, 170 for 100k children), and an SOS opens an
alert every 30 s with two updates after it (acknowledged, then taken);
heartbeats are left out, as the recorder drops them.

The bench simulates ``traffic_s`` seconds of traffic (60 by default, not
``--seconds``) and **extrapolates to an hour**, and to 10 minutes for the
read-back times: the figures per hour are the 60 s figures times 60 (an
hour of city traffic is gigabytes: writing it here would take minutes of a
shared machine). Writing is timed with the writer on a simulated clock, so
blocks are cut exactly as the recorder's (each second, or at the block
size); CPU is the process time spent in ``append``/``maybe_flush``/``close``
(not in generating the traffic, nor the recorder's socket reads). Reading
is the whole simulated period read back through ``TapeReader`` (wall time,
page cache warm), extrapolated; an alerts-only read and a 10 s range read
are measured too. Numbers, not pass/fail.

``python -m tests.bench.bench_tape [--traffic-s S] [--json]`` runs it alone.
"""

from __future__ import annotations

import argparse
import calendar
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from db.seed import device_kind, new_device_id
from db.tape import TapeReader, TapeWriter
from models.messages import (
    AlertOpened,
    AlertUpdated,
    AlertView,
    FixBatch,
    ZoneCounts,
    encode,
    pack,
    topic_of,
)

WINDOW_S = 0.05  # the gateway's and the engine's batch window
TRAFFIC_S = 60.0
HOUR_S = 3600.0
LOADS: tuple[tuple[str, int, float], ...] = (("demo", 2_600, 10.0), ("100k", 100_000, 8.0))
CHILDREN_PER_SCHOOL = 590  # 580,000 children / 588 schools (DESIGN.md's city plan)
ALERT_EVERY_S = 30.0
START = float(calendar.timegm((2026, 12, 7, 7, 59, 30)))  # crosses an hour, as days do
SEOUL = ((37.43, 37.70), (126.80, 127.18))  # lat, lon box

Frame = tuple[float, bytes, bytes]


@dataclass
class Children:
    """Where every simulated child is, and what its device says."""

    ids: list[str]
    lat: np.ndarray
    lon: np.ndarray
    speed: np.ndarray
    bearing: np.ndarray
    battery: np.ndarray
    phase: np.ndarray  # seconds into its reporting interval


def make_children(n: int, interval_s: float, seed: int = 7) -> Children:
    rng = np.random.default_rng(seed)
    ids_rng = random.Random(seed)
    ids = [new_device_id(ids_rng, device_kind(i)) for i in range(n)]
    (la0, la1), (lo0, lo1) = SEOUL
    return Children(
        ids=ids, lat=rng.uniform(la0, la1, n), lon=rng.uniform(lo0, lo1, n),
        speed=rng.gamma(2.0, 0.6, n).astype(np.float32),
        bearing=rng.uniform(0, 360, n).astype(np.float32),
        battery=rng.integers(20, 101, n).astype(np.int8),
        phase=rng.uniform(0, interval_s, n))


def _alert(n: int, kids: Children, slot: int, at: float, state: str = "new") -> AlertView:
    return AlertView(
        id=n, kind="sos", priority=1, state=state,  # type: ignore[arg-type]
        child_token=f"c{slot * 2654435761 % 2**32:08x}", child_slot=slot,
        device_id=kids.ids[slot], lat=float(kids.lat[slot]), lon=float(kids.lon[slot]),
        place="성동구 성수동1가", opened_at=at, zone="Seoul Forest Park", ack_due=at + 30,
        close_due=at + 600, battery=int(kids.battery[slot]), device_kind="watch",
        updated_at=at, acked_by="operator1" if state != "new" else "",
        owner="operator1" if state == "in_progress" else "")


def traffic(children: int, interval_s: float, seconds: float, seed: int = 7,
            start: float = START) -> list[Frame]:
    """``seconds`` of the bus as the recorder receives it (receive time,
    topic, body), in receive order."""
    kids = make_children(children, interval_s, seed)
    rng = np.random.default_rng(seed + 1)
    order = np.argsort(kids.phase)
    phases = kids.phase[order]
    schools = max(1, children // CHILDREN_PER_SCHOOL)
    frames: list[Frame] = []
    seq = {"gateway": 0, "engine": 0}

    def stamp(who: str, at: float) -> dict[str, Any]:
        seq[who] += 1
        return {"seq": seq[who], "ts": at, "origin": f"{who}:4242"}

    windows = round(seconds / WINDOW_S)
    alerts = 0
    for w in range(windows):
        at = start + w * WINDOW_S
        lo, hi = (w * WINDOW_S) % interval_s, (w * WINDOW_S) % interval_s + WINDOW_S
        who = order[np.searchsorted(phases, lo):np.searchsorted(phases, hi)]
        frames += _positions(kids, who, at, rng, stamp)
        if w % round(1 / WINDOW_S) == 0:
            inside = rng.integers(0, CHILDREN_PER_SCHOOL // 2, schools).tolist()
            body = ZoneCounts(zone_ids=list(range(1, schools + 1)), inside=inside,
                              uncertain=[v // 20 for v in inside], **stamp("engine", at))
            frames.append((at + 0.001, topic_of(body), encode(body)))
        second = w * WINDOW_S
        for delay, state in ((0.0, "new"), (5.0, "acknowledged"), (20.0, "in_progress")):
            if (second - delay) % ALERT_EVERY_S < WINDOW_S / 2 and second >= delay:
                n = int((second - delay) // ALERT_EVERY_S) + 1
                view = _alert(n, kids, n * 97 % children, at - delay, state)
                msg: AlertOpened | AlertUpdated = (
                    AlertOpened(alert=view, **stamp("engine", at)) if state == "new" else
                    AlertUpdated(alert=view, action="ack" if state == "acknowledged" else "take",
                                 actor="operator1", **stamp("engine", at)))
                frames.append((at + 0.002, topic_of(msg), encode(msg)))
                alerts += 1
    return frames


def _positions(kids: Children, who: np.ndarray, at: float, rng: np.random.Generator,
               stamp: Any) -> Iterator[Frame]:
    """The gateway's fix batch for the children reporting in this window
    (they move first)."""
    n = len(who)
    if not n:
        return
    kids.bearing[who] = (kids.bearing[who] + rng.normal(0, 15, n)) % 360
    step = kids.speed[who] * 8.0  # metres since their last fix, about
    rad = np.radians(kids.bearing[who])
    kids.lat[who] += step * np.cos(rad) / 111_320.0
    kids.lon[who] += step * np.sin(rad) / 88_000.0
    drain = rng.random(n) < 0.01
    kids.battery[who] = np.maximum(kids.battery[who] - drain, 1)
    t = at - rng.uniform(0.2, 2.0, n)
    flags = (kids.battery[who] < 15).astype(np.uint8) << 2
    envelope = stamp("gateway", at)
    fixes = FixBatch(
        device_ids=[kids.ids[i] for i in who], t=pack("t", t), lat=pack("lat", kids.lat[who]),
        lon=pack("lon", kids.lon[who]), speed=pack("speed", kids.speed[who]),
        bearing=pack("bearing", kids.bearing[who]),
        accuracy=pack("accuracy", rng.gamma(2.0, 6.0, n) + 3.0),
        battery=pack("battery", kids.battery[who]), flags=pack("flags", flags),
        protocol="watch", journal="a1b2c3d4", journal_seq=envelope["seq"], **envelope)
    yield at, b"fix.batch", encode(fixes)


def write(frames: list[Frame], directory: Path, compress: bool) -> dict[str, Any]:
    """Write ``frames`` as the recorder would (a flush check per batch
    window), on a clock that follows the traffic; sizes and CPU."""
    now = [frames[0][0]]
    writer = TapeWriter(directory, clock=lambda: now[0], compress=compress)
    cpu0 = time.process_time()
    for ts, topic, body in frames:
        now[0] = ts
        writer.append(ts, topic, body)
        writer.maybe_flush()
    writer.close()
    cpu = time.process_time() - cpu0
    disk = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    return {"cpu_s": cpu, "disk_bytes": disk, "raw_bytes": writer.raw_bytes,
            "records": writer.records, "blocks": writer.blocks,
            "frame_bytes": sum(len(t) + len(b) for _, t, b in frames)}


def read_back(directory: Path, t0: float, t1: float) -> dict[str, Any]:
    """Wall time to read everything, only the alerts, and a 10 s range."""
    reader = TapeReader(directory)
    out: dict[str, Any] = {}
    for name, lo, hi, prefixes in (("all", t0, t1, None), ("alerts", t0, t1, (b"alert.",)),
                                   ("range_10s", t0 + (t1 - t0) / 2, t0 + (t1 - t0) / 2 + 10,
                                    None)):
        started = time.perf_counter()
        n = sum(len(r.body) for r in reader.read(lo, hi, prefixes))
        out[f"{name}_s"] = time.perf_counter() - started
        out[f"{name}_bytes"] = n
    started = time.perf_counter()
    out["alert_count"] = reader.count(t0, t1, (b"alert.",))
    out["count_s"] = time.perf_counter() - started
    out["skipped"] = reader.skipped
    return out


def run_load(name: str, children: int, interval_s: float, traffic_s: float,
             root: Path) -> dict[str, Any]:
    started = time.perf_counter()
    frames = traffic(children, interval_s, traffic_s)
    gen_s = time.perf_counter() - started
    t0, t1 = frames[0][0], frames[-1][0] + 1.0
    per_hour = HOUR_S / traffic_s
    result: dict[str, Any] = {"name": name, "children": children, "interval_s": interval_s,
                              "traffic_s": traffic_s, "frames": len(frames),
                              "fixes_per_s": children / interval_s, "generate_s": gen_s}
    for label, compress in (("zlib1", True), ("none", False)):
        directory = root / f"{name}-{label}"
        w = write(frames, directory, compress)
        rd = read_back(directory, t0, t1)
        result[label] = {
            **w, **rd,
            "mb_per_hour": w["disk_bytes"] * per_hour / 1e6,
            "cpu_s_per_hour": w["cpu_s"] * per_hour,
            "core_percent": 100.0 * w["cpu_s"] / traffic_s,
            "read_10min_s": rd["all_s"] * 600.0 / traffic_s,
            "read_hour_s": rd["all_s"] * per_hour,
            "read_alerts_hour_s": rd["alerts_s"] * per_hour,
        }
        shutil.rmtree(directory, ignore_errors=True)
    result["ratio"] = result["zlib1"]["disk_bytes"] / result["none"]["disk_bytes"]
    return result


def run(traffic_s: float = TRAFFIC_S,
        loads: tuple[tuple[str, int, float], ...] = LOADS) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="cs-tape-", dir="/tmp"))
    try:
        return {"runs": [run_load(n, c, i, traffic_s, root) for n, c, i in loads],
                "traffic_s": traffic_s}
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ report


def headline(result: dict[str, Any]) -> list[str]:
    out = []
    for r in result["runs"]:
        z, u = r["zlib1"], r["none"]
        out.append(
            f"tape {r['name']} ({r['children']:,} children, 1 fix/{r['interval_s']:g} s), per "
            f"hour: zlib-1 {z['mb_per_hour']:,.0f} MB = {r['ratio']:.2f}× of "
            f"{u['mb_per_hour']:,.0f} MB uncompressed (the tape's default); write CPU "
            f"{z['cpu_s_per_hour']:,.1f} s "
            f"({z['core_percent']:.2f}% of a core) vs {u['cpu_s_per_hour']:,.1f} s; read an "
            f"hour {z['read_hour_s']:,.1f} s vs {u['read_hour_s']:,.1f} s "
            f"[extrapolated from {r['traffic_s']:g} s]")
    return out


def format_result(result: dict[str, Any]) -> str:
    lines = [f"tape (db.tape): {result['traffic_s']:g} s of simulated bus traffic per load, "
             "written and read back; per hour and 10 minutes = extrapolated (× "
             f"{HOUR_S / result['traffic_s']:g}, × {600 / result['traffic_s']:g}); read times "
             "are wall time with a warm page cache"]
    for r in result["runs"]:
        z = r["zlib1"]
        lines.append(
            f"  {r['name']}: {r['children']:,} children, {r['fixes_per_s']:,.0f} fixes/s, "
            f"{r['frames']:,} frames ({z['frame_bytes'] / r['traffic_s'] / 1e3:,.1f} kB/s of "
            f"frames), {z['blocks']:,} blocks; {z['alert_count']} alert messages")
        lines.append(f"    {'':14} {'MB/hour':>9} {'ratio':>6} {'CPU s/h':>8} {'% core':>7} "
                     f"{'read 10m':>9} {'read 1h':>8} {'alerts 1h':>9} {'10 s range':>10}")
        for label, text in (("zlib1", "zlib level 1"), ("none", "none (default)")):
            v = r[label]
            lines.append(
                f"    {text:14} {v['mb_per_hour']:9,.1f} "
                f"{v['disk_bytes'] / r['none']['disk_bytes']:6.2f} {v['cpu_s_per_hour']:8,.1f} "
                f"{v['core_percent']:7.2f} {v['read_10min_s']:8,.2f}s {v['read_hour_s']:7,.2f}s "
                f"{v['read_alerts_hour_s']:8,.3f}s {v['range_10s_s'] * 1e3:8,.1f}ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traffic-s", type=float, default=TRAFFIC_S)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(args.traffic_s)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print("\n".join(headline(result)))
        print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
