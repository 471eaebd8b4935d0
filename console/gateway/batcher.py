"""Accumulates validated reports into columnar ``FixBatch``es.

Routine reports wait here until the intake flushes, on size or on a short
timer, whichever comes first, so a busy gateway sends few, large messages
and a quiet one still delivers within one timer tick. An alarm never waits
here: the intake sends it at once in a batch of its own (``build_batch``),
taking with it whatever its own device sent before that is still queued
(``take_device``), so a device's reports reach the journal and the bus in
the order it sent them. A tag read carries the reader that saw it (the
child's breadcrumb), so the batch names it per fix.
"""

from __future__ import annotations

from models.fixes import Report, report_flags
from models.messages import FixBatch, pack


def build_batch(protocol: str, reports: list[Report], readers: list[str]) -> FixBatch:
    """One ``FixBatch`` of ``reports`` (non-empty), ``readers`` naming the tag
    reader of each ("" for every other protocol)."""
    rs = reports
    return FixBatch(
        device_ids=[r.device_id for r in rs],
        t=pack("t", [r.t for r in rs]),
        lat=pack("lat", [r.lat for r in rs]),
        lon=pack("lon", [r.lon for r in rs]),
        speed=pack("speed", [r.speed for r in rs]),
        bearing=pack("bearing", [r.bearing for r in rs]),
        accuracy=pack("accuracy", [r.accuracy for r in rs]),
        battery=pack("battery", [max(-1, min(100, r.battery)) for r in rs]),
        flags=pack("flags", [report_flags(r) for r in rs]),
        protocol=protocol,
        readers=readers if any(readers) else [],
    )


class Batcher:
    def __init__(self, protocol: str, max_fixes: int = 5_000) -> None:
        self.protocol = protocol
        self.max_fixes = max_fixes
        self._reports: list[Report] = []
        self._readers: list[str] = []

    def add(self, r: Report, reader: str = "") -> None:
        """Queue one validated report; ``reader`` is the tag reader it came
        through ("" for every other protocol)."""
        self._reports.append(r)
        self._readers.append(reader)

    def __len__(self) -> int:
        return len(self._reports)

    def take_device(self, device_id: str) -> tuple[list[Report], list[str]]:
        """Take this device's queued reports (and their readers) out, in the
        order they came: they go ahead with the device's alarm, so the alarm
        never overtakes an older report of its own device. One pass over the
        queue (at most ``max_fixes``), paid only when an alarm comes."""
        if not any(r.device_id == device_id for r in self._reports):
            return [], []
        mine: tuple[list[Report], list[str]] = ([], [])
        rest: tuple[list[Report], list[str]] = ([], [])
        for r, reader in zip(self._reports, self._readers, strict=True):
            into = mine if r.device_id == device_id else rest
            into[0].append(r)
            into[1].append(reader)
        self._reports, self._readers = rest
        return mine

    def take(self) -> FixBatch | None:
        rs, self._reports = self._reports, []
        readers, self._readers = self._readers, []
        if not rs:
            return None
        return build_batch(self.protocol, rs, readers)
