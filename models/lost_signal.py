"""Lost signal: a child expected at school or on the way whose devices have
gone quiet for longer than their kind allows.

Why only while expected: a watch switched off at home at night is not an
emergency, and a city of 580,000 children would drown the control room.
Why from the engine's start as well as the last fix: the engine keeps no
positions across a restart, so right after one every child would look
silent; silence is counted from whichever is later.
"""

from __future__ import annotations

import numpy as np


class LostSignal:
    def __init__(self, n: int, started_at: float) -> None:
        self.started_at = started_at
        self.limit_s = np.zeros(n)  # per slot; 0: never (a tag is only read in zones)
        self.lost = np.zeros(n, dtype=bool)

    def grow(self, k: int) -> None:
        self.limit_s = np.concatenate([self.limit_s, np.zeros(k)])
        self.lost = np.concatenate([self.lost, np.zeros(k, dtype=bool)])

    def set_limits(self, limits: dict[int, float]) -> None:
        """Slot -> seconds of silence allowed (the shortest of the child's
        devices that report on their own)."""
        self.limit_s[:] = 0.0
        for slot, limit in limits.items():
            self.limit_s[slot] = limit

    def check(self, last_fix: np.ndarray, expected: np.ndarray, now: float
              ) -> tuple[list[int], list[int]]:
        """(slots newly lost, slots heard again). ``last_fix``: the tracker's
        newest fix time per slot; ``expected``: per slot, whether the
        timetable expects the child at school, an academy or in transit now."""
        silent_for = now - np.maximum(last_fix, self.started_at)
        armed = self.limit_s > 0
        lost_now = armed & expected & (silent_for > self.limit_s)
        # only a fix ends a silence (the engine's own start is not a fix: an
        # alert raised before a restart stays until the device is heard)
        heard = self.lost & armed & (now - last_fix <= self.limit_s)
        newly = np.flatnonzero(lost_now & ~self.lost)
        back = np.flatnonzero(heard)
        self.lost[newly] = True
        self.lost[back] = False
        return newly.tolist(), back.tolist()

    def forget(self, slots: np.ndarray | list[int]) -> None:
        self.lost[np.asarray(slots, dtype=np.int64)] = False


def limits_by_slot(device_slots: dict[str, int], device_kinds: dict[str, str],
                   per_kind: dict[str, float]) -> dict[int, float]:
    """The silence each child may keep: the shortest non-zero limit among
    their devices' kinds (a watch and a tag: the watch's)."""
    out: dict[int, float] = {}
    for device, slot in device_slots.items():
        limit = per_kind.get(device_kinds.get(device, ""), 0.0)
        if limit > 0 and (slot not in out or limit < out[slot]):
            out[slot] = limit
    return out
