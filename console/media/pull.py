"""One thread per watched camera: pull its RTSP stream, reconnect when it drops.

Why one session per camera: CCTV encoders allow few concurrent sessions and
the city's uplinks are thin; the relay pulls once and fans out. Why
exponential backoff: a dead camera must not be hammered, yet a camera that
comes back should be live again without an operator doing anything.

The puller reports raw states (``connecting``, ``live``, ``stalled``,
``offline``) to a callback; debouncing them into bus events is
``console.media.status``'s job. Audio is never pulled: recording sound with
CCTV is not allowed (PIPA art. 25(5)) and consoles do not need it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import av.container

from console.media.remux import Chunk, TsRemuxer, UnsupportedCodec

log = logging.getLogger(__name__)

StateCallback = Callable[[str, str], None]  # (state, detail)
ChunkCallback = Callable[[Chunk], None]


@dataclass(frozen=True)
class PullSettings:
    open_timeout_s: float = 5.0
    read_timeout_s: float = 3.0  # no packet for this long: the stream stalled
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 15.0
    stable_s: float = 10.0  # a session that lasted this long resets the backoff


class Backoff:
    """Exponential delays with +-20% jitter, so cameras that dropped together
    (a switch rebooting) are not all retried in the same instant."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.next_s = initial_s

    def delay(self) -> float:
        d = self.next_s * random.uniform(0.8, 1.2)
        self.next_s = min(self.next_s * 2, self.max_s)
        return min(d, self.max_s)

    def reset(self) -> None:
        self.next_s = self.initial_s


def rtsp_options(settings: PullSettings) -> dict[str, str]:
    """FFmpeg options for a camera: RTSP over TCP (no UDP loss, passes NAT and
    firewalls), video only, and a short probe so a viewer waits less."""
    return {
        "rtsp_transport": "tcp",
        "allowed_media_types": "video",
        "analyzeduration": "1000000",
        "timeout": str(int(settings.read_timeout_s * 1_000_000)),  # socket I/O, µs
    }


class Puller(threading.Thread):
    """Pulls ``url`` until ``stop()``; every chunk goes to ``on_chunk``."""

    def __init__(self, camera_id: int, url: str, on_chunk: ChunkCallback,
                 on_state: StateCallback, settings: PullSettings | None = None) -> None:
        super().__init__(name=f"pull-cam{camera_id}", daemon=True)
        self.camera_id = camera_id
        self.url = url
        self.on_chunk = on_chunk
        self.on_state = on_state
        self.settings = settings or PullSettings()
        self._halt = threading.Event()
        self.sessions = 0  # RTSP sessions opened (1 + reconnects)
        self.bytes_out = 0
        self.refused = 0

    def stop(self) -> None:
        """Ask the thread to end; it does within ``read_timeout_s``."""
        self._halt.set()

    @property
    def stopping(self) -> bool:
        return self._halt.is_set()

    def run(self) -> None:
        s = self.settings
        backoff = Backoff(s.backoff_initial_s, s.backoff_max_s)
        self.on_state("connecting", "")
        while not self._halt.is_set():
            started = time.monotonic()
            state, detail = self._session()
            if self._halt.is_set():
                break
            if time.monotonic() - started >= s.stable_s:
                backoff.reset()
            delay = backoff.delay()
            log.info("cam %d %s (%s); retrying in %.1f s", self.camera_id, state, detail, delay)
            self.on_state(state, detail)
            self._halt.wait(delay)

    def _session(self) -> tuple[str, str]:
        """One RTSP session, from open to failure: returns the state the
        camera is in afterwards and why."""
        s = self.settings
        try:
            container = av.open(self.url, options=rtsp_options(s),
                                timeout=(s.open_timeout_s, s.read_timeout_s))
        except (av.FFmpegError, OSError) as exc:
            return "offline", _why(exc)
        self.sessions += 1
        got_frames = False
        remuxer: TsRemuxer | None = None
        try:
            if not container.streams.video:
                return "offline", "the stream has no video"
            stream = container.streams.video[0]
            remuxer = TsRemuxer(stream)
            for packet in container.demux(stream):
                if self._halt.is_set():
                    break
                chunk = remuxer.feed(packet)
                if chunk is None:
                    continue
                if not got_frames:
                    got_frames = True
                    self.on_state("live", "")
                self.bytes_out += len(chunk.data)
                self.on_chunk(chunk)
            return "offline", "the camera ended the stream"
        except UnsupportedCodec as exc:
            return "offline", str(exc)
        except (av.ExitError, TimeoutError) as exc:
            # The read timeout fired: the camera answers but sends no frames.
            return "stalled", _why(exc)
        except (av.FFmpegError, OSError) as exc:
            return "offline", _why(exc)
        finally:
            if remuxer is not None:
                self.refused += remuxer.refused
                remuxer.close()
            container.close()


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
