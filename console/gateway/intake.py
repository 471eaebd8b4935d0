"""Where every protocol's decoded reports enter the system.

Protocol servers (OsmAnd HTTP, watch TCP, tag readers, carrier feeds)
decode their wire format into ``Report``s and hand each one here; this is
the one place that validates, checks the registry, drops exact duplicates,
counts every outcome by protocol and reason, and batches what it accepts
into ``fix.batch`` messages. A decoder never decides what is accepted.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from console.gateway.batcher import Batcher
from console.gateway.dedup import RecentFixes
from models.fixes import Rejected, Report, validate
from models.messages import FixBatch

log = logging.getLogger(__name__)

UNREGISTERED = "unregistered_device"
DUPLICATE = "duplicate"
MAX_UNREGISTERED_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    reason: str = ""  # a counter key when refused

    @property
    def unregistered(self) -> bool:
        return self.reason == UNREGISTERED


ACCEPTED = Verdict(True)


class Intake:
    def __init__(self, publish: Callable[[FixBatch], object]) -> None:
        self.publish = publish
        self.registered: set[str] = set()
        self.accepted: Counter[str] = Counter()  # protocol
        self.rejected: Counter[str] = Counter()  # "protocol:reason"
        self.unregistered_seen: dict[str, tuple[str, float, float, int]] = {}
        self.unregistered_dirty: set[str] = set()
        self.recent = RecentFixes()  # exact duplicates, per device, bounded
        self._batchers: dict[str, Batcher] = {}

    def reject(self, protocol: str, reason: str, detail: str = "") -> Verdict:
        """Count and log a refusal (decoders call this for frames that never
        became a report)."""
        self.rejected[f"{protocol}:{reason}"] += 1
        log.warning("rejected %s input (%s): %s", protocol, reason, detail[:200])
        return Verdict(False, reason)

    def check_device(self, device_id: str, protocol: str, now: float | None = None) -> Verdict:
        """Is the id registered? An unknown one is counted and noted for the
        admin. Protocols call this for frames that carry no report (a watch's
        ``LK`` heartbeat), so a device that only ever says hello still shows
        up in "unregistered devices seen"."""
        if device_id in self.registered:
            return ACCEPTED
        self._note_unregistered(device_id, protocol, time.time() if now is None else now)
        return self.reject(protocol, UNREGISTERED, device_id)

    def note_if_unregistered(self, device_id: str, protocol: str,
                             now: float | None = None) -> None:
        """Note an unknown id from input already refused (and counted) for
        another reason, e.g. a watch frame that did not decode."""
        if device_id not in self.registered:
            self._note_unregistered(device_id, protocol, time.time() if now is None else now)

    def accept(self, report: Report, protocol: str, now: float | None = None,
               reader: str = "") -> Verdict:
        """Validate, dedupe, count and batch one report; ``reader`` names the
        tag reader a tag read came through (it travels with the fix)."""
        now = time.time() if now is None else now
        if report.device_id not in self.registered:
            return self.check_device(report.device_id, protocol, now)
        try:
            validate(report, now)
        except Rejected as exc:
            return self.reject(protocol, exc.reason, f"{report.device_id}: {exc.detail}")
        if self.recent.seen(report.device_id, report.t, report.lat, report.lon, report.sos):
            return self.reject(protocol, DUPLICATE, report.device_id)
        batcher = self._batchers.get(protocol)
        if batcher is None:
            batcher = self._batchers[protocol] = Batcher(protocol)
        batcher.add(report, reader)
        self.accepted[protocol] += 1
        if report.sos or len(batcher) >= batcher.max_fixes:
            self._flush(batcher)
        return ACCEPTED

    def _note_unregistered(self, device_id: str, protocol: str, now: float) -> None:
        """Remember refused ids for the admin, but only so many: a client
        inventing ids must not grow the gateway's memory."""
        seen = self.unregistered_seen.get(device_id)
        if seen is None and len(self.unregistered_seen) >= MAX_UNREGISTERED_KEPT:
            self.rejected[f"{protocol}:unregistered_not_kept"] += 1
            return
        _, first, _, n = seen or (protocol, now, now, 0)
        self.unregistered_seen[device_id] = (protocol, first, now, n + 1)
        self.unregistered_dirty.add(device_id)

    def take_unregistered(self) -> dict[str, tuple[str, float, float, int]]:
        """The refused ids seen since the last call, for the store."""
        dirty, self.unregistered_dirty = self.unregistered_dirty, set()
        return {d: self.unregistered_seen[d] for d in dirty}

    def flush(self) -> None:
        """Publish whatever is waiting (called on a short timer)."""
        for batcher in self._batchers.values():
            self._flush(batcher)

    def _flush(self, batcher: Batcher) -> None:
        batch = batcher.take()
        if batch is not None:
            self.publish(batch)

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {f"accepted.{k}": v for k, v in self.accepted.items()}
        out.update({f"rejected.{k}": v for k, v in self.rejected.items()})
        out["unregistered_devices"] = len(self.unregistered_seen)
        return out
