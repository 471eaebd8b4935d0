"""The console's alert tones, synthesised here: one short, distinct WAV per
alert priority (16-bit mono PCM, 22 050 Hz).

- P1: an urgent, fast two-tone siren (960 / 770 Hz, 8 notes, 0.9 s);
- P2: a slower two-tone (660 / 520 Hz, 2 notes, ~1.2 s with a pause);
- P3: a double beep (880 Hz);
- P4: a single soft chime (a decaying C6 with a little octave).

Every note has short raised-cosine fades so no sound clicks, and every
file starts and ends on silence, so looping one (the console restarts it
when it ends) does not click either.  The synthesis is deterministic.

``ensure_tones(folder)`` (re)writes the missing or unreadable files;
``python -m models.alarm_tones [folder] [--force]`` regenerates them.
Qt-free: numpy and the standard ``wave`` module only.
"""

from __future__ import annotations

import argparse
import io
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 22_050
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM
CHANNELS = 1
PRIORITIES = (1, 2, 3, 4)
FADE_S = 0.006  # per note: long enough to kill clicks, short enough to stay crisp
PEAK = 0.89  # full scale fraction the loudest sample reaches (headroom: no clipping)


@dataclass(frozen=True)
class Note:
    """One note: partials ``(frequency Hz, relative amplitude)``, then a pause."""

    partials: tuple[tuple[float, float], ...]
    duration_s: float
    gap_s: float = 0.0
    level: float = 1.0  # the note's loudness relative to the tone's PEAK
    decay_s: float = 0.0  # > 0: an exponential (bell) decay with this time constant


@dataclass(frozen=True)
class Tone:
    name: str
    notes: tuple[Note, ...]
    lead_s: float = 0.01  # silence before the first note
    level: float = PEAK


def _siren(hi: float, lo: float, pairs: int, note_s: float, gap_s: float) -> tuple[Note, ...]:
    notes: list[Note] = []
    for _ in range(pairs):
        notes.append(Note(((hi, 1.0), (hi * 3, 0.12)), note_s))
        notes.append(Note(((lo, 1.0), (lo * 3, 0.12)), note_s))
    last = notes[-1]
    notes[-1] = Note(last.partials, last.duration_s, gap_s)
    return tuple(notes)


TONES: dict[int, Tone] = {
    # 8 x 0.108 s + lead 0.01 + tail 0.026 = 0.90 s; restarts at once: relentless.
    1: Tone("p1", _siren(960.0, 770.0, pairs=4, note_s=0.108, gap_s=0.026)),
    # 2 x 0.42 s, then a 0.3 s pause before it loops.
    2: Tone("p2", _siren(660.0, 520.0, pairs=1, note_s=0.42, gap_s=0.30), level=0.8),
    # beep-beep, then a pause.
    3: Tone("p3", (Note(((880.0, 1.0), (1760.0, 0.15)), 0.12, 0.09),
                   Note(((880.0, 1.0), (1760.0, 0.15)), 0.12, 0.55)), level=0.6),
    # One soft bell stroke that rings out.
    4: Tone("p4", (Note(((1046.5, 1.0), (2093.0, 0.25), (3139.5, 0.08)), 1.1, 0.15,
                        decay_s=0.28),), level=0.45),
}


def _fade(n: int, rate: int) -> np.ndarray:
    """A raised-cosine envelope rising over the first and falling over the last
    FADE_S of ``n`` samples (exactly 0 at both ends)."""
    env = np.ones(n)
    k = min(int(FADE_S * rate), n // 2)
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, k))
        env[:k] = ramp
        env[n - k:] = ramp[::-1]
    return env


def _note(note: Note, rate: int) -> np.ndarray:
    n = round(note.duration_s * rate)
    t = np.arange(n) / rate
    wave_ = sum(a * np.sin(2.0 * np.pi * f * t) for f, a in note.partials)
    wave_ = np.asarray(wave_, dtype=np.float64)
    wave_ /= max(1e-9, sum(a for _, a in note.partials))  # the partials' sum peaks at 1
    if note.decay_s > 0:
        wave_ *= np.exp(-t / note.decay_s)
    wave_ *= _fade(n, rate) * note.level
    return np.concatenate([wave_, np.zeros(round(note.gap_s * rate))])


def synthesize(priority: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The tone of ``priority`` (1..4) as int16 samples."""
    try:
        tone = TONES[priority]
    except KeyError:
        raise ValueError(f"no alarm tone for priority {priority!r} (1..4)") from None
    parts = [np.zeros(round(tone.lead_s * rate))]
    parts += [_note(note, rate) for note in tone.notes]
    signal = np.concatenate(parts)
    peak = float(np.max(np.abs(signal))) or 1.0
    signal = signal / peak * tone.level
    return np.round(signal * 32767.0).astype(np.int16)


def wav_bytes(priority: int, rate: int = SAMPLE_RATE) -> bytes:
    """The tone of ``priority`` as the bytes of a WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(CHANNELS)
        w.setsampwidth(SAMPLE_WIDTH)
        w.setframerate(rate)
        w.writeframes(synthesize(priority, rate).astype("<i2").tobytes())
    return buf.getvalue()


def tone_path(folder: Path, priority: int) -> Path:
    return Path(folder) / f"p{priority}.wav"


def write_tone(priority: int, path: Path) -> Path:
    """Write one tone atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(wav_bytes(priority))
    tmp.replace(path)
    return path


def _usable(path: Path) -> bool:
    """A readable 16-bit mono WAV with some frames in it."""
    try:
        with wave.open(str(path), "rb") as w:
            return (w.getnchannels() == CHANNELS and w.getsampwidth() == SAMPLE_WIDTH
                    and w.getnframes() > 0)
    except (OSError, EOFError, wave.Error):
        return False


def ensure_tones(folder: Path, *, force: bool = False) -> dict[int, Path]:
    """Make sure ``folder`` holds ``p1.wav`` … ``p4.wav``: (re)write the ones
    that are missing or unreadable (all of them with ``force``).  Returns
    each priority's file."""
    out: dict[int, Path] = {}
    for p in PRIORITIES:
        path = tone_path(folder, p)
        if force or not _usable(path):
            write_tone(p, path)
        out[p] = path
    return out


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent.parent / "resources" / "sounds"
    ap = argparse.ArgumentParser(description="Write the console's alert tones (p1..p4.wav).")
    ap.add_argument("folder", nargs="?", type=Path, default=here)
    ap.add_argument("--force", action="store_true", help="rewrite the files that exist too")
    args = ap.parse_args(argv)
    for p, path in ensure_tones(args.folder, force=args.force).items():
        print(f"P{p}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
