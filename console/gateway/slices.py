"""Routine reads worked in slices, so that an alarm never waits for them.

Saturated, a server that works every read as it comes makes a read holding
an SOS wait until every other connection's reads of that loop turn are
done. The device servers instead work a read that may hold an alarm at
once and queue the others here; the queue is worked in slices of
``SLICE_S``, and between two slices the event loop looks at the sockets,
where the next alarm is worked at once. A connection waiting in the queue
keeps being read into its own buffer, behind what waits there, so a
device's own earlier reports are always worked before its alarm (which
then works the whole buffer at once); past ``HELD_BYTES`` it is no longer
read until its turn, and the backlog stays in the kernel's buffers, where
TCP slows the devices down. (Pausing every queued connection, as it once
did, cost each read two more trips through the event loop's poller.)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

SLICE_S = 0.002  # routine work between two looks at the sockets
HELD_BYTES = 8 * 1024  # read and waiting its turn, per connection, before it is paused

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
    """A device connection that is not read while more than ``HELD_BYTES``
    of it wait their turn in a ``Slicer`` (``hold``) or while its peer does
    not read the replies (transport flow control)."""

    transport: asyncio.Transport | None = None
    closing = False
    write_paused = False
    held = False  # paused until its reads waiting in the slicer are worked

    def hold(self, waiting: int) -> None:
        """``waiting`` bytes of this connection wait their turn: past
        ``HELD_BYTES`` stop reading it until they are worked (``release``)."""
        if waiting > HELD_BYTES and not self.held and self.transport is not None:
            self.held = True
            self.transport.pause_reading()

    def release(self) -> None:
        """Its waiting reads are being worked: read it again."""
        if self.held:
            self.held = False
            self.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.resume_reading()

    def resume_reading(self) -> None:
        if (self.transport is not None and not self.closing and not self.held
                and not self.write_paused):
            self.transport.resume_reading()
