"""ZeroMQ transport for the bus contract in ``models.messages``.

A ``Publisher`` stamps every message with its origin, a gap-free sequence
number and a timestamp; a ``Subscriber`` decodes, rejects what is malformed
or oversized (counting why) and never raises on bad input. High-water marks
are set deliberately: a PUB socket drops silently when a subscriber falls
behind, and the measured default (1,000) lost 95% of a 50k-fix burst.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter

import msgspec
import numpy as np
import zmq

from console.security import Security
from models.messages import (
    MAX_BODY_BYTES,
    AnyMessage,
    BadMessage,
    FixBatch,
    Heartbeat,
    decode,
    encode,
    fix_columns,
    topic_of,
)

log = logging.getLogger(__name__)

HWM = 100_000
MAX_FRAME_BYTES = MAX_BODY_BYTES + 1024  # a body at the decoder's limit, and no more


def socket(ctx: zmq.Context[zmq.Socket[bytes]], kind: int) -> zmq.Socket[bytes]:
    """A socket that never blocks process exit (linger 0), buffers
    generously before dropping, and disconnects a peer that sends a frame
    larger than any message may be (libzmq stops reading it there, so an
    oversized frame costs no memory)."""
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, HWM)
    s.setsockopt(zmq.RCVHWM, HWM)
    s.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    return s


class Publisher:
    """One typed publisher per process (its ``origin``)."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, origin: str,
                 source: str = "live", security: Security | None = None) -> None:
        self.sock = socket(ctx, zmq.PUB)
        if security is not None:
            security.client(self.sock, "bus")
        self.sock.connect(endpoint)
        # The process id makes each incarnation distinct: a restarted
        # publisher starts its seq at 1 again, and subscribers must notice.
        self.origin = f"{origin}:{os.getpid()}"
        self.source = source
        self.seq = 0

    def stamp(self, msg: AnyMessage) -> AnyMessage:
        """Give ``msg`` the next sequence number without sending it (the
        engine stamps an alert, commits it, then sends)."""
        self.seq += 1
        return msgspec.structs.replace(
            msg, seq=self.seq, ts=time.time(), origin=self.origin, source=self.source
        )

    def unstamp(self, msg: AnyMessage) -> bool:
        """Give back the number of the last message stamped and never sent
        (its change was refused), so subscribers see no gap."""
        if msg.origin == self.origin and msg.seq == self.seq:
            self.seq -= 1
            return True
        return False

    def send(self, msg: AnyMessage, stamped: bool = False) -> AnyMessage:
        if not stamped:
            msg = self.stamp(msg)
        self.sock.send_multipart([topic_of(msg), encode(msg)])
        return msg

    def heartbeat(self, stats: dict[str, float] | None = None) -> None:
        """Heartbeats carry the last seq and do not consume one, so a gap
        right before a quiet period is still noticed."""
        hb = Heartbeat(last_seq=self.seq, stats=stats or {}, ts=time.time(),
                       origin=self.origin, source=self.source)  # type: ignore[arg-type]
        self.sock.send_multipart([b"sys.heartbeat", encode(hb)])

    def close(self) -> None:
        self.sock.close(0)


class Subscriber:
    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str,
                 prefixes: tuple[str, ...] = ("",), security: Security | None = None,
                 sources: tuple[str, ...] = ("live", "sim")) -> None:
        """``sources``: the envelopes' ``source`` this subscriber takes
        (``Config.bus_sources``); any other is rejected as ``wrong_source``."""
        self.sources = frozenset(sources)
        self.sock = socket(ctx, zmq.SUB)
        if security is not None:
            security.client(self.sock, "bus")
        for p in prefixes:
            self.sock.setsockopt(zmq.SUBSCRIBE, p.encode("ascii"))
        self.sock.connect(endpoint)
        self.rejected: Counter[str] = Counter()

    def parse(self, frames: list[bytes]) -> tuple[str, AnyMessage] | None:
        """Decode one multipart message; bad input is counted, logged, and
        returns None."""
        if len(frames) != 2:
            self._reject("frame_count", f"{len(frames)} frames")
            return None
        topic, body = frames
        try:
            msg = decode(body)
        except BadMessage as exc:
            self._reject("bad_body", str(exc)[:200])
            return None
        if topic != topic_of(msg):
            self._reject("topic_mismatch", f"{topic!r} carries {topic_of(msg)!r}")
            return None
        if msg.source not in self.sources:
            self._reject("wrong_source", f"{topic!r} from {msg.origin} is {msg.source!r}")
            return None
        return topic.decode("ascii"), msg

    def recv(self, timeout_ms: int | None = None) -> tuple[str, AnyMessage] | None:
        if timeout_ms is not None and not self.sock.poll(timeout_ms):
            return None
        return self.parse(self.sock.recv_multipart())

    def columns(self, batch: FixBatch) -> dict[str, np.ndarray] | None:
        """A fix batch's checked columns; None when they do not decode
        (counted and logged as ``bad_columns``, like any bad message)."""
        try:
            return fix_columns(batch)
        except BadMessage as exc:
            self._reject("bad_columns", f"fix batch seq {batch.seq} from {batch.origin}: {exc}")
            return None

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        log.warning("rejected bus message (%s): %s", reason, detail)

    def close(self) -> None:
        self.sock.close(0)


def role_of(origin: str) -> str:
    """``engine:4242`` -> ``engine``."""
    return origin.partition(":")[0]
