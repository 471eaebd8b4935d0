"""A live MPEG-TS over HTTP test source, standing in for the media relay.

Why: the CCTV viewers must be tested on real libvlc playing a real network
stream whose picture changes, without depending on the relay's code or on
camera hardware.  ``GET /cam/<camera_id>.ts`` answers with an endless
MPEG-TS stream encoded on the fly (PyAV) from a moving test pattern: colour
bands that scroll, a white block that sweeps across, and a hue per camera
so tiles can be told apart.  Each connection gets its own encoder, paced
at real time, so the stream behaves like a live camera (no seeking, no
end).  The path and URL form mirror the relay's
(``http://127.0.0.1:<port>/cam/<camera_id>.ts``).

Use it in-process (``TsServer().start()`` serves from daemon threads) or as
a process, so its CPU is not counted with the console's::

    python -m tests.widgets.ts_source --port 8554 --cameras 9
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import av
import numpy as np
import numpy.typing as npt

PATH_RE = re.compile(r"^/cam/(\d+)\.ts$")


class Sink(Protocol):
    """Where a stream goes: an HTTP response body, a file, a BytesIO."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class _Pipe:
    """The HTTP response as a write-only file for PyAV; raises once the client is gone."""

    def __init__(self, out: Sink) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.out.flush()
        return len(data)


class Pattern:
    """Frames of one camera's moving pattern (RGB, ``height`` × ``width`` × 3).

    Bright and busy by design: the tests judge "not black" and "moving" by
    the mean and variance of grabbed pixels.
    """

    def __init__(self, camera_id: int, width: int, height: int) -> None:
        self.width, self.height = width, height
        hue = (camera_id * 0.137) % 1.0
        self.base = np.array([_channel(hue, k) for k in (0, 1 / 3, 2 / 3)], np.float32)
        self.x = np.arange(width, dtype=np.float32)[None, :]
        self.y = np.arange(height, dtype=np.float32)[:, None]

    def frame(self, index: int) -> npt.NDArray[np.uint8]:
        wave = 0.5 + 0.5 * np.sin((self.x + 6.0 * index) / 18.0 + self.y / 40.0)
        shade = (60 + 160 * wave)[..., None] * self.base[None, None, :]
        img = np.broadcast_to(shade, (self.height, self.width, 3)).astype(np.uint8)
        size = self.height // 4
        left = (index * 7) % max(self.width - size, 1)
        top = (index * 3) % max(self.height - size, 1)
        img[top : top + size, left : left + size] = 255
        return img


def _channel(hue: float, shift: float) -> float:
    """A saturated but never dark colour channel for ``hue`` (0..1)."""
    return 0.45 + 0.55 * abs(((hue + shift) % 1.0) * 2.0 - 1.0)


def stream_ts(out: Sink, camera_id: int, *, width: int = 320, height: int = 240,
              fps: int = 10, codec: str = "h264", stop: threading.Event | None = None,
              max_seconds: float | None = None) -> int:
    """Encode the pattern of ``camera_id`` as live MPEG-TS into ``out`` until the
    reader goes away, ``stop`` is set or ``max_seconds`` pass; return frames sent.

    A keyframe every second lets a player that joins late start within a
    second, as with a relay that keeps a GOP buffer.
    """
    stop = stop or threading.Event()
    pattern = Pattern(camera_id, width, height)
    # A small I/O buffer and flush_packets keep latency at a frame or two.
    container = av.open(_Pipe(out), mode="w", format="mpegts", buffer_size=4096,
                        options={"flush_packets": "1"})
    options: dict[str, str] = {}
    if codec in ("h264", "libx264"):
        options = {"preset": "ultrafast", "tune": "zerolatency"}
    stream: Any = container.add_stream(codec, rate=fps, options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.gop_size = fps
    stream.bit_rate = 600_000
    stream.codec_context.time_base = Fraction(1, fps)
    sent = 0
    start = time.monotonic()
    try:
        while not stop.is_set():
            if max_seconds is not None and time.monotonic() - start >= max_seconds:
                break
            frame = av.VideoFrame.from_ndarray(pattern.frame(sent), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = sent
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
            sent += 1
            delay = start + sent / fps - time.monotonic()
            if delay > 0:
                stop.wait(delay)
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass  # the player hung up: a normal end for a live stream
    finally:
        with contextlib.suppress(Exception):
            container.close()
    return sent


class TsServer:
    """An HTTP server of live test streams on 127.0.0.1 (``port=0``: any free port).

    ``start()`` serves from daemon threads; ``stop()`` ends every stream and
    closes the socket.  ``connections`` counts the requests per camera, which
    tells a test how often a player (re)connected.
    """

    def __init__(self, port: int = 0, *, width: int = 320, height: int = 240, fps: int = 10,
                 codec: str = "h264") -> None:
        self.width, self.height, self.fps, self.codec = width, height, fps, codec
        self.stopping = threading.Event()
        self.connections: dict[int, int] = {}
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    def url(self, camera_id: int) -> str:
        return f"http://127.0.0.1:{self.port}/cam/{camera_id}.ts"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # no length, no chunking: the stream ends on close

            def do_GET(self) -> None:
                match = PATH_RE.match(self.path.split("?", 1)[0])
                if match is None:
                    self.send_error(404, "no such camera")
                    return
                camera_id = int(match.group(1))
                with server._lock:
                    server.connections[camera_id] = server.connections.get(camera_id, 0) + 1
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                stream_ts(self.wfile, camera_id, width=server.width, height=server.height,
                          fps=server.fps, codec=server.codec, stop=server.stopping)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: a test prints what it checks

        return Handler

    def start(self) -> TsServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ts-source",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cameras", type=int, default=4, help="URLs to print")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--codec", default="h264")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    server = TsServer(args.port, width=width, height=height, fps=args.fps, codec=args.codec)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    server.start()
    for cam in range(1, args.cameras + 1):
        print(server.url(cam))
    print("ready", flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
