"""What security costs: the bus and the whole pipeline with CURVE on, beside
the same runs with it off, in one run, as ratios.

- ``bus``: a real bus process (the proxy that checks every message's key,
  topic and origin) between one publisher holding the gateway's key and one
  subscriber holding a console's, both plain when security is off: batches
  of 1,000 fixes per second through it, a bounded count.
- ``pipeline``: ``bench_pipeline`` (device frames → gateway → engine →
  store, SOS latency) once with ``bus_security = "off"`` and once with
  ``"curve"``, on the same number of children.

``childsafe bench security [--seconds S]``; nothing here asserts.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BUS_BATCHES = 3000  # messages per bus run (each one FixBatch of BATCH_FIXES)
BATCH_FIXES = 1000
MODES = ("off", "curve")


def _batch(n: int) -> Any:
    import numpy as np

    from models.messages import FixBatch, pack

    now = time.time()
    return FixBatch(device_ids=[f"D{i:07d}" for i in range(n)], t=pack("t", np.full(n, now)),
                    lat=pack("lat", np.full(n, 37.5)), lon=pack("lon", np.full(n, 127.0)),
                    speed=pack("speed", np.zeros(n)), bearing=pack("bearing", np.zeros(n)),
                    accuracy=pack("accuracy", np.full(n, 8.0)),
                    battery=pack("battery", np.full(n, 80)), flags=pack("flags", np.zeros(n)))


def bus_run(mode: str, batches: int = BUS_BATCHES, timeout_s: float = 60.0) -> dict[str, float]:
    """Batches/s a subscriber receives through a real bus process."""
    import zmq

    from console.bus import Publisher, Subscriber
    from console.config import Config
    from console.security import Security
    from console.supervisor import Supervisor

    data_dir = Path(tempfile.mkdtemp(prefix="csb-sec-", dir="/tmp"))
    cfg = Config(data_dir=data_dir, bus_security=mode)  # type: ignore[arg-type]
    cfg.ensure_dirs()
    sup = Supervisor(cfg, ("bus",))
    sup.start()  # makes the keys when security is on
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, cfg.bus_pub, origin="gateway", security=Security.of(cfg, "gateway"))
    sub = Subscriber(ctx, cfg.bus_sub, ("fix.batch",), security=Security.console(cfg))
    msg = _batch(BATCH_FIXES)
    try:
        deadline = time.monotonic() + 10  # until the subscription has reached the proxy
        while time.monotonic() < deadline and sub.recv(50) is None:
            pub.send(msg)
        while sub.recv(200) is not None:
            pass
        got, started = 0, time.perf_counter()
        end = time.monotonic() + timeout_s
        for i in range(batches):
            pub.send(msg)
            if i % 50 == 49:  # keep under the high-water marks: never measure drops
                while got < i - 200 and time.monotonic() < end:
                    got += sub.recv(100) is not None
        while got < batches and time.monotonic() < end:
            if sub.recv(500) is None:
                break
            got += 1
        elapsed = time.perf_counter() - started
    finally:
        pub.close()
        sub.close()
        ctx.term()
        sup.stop()
    return {"batches": float(got), "sent": float(batches), "seconds": elapsed,
            "batches_per_s": got / elapsed, "fixes_per_s": got * BATCH_FIXES / elapsed}


def run(seconds: float, children: int | None = None, pipeline: bool = True,
        bus_batches: int = BUS_BATCHES) -> dict[str, Any]:
    from tests.bench import bench_pipeline as bp

    result: dict[str, Any] = {"bus": {m: bus_run(m, bus_batches) for m in MODES},
                              "pipeline": {}}
    if pipeline:
        for mode in MODES:
            result["pipeline"][mode] = bp.run(children=children or bp.DEFAULT_CHILDREN,
                                              seconds=seconds, bus_security=mode)
    return result


def _ratio(on: float, off: float) -> str:
    return f"{on / off:.2f}×" if off and math.isfinite(on) and math.isfinite(off) else "n/a"


def headline(r: dict[str, Any]) -> list[str]:
    off, on = r["bus"]["off"], r["bus"]["curve"]
    ratio = _ratio(on["fixes_per_s"], off["fixes_per_s"])
    out = [f"bus with CURVE and per-message rights: {on['fixes_per_s']:,.0f} fixes/s "
           f"({on['batches_per_s']:,.0f} batches/s) = {ratio} of the same bus with security "
           f"off ({off['fixes_per_s']:,.0f}/s)"]
    p = r["pipeline"]
    if p:
        sat_off, sat_on = p["off"]["phases"][0], p["curve"]["phases"][0]
        out.append(f"pipeline with CURVE: {sat_on['end_to_end_per_s']:,.0f} fixes/s = "
                   f"{_ratio(sat_on['end_to_end_per_s'], sat_off['end_to_end_per_s'])} of "
                   f"{sat_off['end_to_end_per_s']:,.0f}/s with it off")
        sos_off, sos_on = p["off"]["phases"][-1], p["curve"]["phases"][-1]
        out.append(f"SOS p99 with CURVE: {sos_on['sos_p99_ms']:,.0f} ms = "
                   f"{_ratio(sos_on['sos_p99_ms'], sos_off['sos_p99_ms'])} of "
                   f"{sos_off['sos_p99_ms']:,.0f} ms with it off ({sos_on['sos_samples']} and "
                   f"{sos_off['sos_samples']} samples)")
    return out


def format_result(r: dict[str, Any]) -> str:
    from tests.bench import bench_pipeline as bp

    lines = ["security: CURVE off vs on"]
    for mode in MODES:
        b = r["bus"][mode]
        lines.append(f"  bus {mode:>5}: {b['batches']:,.0f} of {b['sent']:,.0f} batches of "
                     f"{BATCH_FIXES} fixes in {b['seconds']:.2f} s")
    for mode, res in r["pipeline"].items():
        lines.append(f"  pipeline, bus_security = {mode}:")
        lines.append("    " + bp.format_result(res).replace("\n", "\n    "))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_security")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--children", type=int, default=None)
    p.add_argument("--bus-only", action="store_true")
    args = p.parse_args(argv)
    r = run(args.seconds, args.children, pipeline=not args.bus_only)
    print("\n".join(headline(r)))
    print(format_result(r))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
