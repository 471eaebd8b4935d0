"""Fan-out of one camera's MPEG-TS chunks to any number of viewers.

Why a bounded queue per viewer: a console on a slow link must not make the
relay buffer without limit, nor hold back the other viewers; once its queue
exceeds its byte budget it is dropped (its HTTP response ends, and the
console reconnects and starts again at a keyframe).

Why a GOP cache: a viewer that joins gets the chunks since the last
keyframe at once, so its tile shows a picture immediately instead of after
up to one keyframe interval.
"""

from __future__ import annotations

import threading
from collections import deque

from console.media.remux import Chunk

DEFAULT_VIEWER_BUDGET = 4 * 1024 * 1024  # bytes queued before a viewer is dropped
GOP_CACHE_LIMIT = 8 * 1024 * 1024  # a camera with a huge GOP gets no cache


class Viewer:
    """One HTTP client's queue of pending chunks."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.queued = 0
        self.dropped = False
        self.closed = False
        self.started = False  # nothing is queued before the first keyframe
        self._chunks: deque[bytes] = deque()
        self._cond = threading.Condition()

    def offer(self, chunk: Chunk) -> None:
        """Called by the camera's puller thread; never blocks."""
        with self._cond:
            if self.dropped or self.closed:
                return
            if not self.started:
                if not chunk.key:
                    return
                self.started = True
            if self.queued + len(chunk.data) > self.budget:
                self.dropped = True
                self._chunks.clear()
                self.queued = 0
            else:
                self._chunks.append(chunk.data)
                self.queued += len(chunk.data)
            self._cond.notify()

    def take(self, timeout: float) -> bytes | None:
        """Everything queued, joined (one write instead of many), or None
        after ``timeout`` or once dropped/closed."""
        with self._cond:
            if not self._chunks and not (self.dropped or self.closed):
                self._cond.wait(timeout)
            if self.dropped or self.closed or not self._chunks:
                return None
            data = b"".join(self._chunks)
            self._chunks.clear()
            self.queued = 0
            return data

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify()


class Channel:
    """The viewers of one camera and its GOP cache."""

    def __init__(self, budget: int = DEFAULT_VIEWER_BUDGET) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._viewers: set[Viewer] = set()
        self._gop: list[Chunk] = []
        self._gop_bytes = 0
        self.dropped = 0  # viewers dropped for being too slow

    def publish(self, chunk: Chunk) -> None:
        with self._lock:
            if chunk.key:
                self._gop, self._gop_bytes = [chunk], len(chunk.data)
            elif self._gop and self._gop_bytes + len(chunk.data) <= GOP_CACHE_LIMIT:
                self._gop.append(chunk)
                self._gop_bytes += len(chunk.data)
            else:
                self._gop, self._gop_bytes = [], 0
            viewers = list(self._viewers)
        for viewer in viewers:
            was = viewer.dropped
            viewer.offer(chunk)
            if viewer.dropped and not was:
                with self._lock:
                    self.dropped += 1

    def join(self) -> Viewer:
        viewer = Viewer(self.budget)
        with self._lock:
            for chunk in self._gop:
                viewer.offer(chunk)
            self._viewers.add(viewer)
        return viewer

    def leave(self, viewer: Viewer) -> None:
        viewer.close()
        with self._lock:
            self._viewers.discard(viewer)

    def reset(self) -> None:
        """Forget the GOP cache (the stream restarted: old frames are stale)."""
        with self._lock:
            self._gop, self._gop_bytes = [], 0

    def close_all(self) -> None:
        with self._lock:
            viewers, self._viewers = list(self._viewers), set()
        for viewer in viewers:
            viewer.close()

    @property
    def viewers(self) -> int:
        with self._lock:
            return len(self._viewers)
