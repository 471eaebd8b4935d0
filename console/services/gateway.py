"""The gateway: device protocols in, validated ``fix.batch`` out.

Bad input never stops it: every rejection is answered (HTTP 400/403),
counted by protocol and reason, and logged; an SOS with no usable position
is still forwarded so the engine raises it at the last known position.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

import zmq

from console.bus import Publisher
from console.gateway.batcher import Batcher
from console.gateway.http import HttpServer, Request
from console.gateway.osmand import decode_query
from console.services.runtime import Runtime, start
from db import repositories as repo
from db.store import open_store
from models.fixes import Rejected, validate

REGISTRY_REFRESH_S = 5.0


class Gateway:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        _, self.sessions = open_store(rt.config.db_url)
        self.registered: set[str] = set()
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pub = Publisher(self.ctx, rt.config.bus_pub, origin="gateway")
        self.batcher = Batcher("osmand")
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()  # "protocol:reason"
        self.unregistered_seen: Counter[str] = Counter()
        self.http = HttpServer(self.handle_osmand)

    def refresh_registry(self) -> None:
        with self.sessions() as s:
            self.registered = repo.registered_device_ids(s)

    def reject(self, protocol: str, reason: str, detail: str) -> None:
        self.rejected[f"{protocol}:{reason}"] += 1
        self.rt.log.warning("rejected %s report (%s): %s", protocol, reason, detail)

    async def handle_osmand(self, req: Request) -> tuple[int, str]:
        if req.method == "GET":
            _, _, query = req.target.partition("?")
        elif req.method == "POST":
            query = req.body.decode("utf-8", "replace")
            if "?" in req.target:
                query = req.target.partition("?")[2] + "&" + query
        else:
            self.reject("osmand", "bad_method", req.method[:10])
            return 405, "GET or POST"
        try:
            report = validate(decode_query(query, time.time()))
        except Rejected as exc:
            self.reject("osmand", exc.reason, exc.detail)
            return 400, exc.reason
        if report.device_id not in self.registered:
            self.unregistered_seen[report.device_id] += 1
            self.reject("osmand", "unregistered_device", report.device_id)
            return 403, "unregistered device"
        self.batcher.add(report)
        self.accepted["osmand"] += 1
        if report.sos or len(self.batcher) >= self.batcher.max_fixes:
            self.flush()
        return 200, "OK"

    def flush(self) -> None:
        batch = self.batcher.take()
        if batch is not None:
            self.pub.send(batch)

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {f"accepted.{k}": v for k, v in self.accepted.items()}
        out.update({f"rejected.{k}": v for k, v in self.rejected.items()})
        out["connections"] = self.http.connections
        out["unregistered_devices"] = len(self.unregistered_seen)
        return out

    async def run(self) -> None:
        cfg = self.rt.config
        await asyncio.to_thread(self.refresh_registry)
        port = await self.http.start(cfg.osmand_host, cfg.osmand_port)
        self.rt.log.info("OsmAnd HTTP on %s:%d, %d registered devices",
                         cfg.osmand_host, port, len(self.registered))
        next_refresh = time.monotonic() + REGISTRY_REFRESH_S
        next_beat = 0.0
        while not self.rt.should_stop():
            await asyncio.sleep(self.batcher.max_age_s)
            self.flush()
            now = time.monotonic()
            if now >= next_beat:
                self.pub.heartbeat(self.stats())
                next_beat = now + 1.0
            if now >= next_refresh:
                try:
                    await asyncio.to_thread(self.refresh_registry)
                except Exception:  # the store may be briefly locked; keep the old set
                    self.rt.log.exception("device registry refresh failed")
                next_refresh = now + REGISTRY_REFRESH_S
        await self.http.close()
        self.flush()
        self.pub.close()
        self.ctx.term()


def main(argv: list[str] | None = None) -> int:
    rt = start("gateway", argv)
    asyncio.run(Gateway(rt).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
