"""Accumulates validated reports into columnar ``FixBatch``es.

The gateway flushes on size or on a short timer, whichever comes first
(and at once for an SOS), so a busy gateway sends few, large messages and
a quiet one still delivers within one timer tick. A tag read carries the
reader that saw it (the child's breadcrumb), so the batch names it per fix.
"""

from __future__ import annotations

from models.fixes import Report, report_flags
from models.messages import FixBatch, pack


class Batcher:
    def __init__(self, protocol: str, max_fixes: int = 5_000) -> None:
        self.protocol = protocol
        self.max_fixes = max_fixes
        self._reports: list[Report] = []
        self._readers: list[str] = []
        self._any_reader = False

    def add(self, r: Report, reader: str = "") -> None:
        """Queue one validated report; ``reader`` is the tag reader it came
        through ("" for every other protocol)."""
        self._reports.append(r)
        self._readers.append(reader)
        self._any_reader = self._any_reader or bool(reader)

    def __len__(self) -> int:
        return len(self._reports)

    def take(self) -> FixBatch | None:
        rs, self._reports = self._reports, []
        readers, self._readers = self._readers, []
        any_reader, self._any_reader = self._any_reader, False
        if not rs:
            return None
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
            protocol=self.protocol,
            readers=readers if any_reader else [],
        )
