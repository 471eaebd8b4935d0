"""The simulator: demo children reaching the gateway exactly as real devices
do, over every path the gateway serves —

- watches over the 3G TCP protocol: ``UD`` reports, ``LK`` heartbeats with
  pedometer and battery between them, ``AL`` for an SOS (a few firmware
  variants: manufacturers, an index field, ``UD2``/``UD_LTE``);
- phones over OsmAnd HTTP, each by its app's form: the classic GET, a form
  POST, or the JSON body Traccar Client 9+ posts;
- tags, read by the safety zones' readers, which post their reads in batches;
- the carrier's LBS server, posting batches of the fixes it measured for the
  children it locates, a little late, as carriers do.

``models.simulation`` decides who does what and when; this module encodes
and sends, and counts what the gateway answered (logged as JSON every
``LOG_EVERY_S`` and at the end: the one place that tells the phone forms
apart, since the gateway counts them all as ``osmand``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter, deque
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import urlencode

import numpy as np

from console.config import Config
from console.gateway.http import RETRY_AFTER_S
from console.gateway.watch import encode as watch_frame
from console.services.runtime import Runtime, start
from db import repositories as repo
from db.store import open_store
from models.geo import to_map
from models.simulation import (
    STRIDE_M,
    CarrierFix,
    DeviceMix,
    Heartbeat,
    Population,
    SimReport,
    SimZone,
)

TICK_S = 0.2
POST_EVERY_S = 1.0  # readers and the carrier feed post a batch this often
LOG_EVERY_S = 30.0
PHONE_CONNECTIONS = 4
WATCH_CONNECTIONS = 64  # watches share a few sockets here; real ones have one each
KNOT_MS = 0.514444
SOS_STATUS = 0x00010000  # status bit 16 of a watch's AL frame
TAG_PATH = "/v1/tag-reads"
CARRIER_PATH = "/v1/carrier-fixes"
MAX_BATCH = 10_000  # the feeds port's limit per batch
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# (manufacturer, index field, location type): firmwares seen in the field,
# most of them plain "3G"; a watch keeps one for the whole run.
FIRMWARES = (("3G", None, "UD"),) * 6 + (("SG", None, "UD2"), ("ZJ", "0001", "UD_LTE"),
                                         ("CS", None, "UD"), ("3G", None, "UD_WCDMA"))


class Outgoing(NamedTuple):
    """One HTTP request and the counter family its answer goes to."""

    channel: str  # osmand_get | osmand_form | osmand_json | tag | carrier
    port: int
    method: str
    target: str
    content_type: str
    body: bytes
    tries: int = 0  # answered 503 this many times (a phone sends again, as told)


RESENDS = 5  # a 503'd request is sent again after its Retry-After this many times at most
# ------------------------------------------------------------------ encoders


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def osmand_params(device_id: str, r: SimReport) -> str:
    """The classic OsmAnd fields (speed in knots), as a query or form body."""
    params = {
        "id": device_id, "lat": f"{r.lat:.7f}", "lon": f"{r.lon:.7f}",
        "timestamp": f"{r.t:.3f}", "speed": f"{r.speed_ms / KNOT_MS:.2f}",
        "bearing": f"{r.bearing:.1f}", "accuracy": f"{r.accuracy:.1f}", "batt": str(r.battery),
    }
    if r.sos:
        params["alarm"] = "sos"
    return urlencode(params)


def osmand_json(device_id: str, r: SimReport) -> bytes:
    """The body Traccar Client 9+ posts (its background-geolocation
    plugin's layout): speed in m/s, battery level 0..1, SOS in extras."""
    location = {
        "timestamp": iso(r.t),
        "coords": {"latitude": round(r.lat, 7), "longitude": round(r.lon, 7),
                   "accuracy": r.accuracy, "speed": round(r.speed_ms, 2),
                   "heading": round(r.bearing, 1), "altitude": 30.0},
        "is_moving": r.moving,
        "odometer": round(r.steps * STRIDE_M, 1),
        "battery": {"level": round(r.battery / 100, 2), "is_charging": False},
        "activity": {"type": "on_foot" if r.moving else "still"},
        "extras": {"alarm": "sos"} if r.sos else {},
    }
    return json.dumps({"location": location, "device_id": device_id},
                      separators=(",", ":")).encode()


def phone_request(form: str, port: int, device_id: str, r: SimReport) -> Outgoing:
    if form == "json":
        return Outgoing("osmand_json", port, "POST", "/", JSON, osmand_json(device_id, r))
    if form == "form":
        return Outgoing("osmand_form", port, "POST", "/", FORM,
                        osmand_params(device_id, r).encode())
    return Outgoing("osmand_get", port, "GET", "/?" + osmand_params(device_id, r), "", b"")


def firmware(index: int) -> tuple[str, str | None, str]:
    return FIRMWARES[index % len(FIRMWARES)]


def watch_report(device_id: str, r: SimReport, index: int = 0) -> bytes:
    """A location frame (``AL`` for an SOS) with the fields in the order
    watches send them; no cell towers or access points."""
    mf, idx, typ = firmware(index)
    when = time.gmtime(r.t)
    status = SOS_STATUS if r.sos else 0
    content = (
        f"{'AL' if r.sos else typ},{time.strftime('%d%m%y,%H%M%S', when)},A,"
        f"{abs(r.lat):.6f},{'N' if r.lat >= 0 else 'S'},{abs(r.lon):.6f},"
        f"{'E' if r.lon >= 0 else 'W'},{r.speed_ms * 3.6:.1f},{r.bearing:.1f},30.0,9,90,"
        f"{r.battery},{r.steps},0,{status:08X},0"
    )
    return watch_frame(mf, device_id, content, idx)


def watch_heartbeat(device_id: str, hb: Heartbeat, index: int = 0) -> bytes:
    """``LK,steps,rolls,battery``: a watch's keep-alive between reports."""
    mf, idx, _ = firmware(index)
    return watch_frame(mf, device_id, f"LK,{hb.steps},0,{hb.battery}", idx)


def carrier_item(device_id: str, f: CarrierFix) -> dict[str, object]:
    return {"device_id": device_id, "lat": round(f.lat, 7), "lon": round(f.lon, 7),
            "accuracy_m": f.accuracy_m, "t": iso(f.t), "method": f.method}


def reply_type(frame: bytes) -> str:
    """``LK`` from ``[3G*id*0002*LK]`` (or ``[ZJ*id*0001*0002*LK]``)."""
    return frame.rsplit(b"*", 1)[-1].split(b",", 1)[0].rstrip(b"]").decode("ascii", "replace")


# ------------------------------------------------------------------ senders


class Senders:
    """Keep-alive connections to the gateway's ports, fed from queues; a
    full queue drops the newest report (positions are replaceable). Every
    answer is counted in ``counts`` by channel and outcome."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.host = rt.config.osmand_host
        self.http: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=100_000)
        self.watch: list[asyncio.Queue[bytes]] = [asyncio.Queue(maxsize=10_000)
                                                  for _ in range(WATCH_CONNECTIONS)]
        self.counts: Counter[str] = Counter()

    def tasks(self) -> list[asyncio.Task[None]]:
        return ([asyncio.create_task(self._http_worker()) for _ in range(PHONE_CONNECTIONS)]
                + [asyncio.create_task(self._watch_worker(q)) for q in self.watch])

    def send_http(self, req: Outgoing) -> None:
        if self.http.full():
            self.counts[f"{req.channel}.dropped"] += 1
        else:
            self.http.put_nowait(req)

    def send_watch(self, index: int, frame: bytes) -> None:
        q = self.watch[index % WATCH_CONNECTIONS]
        if q.full():
            self.counts["watch.dropped"] += 1
        else:
            q.put_nowait(frame)

    async def _http_worker(self) -> None:
        while not self.rt.stop.is_set():
            conns: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
            try:
                while not self.rt.stop.is_set():
                    req = await self.http.get()
                    if req.port not in conns:
                        conns[req.port] = await asyncio.open_connection(self.host, req.port)
                    status, text = await self._exchange(*conns[req.port], req)
                    self._count_http(req.channel, status, text)
                    if status == 503 and req.tries < RESENDS:  # not stored: send it again
                        asyncio.get_running_loop().call_later(
                            RETRY_AFTER_S, self.send_http, req._replace(tries=req.tries + 1))
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                self.counts["http.reconnects"] += 1
                await asyncio.sleep(0.5)  # the gateway is (re)starting
            finally:
                for _, writer in conns.values():
                    writer.close()

    @staticmethod
    async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        req: Outgoing) -> tuple[int, str]:
        head = f"{req.method} {req.target} HTTP/1.1\r\nHost: gw\r\n"
        if req.body or req.method == "POST":
            head += f"Content-Type: {req.content_type}\r\nContent-Length: {len(req.body)}\r\n"
        writer.write((head + "\r\n").encode() + req.body)
        reply = await reader.readuntil(b"\r\n\r\n")
        length = int(reply.split(b"Content-Length:")[1].split(b"\r\n")[0])
        text = (await reader.readexactly(length)).decode("utf-8", "replace")
        return int(reply.split(b" ", 2)[1]), text

    def _count_http(self, channel: str, status: int, text: str) -> None:
        c = self.counts
        if channel in ("tag", "carrier"):
            doc = json.loads(text) if status == 200 else {}
            c[f"{channel}.batches"] += 1
            c[f"{channel}.accepted"] += int(doc.get("accepted", 0))
            for rej in doc.get("rejected", []):
                c[f"{channel}.rejected:{rej.get('reason')}"] += 1
            if status != 200:
                c[f"{channel}.http_{status}"] += 1
        elif status == 200 and text == "OK":
            c[f"{channel}.ok"] += 1
        elif text.startswith("refused: "):
            c[f"{channel}.refused:{text[9:]}"] += 1
        else:
            c[f"{channel}.http_{status}:{text[:40]}"] += 1

    async def _watch_worker(self, queue: asyncio.Queue[bytes]) -> None:
        port = self.rt.config.watch_port
        while not self.rt.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, port)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            replies = asyncio.create_task(self._watch_replies(reader))
            try:
                while not self.rt.stop.is_set() and not replies.done():
                    frame = await queue.get()
                    writer.write(frame)
                    await writer.drain()
                    self.counts["watch.frames"] += 1
                    if b"*LK," in frame[:48]:
                        self.counts["watch.heartbeats"] += 1
            except (OSError, ValueError):
                self.counts["watch.reconnects"] += 1
                await asyncio.sleep(0.2)
            finally:
                replies.cancel()
                writer.close()

    async def _watch_replies(self, reader: asyncio.StreamReader) -> None:
        """The replies a watch waits for (``LK`` to its heartbeat, ``AL`` to
        its alarm), counted by type."""
        try:
            while True:
                self.counts[f"watch.reply:{reply_type(await reader.readuntil(b']'))}"] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return


# ------------------------------------------------------------------ feeds


class TagReaders:
    """The zones' readers: every tag within a reader's range is read (by the
    nearest reader) each time they scan."""

    def __init__(self, readers: list[tuple[str, float, float, float]]) -> None:
        self.ids = [r[0] for r in readers]
        lat = np.array([r[1] for r in readers], dtype=float)
        lon = np.array([r[2] for r in readers], dtype=float)
        self.x, self.y = to_map(lat, lon) if readers else (np.empty(0), np.empty(0))
        self.range = np.array([r[3] for r in readers], dtype=float)

    def scan(self, tag_ids: list[str], x: np.ndarray, y: np.ndarray,
             t: float) -> list[dict[str, object]]:
        if not self.ids or not tag_ids:
            return []
        d = np.hypot(x[:, None] - self.x[None, :], y[:, None] - self.y[None, :])
        nearest = np.argmin(d, axis=1)
        dn = d[np.arange(len(tag_ids)), nearest]
        seen = np.flatnonzero(dn <= self.range[nearest])
        return [{"reader_id": self.ids[nearest[i]], "tag_id": tag_ids[i],
                 "rssi": round(-40.0 - 40.0 * float(dn[i] / self.range[nearest[i]]), 1),
                 "t": round(t, 3)} for i in seen]


class CarrierFeed:
    """The carrier's LBS server: fixes wait ``lag_s`` after their
    measurement (positioning and the carrier's own batching), then go out
    in one batch."""

    def __init__(self, lag_s: float) -> None:
        self.lag_s = lag_s
        self.pending: deque[tuple[float, dict[str, object]]] = deque()

    def measured(self, items: list[dict[str, object]], now: float) -> None:
        self.pending.extend((now + self.lag_s, item) for item in items)

    def take(self, now: float) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        while self.pending and self.pending[0][0] <= now and len(out) < MAX_BATCH:
            out.append(self.pending.popleft()[1])
        return out


# ------------------------------------------------------------------ the run


def device_mix(cfg: Config) -> DeviceMix:
    return DeviceMix(phone_forms=cfg.sim_phone_forms, carrier_share=cfg.sim_carrier_share,
                     carrier_every_s=cfg.sim_carrier_every_s,
                     carrier_methods=cfg.sim_carrier_methods,
                     heartbeat_every_s=cfg.sim_watch_heartbeat_s)


def load_population(cfg: Config) -> tuple[Population, list[tuple[str, float, float, float]]]:
    """The demo's registered children with their devices, and the readers."""
    _, sessions = open_store(cfg.db_url)
    with sessions() as s:
        roster = repo.roster(s)
        zones = repo.zones(s)
        rows = repo.readers(s)
        readers = [(r.id, r.lat, r.lon, r.range_m) for r in rows]
        gates = [[(r.lat, r.lon) for r in rows if r.zone_id == z.id] for z in zones]
        scheduled = repo.children_with_timetables(s)
    zone_idx = {z.id: i for i, z in enumerate(zones)}
    roster = [r for r in roster if r.zone_id in zone_idx]
    pop = Population(
        device_ids=[r.device_id for r in roster], kinds=[r.kind for r in roster],
        zones=[SimZone(z.lat, z.lon, z.radius_m) for z in zones],
        zone_of=np.array([zone_idx[r.zone_id] for r in roster], dtype=np.int64),
        interval_s=cfg.sim_interval_s, first_incident_s=cfg.sim_first_incident_s,
        incident_every_s=cfg.sim_incident_every_s, mix=device_mix(cfg), gates=gates,
        scheduled=[r.child_id in scheduled for r in roster],
    )
    return pop, readers


class Simulator:
    """One tick: move the children, then hand every due report, heartbeat
    and carrier fix to its sender."""

    def __init__(self, rt: Runtime, pop: Population, senders: Senders,
                 readers: TagReaders) -> None:
        self.rt, self.pop, self.senders, self.readers = rt, pop, senders, readers
        self.carrier = CarrierFeed(rt.config.sim_carrier_lag_s)
        self.seen_incidents = 0

    def tick(self, dt: float, now: float) -> None:
        pop, cfg = self.pop, self.rt.config
        pop.advance(dt)
        for inc in pop.incidents[self.seen_incidents:]:
            self.rt.log.info("incident: %s by %s %s", inc.kind, pop.kinds[inc.index],
                             pop.device_ids[inc.index])
        self.seen_incidents = len(pop.incidents)
        for r in pop.due_reports(now):
            device_id = pop.device_ids[r.index]
            if pop.kinds[r.index] == "watch":
                self.senders.send_watch(r.index, watch_report(device_id, r, r.index))
            else:
                form = str(pop.phone_form[r.index])
                self.senders.send_http(phone_request(form, cfg.osmand_port, device_id, r))
        for hb in pop.due_heartbeats(now):
            self.senders.send_watch(hb.index, watch_heartbeat(pop.device_ids[hb.index], hb,
                                                              hb.index))
        fixes = pop.due_carrier_fixes(now)
        if fixes:
            self.carrier.measured([carrier_item(pop.device_ids[f.index], f) for f in fixes],
                                  time.monotonic())

    def post_feeds(self, now: float) -> None:
        """The readers' and the carrier's batches of the last second."""
        port = self.rt.config.feeds_port
        tags = self.pop.tags()
        x, y = self.pop.map_xy(tags)
        reads = self.readers.scan([self.pop.device_ids[i] for i in tags], x, y, now)
        for k in range(0, len(reads), MAX_BATCH):
            body = json.dumps({"reads": reads[k:k + MAX_BATCH]}).encode()
            self.senders.send_http(Outgoing("tag", port, "POST", TAG_PATH, JSON, body))
        while fixes := self.carrier.take(time.monotonic()):
            body = json.dumps({"fixes": fixes}).encode()
            self.senders.send_http(Outgoing("carrier", port, "POST", CARRIER_PATH, JSON, body))

    def log_counts(self) -> None:
        self.rt.log.info("delivered %s", json.dumps(dict(sorted(self.senders.counts.items()))))


async def run(rt: Runtime) -> None:
    cfg = rt.config
    pop, readers = load_population(cfg)
    if cfg.sim_carrier_lag_s <= cfg.sim_interval_s:
        rt.log.warning("sim_carrier_lag_s %.0f <= sim_interval_s %.0f: late carrier fixes "
                       "will move children", cfg.sim_carrier_lag_s, cfg.sim_interval_s)
    senders = Senders(rt)
    sim = Simulator(rt, pop, senders, TagReaders(readers))
    workers = senders.tasks()
    forms = Counter(str(f) for f in pop.phone_form if f)
    rt.log.info("simulating %d children in %d zones: %d watches, %d phones %s, %d tags, "
                "%d also located by the carrier", len(pop), len(pop.zones),
                int((pop.kinds == "watch").sum()), int((pop.kinds == "phone").sum()),
                dict(forms), len(pop.tags()), int(pop.carrier.sum()))
    last = time.monotonic()
    next_post, next_log = last + POST_EVERY_S, last + LOG_EVERY_S
    while not rt.should_stop():
        await asyncio.sleep(TICK_S)
        now = time.monotonic()
        sim.tick(now - last, time.time())
        last = now
        if now >= next_post:
            sim.post_feeds(time.time())
            next_post = now + POST_EVERY_S
        if now >= next_log:
            sim.log_counts()
            next_log = now + LOG_EVERY_S
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    sim.log_counts()


def main(argv: list[str] | None = None) -> int:
    rt = start("simulator", argv)
    asyncio.run(run(rt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
