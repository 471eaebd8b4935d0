"""The bus: an XSUB/XPUB proxy. Publishers connect to its input, subscribers
to its output; it holds no state, so restarting it costs subscribers a
sequence gap (and thus a resync), nothing more.

With CURVE on (the default) both ends admit only the installation's keys,
and every message a publisher sends is checked against its key's rights
(``models.bus_rights``) before it is forwarded: a console's key publishing
``alert.updated``, or a gateway's key sending a body that says it is from
the engine, is dropped and counted here, so no subscriber ever sees it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter

import msgspec
import zmq

from console.bus import role_of, socket
from console.security import Security, peer
from console.services.runtime import settle_heap, start
from models.bus_rights import PUBLISHES, may_publish, role_of_key
from models.messages import Heartbeat, encode

HEARTBEAT_S = 1.0
LOG_EVERY_S = 10.0  # a flood of forgeries is logged as counts, not line by line
log = logging.getLogger("console.bus")


class _Envelope(msgspec.Struct):
    """Just the fields the proxy checks; everything else is skipped unread."""

    origin: str = ""
    source: str = "live"


_envelope = msgspec.msgpack.Decoder(_Envelope)


class Gate:
    """The per-message check: the sender's key may publish this topic, and
    the body says it is from the sender's own role."""

    def __init__(self, secured: bool, sources: tuple[str, ...] = ("live", "sim")) -> None:
        """``sources``: the envelopes this bus carries (``Config.bus_sources``):
        a live bus drops replayed data, a training bus anything else, and the
        replayer's key publishes only on a training bus."""
        self.secured = secured
        self.sources = frozenset(sources)
        self.forwarded = 0
        self.dropped: Counter[str] = Counter()
        self._logged_at = 0.0
        self._unlogged: Counter[str] = Counter()

    def allows(self, frames: list[zmq.Frame]) -> bool:
        if not self.secured:
            self.forwarded += 1
            return True
        reason, who = self._reason(frames)
        if reason is None:
            self.forwarded += 1
            return True
        self.dropped[reason] += 1
        self._unlogged[f"{reason} from {who}"] += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning("dropped bus messages: %s", ", ".join(
                f"{k} ×{v}" for k, v in sorted(self._unlogged.items())))
            self._unlogged.clear()
            self._logged_at = now
        return False

    def _reason(self, frames: list[zmq.Frame]) -> tuple[str | None, str]:
        who = peer(frames[0])
        try:
            role = role_of_key(who)
        except ValueError:
            return "unknown_key", who or "?"
        if len(frames) != 2:
            return "malformed", who
        try:
            topic = frames[0].bytes.decode("ascii")
            envelope = _envelope.decode(frames[1].buffer)
        except (UnicodeDecodeError, msgspec.DecodeError):
            return "malformed", who
        origin = envelope.origin
        if envelope.source not in self.sources or (role == "replayer"
                                                   and "replay" not in self.sources):
            return "source", f"{who} ({envelope.source!r} on a bus for "\
                             f"{', '.join(sorted(self.sources))})"
        if not may_publish(role, topic):
            allowed = ", ".join(PUBLISHES[role]) or "nothing"
            return "topic", f"{who} ({topic}; it may publish {allowed})"
        if role_of(origin) != role:
            return "origin", f"{who} (body says {origin!r})"
        return None, who

    def stats(self) -> dict[str, float]:
        out = {"forwarded": float(self.forwarded)}
        out.update({f"dropped_{k}": float(v) for k, v in self.dropped.items()})
        return out


def main(argv: list[str] | None = None) -> int:
    rt = start("bus", argv)
    cfg = rt.config
    cfg.ensure_dirs()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    security = Security.of(cfg, "bus")
    every_role = frozenset(PUBLISHES)
    guard = security.guard(ctx, {"bus": every_role})
    if guard is None:
        rt.log.warning("bus_security is off: any local process can read and forge bus traffic")
    xsub = socket(ctx, zmq.XSUB)
    xpub = socket(ctx, zmq.XPUB)
    security.server(xsub, "bus")
    security.server(xpub, "bus")
    xsub.bind(cfg.bus_pub)
    xpub.bind(cfg.bus_sub)
    poller = zmq.Poller()
    poller.register(xsub, zmq.POLLIN)
    poller.register(xpub, zmq.POLLIN)
    gate = Gate(secured=guard is not None, sources=cfg.bus_sources)
    origin = f"bus:{os.getpid()}"
    beat_at = 0.0
    settle_heap()
    # A polled loop rather than zmq.proxy(): it checks each message, beats,
    # and lets SIGTERM stop us cleanly.
    while not rt.should_stop():
        for sock, _ in poller.poll(200):
            if sock is xsub:
                while True:
                    try:
                        frames = xsub.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    if gate.allows(frames):
                        xpub.send_multipart(frames, copy=False)
            else:
                xsub.send_multipart(xpub.recv_multipart())
        now = time.time()
        if now - beat_at >= HEARTBEAT_S:
            beat_at = now
            stats = gate.stats() | (guard.stats() if guard else {})
            xpub.send_multipart([b"sys.heartbeat", encode(Heartbeat(
                last_seq=0, stats=stats, ts=now, origin=origin,
                source=rt.config.bus_source))])  # type: ignore[arg-type]
    rt.log.info("stopping after %d messages (%s dropped)", gate.forwarded,
                sum(gate.dropped.values()))
    xsub.close(0)
    xpub.close(0)
    if guard is not None:
        guard.stop()
    ctx.term()
    for p in cfg.ipc_paths()[:2]:
        p.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
