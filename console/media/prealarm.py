"""The pre-alarm buffer and evidence clips.

Why a pre-alarm buffer: when a child presses SOS, what happened *before*
the press matters most, and nobody was recording it. For cameras near an
open alert the relay keeps the last N seconds in memory, so an SOS can
save those seconds plus the next N.

The ring holds whole GOPs (a keyframe and what follows it) so a clip
always starts where a decoder can; it keeps the newest GOP that starts at
or before ``now - N``, so a clip covers at least N seconds when that much
was received. Memory is about N x bitrate: 30 s of a 4 Mbit/s camera is
15 MB.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from console.media.remux import Chunk


@dataclass
class _Gop:
    t: float
    chunks: list[Chunk] = field(default_factory=list)
    size: int = 0


class Ring:
    """The last ``seconds`` of one camera, by GOP."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._gops: deque[_Gop] = deque()
        self._lock = threading.Lock()

    def add(self, chunk: Chunk) -> None:
        with self._lock:
            if chunk.key:
                self._gops.append(_Gop(chunk.t))
            elif not self._gops:
                return  # no keyframe yet: undecodable
            gop = self._gops[-1]
            gop.chunks.append(chunk)
            gop.size += len(chunk.data)
            horizon = chunk.t - self.seconds
            while len(self._gops) >= 2 and self._gops[1].t <= horizon:
                self._gops.popleft()

    def snapshot(self) -> list[Chunk]:
        """The buffered chunks, oldest first (a copy; the ring keeps filling)."""
        with self._lock:
            return [c for gop in self._gops for c in gop.chunks]

    def clear(self) -> None:
        """Drop everything (the stream restarted; old GOPs no longer connect)."""
        with self._lock:
            self._gops.clear()

    @property
    def span_s(self) -> float:
        with self._lock:
            if not self._gops or not self._gops[-1].chunks:
                return 0.0
            return self._gops[-1].chunks[-1].t - self._gops[0].t

    @property
    def size(self) -> int:
        with self._lock:
            return sum(g.size for g in self._gops)


@dataclass
class ClipInfo:
    """What a caller can ask about a clip (``GET /clip/<id>``)."""

    id: str
    camera_id: int
    alert_id: int | None
    actor: str
    path: Path
    t_start: float
    t_end: float
    ends_at: float  # wall clock: recording stops then
    pre_s: float
    state: str = "recording"  # recording | saved | failed
    evidence_id: int | None = None
    error: str = ""


class ClipWriter:
    """Writes one clip: the pre-alarm chunks at once, then live chunks until
    ``ends_at``. The file is ``<path>.part`` until finished, so a relay that
    dies mid-clip leaves nothing that looks complete. ``on_bytes`` hears
    each write's size (the evidence budget keeps its total that way)."""

    def __init__(self, info: ClipInfo, pre: list[Chunk],
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.info = info
        self._on_bytes = on_bytes
        self._lock = threading.Lock()
        info.path.parent.mkdir(parents=True, exist_ok=True)
        self._part = info.path.with_name(info.path.name + ".part")
        self._file: BinaryIO | None = self._part.open("wb")
        self._started = False
        self.bytes = 0
        self.broken = ""  # why writing stopped early (disk full, folder gone)
        for chunk in pre:
            self.write(chunk)

    def write(self, chunk: Chunk) -> None:
        """Called from the puller thread: one small append, no fsync."""
        with self._lock:
            if self._file is None or self.broken or chunk.t > self.info.ends_at:
                return
            if not self._started:
                if not chunk.key:
                    return
                self._started = True
                self.info.t_start = chunk.t
            try:
                self._file.write(chunk.data)
            except OSError as exc:  # a full disk ends this clip, never the camera
                self.broken = self.info.error = f"recording cut short: {exc}"[:200]
                return
            self.bytes += len(chunk.data)
            self.info.t_end = chunk.t
        if self._on_bytes is not None:
            self._on_bytes(len(chunk.data))

    def finish(self) -> bool:
        """Close and move into place; False when nothing was recorded."""
        with self._lock:
            if self._file is None:
                return self.bytes > 0
            try:
                self._file.close()
                self._file = None
                if self.bytes == 0:
                    self._part.unlink(missing_ok=True)
                    return False
                self._part.replace(self.info.path)
            except OSError as exc:
                self._file = None
                self.info.error = f"clip not kept: {exc}"[:200]
                return False
            return True
