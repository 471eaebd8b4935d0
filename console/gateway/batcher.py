"""Accumulates validated reports into columnar ``FixBatch``es.

The gateway flushes on size or age, whichever comes first, so a quiet
system still delivers an SOS within one flush interval and a busy one
sends few, large messages.
"""

from __future__ import annotations

import time

from models.fixes import Report, report_flags
from models.messages import FixBatch, pack


class Batcher:
    def __init__(self, protocol: str, max_fixes: int = 5_000, max_age_s: float = 0.05) -> None:
        self.protocol = protocol
        self.max_fixes = max_fixes
        self.max_age_s = max_age_s
        self._reports: list[Report] = []
        self._first = 0.0

    def add(self, r: Report) -> None:
        if not self._reports:
            self._first = time.monotonic()
        self._reports.append(r)

    def due(self) -> bool:
        return bool(self._reports) and (
            len(self._reports) >= self.max_fixes
            or time.monotonic() - self._first >= self.max_age_s
            or any(r.sos for r in self._reports[-1:])
        )

    def __len__(self) -> int:
        return len(self._reports)

    def take(self) -> FixBatch | None:
        rs, self._reports = self._reports, []
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
        )
