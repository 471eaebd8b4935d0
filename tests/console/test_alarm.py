"""The console's alert audio, proven through the player's observable state:
which tone sounds, libvlc's real MediaPlayer state, and the plays counter."""

from __future__ import annotations

import threading
import time
import wave
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from console.alarm import AlarmPlayer, sound_device_present
from models.messages import AlertView

WAIT_MS = 5000


def alert(id: int, priority: int, state: str = "new", count: int = 1,
          breaches: int = 0) -> AlertView:
    return AlertView(id=id, kind="sos", priority=priority, state=state,  # type: ignore[arg-type]
                     child_token=f"c{id}", child_slot=id, device_id=f"dev{id}",
                     lat=37.5444, lon=127.0374, place="Seoul Forest", opened_at=1000.0 + id,
                     count=count, breaches=breaches)


def running_timers(player: AlarmPlayer) -> list[QTimer]:
    return [t for t in player.findChildren(QTimer) if t.isActive()]


@pytest.fixture
def player(qtbot: QtBot) -> Iterator[AlarmPlayer]:
    p = AlarmPlayer()
    try:
        yield p
    finally:
        p.close()
        assert not running_timers(p)


def wait_playing(qtbot: QtBot, player: AlarmPlayer) -> None:
    """Until libvlc's MediaPlayer is in its Playing state; on a timeout, say
    which states it went through."""
    seen: list[str] = []

    def playing() -> bool:
        state = f"{player.state() or '-'}/{player.mode() or '-'}/{player.player_state()}"
        if not seen or seen[-1] != state:
            seen.append(state)
        return player.is_playing()

    try:
        qtbot.waitUntil(playing, timeout=WAIT_MS)
    except qtbot.TimeoutError:
        pytest.fail(f"libvlc never played (plays={player.plays}, output="
                    f"{player.audio_output}): {' -> '.join(seen)}")


def wait_silent(qtbot: QtBot, player: AlarmPlayer) -> None:
    qtbot.waitUntil(lambda: player.state() == "" and not player.is_playing(), timeout=WAIT_MS)


def test_no_sound_card_means_the_null_output() -> None:
    if sound_device_present():
        pytest.skip("this machine has a sound device")
    p = AlarmPlayer()
    try:
        assert p.audio_output == "null" and "no sound device" in p.audio_note
    finally:
        p.close()


def test_new_p1_loops_until_acknowledged(qtbot: QtBot, player: AlarmPlayer) -> None:
    assert player.state() == "" and player.plays == 0 and not running_timers(player)
    with qtbot.waitSignal(player.sound_changed, timeout=WAIT_MS) as sig:
        player.update([alert(1, 1)])
    assert sig.args == ["p1"]
    assert player.state() == "p1" and player.mode() == "loop"
    wait_playing(qtbot, player)  # libvlc really plays it

    first = player.plays
    qtbot.wait(3000)
    assert player.plays >= first + 2, "the tone keeps repeating until acknowledged"
    assert player.state() == "p1"
    wait_playing(qtbot, player)  # and still really plays

    player.update([alert(1, 1, "acknowledged")])
    assert player.state() == ""
    wait_silent(qtbot, player)
    assert not running_timers(player)
    plays = player.plays
    qtbot.wait(1200)
    assert player.plays == plays and not player.is_playing()


@pytest.mark.parametrize("state", ["in_progress", "on_hold", "dispatched", "resolved"])
def test_only_new_alerts_sound(qtbot: QtBot, player: AlarmPlayer, state: str) -> None:
    player.update([alert(1, 1, state)])
    assert player.state() == "" and player.plays == 0 and not running_timers(player)


def test_the_most_urgent_new_alert_is_heard(qtbot: QtBot, player: AlarmPlayer) -> None:
    player.update([alert(3, 3)])
    assert player.state() == "p3"
    player.update([alert(3, 3), alert(1, 1)])
    assert player.state() == "p1"
    wait_playing(qtbot, player)
    player.update([alert(1, 1), alert(3, 3), alert(2, 2, "acknowledged")])
    assert player.state() == "p1"
    player.update([alert(1, 1, "acknowledged"), alert(3, 3), alert(4, 4)])
    assert player.state() == "p3"
    wait_playing(qtbot, player)
    player.update([alert(3, 3, "acknowledged"), alert(4, 4)])
    assert player.state() == "p4"


