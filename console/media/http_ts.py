"""The relay's HTTP side: MPEG-TS to consoles, and a small JSON control API.

Why HTTP: libvlc plays ``http://…/cam/7.ts`` as it is (no live555
needed), and the engine drives holds and clips with one POST. One thread
per connection (the standard library's threading server): a viewer thread
sleeps on its queue, so hundreds cost memory, not CPU.

Every request carries a token (``console.media.tokens``) unless the relay
runs open (``bus_security`` off, only to measure what security costs):
``?t=<token>`` in the URL (all libvlc can send) or ``Authorization: Bearer
<token>``. Streams and reads need a ``view`` token, which the engine gives
a console at sign-in; POSTs need the engine's ``control`` token. Without
one, or with one that is malformed, forged, expired or of the other scope,
the answer is a 401 naming the reason, before anything else is looked at
(no body parsed, no camera looked up), and the refusal is counted
(``refused.token_<reason>``) and logged without the token.

Endpoints (all bodies JSON; errors are ``{"error": "..."}`` with 4xx, and
a refusal also names its counted ``reason``):

- ``GET /cam/<id>.ts``: the camera live as MPEG-TS, starting at a keyframe,
  until the client disconnects or falls behind or its token expires (then
  the response ends).
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
- ``POST /revoke`` ``{"sessions": {"<session id>": <expires, unix s>, ...}}``:
  the whole list of sessions that ended before their tokens expire (it
  replaces the last); their view tokens get a 401 ``token_revoked`` and
  their streams are cut within a second. Answers ``{"revoked": N}``.
- ``GET /clip/<id>``: ``{"state": "recording"|"saved"|"failed",
  "evidence_id", "path", "t_start", "t_end", "pre_s", "error"}``.

Nothing a peer sends is trusted (``console.media.limits``): ids, counts,
durations and names out of bounds, and unknown fields, are a 400; a
request without a ``Content-Length`` a 411, one over ``MAX_BODY`` a 413
(before any of it is read); a clip when the evidence folder is full a 507.
Every connection must have sent its headers (and a POST its body) within
``request_deadline_s``, or it is cut off: a peer that trickles bytes holds
no thread for long.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from console.media import limits, tokens
from console.media.hub import Relay, UnknownCamera
from console.media.limits import MAX_BODY, Refused
from console.media.prealarm import ClipInfo

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256  # consoles x tiles, with room; each is a thread and a descriptor
CLIENT_WRITE_TIMEOUT_S = 10.0  # a client that accepts nothing for this long is gone
_CAM = re.compile(r"^/cam/(\d{1,10})\.ts$")
_CLIP = re.compile(r"^/clip/([0-9a-f]{1,32})$")
_DIGITS = re.compile(r"^[0-9]{1,12}$")  # int() would also take "+5", " 5", "5_0"
_FIELDS = {
    "/hold": frozenset({"camera_ids", "alert_id", "ttl_s"}),
    "/release": frozenset({"alert_id"}),
    "/clip": frozenset({"camera_id", "alert_id", "actor", "post_s"}),
    "/revoke": frozenset({"sessions"}),
}


class RelayServer(ThreadingHTTPServer):
    """The HTTP server, with one deadline per connection for its request.

    The standard library's server waits forever for a request's headers;
    here every accepted connection is armed with a deadline, disarmed by
    its handler once the request is in, and shut down by ``service_actions``
    (run by ``serve_forever`` every poll interval) if still armed after it.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], relay: Relay,
                 max_connections: int = MAX_CONNECTIONS, secret: bytes | None = None) -> None:
        self.relay = relay
        # The media secret tokens are checked with; None: open to anyone
        # who can connect (bus_security "off").
        self.secret = None if secret is None else tokens.check_secret(secret)
        self.revocations = tokens.Revocations()  # sessions the engine says ended
        self.stopping = False
        # Each connection is a thread and a file descriptor: a cap keeps a
        # flood of viewers (or a misbehaving client) from exhausting either.
        self.max_connections = max_connections
        self.live = 0
        self.deadline_s = relay.settings.request_deadline_s
        self._armed: dict[socket.socket, float] = {}  # connection -> monotonic deadline
        self._cut: set[socket.socket] = set()
        self._deadline_lock = threading.Lock()
        super().__init__(address, RelayHandler)

    def shutdown(self) -> None:
        """Stop accepting; viewer threads notice ``stopping`` within a second."""
        self.stopping = True
        super().shutdown()

    # ------------------------------------------------------------ deadline
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._deadline_lock:
            full = self.live >= self.max_connections
            if not full:
                self.live += 1
                self._armed[request] = time.monotonic() + self.deadline_s
        if full:
            self.relay.refusals.note(Refused(
                "too_many_connections", f"{self.max_connections} connections open", 503),
                _peer(client_address))
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            super().shutdown_request(request)
            return
        super().process_request(request, client_address)

    def request_in(self, conn: socket.socket) -> bool:
        """The handler has its whole request: disarm. False if the
        connection was already cut off at its deadline."""
        with self._deadline_lock:
            self._armed.pop(conn, None)
            return conn not in self._cut

    def shutdown_request(self, request: Any) -> None:
        with self._deadline_lock:
            self._armed.pop(request, None)
            self._cut.discard(request)
            self.live -= 1
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Cut off connections whose request is not in by their deadline."""
        now = time.monotonic()
        with self._deadline_lock:
            late = [c for c, due in self._armed.items() if due <= now]
            for conn in late:
                del self._armed[conn]
                self._cut.add(conn)
        for conn in late:
            self._cut_off(conn)

    def _cut_off(self, conn: socket.socket) -> None:
        try:
            peer = _peer(conn.getpeername())
        except OSError:
            peer = "?"
        self.relay.refusals.note(Refused(
            "request_deadline", f"request not received within {self.deadline_s:g} s; "
            "connection cut off", 408), peer)
        with contextlib.suppress(OSError):  # already gone
            conn.shutdown(socket.SHUT_RDWR)  # the handler's blocked read returns at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A handler failed (not a refusal: those are answered): one log
        line, and the server goes on."""
        log.exception("relay HTTP request from %s failed", client_address)


