"""Exact-duplicate detection for the intake, in bounded memory.

Devices resend: a phone whose 200 was lost sends the same position again,
a watch that reconnects replays its buffer, a reader resends a whole batch
(A, B, A arrives, or a batch with two reads of one tag twice). Comparing
with the device's last report catches only the first case, so each device
keeps a window of its last ``WINDOW`` fix keys.

The common case is a fresh fix, newer than anything in the window: that
cannot be a duplicate, so it costs one comparison and no scan. Keys are
64-bit hashes of the bytes of (t, lat, lon, sos), 8 bytes each in one
``bytearray`` per device (256 bytes with a full window); a false match
needs a hash collision within one device's 32 keys (odds ~2**-59). The
number of devices tracked is capped too: past ``max_devices`` the oldest
windows are forgotten in one sweep, so a registry of any size cannot grow
this without limit.

Nothing here is an object the garbage collector tracks (a bytearray, a
float and strings in two dicts): a full collection does not walk a city's
worth of windows, which with one object per device stopped the gateway's
loop for tens of milliseconds at a time under load.
"""

from __future__ import annotations

import math
import struct
from itertools import islice

WINDOW = 32
MAX_DEVICES = 1_000_000  # above the city's 580k devices
EVICT_SHARE = 0.1  # forget this share of windows at once when over the cap
KEY_BYTES = 8

_PACK = struct.Struct("<ddd?").pack
_KEY = struct.Struct("<q").pack


def fix_key(t: float, lat: float, lon: float, sos: bool) -> bytes:
    """The hash two exact copies of one fix share, as 8 bytes: of the
    values' bytes, not of the floats (Python hashes -1.0 and -2.0 alike).
    Every NaN (an SOS with no position) is keyed as the same NaN."""
    return _KEY(hash(_PACK(t, lat if lat == lat else math.nan,
                           lon if lon == lon else math.nan, sos)))


def _holds(keys: bytearray, key: bytes) -> bool:
    """Is ``key`` one of the 8-byte keys in ``keys`` (not straddling two)?"""
    i = keys.find(key)
    while i >= 0:
        if i % KEY_BYTES == 0:
            return True
        i = keys.find(key, i + 1)
    return False


class RecentFixes:
    """Per-device windows of recent fix keys; ``seen`` records as it checks."""

    def __init__(self, window: int = WINDOW, max_devices: int = MAX_DEVICES) -> None:
        self.window = window
        self.max_devices = max_devices
        self.evicted = 0  # windows forgotten to stay under max_devices
        self._keys: dict[str, bytearray] = {}  # oldest key first
        self._newest: dict[str, float] = {}  # the newest fix time in the window

    def __len__(self) -> int:
        return len(self._keys)

    def window_of(self, device_id: str) -> int:
        """How many keys the device's window holds (0: none kept)."""
        return len(self._keys.get(device_id, b"")) // KEY_BYTES

    def seen(self, device_id: str, t: float, lat: float, lon: float, sos: bool) -> bool:
        """True if this exact fix is in the device's window; otherwise
        remember it and return False."""
        key = fix_key(t, lat, lon, sos)
        keys = self._keys.get(device_id)
        if keys is None:
            self._keys[device_id] = bytearray(key)
            self._newest[device_id] = t
            if len(self._keys) > self.max_devices:
                self._evict()
            return False
        newest = self._newest[device_id]
        if t <= newest and _holds(keys, key):
            return True
        if t > newest:
            self._newest[device_id] = t
        if len(keys) >= self.window * KEY_BYTES:
            del keys[:KEY_BYTES]  # cheap: a bytearray drops its head in place
        keys += key
        return False

    def forget(self, device_ids: set[str]) -> None:
        """Drop the windows of devices no longer registered."""
        for device_id in device_ids:
            self._keys.pop(device_id, None)
            self._newest.pop(device_id, None)

    def _evict(self) -> None:
        """Forget the oldest-created windows in one rebuild (amortised O(1)
        per device; deleting from a dict's front one by one is not)."""
        n = max(1, int(len(self._keys) * EVICT_SHARE))
        self._keys = dict(islice(self._keys.items(), n, None))
        self._newest = {d: self._newest[d] for d in self._keys}
        self.evicted += n
