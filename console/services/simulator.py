"""The simulator: demo children reaching the gateway exactly as real devices
do — watches over the 3G TCP protocol, phones over OsmAnd HTTP, and tags
read by the safety zones' readers, which post their reads in batches."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlencode

import numpy as np

from console.gateway.watch import encode as watch_frame
from console.services.runtime import Runtime, start
from db import repositories as repo
from db.store import open_store
from models.geo import to_map
from models.simulation import Population, SimReport, SimZone

TICK_S = 0.2
PHONE_CONNECTIONS = 4
WATCH_CONNECTIONS = 64  # watches share a few sockets here; real ones have one each
KNOT_MS = 0.514444
SOS_STATUS = 0x00010000  # status bit 16 of a watch's AL frame


def osmand_target(device_id: str, r: SimReport) -> str:
    params = {
        "id": device_id, "lat": f"{r.lat:.7f}", "lon": f"{r.lon:.7f}",
        "timestamp": f"{r.t:.3f}", "speed": f"{r.speed_ms / KNOT_MS:.2f}",
        "bearing": f"{r.bearing:.1f}", "accuracy": f"{r.accuracy:.1f}", "batt": str(r.battery),
    }
    if r.sos:
        params["alarm"] = "sos"
    return "/?" + urlencode(params)


def watch_report(device_id: str, r: SimReport) -> bytes:
    """A UD (or, for an SOS, AL) frame with the fields in the order watches
    send them; no cell towers or access points."""
    when = time.gmtime(r.t)
    status = SOS_STATUS if r.sos else 0
    content = (
        f"{'AL' if r.sos else 'UD'},{time.strftime('%d%m%y,%H%M%S', when)},A,"
        f"{abs(r.lat):.6f},{'N' if r.lat >= 0 else 'S'},{abs(r.lon):.6f},"
        f"{'E' if r.lon >= 0 else 'W'},{r.speed_ms * 3.6:.1f},{r.bearing:.1f},30.0,9,90,"
        f"{r.battery},0,0,{status:08X},0"
    )
    return watch_frame("3G", device_id, content)


class Senders:
    """Keep-alive connections to the gateway's ports, fed from queues; a
    full queue drops the newest report (positions are replaceable)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        cfg = rt.config
        self.host = cfg.osmand_host
        self.http: asyncio.Queue[tuple[int, str, bytes]] = asyncio.Queue(maxsize=100_000)
        self.watch: list[asyncio.Queue[bytes]] = [asyncio.Queue(maxsize=10_000)
                                                  for _ in range(WATCH_CONNECTIONS)]
        self.sent = 0
        self.refused = 0

    def tasks(self) -> list[asyncio.Task[None]]:
        return ([asyncio.create_task(self._http_worker()) for _ in range(PHONE_CONNECTIONS)]
                + [asyncio.create_task(self._watch_worker(q)) for q in self.watch])

    async def _http_worker(self) -> None:
        while not self.rt.stop.is_set():
            pending: tuple[int, str, bytes] | None = None
            try:
                conns: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
                while not self.rt.stop.is_set():
                    pending = await self.http.get()
                    port, target, body = pending
                    if port not in conns:
                        conns[port] = await asyncio.open_connection(self.host, port)
                    reader, writer = conns[port]
                    method = "POST" if body else "GET"
                    writer.write(f"{method} {target} HTTP/1.1\r\nHost: gw\r\nContent-Type: "
                                 f"application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                                 .encode() + body)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
                    reply = await reader.readexactly(length)
                    self.sent += 1
                    if not head.startswith(b"HTTP/1.1 200") or reply.startswith(b"refused"):
                        self.refused += 1
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                await asyncio.sleep(0.5)  # the gateway is (re)starting

    async def _watch_worker(self, queue: asyncio.Queue[bytes]) -> None:
        port = self.rt.config.watch_port
        while not self.rt.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, port)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            try:
                while not self.rt.stop.is_set():
                    frame = await queue.get()
                    writer.write(frame)
                    if b"*AL," in frame[:48]:
                        await reader.readuntil(b"]")  # the watch waits for its AL reply
                    self.sent += 1
            except (OSError, asyncio.IncompleteReadError, ValueError):
                await asyncio.sleep(0.2)
            finally:
                writer.close()


