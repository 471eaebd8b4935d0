"""The training session's clock as engines and consoles keep it."""

from __future__ import annotations

from models.replay_clock import SessionClock


class Mono:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_it_runs_at_the_sessions_speed_and_stops_when_paused() -> None:
    mono = Mono()
    clock = SessionClock(1000.0, mono)
    mono.now += 5
    assert clock() == 1000.0  # paused until told
    clock.set(2000.0, 8.0)
    mono.now += 0.5
    assert clock() == 2004.0
    clock.set(2004.5, 0.0)
    mono.now += 10
    assert clock() == 2004.5


def test_a_late_message_never_turns_it_back_but_a_new_epoch_does() -> None:
    mono = Mono()
    clock = SessionClock(0.0, mono)
    clock.set(100.0, 1.0)
    mono.now += 2
    clock.set(101.0, 1.0)  # sent before the 2 s passed: overtaken
    assert clock() == 102.0
    clock.set(10.0, 1.0, epoch=1)  # a seek back: the session starts again
    assert clock() == 10.0
    clock.set(9.0, 1.0, epoch=1)
    assert clock() == 10.0
