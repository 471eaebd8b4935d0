"""The relay's HTTP side: MPEG-TS to consoles, and a small JSON control API.

Why HTTP: libvlc plays ``http://…/cam/7.ts`` as it is (no live555
needed), and the engine or a console can drive holds and clips with one
POST. One thread per connection (the standard library's threading
server): a viewer thread sleeps on its queue, so hundreds cost memory, not
CPU.

Endpoints (all bodies JSON; errors are ``{"error": "..."}`` with 4xx):

- ``GET /cam/<id>.ts``: the camera live as MPEG-TS, starting at a keyframe,
  until the client disconnects or falls behind (then the response ends).
  404 for an unknown camera.
- ``GET /status``: ``{"cameras": [{camera_id, state, pulling, viewers,
  held_for, buffer_s, ...}]}``; ``state`` is the last published
  ``cam.status`` (late joiners read it here).
- ``POST /hold`` ``{"camera_ids": [..], "alert_id": N, "ttl_s"?: s}``: keep a
  pre-alarm ring for these cameras; answers ``{"held": [..], "unknown": [..]}``.
  Re-posting renews; holds lapse after ``ttl_s`` (default 1 h).
- ``POST /release`` ``{"alert_id": N}``: end that alert's holds;
  answers ``{"released": [..]}``.
- ``POST /clip`` ``{"camera_id": C, "alert_id": N|null, "actor": "...",
  "post_s"?: s}``: 202 ``{"clip": id, "path", "pre_s", "t_start", "ends_at"}``;
  the file is complete and the Evidence row written after ``post_s``
  (default N).
- ``GET /clip/<id>``: ``{"state": "recording"|"saved"|"failed",
  "evidence_id", "path", "t_start", "t_end", "pre_s", "error"}``.
"""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from console.media.hub import Relay, UnknownCamera
from console.media.prealarm import ClipInfo

CLIENT_WRITE_TIMEOUT_S = 10.0  # a client that accepts nothing for this long is gone
MAX_BODY = 64 * 1024
_CAM = re.compile(r"^/cam/(\d+)\.ts$")
_CLIP = re.compile(r"^/clip/([0-9a-f]+)$")


class RelayServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], relay: Relay) -> None:
        self.relay = relay
        self.stopping = False
        super().__init__(address, RelayHandler)

    def shutdown(self) -> None:
        """Stop accepting; viewer threads notice ``stopping`` within a second."""
        self.stopping = True
        super().shutdown()


def clip_json(info: ClipInfo) -> dict[str, Any]:
    return {"clip": info.id, "camera_id": info.camera_id, "alert_id": info.alert_id,
            "state": info.state, "evidence_id": info.evidence_id, "path": str(info.path),
            "t_start": info.t_start, "t_end": info.t_end, "ends_at": info.ends_at,
            "pre_s": round(info.pre_s, 2), "error": info.error}


class RelayHandler(BaseHTTPRequestHandler):
    server: RelayServer
    server_version = "childsafe-relay/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per tile request is noise; the relay logs what matters

    # ---------------------------------------------------------------- GET
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if m := _CAM.match(path):
            self._stream(int(m.group(1)))
        elif path == "/status":
            self._json(200, self.server.relay.snapshot())
        elif m := _CLIP.match(path):
            info = self.server.relay.clip_info(m.group(1))
            if info is None:
                self._json(404, {"error": "no such clip"})
            else:
                self._json(200, clip_json(info))
        else:
            self._json(404, {"error": f"no such resource {path}"})

    def _stream(self, camera_id: int) -> None:
        relay = self.server.relay
        try:
            viewer = relay.watch(camera_id)
        except UnknownCamera as exc:
            self._json(404, {"error": str(exc)})
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.connection.settimeout(CLIENT_WRITE_TIMEOUT_S)
            while not self.server.stopping:
                data = viewer.take(timeout=1.0)
                if data is not None:
                    self.wfile.write(data)
                elif viewer.dropped or viewer.closed:
                    break
        except OSError:  # includes TimeoutError
            pass  # the console went away; nothing to tell it
        finally:
            relay.unwatch(camera_id, viewer)
            self.close_connection = True

    # --------------------------------------------------------------- POST
    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            body = self._body()
            if path == "/hold":
                held, unknown = self.server.relay.hold(
                    _ints(body, "camera_ids"), _int(body, "alert_id"),
                    _opt_float(body, "ttl_s"))
                self._json(200, {"held": held, "unknown": unknown})
            elif path == "/release":
                self._json(200, {"released": self.server.relay.release(_int(body, "alert_id"))})
            elif path == "/clip":
                alert = body.get("alert_id")
                info = self.server.relay.clip(
                    _int(body, "camera_id"), None if alert is None else _int(body, "alert_id"),
                    str(body.get("actor") or "relay")[:64], _opt_float(body, "post_s"))
                self._json(202, clip_json(info))
            else:
                self._json(404, {"error": f"no such resource {path}"})
        except UnknownCamera as exc:
            self._json(404, {"error": str(exc)})
        except ValueError as exc:
            self._json(400, {"error": str(exc)})

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        return body

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    return value


def _ints(body: dict[str, Any], name: str) -> list[int]:
    value = body.get(name)
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{name} must be a list of integers")
    return value


def _opt_float(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive number")
    return float(value)
