"""Device reports and the rules that decide whether they are positions.

Every protocol decoder produces ``Report``s; ``validate`` decides, with a
reason a person can read, whether a report is a usable fix. An SOS is never
dropped for a bad position: it is kept, flagged ``FLAG_BAD_POSITION``, and
the engine raises it at the child's last known position.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from models.messages import (
    FLAG_BAD_POSITION,
    FLAG_FALL,
    FLAG_LOW_BATTERY,
    FLAG_REMOVED,
    FLAG_SOS,
)

EPOCH_2000 = 946_684_800.0
# A device clock this far ahead is wrong, not early: one such fix would hold
# its child's live position (the tracker keeps the newest) until real time
# caught up. Watches that send local time need watch_utc_offset_s, not slack.
MAX_FUTURE_S = 300.0
LOW_BATTERY_PCT = 15


class Rejected(ValueError):
    """A report that carries nothing usable; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Report:
    device_id: str
    t: float
    lat: float
    lon: float
    speed: float = 0.0  # m/s
    bearing: float = 0.0
    accuracy: float = math.nan
    battery: int = -1
    sos: bool = False
    valid: bool = True  # the device's own validity flag (e.g. a watch's 'V')
    alarms: int = 0  # FLAG_FALL / FLAG_REMOVED / FLAG_LOW_BATTERY the device raised

    @property
    def urgent(self) -> bool:
        """An alarm a person must see: kept even without a usable position."""
        return self.sos or bool(self.alarms & (FLAG_FALL | FLAG_REMOVED))

    @property
    def flags(self) -> int:
        f = (FLAG_SOS if self.sos else 0) | self.alarms
        if 0 <= self.battery < LOW_BATTERY_PCT:
            f |= FLAG_LOW_BATTERY
        return f


def position_problem(lat: float, lon: float) -> str | None:
    """Why (lat, lon) is not a position, or None if it is one."""
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return "coordinate_not_finite"
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return "coordinate_out_of_range"
    if lat == 0.0 and lon == 0.0:
        return "coordinate_null_island"
    return None


def validate(r: Report, now: float | None = None) -> Report:
    """Return the report with ``flags`` decided, or raise ``Rejected``.

    A time before 2000 or more than 5 min ahead is impossible, not late; a
    bad position rejects a plain fix but only marks an alarm (SOS, fall,
    watch removed).
    """
    now = time.time() if now is None else now
    if not math.isfinite(r.t) or r.t < EPOCH_2000:
        if not r.urgent:
            raise Rejected("time_before_2000", f"timestamp {r.t!r}")
        r.t = now
    elif r.t > now + MAX_FUTURE_S:
        if not r.urgent:
            raise Rejected("time_in_future", f"timestamp {r.t:.0f} is {r.t - now:.0f} s ahead")
        r.t = now
    problem = "invalid_fix" if not r.valid else position_problem(r.lat, r.lon)
    if problem is not None:
        if not r.urgent:
            raise Rejected(problem, f"lat={r.lat!r} lon={r.lon!r}")
        r.lat = r.lon = math.nan
    for name in ("speed", "bearing", "accuracy"):
        if not math.isfinite(getattr(r, name)):
            setattr(r, name, math.nan if name == "accuracy" else 0.0)
    return r


def report_flags(r: Report) -> int:
    f = r.flags
    if not (math.isfinite(r.lat) and math.isfinite(r.lon)):
        f |= FLAG_BAD_POSITION
    return f
