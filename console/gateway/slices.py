"""Routine reads worked in slices, so that an alarm never waits for them.

Saturated, a server that works every read as it comes makes a read holding
an SOS wait until every other connection's reads of that loop turn are
done. The device servers instead work a read that may hold an alarm at
once and queue the others here; the queue is worked in slices of
``SLICE_S``, and between two slices the event loop looks at the sockets,
where the next alarm is worked at once. A connection waiting in the queue
is not read (its server pauses it), so a device's own earlier reports are
always worked before its alarm, and the backlog stays in the kernel's
buffers, where TCP slows the devices down. It also gathers there: at its
turn one read takes everything the device sent meanwhile. (Reading each
queued connection as its bytes came, and pausing only past a few KiB, was
tried: reads of one frame each halved watch ingest under load, 73k -> 38k
fixes/s, for an alarm behind its own queued frames read sooner.)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

SLICE_S = 0.002  # routine work between two looks at the sockets

UrgentTest = Callable[[bytes], bool]  # may these bytes hold an alarm? (cheap; a false yes is fine)


class Slicer:
    """A queue of routine work, worked in slices on the running loop."""

    def __init__(self, slice_s: float = SLICE_S) -> None:
        self.slice_s = slice_s
        self.waiting: deque[Callable[[], None]] = deque()
        self.slicing = False
        self.slices = 0  # slices worked: how often the queue had to be worked apart

    def defer(self, work: Callable[[], None]) -> None:
        self.waiting.append(work)
        if not self.slicing:
            self.slicing = True
            asyncio.get_running_loop().call_soon(self._slice)

    def _slice(self) -> None:
        self.slices += 1
        deadline = time.monotonic() + self.slice_s
        while self.waiting:
            self.waiting.popleft()()
            if time.monotonic() >= deadline:
                break
        if self.waiting:
            asyncio.get_running_loop().call_soon(self._slice)
        else:
            self.slicing = False


class PacedProtocol(asyncio.Protocol):
    """A device connection that is not read while one of its reads waits
    its turn in a ``Slicer`` (``waiting_turn``) or while its peer does not
    read the replies (transport flow control)."""

    transport: asyncio.Transport | None = None
    closing = False
    write_paused = False

    def waiting_turn(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.resume_reading()

    def resume_reading(self) -> None:
        if (self.transport is not None and not self.closing and not self.waiting_turn()
                and not self.write_paused):
            self.transport.resume_reading()