def clip_json(info: ClipInfo) -> dict[str, Any]:
    return {"clip": info.id, "camera_id": info.camera_id, "alert_id": info.alert_id,
            "state": info.state, "evidence_id": info.evidence_id, "path": str(info.path),
            "t_start": info.t_start, "t_end": info.t_end, "ends_at": info.ends_at,
            "pre_s": round(info.pre_s, 2), "error": info.error}


class RelayHandler(BaseHTTPRequestHandler):
    server: RelayServer
    server_version = "childsafe-relay/1"
    timeout = CLIENT_WRITE_TIMEOUT_S  # per read or write; the deadline bounds the request

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per tile request is noise; the relay logs what matters

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            self.close_connection = True  # the peer left, or was cut off at its deadline

    @property
    def peer(self) -> str:
        return _peer(self.client_address)

    def _refused(self, exc: Refused) -> None:
        """Count, log and answer a refusal."""
        self.server.relay.refusals.note(exc, self.peer)
        extra = {"WWW-Authenticate": 'Bearer realm="childsafe-relay"'} \
            if exc.status == 401 else None
        self._json(exc.status, {"error": str(exc), "reason": exc.reason}, close=True,
                   headers=extra)

    def _authorize(self, scope: str) -> tokens.Grant | None:
        """Let the request through if it carries a valid ``scope`` token (or
        the relay is open); else ``Refused`` (401) with the reason. Only
        the request line and headers are looked at: a refused peer costs
        no body parsing and no camera lookup."""
        secret = self.server.secret
        if secret is None:
            return None
        token = self._token()
        if token is None:
            raise Refused("token_missing", f"a {scope} token is required (?t=... or "
                                           "Authorization: Bearer ...)", 401)
        try:
            grant = tokens.grant(secret, token, scope)
        except tokens.BadToken as exc:
            raise Refused(f"token_{exc.reason}", str(exc), 401) from None
        if self.server.revocations.revoked(grant):
            raise Refused("token_revoked", "the session this token belongs to has ended: "
                                           "sign in again", 401)
        return grant

    def _token(self) -> str | None:
        """The token from ``Authorization: Bearer`` or the query's ``t``; None
        when there is neither. Two of them (repeated, or both ways) is a
        malformed request: which one would count is not the peer's to guess."""
        found: list[str] = []
        for value in self.headers.get_all("Authorization") or []:
            scheme, _, credentials = value.strip().partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise Refused("token_malformed", "Authorization must be 'Bearer <token>'",
                              401)
            found.append(credentials.strip())
        _, _, query = self.path.partition("?")
        if query:
            try:
                found += parse_qs(query, keep_blank_values=True, strict_parsing=False,
                                  max_num_fields=8).get("t", [])
            except ValueError:
                raise Refused("token_malformed", "the query string is malformed",
                              401) from None
        if len(found) > 1:
            raise Refused("token_malformed", "more than one token in the request", 401)
        return found[0] if found else None

    # ---------------------------------------------------------------- GET
    def do_GET(self) -> None:
        if not self.server.request_in(self.connection):
            return
        path = self.path.split("?", 1)[0]
        try:
            grant = self._authorize("view")
            self._content_length(required=False)
        except Refused as exc:
            self._refused(exc)
            return
        if m := _CAM.match(path):
            try:
                camera_id = limits.check_id(int(m.group(1)), "camera_id")
            except Refused as exc:
                self._refused(exc)
                return
            self._stream(camera_id, grant)
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

    def _stream(self, camera_id: int, grant: tokens.Grant | None) -> None:
        """Send the camera until the client leaves, falls behind, or its
        token expires or its session is revoked (a session that ended must
        not keep watching through a connection it opened before): checked
        at least once a second."""
        relay = self.server.relay
        revocations = self.server.revocations
        until = grant.expires_at if grant is not None else float("inf")
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
                if time.time() >= until:
                    log.info("cam %d: %s's token expired; stream ended", camera_id,
                             grant.subject if grant else "?")
                    break
                if revocations.revoked(grant):
                    log.info("cam %d: %s's session ended; stream cut", camera_id,
                             grant.subject if grant else "?")
                    break
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
            try:
                self._authorize("control")  # before the body is looked at
            except Refused:
                self._discard_body()
                raise
            body = self._body()  # the deadline covers the body too
        except Refused as exc:
            if self.server.request_in(self.connection):  # else it was cut off: no answer
                self._refused(exc)
            return
        if not self.server.request_in(self.connection):
            return
        fields = _FIELDS.get(path)
        if fields is None:
            self._json(404, {"error": f"no such resource {path}"})
            return
        try:
            limits.check_fields(body, fields)
            self._command(path, body)
        except UnknownCamera as exc:
            self._json(404, {"error": str(exc)})
        except Refused as exc:
            self._refused(exc)

    def _command(self, path: str, body: dict[str, Any]) -> None:
        """Carry out a checked POST (the relay checks the values again)."""
        relay = self.server.relay
        if path == "/hold":
            held, unknown = relay.hold(
                limits.check_ids(body.get("camera_ids"), "camera_ids"),
                limits.check_id(body.get("alert_id"), "alert_id"),
                limits.check_seconds(body.get("ttl_s"), "ttl_s", limits.MAX_HOLD_TTL_S))
            self._json(200, {"held": held, "unknown": unknown})
        elif path == "/revoke":
            count = self.server.revocations.replace(
                limits.check_revocations(body.get("sessions"), tokens.SESSION_PATTERN))
            self._json(200, {"revoked": count})
        elif path == "/release":
            self._json(200, {"released": relay.release(
                limits.check_id(body.get("alert_id"), "alert_id"))})
        else:
            alert = body.get("alert_id")
            info = relay.clip(
                limits.check_id(body.get("camera_id"), "camera_id"),
                None if alert is None else limits.check_id(alert, "alert_id"),
                limits.check_actor(body.get("actor")),
                limits.check_seconds(body.get("post_s"), "post_s", limits.MAX_POST_S))
            self._json(202, clip_json(info))

    def _content_length(self, required: bool) -> int:
        """The declared body size, refused at once (nothing read) if it is
        missing where a body is expected (411), not one plain decimal
        number (400) or over ``MAX_BODY`` (413)."""
        values = self.headers.get_all("Content-Length") or []
        if self.headers.get("Transfer-Encoding") is not None:
            raise Refused("content_length", "send a Content-Length, not a Transfer-Encoding",
                          411)
        if not values:
            if required:
                raise Refused("content_length", "a Content-Length is required", 411)
            return 0
        if len(values) > 1 or not _DIGITS.match(values[0]):
            raise Refused("content_length", f"bad Content-Length {values[0]!r:.30}")
        length = int(values[0])
        if length > MAX_BODY:
            raise Refused("content_length", f"body of {length} bytes is over the "
                                            f"{MAX_BODY} allowed", 413)
        return length

    def _discard_body(self) -> None:
        """Read and drop a refused request's body (when its size is sane):
        closing with unread bytes makes the kernel reset the connection,
        and the peer would see a reset instead of the 401 saying why."""
        try:
            length = self._content_length(required=False)
        except Refused:
            return
        while length > 0 and (block := self.rfile.read(min(length, 16384))):
            length -= len(block)

    def _body(self) -> dict[str, Any]:
        """The request's JSON object (at most ``MAX_BODY`` bytes; no NaN
        or Infinity, no nesting deep enough to exhaust the stack)."""
        length = self._content_length(required=True)
        raw = self.rfile.read(length)
        if len(raw) != length:
            raise Refused("body", f"body ended after {len(raw)} of {length} bytes")
        try:
            body = json.loads(raw or b"{}", parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            raise Refused("body", f"body is not JSON: {exc}"[:200]) from None
        if not isinstance(body, dict):
            raise Refused("body", "body must be a JSON object")
        return body

    def _json(self, status: int, payload: dict[str, Any], close: bool = False,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


def _peer(address: Any) -> str:
    host, port = address[:2]
    return f"{host}:{port}"


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")
