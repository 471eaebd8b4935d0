"""The console's alert audio: a distinct tone per priority, looping while an
alert is unacknowledged.

``AlarmPlayer.update(alerts)`` is called with the whole current queue each
time it changes.  It loops the tone of the most urgent alert in state
``new`` and goes silent when none is left.  P3/P4 tones can be muted per
console (``set_mute_low``); P1/P2 tones never are.  A repeated trigger of an
alert that is no longer new (its ``count`` went up) sounds its tone once
again: a single play, not a loop.  While a tone of the same or a more
urgent priority is looping, that loop already covers it and the single play
is skipped; a more urgent single play interrupts the loop, which resumes
once it is over.

Playback is libvlc's (``PySide6.QtMultimedia`` is not part of
PySide6-Essentials).  The audio output is chosen once, at construction:

- ``"auto"`` (the default): libvlc's own choice (PulseAudio / PipeWire, then
  ALSA) when the machine has a sound device or a sound server; otherwise
  the null output;
- ``"default"``: libvlc's own choice; ``"null"``: the null output; or a
  libvlc audio-output module list such as ``"pulse"`` or ``"alsa"``.

The null output is a silent sound card: libvlc decodes the tone and hands
its samples, through libvlc's audio callbacks, to a sink that consumes them
at the tone's sample rate and drops them.  So without a sound card the
MediaPlayer still goes Opening -> Playing (for the tone's real length) ->
Ended, and its state is observable.  (libvlc's own ``adummy`` output would
"play" a one-second tone in a few milliseconds.)

A real output that cannot play (a play that ends or fails in less than
half the tone's length: no device, the sound server went away) is replaced
by the null output, with a warning, and the sound goes on.

Every libvlc call happens on the thread that owns the player (the GUI
thread), and no libvlc event callbacks are used.  The only code that runs
on a libvlc thread is the null sink's, which makes no libvlc or Qt call.
A QTimer polls the player while a sound is on and restarts the tone when it
has ended, never sooner than the tone's length after the previous start.
The timer runs only while a sound is on.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import wave
from collections.abc import Sequence
from pathlib import Path

import vlc
from PySide6.QtCore import QObject, QThread, QTimer, Signal

from models.alarm_tones import CHANNELS, PRIORITIES, SAMPLE_RATE, ensure_tones
from models.messages import AlertView

log = logging.getLogger(__name__)

POLL_MS = 50
STALL_S = 5.0  # a play still "on" this long after its tone's end is given up on
MUTABLE = frozenset({3, 4})  # priorities a console may mute; P1/P2 never
VLC_BASE_ARGS: tuple[str, ...] = (
    "--quiet",
    "--no-video",
    "--no-xlib",
    "--no-stats",
    "--no-media-library",
)
_ACTIVE = frozenset({vlc.State.Opening, vlc.State.Buffering, vlc.State.Playing,
                     vlc.State.Paused})
_FAILED = frozenset({vlc.State.Ended, vlc.State.Error})


def default_sounds_dir() -> Path:
    from resources import path

    return path("sounds")


def sound_device_present() -> bool:
    """Whether this machine looks able to make a sound: a PulseAudio or
    PipeWire server, or an ALSA playback device."""
    if os.environ.get("PULSE_SERVER"):
        return True
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    sockets = (f"{runtime}/pulse/native", f"{runtime}/pipewire-0",
               "/run/pulse/native", "/var/run/pulse/native")
    if any(os.path.exists(s) for s in sockets):
        return True
    try:
        return any(name.startswith("pcmC") and name.endswith("p")
                   for name in os.listdir("/dev/snd"))
    except OSError:
        return False


class NullSink:
    """A silent sound card for libvlc's audio callbacks: it takes the decoded
    samples no faster than ``rate`` per second (keeping ``lead_s`` of them
    "buffered", like a device) and drops them.  Its methods run on libvlc's
    decoder thread and make no libvlc or Qt call."""

    MAX_SLEEP_S = 0.25  # one call never holds libvlc's thread longer

    def __init__(self, rate: int = SAMPLE_RATE, lead_s: float = 0.05) -> None:
        self.rate = rate
        self.lead_s = lead_s
        self._lock = threading.Lock()
        self._until = 0.0  # when the samples taken so far would have been heard
        self.frames = 0  # samples taken since the sink was made

    def reset(self) -> None:
        with self._lock:
            self._until = 0.0

    def play(self, _opaque: object, _samples: object, count: int, _pts: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._until = max(self._until, now) + count / self.rate
            self.frames += count
            wait = self._until - self.lead_s - now
        if wait > 0:
            time.sleep(min(wait, self.MAX_SLEEP_S))

    def drain(self, _opaque: object) -> None:
        with self._lock:
            wait = self._until - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, self.MAX_SLEEP_S))

    def flush(self, _opaque: object, _pts: int) -> None:
        self.reset()

    def pause(self, _opaque: object, _pts: int) -> None:
        pass

    def attach(self, player: vlc.MediaPlayer) -> tuple[object, ...]:
        """Make this sink ``player``'s audio output; returns the ctypes
        callbacks, which must outlive the player."""
        cb = vlc.CallbackDecorators
        callbacks = (cb.AudioPlayCb(self.play), cb.AudioPauseCb(self.pause),
                     cb.AudioResumeCb(self.pause), cb.AudioFlushCb(self.flush),
                     cb.AudioDrainCb(self.drain))
        player.audio_set_callbacks(*callbacks, None)
        player.audio_set_format("S16N", self.rate, CHANNELS)
        return callbacks


def _tone_length(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


class AlarmPlayer(QObject):
    """Plays the console's alert tones; see the module's docstring.

    Observable state: ``state()`` is the tone sounding now (``"p1"`` …
    ``"p4"``, or ``""``), ``mode()`` whether it loops (``"loop"``), plays once
    (``"once"``) or nothing is on (``""``), ``is_playing()`` whether libvlc's
    MediaPlayer is in its Playing state, ``player_state()`` that state's
    name, ``plays`` how many plays were started, ``audio_output`` the output
    in use (``"null"``, ``"default"`` or a module list), ``audio_note``
    why, in words, and ``frames_out`` the samples the null output took.
    ``sound_changed(str)`` is emitted when ``state()`` changes.
    """

    sound_changed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, sounds_dir: Path | None = None,
                 audio_output: str = "auto", poll_ms: int = POLL_MS) -> None:
        super().__init__(parent)
        self._files = self._tone_files(sounds_dir or default_sounds_dir())
        self._lengths = {p: _tone_length(f) for p, f in self._files.items()}
        if audio_output == "auto":
            if sound_device_present():
                audio_output, note = "default", "libvlc's default audio output"
            else:
                audio_output, note = "null", "no sound device found: silent (null) output"
        else:
            note = f"audio output {audio_output!r} as configured"
        self._audio_output = audio_output
        self._audio_note = note
        self._instance: vlc.Instance | None = None
        self._player: vlc.MediaPlayer | None = None
        self._media: dict[int, vlc.Media] = {}
        self._sink: NullSink | None = None
        self._callbacks: tuple[object, ...] = ()
        self._open(audio_output)

        self._muted_low = False
        self._alerts: list[AlertView] = []
        self._counts: dict[int, tuple[int, int]] = {}  # id -> (count, breaches)
        self._loop = 0  # priority of the loop that should sound (0: none)
        self._once = 0  # priority of the single play on or pending (0: none)
        self._sound = 0  # priority playing now
        self._mode = ""
        self._started = 0.0  # monotonic time of the last play()
        self._restart_once = False  # a repeated trigger restarts the single play
        self._plays = 0
        self._closed = False
        self._bad_media_logged: set[int] = set()

        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)

    # ------------------------------------------------------------------ API

    def update(self, alerts: Sequence[AlertView]) -> None:
        """The whole current alert queue, each time it changes."""
        self._check_thread()
        if self._closed:
            return
        alerts = list(alerts)
        once = 0
        counts: dict[int, tuple[int, int]] = {}
        for a in alerts:
            counts[a.id] = (a.count, a.breaches)
            before = self._counts.get(a.id)
            # A repeated trigger, or a newly missed SLA (escalation), sounds
            # once more on an alert someone already acknowledged.
            if (before is not None and (a.count > before[0] or a.breaches & ~before[1])
                    and a.state not in ("new", "resolved") and a.priority in PRIORITIES):
                once = a.priority if once == 0 else min(once, a.priority)
        self._counts = counts
        self._alerts = alerts
        if once:
            # The newer trigger wins unless a more urgent single play is on.
            self._once = once if self._once == 0 else min(once, self._once)
            if self._once == once:
                self._restart_once = True
        self._apply()

    def cue(self, priority: int) -> None:
        """Play ``priority``'s tone once now (e.g. the system turning DEGRADED)."""
        self._check_thread()
        if self._closed or priority not in PRIORITIES:
            return
        self._once = priority if self._once == 0 else min(priority, self._once)
        self._restart_once = self._once == priority
        self._apply()

    def set_mute_low(self, muted: bool) -> None:
        """Mute (or unmute) P3 and P4 tones on this console; P1/P2 always sound."""
        self._check_thread()
        self._muted_low = bool(muted)
        if not self._closed:
            self._apply()

    @property
    def muted_low(self) -> bool:
        return self._muted_low

    def state(self) -> str:
        """The tone sounding now: ``"p1"`` … ``"p4"``, or ``""`` when silent."""
        return f"p{self._sound}" if self._sound else ""

    def mode(self) -> str:
        """``"loop"``, ``"once"`` or ``""``."""
        return self._mode

    def is_playing(self) -> bool:
        """Whether libvlc's MediaPlayer is in its Playing state right now."""
        return self._player is not None and self._player.get_state() == vlc.State.Playing

    def player_state(self) -> str:
        """The name of libvlc's MediaPlayer state (``"Closed"`` after ``close()``)."""
        if self._player is None:
            return "Closed"
        return str(self._player.get_state()).removeprefix("State.")

    @property
    def plays(self) -> int:
        """How many plays (loop restarts and single plays) were started."""
        return self._plays

    @property
    def audio_output(self) -> str:
        return self._audio_output

    @property
    def audio_note(self) -> str:
        return self._audio_note

    @property
    def frames_out(self) -> int | None:
        """Samples the null output has consumed so far (None on a real output)."""
        return None if self._sink is None else self._sink.frames

    @property
    def closed(self) -> bool:
        return self._closed

    def tone_file(self, priority: int) -> Path:
        return self._files[priority]

    def stop(self) -> None:
        """Silence now and forget the queue; the next ``update()`` decides afresh."""
        self._check_thread()
        self._alerts = []
        self._loop = self._once = 0
        self._silence()

    def close(self) -> None:
        """Stop and release libvlc.  Idempotent; ``update()`` is a no-op after."""
        self._check_thread()
        if self._closed:
            return
        self.stop()
        self._closed = True
        self._release()

    # ------------------------------------------------------------ internals

    @staticmethod
    def _tone_files(folder: Path) -> dict[int, Path]:
        try:
            return ensure_tones(folder)
        except OSError as exc:  # a read-only install that lost a file
            spare = Path(tempfile.gettempdir()) / "childsafe-sounds"
            log.warning("cannot write alert tones to %s (%s); using %s", folder, exc, spare)
            return ensure_tones(spare)

    def _check_thread(self) -> None:
        if QThread.currentThread() is not self.thread():
            raise RuntimeError("AlarmPlayer is used from its own (GUI) thread only")

    def _open(self, audio_output: str) -> None:
        args = list(VLC_BASE_ARGS)
        if audio_output not in ("null", "default"):
            args.append(f"--aout={audio_output}")
        instance = vlc.Instance(args)
        if instance is None:
            raise RuntimeError("libvlc could not start (is vlc-plugin-base installed?)")
        self._instance = instance
        self._player = instance.media_player_new()
        if audio_output == "null":
            self._sink = NullSink()
            self._callbacks = self._sink.attach(self._player)
        self._media = {p: instance.media_new_path(str(f)) for p, f in self._files.items()}

    def _release(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player.release()
            self._player = None
        for m in self._media.values():
            m.release()
        self._media = {}
        if self._instance is not None:
            self._instance.release()
            self._instance = None
        # Only now that the player (and its threads) are gone.
        self._callbacks = ()
        self._sink = None

    def _audible(self, priority: int) -> bool:
        return not (self._muted_low and priority in MUTABLE)

    def _apply(self) -> None:
        """Decide what should sound from the queue, the mute and a pending single play."""
        new = [a.priority for a in self._alerts
               if a.state == "new" and a.priority in PRIORITIES and self._audible(a.priority)]
        self._loop = min(new, default=0)
        if self._once and (not self._audible(self._once)
                           or (self._loop and self._loop <= self._once)):
            self._once = 0  # muted, or a loop as urgent already says it
            self._restart_once = False
        if self._once:
            if self._mode != "once" or self._sound != self._once or self._restart_once:
                self._start(self._once, "once")
            self._restart_once = False
        elif self._loop:
            if self._mode != "loop" or self._sound != self._loop:
                self._start(self._loop, "loop")
        else:
            self._silence()

    def _start(self, priority: int, mode: str) -> None:
        assert self._player is not None
        self._player.stop()
        if self._sink is not None:
            self._sink.reset()
        self._player.set_media(self._media[priority])
        if self._player.play() != 0 and priority not in self._bad_media_logged:
            self._bad_media_logged.add(priority)
            log.warning("libvlc refused to play %s", self._files[priority])
        self._started = time.monotonic()
        self._plays += 1
        self._mode = mode
        self._set_sound(priority)
        if not self._timer.isActive():
            self._timer.start()

    def _silence(self) -> None:
        self._timer.stop()
        if self._player is not None and self._mode:
            self._player.stop()
        self._mode = ""
        self._once = 0
        self._restart_once = False
        self._set_sound(0)

    def _set_sound(self, priority: int) -> None:
        if priority != self._sound:
            self._sound = priority
            self.sound_changed.emit(self.state())

    def _poll(self) -> None:
        if self._player is None or not self._mode:
            self._timer.stop()
            return
        vstate = self._player.get_state()
        elapsed = time.monotonic() - self._started
        length = self._lengths[self._sound]
        if vstate in _ACTIVE and elapsed < length + STALL_S:
            return  # still playing (a play stuck past STALL_S is restarted)
        if (self._audio_output != "null" and vstate in _FAILED and elapsed < length / 2):
            self._fall_back(vstate)
            return
        if elapsed < length:
            return  # an output that ended early: keep the tone's cadence
        if self._mode == "loop":
            self._start(self._sound, "loop")
        else:  # a single play is over: back to the loop, or silence
            self._once = 0
            self._mode = ""
            self._apply()

    def _fall_back(self, vstate: vlc.State) -> None:
        log.warning("audio output %r cannot play (libvlc %s after %.2f s): "
                    "switching to the null output", self._audio_output, vstate,
                    time.monotonic() - self._started)
        sound, mode = self._sound, self._mode
        self._release()
        self._audio_output = "null"
        self._audio_note = "the audio output failed: silent (null) output"
        self._open("null")
        self._start(sound, mode)
