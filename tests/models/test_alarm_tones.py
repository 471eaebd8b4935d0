"""The alert tones: one distinct, click-free 16-bit mono WAV per priority."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import numpy as np
import pytest

from models.alarm_tones import (
    PRIORITIES,
    SAMPLE_RATE,
    ensure_tones,
    main,
    synthesize,
    tone_path,
    wav_bytes,
)
from resources import path as resource_path

SOUNDS = resource_path("sounds")
# (min, max) length in seconds: P1 an urgent ~0.9 s, the others short too.
LENGTHS = {1: (0.85, 0.95), 2: (0.9, 1.5), 3: (0.5, 1.2), 4: (0.6, 1.5)}


def read(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return params, data


@pytest.mark.parametrize("folder", ["committed", "fresh"])
def test_four_distinct_files_in_the_right_format(folder: str, tmp_path: Path) -> None:
    where = SOUNDS if folder == "committed" else tmp_path
    if folder == "fresh":
        ensure_tones(tmp_path)
    digests = set()
    for p in PRIORITIES:
        f = tone_path(where, p)
        assert f.name == f"p{p}.wav" and f.is_file(), f
        params, data = read(f)
        assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, SAMPLE_RATE)
        lo, hi = LENGTHS[p]
        assert lo <= params.nframes / SAMPLE_RATE <= hi, (p, params.nframes / SAMPLE_RATE)
        peak = int(np.max(np.abs(data.astype(np.int32))))
        assert 8000 < peak < 32000, f"p{p}: audible yet never clipped (peak {peak})"
        # Fades: each file starts and ends on (near) silence, so loops do not click.
        assert np.all(np.abs(data[:8]) < 200) and np.all(np.abs(data[-8:]) < 200), p
        digests.add(hashlib.sha256(data.tobytes()).hexdigest())
    assert len(digests) == 4


def test_priorities_sound_different() -> None:
    """Distinct beyond bytes: different lengths or different pitch content."""
    spectra = {}
    for p in PRIORITIES:
        s = synthesize(p).astype(np.float64)
        mag = np.abs(np.fft.rfft(s, n=SAMPLE_RATE))  # 1 Hz bins
        spectra[p] = int(np.argmax(mag))
    # The dominant pitch of each priority's tone.
    assert spectra[1] in range(760, 980) and spectra[2] in range(510, 670)
    assert spectra[3] in range(870, 890) and spectra[4] in range(1040, 1055)
    assert len(set(spectra.values())) == 4


def test_no_clicks_inside_notes() -> None:
    """No jump between neighbouring samples bigger than a full-level sine of
    the highest partial can make (a hard edge would)."""
    for p in PRIORITIES:
        s = synthesize(p).astype(np.float64) / 32767
        step = float(np.max(np.abs(np.diff(s))))
        assert step < 2 * np.pi * 3200 / SAMPLE_RATE, (p, step)


def test_synthesis_is_deterministic_and_rejects_unknown_priorities() -> None:
    assert wav_bytes(1) == wav_bytes(1)
    with pytest.raises(ValueError):
        synthesize(5)


def test_ensure_tones_rewrites_missing_and_broken_files_only(tmp_path: Path) -> None:
    files = ensure_tones(tmp_path)
    assert sorted(files) == [1, 2, 3, 4]
    files[2].unlink()
    files[3].write_bytes(b"not a wav")
    before = files[1].stat().st_mtime_ns
    with wave.open(str(files[4]), "wb") as w:  # a valid (authored) file is kept as is
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(bytes(200))
    ensure_tones(tmp_path)
    assert files[2].read_bytes() == wav_bytes(2)
    assert files[3].read_bytes() == wav_bytes(3)
    assert files[1].stat().st_mtime_ns == before
    assert read(files[4])[0].nframes == 100  # left alone
    ensure_tones(tmp_path, force=True)
    assert files[4].read_bytes() == wav_bytes(4)
    assert not list(tmp_path.glob("*.tmp"))


def test_command_line_writes_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "out")]) == 0
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == [
        "p1.wav", "p2.wav", "p3.wav", "p4.wav"]
    assert "P1:" in capsys.readouterr().out
