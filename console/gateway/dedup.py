"""Exact-duplicate detection for the intake, in bounded memory.

Devices resend: a phone whose 200 was lost sends the same position again,
a watch that reconnects replays its buffer, a reader resends a whole batch
(A, B, A arrives, or a batch with two reads of one tag twice). Comparing
with the device's last report catches only the first case, so each device
keeps a window of its last ``WINDOW`` fix keys.

The common case is a fresh fix, newer than anything in the window: that
cannot be a duplicate, so it costs one comparison and no scan. Keys are
64-bit hashes of the bytes of (t, lat, lon, sos) in a compact ``array`` (8 bytes each,
about 400 bytes per device with a full window); a false match needs a hash
collision within one device's 32 keys (odds ~2**-59). The number of devices
tracked is capped too: past ``max_devices`` the oldest windows are
forgotten in one sweep, so a registry of any size cannot grow this without
limit.
"""

from __future__ import annotations

import math
import struct
from array import array
from itertools import islice

WINDOW = 32
MAX_DEVICES = 1_000_000  # above the city's 580k devices
EVICT_SHARE = 0.1  # forget this share of windows at once when over the cap


_PACK = struct.Struct("<ddd?").pack


def fix_key(t: float, lat: float, lon: float, sos: bool) -> int:
    """The hash two exact copies of one fix share: of the values' bytes, not
    of the floats (Python hashes -1.0 and -2.0 alike). Every NaN (an SOS
    with no position) is keyed as the same NaN."""
    return hash(_PACK(t, lat if lat == lat else math.nan, lon if lon == lon else math.nan, sos))


class _Window:
    """One device's last keys, a ring once full (``next`` is the slot the
    next key overwrites), and the newest fix time it holds."""

    __slots__ = ("keys", "newest", "next")

    def __init__(self) -> None:
        self.newest = -math.inf
        self.keys = array("q")
        self.next = 0


class RecentFixes:
    """Per-device windows of recent fix keys; ``seen`` records as it checks."""

    def __init__(self, window: int = WINDOW, max_devices: int = MAX_DEVICES) -> None:
        self.window = window
        self.max_devices = max_devices
        self.evicted = 0  # windows forgotten to stay under max_devices
        self._windows: dict[str, _Window] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def seen(self, device_id: str, t: float, lat: float, lon: float, sos: bool) -> bool:
        """True if this exact fix is in the device's window; otherwise
        remember it and return False."""
        w = self._windows.get(device_id)
        if w is None:
            w = self._windows[device_id] = _Window()
            if len(self._windows) > self.max_devices:
                self._evict()
        key = fix_key(t, lat, lon, sos)
        if t <= w.newest and key in w.keys:
            return True
        if t > w.newest:
            w.newest = t
        if len(w.keys) < self.window:
            w.keys.append(key)
        else:
            w.keys[w.next] = key
            w.next = (w.next + 1) % self.window
        return False

    def forget(self, device_ids: set[str]) -> None:
        """Drop the windows of devices no longer registered."""
        for device_id in device_ids:
            self._windows.pop(device_id, None)

    def _evict(self) -> None:
        """Forget the oldest-created windows in one rebuild (amortised O(1)
        per device; deleting from a dict's front one by one is not)."""
        n = max(1, int(len(self._windows) * EVICT_SHARE))
        self._windows = dict(islice(self._windows.items(), n, None))
        self.evicted += n
