"""The simulator against a real backend: every device path it speaks reaches
the real gateway over 127.0.0.1 and is accepted, and its scripted incidents
become alerts in the real engine.

Bus, engine, gateway and simulator run as the supervisor's processes on a
seeded SQLite store, with a small population and short simulator periods so
every path shows up within seconds; the run is bounded by deadlines and the
supervisor stops it. The gateway counts all phone forms as ``osmand``, so the
forms are told apart by what the simulator logs the gateway answered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from console.bus import Subscriber, role_of
from console.config import Config
from console.security import Security
from console.supervisor import Supervisor
from db import repositories as repo
from db.seed import seed_demo
from db.seed_readers import seed_readers
from db.store import open_store
from models.gateway_stats import GatewayCounters
from models.messages import Heartbeat
from tests.console.conftest import Backend, make_config, wait_for

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("bus", "engine", "gateway", "simulator")
PROTOCOLS = ("watch", "osmand", "tag", "carrier")
PHONE_FORMS = ("osmand_get", "osmand_form", "osmand_json")
DEADLINE_S = 45.0


@dataclass
class Simulated:
    backend: Backend
    started: float  # monotonic time the supervisor started the processes


@pytest.fixture
def simulated(data_dir: Path) -> Iterator[Simulated]:
    """200 demo children (about 100 watches, 70 phones, 30 tags), reporting
    every 2 s, a fifth also located by the carrier, watches beating every
    3 s, the first incidents 2 s in."""
    cfg = make_config(data_dir, children=200, sim_interval_s=2.0, sim_first_incident_s=2.0,
                      sim_incident_every_s=600.0, sim_watch_heartbeat_s=3.0,
                      sim_carrier_share=0.2, sim_carrier_every_s=3.0, sim_carrier_lag_s=4.0)
    engine, sessions = open_store(cfg.db_url)
    with sessions() as s:
        seed_demo(s, cfg.children)
        seed_readers(s)
        roster = repo.roster(s)
    engine.dispose()
    sup = Supervisor(cfg, SERVICES)
    started = time.monotonic()
    sup.start()
    try:
        yield Simulated(Backend(cfg, sup, roster), started)
    finally:
        sup.stop()


def gateway_counters(cfg: Config, ready: object, timeout_s: float) -> GatewayCounters:
    """The gateway's counters from its heartbeats, once ``ready(counters)``
    holds (or the last ones seen when the time is up)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, ("sys.heartbeat",), security=Security.console(cfg))
    last = GatewayCounters()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            got = sub.recv(timeout_ms=200)
            if got and isinstance(got[1], Heartbeat) and role_of(got[1].origin) == "gateway":
                last = GatewayCounters.from_stats(got[1].stats)
                last.connections["frames.watch"] = int(got[1].stats.get("frames.watch", 0))
                if ready(last):  # type: ignore[operator]
                    break
    finally:
        sub.close()
        ctx.term()
    return last


def heartbeat_frames(c: GatewayCounters) -> int:
    """Watch frames that carried no report and were not refused: the LKs."""
    return (c.connections.get("frames.watch", 0) - c.accepted.get("watch", 0)
            - c.rejected_total("watch"))


def every_path_delivered(c: GatewayCounters) -> bool:
    return all(c.accepted.get(p, 0) >= 10 for p in PROTOCOLS) and heartbeat_frames(c) >= 10


def simulator_counts(cfg: Config) -> dict[str, int]:
    """The last tally the simulator logged of the gateway's answers."""
    lines = (cfg.log_dir / "simulator.log").read_text(encoding="utf-8").splitlines()
    tallies = [line.split(" delivered ", 1)[1] for line in lines if " delivered {" in line]
    assert tallies, "the simulator logged no tally"
    counts: dict[str, int] = json.loads(tallies[-1])
    return counts


def test_every_device_path_delivers_accepted_fixes(simulated: Simulated) -> None:
    cfg = simulated.backend.config
    c = gateway_counters(cfg, every_path_delivered, DEADLINE_S)
    assert every_path_delivered(c), f"accepted {c.accepted}, LK frames {heartbeat_frames(c)}"
    assert c.rejected == {}, f"the gateway refused simulated input: {c.rejected}"
    assert c.unregistered_devices == 0  # carrier fixes name registered devices only

    # The operator's view of the same counters.
    out = subprocess.run([sys.executable, "-m", "console", "gateway", "stats", "--config",
                          str(simulated.backend.supervisor.config_file), "--timeout", "10"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()[1:]
            if line.strip() and not line.startswith("unregistered")}
    for protocol in PROTOCOLS:
        accepted, rejected = (int(v.replace(",", "")) for v in rows[protocol])
        assert accepted > 0 and rejected == 0, out.stdout
    assert "rejected by reason" not in out.stdout

    # Stop the simulator first (it logs its final tally) and read what the
    # gateway answered each phone form, each watch frame, each feed batch.
    simulated.backend.supervisor.stop()
    counts = simulator_counts(cfg)
    for form in PHONE_FORMS:
        assert counts.get(f"{form}.ok", 0) > 0, counts
    assert counts.get("watch.heartbeats", 0) > 0
    assert counts.get("watch.reply:LK", 0) > 0, counts  # the gateway answered the LKs
    assert counts.get("tag.accepted", 0) > 0 and counts.get("carrier.accepted", 0) > 0
    refused = {k: v for k, v in counts.items()
               if any(w in k for w in ("refused", "rejected", "http_", "dropped"))}
    assert refused == {}, refused


def test_scripted_sos_and_zone_exit_become_alerts(simulated: Simulated) -> None:
    backend = simulated.backend

    def kinds() -> set[str]:
        return {a.kind for a in backend.snapshot().alerts}

    wait_for(lambda: {"sos", "zone_exit"} <= kinds(), DEADLINE_S, "the simulated incidents")
    took = time.monotonic() - simulated.started
    # First incident 2 s after the simulator starts, the exit ~6 s later;
    # the rest is starting five processes on a shared machine.
    assert took < 30, f"alerts took {took:.1f} s from the backend's start"
    alerts = backend.snapshot().alerts
    devices = {r.device_id: r.kind for r in backend.roster}
    for a in alerts:
        assert devices[a.device_id] in ("watch", "phone"), a
        assert a.place.split()[0] in {"성동구", "구로구", "도봉구"}, a
