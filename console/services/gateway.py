"""The gateway: device protocols in, validated ``fix.batch`` out.

Each protocol has a decoder and a listener; all of them hand their reports
to one ``Intake``. Bad input never stops the gateway: every refusal is
answered where the protocol allows it, counted by protocol and reason, and
logged; an SOS with no usable position is still forwarded, so the engine
raises it at the child's last known position.
"""

from __future__ import annotations

import asyncio
import sys
import time

import zmq

from console.bus import Publisher
from console.gateway.http import HttpServer, Request
from console.gateway.intake import Intake
from console.gateway.osmand import decode_query
from console.services.runtime import Runtime, start
from db import repositories as repo
from db.registry import registry_version
from db.store import open_store
from models.fixes import Rejected

REGISTRY_REFRESH_S = 5.0
FLUSH_EVERY_S = 0.05


class Gateway:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        _, self.sessions = open_store(rt.config.db_url)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pub = Publisher(self.ctx, rt.config.bus_pub, origin="gateway")
        self.intake = Intake(self.pub.send)
        self._registry_version = (-1, 0.0)
        self.osmand = HttpServer(self.handle_osmand)

    def sync_registry(self) -> None:
        """Reload registered ids; save the refused ones for the admin."""
        with self.sessions() as s:
            refused = self.intake.take_unregistered()
            if refused:
                repo.record_unregistered(s, refused)
                s.commit()
            version = registry_version(s)
            if version != self._registry_version:
                self.intake.registered = repo.registered_device_ids(s)
                self._registry_version = version

    def handle_osmand(self, req: Request) -> tuple[int, str]:
        if req.method == "GET":
            query = req.target.partition("?")[2]
        elif req.method == "POST":
            query = req.body.decode("utf-8", "replace")
            if "?" in req.target:
                query = req.target.partition("?")[2] + "&" + query
        else:
            self.intake.reject("osmand", "bad_method", req.method)
            return 405, "GET or POST"
        try:
            report = decode_query(query, time.time())
        except Rejected as exc:
            self.intake.reject("osmand", exc.reason, exc.detail)
            return 400, exc.reason
        verdict = self.intake.accept(report, "osmand")
        if verdict.accepted:
            return 200, "OK"
        return (403, "unregistered device") if verdict.unregistered else (400, verdict.reason)

    def stats(self) -> dict[str, float]:
        out = self.intake.stats()
        out["connections.osmand"] = self.osmand.connections
        return out

    async def run(self) -> None:
        cfg = self.rt.config
        await asyncio.to_thread(self.sync_registry)
        port = await self.osmand.start(cfg.osmand_host, cfg.osmand_port)
        self.rt.log.info("OsmAnd HTTP on %s:%d, %d registered devices",
                         cfg.osmand_host, port, len(self.intake.registered))
        next_refresh = time.monotonic() + REGISTRY_REFRESH_S
        next_beat = 0.0
        while not self.rt.should_stop():
            await asyncio.sleep(FLUSH_EVERY_S)
            self.intake.flush()
            now = time.monotonic()
            if now >= next_beat:
                self.pub.heartbeat(self.stats())
                next_beat = now + 1.0
            if now >= next_refresh:
                try:
                    await asyncio.to_thread(self.sync_registry)
                except Exception:  # the store may be briefly locked; keep the old set
                    self.rt.log.exception("device registry refresh failed")
                next_refresh = now + REGISTRY_REFRESH_S
        await self.osmand.close()
        self.intake.flush()
        await asyncio.to_thread(self.sync_registry)
        self.pub.close()
        self.ctx.term()


def main(argv: list[str] | None = None) -> int:
    rt = start("gateway", argv)
    asyncio.run(Gateway(rt).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
