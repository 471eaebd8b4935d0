"""The pace of a training session: play, pause, speed, step and seek.

The player owns the replayed time. Played at a speed, it hands out the
source's messages as their replayed time comes, each turn's fix batches
merged into one (a recording's 50 ms batches at 16x would be 320 messages
a second for nothing), always after a ``replay.clock`` saying what time it
is. A seek forward plays at ``SEEK_SPEED`` to the target (the training
engine must see every fix on the way: zones, dwell and deadlines depend on
them); a seek back first has the session restart the engine, then plays
from the start to the target. Qt-free: the trainer's window and the CLI
drive it through ``console.training.session``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from models.messages import FixBatch, Message, ReplayClock, ReplayMark

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SEEK_SPEED = 64.0  # how fast a seek plays its way to the target
STEP_S = 5.0  # what one step advances, paused
CLOCK_EVERY_S = 0.1  # the clock is told this often even when nothing else is sent


class Source(Protocol):
    t0: float
    t1: float

    def restart(self) -> None: ...
    def take(self, until: float) -> list[Played]: ...
    def marks(self) -> list[ReplayMark]: ...


class Played(Protocol):
    t: float
    msg: Message


class Refused(ValueError):
    """A control the player cannot follow (said to the trainer as is)."""


def merge(batches: list[FixBatch]) -> FixBatch:
    """One batch of many, in order (the columns' bytes simply follow each
    other: every batch packs them with the same dtypes)."""
    if len(batches) == 1:
        return batches[0]
    readers: list[str] = []
    if any(b.readers for b in batches):
        for b in batches:
            readers += b.readers or [""] * len(b.device_ids)
    cols = ("t", "lat", "lon", "speed", "bearing", "accuracy", "battery", "flags")
    return FixBatch(device_ids=[d for b in batches for d in b.device_ids],
                    **{c: b"".join(getattr(b, c) for b in batches) for c in cols},
                    protocol=batches[0].protocol, readers=readers)


class Player:
    def __init__(self, source: Source, send: Callable[[Message], object],
                 restart_engine: Callable[[float], None],
                 monotonic: Callable[[], float] = time.monotonic, title: str = "") -> None:
        self.source = source
        self.title = title
        self.epoch = 0  # a seek back starts the next
        self.send = send
        self.restart_engine = restart_engine
        self.mono = monotonic
        self.t = source.t0
        self.speed = 1.0
        self.playing = False
        self.target: float | None = None  # a seek's, while playing toward it
        self._resume = False  # play on after the seek
        self._last = monotonic()
        self._clock_at = 0.0

    # -------------------------------------------------------------- controls
    def play(self, speed: float | None = None) -> None:
        if speed is not None:
            self.set_speed(speed)
        if self.target is not None:
            self._resume = True
        elif self.t < self.source.t1:
            self.playing = True
            self._last = self.mono()

    def pause(self) -> None:
        self.playing = False
        self._resume = False

    def set_speed(self, speed: float) -> None:
        if speed not in SPEEDS:
            raise Refused(f"speed is one of {', '.join(f'{s:g}x' for s in SPEEDS)}")
        self.speed = speed

    def step(self) -> None:
        """Paused: advance STEP_S and stay paused."""
        if self.playing or self.target is not None:
            raise Refused("pause first, then step")
        self._advance_to(min(self.source.t1, self.t + STEP_S), 0.0)

    def seek(self, t: float) -> None:
        if not self.source.t0 <= t <= self.source.t1:
            raise Refused("seek inside the session's period")
        self._resume = self.playing or self._resume
        if t < self.t:
            self.restart_engine(self.source.t0)
            self.source.restart()
            self.epoch += 1
            self.t = self.source.t0
            self._clock_at = 0.0
        self.target = t
        self.playing = False
        self._last = self.mono()

    # ------------------------------------------------------------------ turn
    def turn(self) -> None:
        """Send whatever is due now (call every few tens of milliseconds)."""
        now = self.mono()
        elapsed, self._last = now - self._last, now
        if self.target is not None:
            until = min(self.target, self.t + elapsed * SEEK_SPEED)
            self._advance_to(until, SEEK_SPEED)
            if self.t >= self.target:
                self.target = None
                self.playing, self._resume = self._resume, False
        elif self.playing:
            self._advance_to(min(self.source.t1, self.t + elapsed * self.speed), self.speed)
            if self.t >= self.source.t1:
                self.playing = False
        if now - self._clock_at >= CLOCK_EVERY_S:
            self._tell_clock()

    def running_speed(self) -> float:
        if self.target is not None:
            return SEEK_SPEED
        return self.speed if self.playing else 0.0

    def _advance_to(self, until: float, speed: float) -> None:
        items = self.source.take(until)
        self.t = max(self.t, until)
        self._tell_clock(speed)
        batches: list[FixBatch] = []
        for item in items:
            if isinstance(item.msg, FixBatch):
                batches.append(item.msg)
            else:
                self.send(item.msg)
        if batches:
            self.send(merge(batches))

    def _tell_clock(self, speed: float | None = None) -> None:
        self.send(ReplayClock(t=self.t, speed=self.running_speed() if speed is None
                              else speed, epoch=self.epoch, title=self.title))
        self._clock_at = self.mono()