def test_low_priorities_mute_but_p1_p2_never(qtbot: QtBot, player: AlarmPlayer) -> None:
    player.set_mute_low(True)
    assert player.muted_low
    player.update([alert(3, 3)])
    assert player.state() == "" and player.plays == 0
    player.update([alert(3, 3), alert(4, 4)])
    qtbot.wait(300)
    assert player.state() == "" and not player.is_playing() and not running_timers(player)

    player.update([alert(3, 3), alert(2, 2)])
    assert player.state() == "p2"
    wait_playing(qtbot, player)
    player.set_mute_low(True)
    assert player.state() == "p2"

    player.update([alert(3, 3), alert(2, 2, "acknowledged")])
    wait_silent(qtbot, player)

    player.set_mute_low(False)  # unmuted: the waiting P3 is heard at once
    assert player.state() == "p3"
    wait_playing(qtbot, player)
    player.set_mute_low(True)  # and muting silences a sounding P3
    assert player.state() == ""
    wait_silent(qtbot, player)

    player.update([alert(3, 3), alert(1, 1)])
    assert player.state() == "p1"


def test_repeated_trigger_of_an_acknowledged_alert_sounds_once(
        qtbot: QtBot, player: AlarmPlayer) -> None:
    # Seen first already acknowledged (a console starting up): no sound.
    player.update([alert(7, 1, "acknowledged", count=2)])
    assert player.state() == "" and player.plays == 0
    player.update([alert(7, 1, "acknowledged", count=2)])  # nothing changed
    assert player.plays == 0

    player.update([alert(7, 1, "acknowledged", count=3)])  # the child pressed SOS again
    assert player.state() == "p1" and player.mode() == "once" and player.plays == 1
    wait_playing(qtbot, player)
    wait_silent(qtbot, player)  # a single play, then silence
    assert player.plays == 1 and not running_timers(player)
    qtbot.wait(1500)
    assert player.plays == 1 and player.state() == ""

    player.update([alert(7, 1, "in_progress", count=4)])  # each new trigger: once more
    assert player.mode() == "once" and player.plays == 2
    wait_silent(qtbot, player)
    assert player.plays == 2


def test_an_escalation_sounds_once_more(qtbot: QtBot, player: AlarmPlayer) -> None:
    """A missed SLA re-notifies: the alert's tone plays once, once per new breach."""
    player.update([alert(5, 2, "in_progress")])
    assert player.plays == 0
    player.update([alert(5, 2, "in_progress", breaches=2)])  # not resolved in time
    assert player.state() == "p2" and player.mode() == "once" and player.plays == 1
    wait_silent(qtbot, player)
    player.update([alert(5, 2, "in_progress", breaches=2)])  # the same breach: quiet
    assert player.plays == 1
    player.update([alert(5, 2, "resolved", breaches=2)])
    assert player.plays == 1


def test_repeated_trigger_while_a_loop_sounds(qtbot: QtBot, player: AlarmPlayer) -> None:
    queue = [alert(3, 3), alert(7, 1, "acknowledged")]
    player.update(queue)
    assert player.state() == "p3" and player.mode() == "loop"
    # A more urgent single play interrupts the loop, which comes back after it.
    player.update([alert(3, 3), alert(7, 1, "acknowledged", count=2)])
    assert player.state() == "p1" and player.mode() == "once"
    qtbot.waitUntil(lambda: player.state() == "p3" and player.mode() == "loop",
                    timeout=WAIT_MS)
    wait_playing(qtbot, player)

    # A loop as urgent or more already says it: the single play is skipped.
    player.update([alert(1, 1), alert(7, 2, "acknowledged", count=1)])
    assert player.state() == "p1"
    plays = player.plays
    player.update([alert(1, 1), alert(7, 2, "acknowledged", count=2)])
    assert player.state() == "p1" and player.mode() == "loop" and player.plays == plays