class TagReaders:
    """The zones' readers: a tag within a reader's range is read, and each
    reader posts its reads once a second."""

    def __init__(self, readers: list[tuple[str, float, float, float]]) -> None:
        self.ids = [r[0] for r in readers]
        lat = np.array([r[1] for r in readers], dtype=float)
        lon = np.array([r[2] for r in readers], dtype=float)
        self.x, self.y = to_map(lat, lon) if readers else (np.empty(0), np.empty(0))
        self.range = np.array([r[3] for r in readers], dtype=float)
        self.reads: list[dict[str, object]] = []

    def see(self, tag_id: str, r: SimReport) -> None:
        if not self.ids:
            return
        x, y = to_map(np.array([r.lat]), np.array([r.lon]))
        d = np.hypot(self.x - x[0], self.y - y[0])
        nearest = int(np.argmin(d))
        if d[nearest] <= self.range[nearest]:
            rssi = -40.0 - 40.0 * float(d[nearest] / self.range[nearest])
            self.reads.append({"reader_id": self.ids[nearest], "tag_id": tag_id,
                               "rssi": round(rssi, 1), "t": round(r.t, 3)})

    def take(self) -> bytes:
        reads, self.reads = self.reads, []
        return json.dumps({"reads": reads}).encode() if reads else b""


async def run(rt: Runtime) -> None:
    cfg = rt.config
    _, sessions = open_store(cfg.db_url)
    with sessions() as s:
        roster = repo.roster(s)
        zones = repo.zones(s)
        readers = [(r.id, r.lat, r.lon, r.range_m) for r in repo.readers(s)]
    zone_idx = {z.id: i for i, z in enumerate(zones)}
    roster = [r for r in roster if r.zone_id in zone_idx]
    kinds = [r.kind for r in roster]
    pop = Population(
        device_ids=[r.device_id for r in roster],
        zones=[SimZone(z.lat, z.lon, z.radius_m) for z in zones],
        zone_of=np.array([zone_idx[r.zone_id] for r in roster], dtype=np.int64),
        interval_s=cfg.sim_interval_s,
        first_incident_s=cfg.sim_first_incident_s,
        incident_every_s=cfg.sim_incident_every_s,
        can_alarm=np.array([k != "tag" for k in kinds], dtype=bool),
    )
    senders = Senders(rt)
    tags = TagReaders(readers)
    workers = senders.tasks()
    rt.log.info("simulating %d children in %d zones (%d watches, %d phones, %d tags)",
                len(pop), len(zones), kinds.count("watch"), kinds.count("phone"),
                kinds.count("tag"))
    seen_incidents = 0
    last = time.monotonic()
    next_reads = last + 1.0
    next_log = last + 30
    while not rt.should_stop():
        await asyncio.sleep(TICK_S)
        now = time.monotonic()
        pop.advance(now - last)
        last = now
        for inc in pop.incidents[seen_incidents:]:
            rt.log.info("incident: %s by %s %s", inc.kind, kinds[inc.index],
                        pop.device_ids[inc.index])
        seen_incidents = len(pop.incidents)
        for r in pop.due_reports(time.time()):
            device_id = pop.device_ids[r.index]
            kind = kinds[r.index]
            if kind == "watch":
                q = senders.watch[r.index % WATCH_CONNECTIONS]
                if not q.full():
                    q.put_nowait(watch_report(device_id, r))
            elif kind == "phone":
                if not senders.http.full():
                    senders.http.put_nowait((cfg.osmand_port, osmand_target(device_id, r), b""))
            else:
                tags.see(device_id, r)
        if now >= next_reads:
            body = tags.take()
            if body and not senders.http.full():
                senders.http.put_nowait((cfg.feeds_port, "/v1/tag-reads", body))
            next_reads = now + 1.0
        if now >= next_log:
            rt.log.info("sent %d reports (%d refused)", senders.sent, senders.refused)
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
