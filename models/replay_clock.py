"""The training session's clock, as its engine and consoles keep it.

A replay runs on replayed time: a recorded SOS at 08:12:05 must open its
alert at 08:12:05 in the training engine, and the trainee's SLA countdown
must run at the replay's speed, or deadlines and countdowns would be
nonsense at 8x. The session publishes ``replay.clock`` (the time and the
speed) before every batch it plays and ten times a second between; each
receiver turns the latest one into "now" by running it forward at that
speed from when it arrived. It never runs backwards, except when a seek
back starts a new epoch (the training engine restarts then; consoles jump).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SessionClock:
    def __init__(self, start: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._mono = monotonic
        self._t = start  # replayed time at _at
        self._at = monotonic()
        self.speed = 0.0  # paused until the session says otherwise
        self.epoch = 0

    def set(self, t: float, speed: float, epoch: int = 0) -> None:
        """The session's latest word: time ``t`` now, moving at ``speed``.
        Within an epoch it never goes backwards (a message overtaken by a
        later one); a new epoch (a seek back) starts where it says."""
        now = t if epoch != self.epoch else max(t, self.now())
        self._t, self._at, self.speed = now, self._mono(), max(0.0, speed)
        self.epoch = epoch

    def now(self) -> float:
        return self._t + (self._mono() - self._at) * self.speed

    __call__ = now