def test_muted_repeated_low_trigger_stays_silent(qtbot: QtBot, player: AlarmPlayer) -> None:
    player.set_mute_low(True)
    player.update([alert(4, 4, "acknowledged")])
    player.update([alert(4, 4, "acknowledged", count=2)])
    assert player.state() == "" and player.plays == 0
    player.update([alert(2, 2, "acknowledged")])
    player.update([alert(2, 2, "acknowledged", count=2)])
    assert player.state() == "p2" and player.mode() == "once"
    wait_silent(qtbot, player)


def test_empty_queue_and_stop_silence(qtbot: QtBot, player: AlarmPlayer) -> None:
    player.update([alert(1, 2)])
    wait_playing(qtbot, player)
    with qtbot.waitSignal(player.sound_changed, timeout=WAIT_MS) as sig:
        player.update([])
    assert sig.args == [""]
    wait_silent(qtbot, player)
    assert not running_timers(player)

    player.update([alert(1, 2)])
    assert player.state() == "p2"
    player.stop()
    wait_silent(qtbot, player)
    assert not running_timers(player)
    player.update([alert(1, 2)])  # the next update decides afresh
    assert player.state() == "p2"


def test_close_releases_libvlc(qtbot: QtBot) -> None:
    p = AlarmPlayer()
    p.update([alert(1, 1)])
    wait_playing(qtbot, p)
    p.close()
    assert p.closed and p.state() == "" and not p.is_playing()
    assert p.player_state() == "Closed" and not running_timers(p)
    assert p._player is None and p._instance is None and not p._media
    p.update([alert(2, 1)])  # harmless after close
    p.set_mute_low(True)
    assert p.state() == "" and not running_timers(p)
    p.close()  # idempotent


def test_a_failing_real_output_falls_back_to_the_null_one(qtbot: QtBot) -> None:
    if sound_device_present():
        pytest.skip("needs a machine without a sound device (ALSA fails there)")
    p = AlarmPlayer(audio_output="alsa")
    try:
        assert p.audio_output == "alsa"
        p.update([alert(1, 1)])
        qtbot.waitUntil(lambda: p.audio_output == "null", timeout=WAIT_MS)
        assert "failed" in p.audio_note and p.state() == "p1"
        wait_playing(qtbot, p)
    finally:
        p.close()
    assert not running_timers(p)


def test_the_null_output_plays_in_real_time(qtbot: QtBot, player: AlarmPlayer) -> None:
    """Without a sound card libvlc still plays the whole tone, at its pace:
    Playing for about the tone's length, every sample handed to the output."""
    if player.audio_output != "null":
        pytest.skip("a real audio output is in use")
    with wave.open(str(player.tone_file(2)), "rb") as w:
        frames, length = w.getnframes(), w.getnframes() / w.getframerate()
    player.update([alert(5, 2, "acknowledged")])
    player.update([alert(5, 2, "acknowledged", count=2)])  # one single play
    t0 = time.monotonic()
    wait_playing(qtbot, player)
    qtbot.waitUntil(lambda: not player.is_playing(), timeout=WAIT_MS)
    assert time.monotonic() - t0 >= length * 0.8
    assert player.frames_out == frames
    wait_silent(qtbot, player)


def test_cadence_follows_the_tone_length(qtbot: QtBot, player: AlarmPlayer) -> None:
    """The null output ends a play at once; the loop still restarts no sooner
    than the tone's length (P4 is 1.26 s: 2 or 3 plays in 2.6 s)."""
    player.update([alert(4, 4)])
    t0 = time.monotonic()
    qtbot.wait(2600)
    plays = player.plays
    assert time.monotonic() - t0 < 3.7
    assert 2 <= plays <= 3, plays


def test_only_the_owning_thread_may_drive_it(player: AlarmPlayer) -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            player.update([alert(1, 1)])
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(5)
    assert len(errors) == 1 and player.state() == ""
