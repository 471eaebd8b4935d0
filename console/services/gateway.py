"""The gateway: device protocols in, validated ``fix.batch`` out.

Each protocol has a decoder and a listener; all of them hand their reports
to one ``Intake``. Bad input never stops the gateway: every refusal is
answered where the protocol allows it, counted by protocol and reason, and
logged; an SOS with no usable position is still forwarded, so the engine
raises it at the child's last known position.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import sys
import time
from dataclasses import dataclass

import uvloop
import zmq

from console.bus import Publisher, Subscriber, role_of
from console.gateway.feeds import (
    FEEDS,
    OSMAND,
    FeedsHandler,
    ReaderPos,
    handle_osmand,
    reader_positions,
)
from console.gateway.http import HttpServer
from console.gateway.intake import Intake
from console.gateway.location import LocationService
from console.gateway.osmand import may_hold_alarm
from console.gateway.watch_server import WatchServer
from console.journal import Journal, journal_path
from console.security import Security
from console.services.runtime import Runtime, settle_heap, start
from db import changes, consent
from db import repositories as repo
from db.consent_version import consent_version
from db.store import open_store
from models.messages import Heartbeat, UnregisteredSeen, UnregisteredView

REGISTRY_REFRESH_S = 1.0  # a device added or a consent withdrawn takes effect this soon
FLUSH_EVERY_S = 0.05
FEEDS_MAX_BODY = 2 * 1024 * 1024  # a reader's batch of up to 10,000 reads
WATCH_IDLE_S = 600.0
UNREGISTERED_SHOWN = 50  # many watches send LK every 300 s
NOFILE_CAP = 1 << 20  # Linux's default fs.nr_open: the most a soft limit may be
FD_HEADROOM = 256  # listeners, bus sockets, the store, logs
ENGINE_SILENT_S = 3.0  # no engine heartbeat this long: alarms are not acknowledged
TRIM_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class RegistryRead:
    """What a registry sync read from the store (``Gateway.read_registry``):
    the readers always; the registered and untracked devices only when the
    registry or the consents changed (``None``: keep the ones in force)."""

    readers: dict[str, ReaderPos]
    version: tuple[object, object]
    registered: set[str] | None = None
    untracked: frozenset[str] = frozenset()


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit, and return
    the (soft, hard) limits in force afterwards.

    Every device connection is a file descriptor, and the soft limit (often
    1,024) is what the kernel enforces: without this, ``max_connections``
    of 20,000 per port is never reached and accept() fails with EMFILE
    instead. An unlimited hard limit is capped at ``NOFILE_CAP``; a kernel
    that refuses the raise leaves the limit as it was (never lowered).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NOFILE_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logging.getLogger(__name__).warning(
                "could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Gateway:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        _, self.sessions = open_store(rt.config.db_url)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        security = Security.of(rt.config, "gateway")
        self.pub = Publisher(self.ctx, rt.config.bus_pub, origin="gateway",
                             source=rt.config.bus_source, security=security)
        # The engine's heartbeat says whether an alarm can be raised now.
        self.beats = Subscriber(self.ctx, rt.config.bus_sub, ("sys.heartbeat",),
                                security=security, sources=rt.config.bus_sources)
        self.engine_heard = -1e9  # monotonic
        self.journal = Journal(journal_path(rt.config.data_dir), rt.config.journal_keep_s)
        self.intake = Intake(self.pub.send, self.journal)
        self.intake.engine_up = False  # until its heartbeat is heard
        self._registry_version: tuple[object, object] | None = None
        # HTTP-level refusals (chunked bodies, oversized headers…) are counted
        # with each port's other rejections, so the gateway panel shows them.
        self.osmand = HttpServer(functools.partial(handle_osmand, self.intake),
                                 on_error=functools.partial(self.intake.reject, OSMAND),
                                 durable=self.intake.durable, urgent=may_hold_alarm)
        self.feeds = FeedsHandler(self.intake, {})
        # Guardians' location checks share the feeds port (service 5).
        self.location = LocationService(self.sessions, rt.config.location_checks_per_min)
        self.watch = WatchServer(self.intake, idle_timeout_s=WATCH_IDLE_S,
                                 utc_offset_s=rt.config.watch_utc_offset_s)
        self.feeds_http = HttpServer(self.location.in_front_of(self.feeds.handle),
                                     max_body=FEEDS_MAX_BODY,
                                     content_type="application/json",
                                     on_error=functools.partial(self.intake.reject, FEEDS),
                                     durable=self.intake.durable)

    def read_registry(self, refused: dict[str, tuple[str, float, float, int]],
                      known: tuple[object, object] | None) -> RegistryRead:
        """The store's half of a registry sync, for a worker thread: save the
        refused ids for the admin, read the readers, and the registered and
        untracked devices if the registry or consents changed since ``known``.

        It touches the store and nothing else: no bus socket (a ZeroMQ socket
        belongs to the thread that uses it, the event loop's) and none of the
        intake's state, which the loop applies (``sync_registry``)."""
        with self.sessions() as s:
            if refused:
                repo.record_unregistered(s, refused)
                s.commit()
            readers = reader_positions(repo.readers(s))
            version = (changes.version(s, "roster"), consent_version(s))
            if version == known:
                return RegistryRead(readers, version)
            children = repo.device_children(s)
            # a child with no consent in force is not located (§15):
            # their devices are refused and counted as no_consent
            untracked = frozenset(consent.book(s).refused_devices(children))
            return RegistryRead(readers, version, set(children), untracked)

    async def sync_registry(self) -> None:
        """Reload registered ids; save the refused ones for the admin.

        The store is read on a worker thread (``read_registry``); what it
        found is applied, and ``unregistered.seen`` published, here on the
        event loop's thread, the only one that uses the bus sockets."""
        refused = self.intake.take_unregistered()
        try:
            read = await asyncio.to_thread(self.read_registry, refused, self._registry_version)
        except BaseException:
            # not stored: keep them for the next sync rather than lose them
            self.intake.unregistered_dirty.update(refused)
            raise
        if refused:
            self._publish_unregistered()
        self.feeds.readers = read.readers
        if read.registered is not None:
            self.intake.recent.forget(self.intake.registered - read.registered)
            self.intake.registered = read.registered
            self.intake.untracked = read.untracked
        self._registry_version = read.version

    def _publish_unregistered(self) -> None:
        latest = sorted(self.intake.unregistered_seen.items(), key=lambda kv: -kv[1][2])
        self.pub.send(UnregisteredSeen(devices=[
            UnregisteredView(device_id=d, protocol=p, first_seen=first, last_seen=last,
                             attempts=n)
            for d, (p, first, last, n) in latest[:UNREGISTERED_SHOWN]]))

    def listen_for_engine(self, now: float) -> None:
        """Note the engine's heartbeats; alarms are acknowledged only while
        it is heard (``Intake``)."""
        while True:
            try:
                frames = self.beats.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            parsed = self.beats.parse(frames)
            if parsed is not None and isinstance(parsed[1], Heartbeat) \
                    and role_of(parsed[1].origin) == "engine":
                self.engine_heard = now
        up = now - self.engine_heard < ENGINE_SILENT_S
        if up != self.intake.engine_up:
            log = self.rt.log.info if up else self.rt.log.error
            log("engine %s: alarms are %s", "heard" if up else "silent",
                "acknowledged again" if up else "journaled but NOT acknowledged to devices")
            self.intake.engine_up = up

    def stats(self) -> dict[str, float]:
        out = self.intake.stats()
        out["connections.osmand"] = self.osmand.connections
        out["connections.feeds"] = self.feeds_http.connections
        out.update(self.watch.stats())
        out.update(self.location.stats())
        return out

    def open_files_limit(self) -> int:
        """Raise the open-files limit and say whether the connection caps fit."""
        soft, hard = raise_open_files_limit()
        wanted = (self.osmand.max_connections + self.feeds_http.max_connections
                  + self.watch.max_connections + FD_HEADROOM)
        log = self.rt.log.info if soft >= wanted else self.rt.log.warning
        log("open files limit %d (hard %d) for up to %d device connections", soft, hard,
            wanted - FD_HEADROOM)
        return soft

    async def run(self) -> None:
        cfg = self.rt.config
        self.open_files_limit()
        await self.sync_registry()
        port = await self.osmand.start(cfg.osmand_host, cfg.osmand_port)
        self.rt.log.info("OsmAnd HTTP on %s:%d, %d registered devices",
                         cfg.osmand_host, port, len(self.intake.registered))
        fport = await self.feeds_http.start(cfg.osmand_host, cfg.feeds_port)
        self.rt.log.info("tag-reader and carrier feeds on %s:%d, %d readers",
                         cfg.osmand_host, fport, len(self.feeds.readers))
        wport = await self.watch.start(cfg.osmand_host, cfg.watch_port)
        self.rt.log.info("child GPS watches (3G protocol) on %s:%d", cfg.osmand_host, wport)
        settle_heap()
        next_refresh = time.monotonic() + REGISTRY_REFRESH_S
        next_beat = next_trim = 0.0
        while not self.rt.should_stop():
            await asyncio.sleep(FLUSH_EVERY_S)
            self.intake.flush()
            now = time.monotonic()
            self.listen_for_engine(now)
            if now >= next_trim:
                next_trim = now + TRIM_EVERY_S
                self.journal.trim()
            if now >= next_beat:
                self.pub.heartbeat(self.stats())
                next_beat = now + 1.0
            if now >= next_refresh:
                try:
                    await self.sync_registry()
                except Exception:  # the store may be briefly locked; keep the old set
                    self.rt.log.exception("device registry refresh failed")
                next_refresh = now + REGISTRY_REFRESH_S
        await self.osmand.close()
        await self.feeds_http.close()
        self.location.close()
        await self.watch.close()
        self.intake.flush()
        try:
            await self.sync_registry()  # the last refused ids, for the admin
        except Exception:
            self.rt.log.exception("last device registry sync failed")
        self.journal.close()
        self.beats.close()
        self.pub.close()
        self.ctx.term()


def main(argv: list[str] | None = None) -> int:
    rt = start("gateway", argv)
    uvloop.run(Gateway(rt).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
