"""The simulator: demo children reporting through the gateway's real OsmAnd
HTTP port over keep-alive connections, exactly as phone apps do."""

from __future__ import annotations

import asyncio
import sys
import time
from urllib.parse import urlencode

import numpy as np

from console.services.runtime import Runtime, start
from db import repositories as repo
from db.store import open_store
from models.simulation import Population, SimReport, SimZone

TICK_S = 0.2
CONNECTIONS = 4
KNOT_MS = 0.514444


def query(device_id: str, r: SimReport) -> str:
    params = {
        "id": device_id, "lat": f"{r.lat:.7f}", "lon": f"{r.lon:.7f}",
        "timestamp": f"{r.t:.3f}", "speed": f"{r.speed_ms / KNOT_MS:.2f}",
        "bearing": f"{r.bearing:.1f}", "accuracy": f"{r.accuracy:.1f}", "batt": str(r.battery),
    }
    if r.sos:
        params["alarm"] = "sos"
    return "/?" + urlencode(params)


class OsmAndClient:
    """A few persistent HTTP/1.1 connections fed from one queue."""

    def __init__(self, host: str, port: int, rt: Runtime) -> None:
        self.host, self.port, self.rt = host, port, rt
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=200_000)
        self.sent = 0
        self.refused = 0

    async def worker(self) -> None:
        while not self.rt.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.5)  # the gateway is (re)starting
                continue
            try:
                while not self.rt.stop.is_set():
                    target = await self.queue.get()
                    writer.write(f"GET {target} HTTP/1.1\r\nHost: gw\r\n\r\n".encode())
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
                    self.sent += 1
                    if not head.startswith(b"HTTP/1.1 200"):
                        self.refused += 1
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                await asyncio.sleep(0.2)
            finally:
                writer.close()


async def run(rt: Runtime) -> None:
    cfg = rt.config
    _, sessions = open_store(cfg.db_url)
    with sessions() as s:
        roster = repo.roster(s)
        zones = repo.zones(s)
    zone_idx = {z.id: i for i, z in enumerate(zones)}
    roster = [r for r in roster if r.zone_id in zone_idx]
    pop = Population(
        device_ids=[r.device_id for r in roster],
        zones=[SimZone(z.lat, z.lon, z.radius_m) for z in zones],
        zone_of=np.array([zone_idx[r.zone_id] for r in roster], dtype=np.int64),
        interval_s=cfg.sim_interval_s,
        first_incident_s=cfg.sim_first_incident_s,
        incident_every_s=cfg.sim_incident_every_s,
    )
    client = OsmAndClient(cfg.osmand_host, cfg.osmand_port, rt)
    workers = [asyncio.create_task(client.worker()) for _ in range(CONNECTIONS)]
    rt.log.info("simulating %d children in %d zones", len(pop), len(zones))
    seen_incidents = 0
    last = time.monotonic()
    next_log = last + 30
    while not rt.should_stop():
        await asyncio.sleep(TICK_S)
        now = time.monotonic()
        pop.advance(now - last)
        last = now
        for inc in pop.incidents[seen_incidents:]:
            rt.log.info("incident: %s by device %s", inc.kind, pop.device_ids[inc.index])
        seen_incidents = len(pop.incidents)
        for r in pop.due_reports(time.time()):
            if client.queue.full():
                break  # the gateway is not keeping up; positions are replaceable
            client.queue.put_nowait(query(pop.device_ids[r.index], r))
        if now >= next_log:
            rt.log.info("sent %d reports (%d refused)", client.sent, client.refused)
            next_log = now + 30
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    rt = start("simulator", argv)
    asyncio.run(run(rt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
