"""No input takes the relay down, and nobody without a token gets in:
missing, forged, expired and wrong-scope tokens, out-of-bounds values,
path tricks, slow and lying HTTP peers, and a full evidence folder, each
against the real relay (HTTP on 127.0.0.1, a GStreamer RTSP server as cameras, a real bus
and store), which must refuse with a sentence, count the refusal, and
keep serving.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import zmq

from console import keys
from console.bus import Subscriber
from console.config import Config
from console.media import limits, tokens
from console.media.budget import EvidenceBudget
from console.media.control import RelayControl
from console.media.evidence import UnsafePath, clip_path, inside
from console.security import Security
from console.services.relay import RelayService
from console.supervisor import Supervisor
from models.console_state import ConsoleState
from models.health import reasons
from models.messages import Heartbeat
from tests.media.conftest import RtspServer, relay_token
from tests.media.test_relay import FAST, TsClient, make_config, request, seed_store, wait_for

DEADLINE_S = 1.0
LIMITED = replace(FAST, request_deadline_s=DEADLINE_S, evidence_rescan_s=0.5)


@dataclass
class Limited:
    config: Config
    service: RelayService
    alert_id: int

    @property
    def port(self) -> int:
        return self.config.relay_port

    def refused(self, reason: str) -> int:
        return int(self.service.relay.stats()[f"refused.{reason}"])

    def request(self, method: str, path: str,
                body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """As the engine (POST, a control token) or a console (GET, view)."""
        return request(self.port, method, path, body,
                       relay_token(self.config, "control" if method == "POST" else "view"))

    def auth(self, scope: str) -> bytes:
        """The header line that makes a raw request authorised."""
        return f"Authorization: Bearer {relay_token(self.config, scope)}\r\n".encode()

    @property
    def evidence(self) -> Path:
        return self.config.data_dir / "evidence"


@contextmanager
def running_relay(data_dir: Path, cameras: RtspServer, budget_bytes: int = 2**30,
                  before: Callable[[Config], None] | None = None,
                  **settings: Any) -> Iterator[Limited]:
    """The relay in-process with ``LIMITED`` settings and this evidence
    budget, on a seeded store, with the bus running; ``before`` prepares
    the data dir before the relay starts; ``settings`` go to the config."""
    cfg = make_config(data_dir, **settings)
    alert_id = seed_store(cfg, cameras)
    if before is not None:
        before(cfg)
    with Supervisor(cfg, ("bus",)):
        service = RelayService(cfg, replace(LIMITED, evidence_budget_bytes=budget_bytes))
        stop = threading.Event()
        runner = threading.Thread(target=service.run, args=(stop,), name="relay-owner")
        runner.start()
        try:
            yield Limited(cfg, service, alert_id)
        finally:
            stop.set()
            runner.join(15)
            assert not runner.is_alive(), "the relay did not stop"


@pytest.fixture
def relay(data_dir: Path, rtsp_server: RtspServer) -> Iterator[Limited]:
    with running_relay(data_dir, rtsp_server) as env:
        yield env


def raw_http(port: int, data: bytes, timeout_s: float = 5.0) -> tuple[int, bytes, float]:
    """Send ``data`` as it is; returns (status, body, seconds until the
    relay closed the connection). Status 0: closed without an answer."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        reply = b""
        try:
            while block := sock.recv(65536):
                reply += block
        except ConnectionResetError:
            pass
    elapsed = time.monotonic() - started
    if not reply:
        return 0, b"", elapsed
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body, elapsed


def relay_beat(cfg: Config, want: Callable[[dict[str, float]], bool],
               timeout_s: float = 10.0) -> dict[str, float]:
    """The stats of the first relay heartbeat on the bus that ``want``s."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, ("sys.heartbeat",), security=Security.console(cfg))
    seen: list[dict[str, float]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = sub.recv(timeout_ms=200)
            if got is None or not isinstance(got[1], Heartbeat):
                continue
            if got[1].origin.partition(":")[0] == "relay":
                seen.append(dict(got[1].stats))
                if want(seen[-1]):
                    return seen[-1]
    finally:
        sub.close()
        ctx.term()
    raise AssertionError(f"no such relay heartbeat in {timeout_s} s; last: {seen[-1:]}")


# ----------------------------------------------------------------- tokens


def refusal(status_body: tuple[int, dict[str, Any]]) -> str:
    """The counted reason of a 401 (and that it is one)."""
    status, body = status_body
    assert status == 401, body
    assert body["error"]
    return str(body["reason"])


def test_no_valid_token_no_video_no_control_and_every_refusal_counted(
        relay: Limited, rtsp_server: RtspServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cfg = relay.config
    secret = keys.media_secret(cfg.data_dir)
    view, control = relay_token(cfg, "view"), relay_token(cfg, "control")
    expired = tokens.issue(secret, "operator1", "view", time.time() - 1)
    forged = tokens.issue(secrets.token_bytes(32), "operator1", "view", time.time() + 600)
    wrong = {None: "token_missing", "garbage": "token_malformed",
             forged: "token_signature", expired: "token_expired", control: "token_scope"}

    # A tile's URL without a valid view token: a 401 that says why, no video.
    for token, reason in wrong.items():
        tile = TsClient(relay.port, 1, token)
        tile.start()
        tile.join(10)
        assert tile.status == 401, reason
        assert tile.headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert json.loads(bytes(tile.data))["reason"] == reason
    assert request(relay.port, "GET", "/status")[0] == 401
    assert refusal(request(relay.port, "GET", "/clip/abc", token=control)) == "token_scope"
    # Two tokens (header and query) is not for the relay to pick from.
    assert refusal(request(relay.port, "GET", f"/status?t={view}", token=view)) == \
        "token_malformed"
    # Control without the engine's token: nothing held, nothing clipped.
    hold = {"camera_ids": [1], "alert_id": relay.alert_id}
    clip = {"camera_id": 1, "alert_id": relay.alert_id, "post_s": 1}
    assert refusal(request(relay.port, "POST", "/hold", hold)) == "token_missing"
    assert refusal(request(relay.port, "POST", "/hold", hold, token=view)) == "token_scope"
    old = tokens.issue(secret, "engine", "control", time.time() - 1)
    assert refusal(request(relay.port, "POST", "/clip", clip, token=old)) == "token_expired"
    status, body, _ = raw_http(relay.port, b"POST /hold HTTP/1.0\r\nAuthorization: Basic "
                               b"ZW5naW5lOmVuZ2luZQ==\r\nContent-Length: 2\r\n\r\n{}")
    assert status == 401 and json.loads(body)["reason"] == "token_malformed"
    assert relay.service.relay.snapshot() == {"cameras": []}  # no camera even looked up
    assert rtsp_server.plays("cam1") == 0
    assert not list(relay.evidence.glob("**/*.ts"))

    counts = {"token_missing": 3, "token_malformed": 3, "token_signature": 1,
              "token_expired": 2, "token_scope": 3}
    assert {r: relay.refused(r) for r in counts} == counts
    stats = relay.service.relay.stats()
    assert stats["refused_token"] == stats["requests_refused"] == sum(counts.values())
    beat = relay_beat(cfg, lambda s: s.get("refused_token") == sum(counts.values()))
    assert beat["refused.token_scope"] == 3.0
    # Logged by reason, never with a token in the line.
    logged = [r.getMessage() for r in caplog.records if "refused (token_" in r.getMessage()]
    assert len(logged) == sum(counts.values())
    for token in (view, control, expired, forged, old):
        assert token not in caplog.text
        assert token.split(".")[1] not in caplog.text

    # With the right tokens: the console plays, the engine holds and clips.
    tile = TsClient(relay.port, 1, view)
    tile.start()
    try:
        wait_for(lambda: len(tile.data) > 20_000, 15, "video with a view token")
    finally:
        tile.stop()
    assert tile.status == 200
    assert request(relay.port, "GET", "/status", token=view)[0] == 200
    assert request(relay.port, "POST", "/hold", hold, token=control) == (
        200, {"held": [1], "unknown": []})

    # The engine's RelayControl carries its own renewing control token.
    engine = RelayControl("127.0.0.1", relay.port,
                          token=tokens.renewing(secret, "engine", "control"))
    tokenless = RelayControl("127.0.0.1", relay.port)
    try:
        engine.hold([2], relay.alert_id)
        tokenless.hold([1], relay.alert_id)
        engine.release(relay.alert_id)
        wait_for(lambda: engine.sent["/release"] == 1 and tokenless.failed["/hold"] == 1,
                 10, "both control clients answered")
        assert engine.sent["/hold"] == 1 and engine.failed.total() == 0
    finally:
        engine.close()
        tokenless.close()
    assert relay.refused("token_missing") == counts["token_missing"] + 1
    assert all(not c["held_for"] for c in relay.service.relay.snapshot()["cameras"])


def test_a_stream_ends_when_its_token_expires(relay: Limited) -> None:
    """A session that ended must not keep watching through a connection it
    opened before: the relay checks the expiry while it streams."""
    secret = keys.media_secret(relay.config.data_dir)
    lasting = TsClient(relay.port, 1, relay_token(relay.config, "view"))
    lasting.start()
    try:
        wait_for(lambda: len(lasting.data) > 20_000, 15, "the camera playing")
        short = TsClient(relay.port, 1, tokens.issue(secret, "operator1", "view",
                                                     time.time() + 3))
        short.start()
        wait_for(lambda: len(short.data) > 1000, 5, "the short-lived viewer playing")
        assert short.ended.wait(8), "the stream outlived its token"
        assert short.status == 200
        # The other viewer, with a valid token, plays on.
        size = len(lasting.data)
        wait_for(lambda: len(lasting.data) > size + 10_000, 5, "the lasting viewer")
        assert not lasting.ended.is_set()
    finally:
        lasting.stop()


def test_a_revoked_sessions_tokens_are_refused_and_its_streams_cut(relay: Limited) -> None:
    """A signed-out (or disabled) operator's copied link stops playing at
    once, not when the token would have expired; other sessions play on.
    The engine's list replaces the last, and what it sends is checked."""
    cfg = relay.config
    gone, kept = "0123456789abcdef", "fedcba9876543210"
    gone_token = relay_token(cfg, "view", session=gone)
    kept_token = relay_token(cfg, "view", session=kept)
    copied, other = TsClient(relay.port, 1, gone_token), TsClient(relay.port, 1, kept_token)
    copied.start()
    other.start()
    try:
        wait_for(lambda: len(copied.data) > 20_000 and len(other.data) > 20_000, 15,
                 "both sessions playing")
        until = time.time() + 600
        assert relay.request("POST", "/revoke", {"sessions": {gone: until}}) == (
            200, {"revoked": 1})
        assert copied.ended.wait(3), "the revoked session's stream played on"
        size = len(other.data)
        wait_for(lambda: len(other.data) > size + 10_000, 5, "the other session playing on")
        assert not other.ended.is_set()
    finally:
        copied.stop()
        other.stop()
    assert refusal(request(relay.port, "GET", "/status", token=gone_token)) == "token_revoked"
    again = TsClient(relay.port, 1, gone_token)
    again.start()
    again.join(10)
    assert again.status == 401 and json.loads(bytes(again.data))["reason"] == "token_revoked"
    assert request(relay.port, "GET", "/status", token=kept_token)[0] == 200
    assert relay.refused("token_revoked") == 2
    assert relay_beat(cfg, lambda s: s.get("revoked_sessions") == 1.0)
    # The engine's own tokens (no session) are never caught by a revocation.
    assert relay.request("POST", "/hold", {"camera_ids": [1], "alert_id": relay.alert_id}
                         )[0] == 200

    # Only the engine revokes, and only what is well formed.
    body = {"sessions": {kept: until}}
    assert refusal(request(relay.port, "POST", "/revoke", body, token=kept_token)) == \
        "token_scope"
    for bad in ({"sessions": [kept]}, {"sessions": {"ZZZ": until}}, {"sessions": {"": until}},
                {"sessions": {kept: "soon"}}, {"sessions": {kept: True}},
                {"sessions": {kept: -1}},
                {"sessions": {f"{i:016x}": until for i in range(limits.MAX_REVOKED + 1)}}):
        status, answer = relay.request("POST", "/revoke", bad)
        assert (status, answer.get("reason")) == (400, "sessions"), bad
    status, answer = relay.request("POST", "/revoke", {"sessions": {}, "also": 1})
    assert (status, answer.get("reason")) == (400, "unknown_field")
    assert request(relay.port, "GET", "/status", token=kept_token)[0] == 200
    assert refusal(request(relay.port, "GET", "/status", token=gone_token)) == "token_revoked"

    # The list is the engine's whole list: a new one replaces it, and an
    # entry already expired is not kept.
    assert relay.request("POST", "/revoke", {"sessions": {kept: until,
                                                          gone: time.time() - 1}}) == (
        200, {"revoked": 1})
    assert refusal(request(relay.port, "GET", "/status", token=kept_token)) == "token_revoked"
    assert request(relay.port, "GET", "/status", token=gone_token)[0] == 200


def test_with_security_off_the_relay_asks_for_no_token(data_dir: Path,
                                                       rtsp_server: RtspServer) -> None:
    """The comparison mode (``bus_security`` "off"): no keys made, none read,
    every request served as before tokens existed."""
    with running_relay(data_dir, rtsp_server, bus_security="off") as relay:
        assert relay.service.http.secret is None
        assert not keys.keys_dir(data_dir).exists()
        assert request(relay.port, "GET", "/status")[0] == 200
        assert request(relay.port, "POST", "/hold", {
            "camera_ids": [1], "alert_id": relay.alert_id}) == (200, {"held": [1], "unknown": []})
        assert relay.service.relay.stats()["refused_token"] == 0


# ------------------------------------------------------- control values

BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("/hold", {"camera_ids": [1], "alert_id": 1, "ttl_s": -1}, "ttl_s"),
    ("/hold", {"camera_ids": [1], "alert_id": 1, "ttl_s": 0}, "ttl_s"),
    ("/hold", {"camera_ids": [1], "alert_id": 1, "ttl_s": 6 * 3600 + 1}, "ttl_s"),
    ("/hold", {"camera_ids": [1], "alert_id": 1, "ttl_s": 1e308}, "ttl_s"),
    ("/hold", {"camera_ids": [1], "alert_id": 1, "ttl_s": "60"}, "ttl_s"),
    ("/hold", {"camera_ids": [1], "alert_id": 1, "ttl_s": True}, "ttl_s"),
    ("/hold", {"camera_ids": [1], "alert_id": 0}, "alert_id"),
    ("/hold", {"camera_ids": [1], "alert_id": -5}, "alert_id"),
    ("/hold", {"camera_ids": [1], "alert_id": 2**31}, "alert_id"),
    ("/hold", {"camera_ids": [1], "alert_id": 10**30}, "alert_id"),
    ("/hold", {"camera_ids": [1], "alert_id": 1.5}, "alert_id"),
    ("/hold", {"camera_ids": list(range(1, 66)), "alert_id": 1}, "camera_ids"),
    ("/hold", {"camera_ids": [1, 0], "alert_id": 1}, "camera_ids"),
    ("/hold", {"camera_ids": [1, "2"], "alert_id": 1}, "camera_ids"),
    ("/hold", {"camera_ids": [1], "alert_id": 1, "ttl": 60}, "unknown_field"),
    ("/release", {"alert_id": "1"}, "alert_id"),
    ("/clip", {"camera_id": 1, "alert_id": 1, "post_s": 0}, "post_s"),
    ("/clip", {"camera_id": 1, "alert_id": 1, "post_s": 601}, "post_s"),
    ("/clip", {"camera_id": 1, "alert_id": 1, "post_s": -3}, "post_s"),
    ("/clip", {"camera_id": 2**31, "alert_id": 1}, "camera_id"),
    ("/clip", {"camera_id": 0, "alert_id": None}, "camera_id"),
    ("/clip", {"camera_id": 1, "alert_id": 1, "actor": "x" * 65}, "actor"),
    ("/clip", {"camera_id": 1, "alert_id": 1, "actor": "op\nERROR forged line"}, "actor"),
    ("/clip", {"camera_id": 1, "alert_id": 1, "actor": ["op"]}, "actor"),
]


def test_out_of_bounds_values_are_refused_counted_and_the_relay_serves_on(
        relay: Limited) -> None:
    expected: dict[str, int] = {}
    for path, body, reason in BAD_REQUESTS:
        status, answer = relay.request("POST", path, body)
        assert status == 400, (path, body, answer)
        assert answer["error"], (path, body)
        expected[reason] = expected.get(reason, 0) + 1
    for reason, count in expected.items():
        assert relay.refused(reason) == count, reason
    # NaN and Infinity are not JSON numbers: refused as a bad body.
    for text in ('{"camera_ids": [1], "alert_id": 1, "ttl_s": NaN}',
                 '{"camera_id": 1, "alert_id": 1, "post_s": Infinity}'):
        data = text.encode()
        status, body, _ = raw_http(relay.port, b"POST /hold HTTP/1.0\r\n" + relay.auth("control")
                                   + b"Content-Length: " + str(len(data)).encode()
                                   + b"\r\n\r\n" + data)
        assert status == 400 and b"not a number JSON allows" in body
    assert relay.refused("body") == 2
    # Ids in the video path are bounded too.
    assert relay.request("GET", "/cam/0.ts")[0] == 400
    assert relay.request("GET", "/cam/99999999999.ts")[0] == 404
    assert relay.refused("camera_id") == expected["camera_id"] + 1
    stats = relay.service.relay.stats()
    assert stats["requests_refused"] == len(BAD_REQUESTS) + 3
    assert stats["held"] == 0.0 and stats["clips_recording"] == 0.0  # nothing happened

    # ... and the relay still does its job.
    assert relay.request("GET", "/status")[0] == 200
    status, body = relay.request("POST", "/hold", {
        "camera_ids": [1, 1, 99], "alert_id": relay.alert_id, "ttl_s": 6 * 3600})
    assert (status, body) == (200, {"held": [1], "unknown": [99]})
    assert relay.request("POST", "/release", {"alert_id": relay.alert_id})[1] == {
        "released": [1]}


def test_json_nested_too_deep_is_a_bad_body(relay: Limited) -> None:
    data = b"[" * 60_000
    status, body, _ = raw_http(relay.port, b"POST /clip HTTP/1.0\r\n" + relay.auth("control")
                               + b"Content-Length: " + str(len(data)).encode()
                               + b"\r\n\r\n" + data)
    assert status == 400 and b"not JSON" in body
    assert relay.refused("body") == 1
    assert relay.request("GET", "/status")[0] == 200


# ----------------------------------------------------------------- paths


def test_clip_paths_stay_inside_the_evidence_folder(relay: Limited, tmp_path: Path) -> None:
    for body in ({"camera_id": "../../../etc/x", "alert_id": relay.alert_id},
                 {"camera_id": 1, "alert_id": "../../../tmp"}):
        status, answer = relay.request("POST", "/clip", body)
        assert status == 400, answer
    assert relay.refused("camera_id") == relay.refused("alert_id") == 1
    assert relay.request("GET", "/clip/../../etc/passwd")[0] == 404

    # A case folder planted as a symlink out of the evidence folder.
    outside = tmp_path / "outside"
    outside.mkdir()
    relay.evidence.mkdir(parents=True, exist_ok=True)
    (relay.evidence / f"alert-{relay.alert_id}").symlink_to(outside, target_is_directory=True)
    status, answer = relay.request("POST", "/clip",
                                   {"camera_id": 1, "alert_id": relay.alert_id, "post_s": 1})
    assert status == 400 and "not inside the evidence folder" in answer["error"]
    assert relay.refused("clip_path") == 1
    assert relay.service.relay.stats()["clips_refused"] == 1.0
    assert list(outside.iterdir()) == []

    # Without the trap, the same clip is taken.
    (relay.evidence / f"alert-{relay.alert_id}").unlink()
    status, answer = relay.request("POST", "/clip",
                                   {"camera_id": 1, "alert_id": relay.alert_id, "post_s": 1})
    assert status == 202
    assert Path(answer["path"]).parent.parent == relay.evidence


def test_clip_path_refuses_what_would_escape(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    assert clip_path(folder, 3, 7, 0.0) == folder / "alert-7" / "cam3-19700101T000000.000000Z.ts"
    with pytest.raises(UnsafePath):
        clip_path(folder, "../x", 7, 0.0)  # type: ignore[arg-type]
    with pytest.raises(UnsafePath):
        inside(folder, folder / ".." / "elsewhere.ts")
    with pytest.raises(UnsafePath):
        inside(folder, folder)


# ------------------------------------------------------------------ HTTP


def test_slow_or_silent_clients_are_cut_off_at_the_deadline(relay: Limited) -> None:
    # Headers trickled one line at a time never finish.
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as sock:
        sock.sendall(b"GET /status HTTP/1.0\r\n")
        closed = False
        for i in range(40):
            try:
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
                sock.settimeout(0.25)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:  # reset or broken pipe: cut off too
                closed = True
                break
    elapsed = time.monotonic() - started
    assert closed, "a client trickling headers was never cut off"
    assert DEADLINE_S <= elapsed < DEADLINE_S + 5  # cut off by the deadline, not by the test
    # A client that connects and says nothing; one whose body never comes.
    status, _, elapsed = raw_http(relay.port, b"")
    assert status == 0 and DEADLINE_S <= elapsed < DEADLINE_S + 5
    status, _, elapsed = raw_http(relay.port, b"POST /hold HTTP/1.0\r\n" + relay.auth("control")
                                  + b"Content-Length: 40\r\n\r\n{\"camera_ids\"")
    assert status == 0 and DEADLINE_S <= elapsed < DEADLINE_S + 5
    wait_for(lambda: relay.refused("request_deadline") == 3, 2, "three cut-offs counted")
    assert relay.refused("body") == 0  # a cut-off is counted once, as what it is
    assert relay.request("GET", "/status")[0] == 200


def test_connections_beyond_the_cap_get_503_and_are_counted(relay: Limited) -> None:
    """Each connection is a thread: past the cap a client is told to come
    back (503, Retry-After), counted, and the relay serves the next one once
    a place is free."""
    relay.service.http.max_connections = 2
    held = [socket.create_connection(("127.0.0.1", relay.port), timeout=5) for _ in range(2)]
    try:
        wait_for(lambda: relay.service.http.live == 2, 5, "two connections held")
        for n in (1, 2):  # the repeat is refused and counted too
            status, _, _ = raw_http(relay.port, b"GET /status HTTP/1.0\r\n\r\n")
            assert status == 503
            assert relay.refused("too_many_connections") == n
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: relay.request("GET", "/status")[0] == 200, 5 + DEADLINE_S,
             "served again once the held connections went")


@pytest.mark.parametrize(("length_header", "post_status", "get_status"), [
    (b"", 411, 200),  # a POST must say how long its body is; a GET has none
    (b"Content-Length: -1\r\n", 400, 400),
    (b"Content-Length: abc\r\n", 400, 400),
    (b"Content-Length: +5\r\n", 400, 400),
    (b"Content-Length: 5\r\nContent-Length: 7\r\n", 400, 400),
    (b"Content-Length: 999999999999\r\n", 413, 413),
    (b"Content-Length: 65537\r\n", 413, 413),
    (b"Transfer-Encoding: chunked\r\n", 411, 411),
])
def test_bad_content_length_is_refused_at_once(relay: Limited, length_header: bytes,
                                               post_status: int, get_status: int) -> None:
    status, body, elapsed = raw_http(relay.port, b"POST /hold HTTP/1.0\r\n"
                                     + relay.auth("control") + length_header + b"\r\n")
    assert status == post_status, body
    assert json.loads(body)["error"]
    assert elapsed < DEADLINE_S / 2  # answered, not left to the deadline
    assert relay.refused("content_length") == 1
    status, _, _ = raw_http(relay.port, b"GET /status HTTP/1.0\r\n" + relay.auth("view")
                            + length_header + b"\r\n")
    assert status == get_status
    assert relay.refused("content_length") == (1 if get_status == 200 else 2)
    assert relay.refused("request_deadline") == 0
    assert relay.request("GET", "/status")[0] == 200


# ------------------------------------------------------------- evidence


def test_full_evidence_refuses_new_clips_says_so_and_recovers(
        data_dir: Path, rtsp_server: RtspServer) -> None:
    budget = 1000  # the first clip's buffered seconds fill it at once
    with running_relay(data_dir, rtsp_server, budget_bytes=budget) as relay:
        assert relay.request("POST", "/hold",
                             {"camera_ids": [1], "alert_id": relay.alert_id})[0] == 200
        wait_for(lambda: relay.request("GET", "/status")[1]["cameras"][0]["buffer_s"]
                 >= 1.0, 20, "1 s in the pre-alarm buffer")
        clip = {"camera_id": 1, "alert_id": relay.alert_id, "actor": "operator1", "post_s": 1}
        status, first = relay.request("POST", "/clip", clip)
        assert status == 202
        for n in (1, 2):  # refused, and refused again: both counted
            status, answer = relay.request("POST", "/clip", clip)
            assert status == 507
            assert "evidence storage full" in answer["error"]
            assert relay.refused("evidence_full") == n
        assert relay.service.relay.stats()["clips_refused"] == 2.0

        beat = relay_beat(relay.config, lambda s: s.get("clips_refused") == 2.0)
        assert beat["evidence_full"] == 1.0
        assert beat["evidence_budget_bytes"] == float(budget)
        assert beat["evidence_bytes"] >= budget
        words = f"evidence storage full ({beat['evidence_bytes'] / 1024:.1f} of 1.0 kB): " \
                "new clips refused"
        assert reasons({}, {}, {}, 0.0, relay=beat) == [words]
        assert reasons({}, {}, {}, 0.0) == []
        console = ConsoleState()
        console.apply(Heartbeat(origin="relay:1", seq=0, last_seq=0, stats=beat), now=1.0)
        assert console.degraded(now=1.0) == [words]

        # The clip that was taken is kept, whole.
        wait_for(lambda: relay.request("GET", f"/clip/{first['clip']}")[1]["state"]
                 == "saved", 15, "the first clip saved")
        kept = Path(first["path"])
        assert kept.is_file() and kept.stat().st_size > budget
        time.sleep(1.0)  # two rescans: a full folder stays full
        assert kept.is_file() and relay.request("POST", "/clip", clip)[0] == 507
        assert relay.refused("evidence_full") == 3

        # An administrator archives the clips: the next rescan notices.
        kept.unlink()
        relay_beat(relay.config, lambda s: s.get("evidence_full") == 0.0)
        status, again = relay.request("POST", "/clip", clip)
        assert status == 202, again
    assert relay.refused("evidence_full") == 3


def test_a_folder_full_at_start_refuses_the_first_clip(data_dir: Path,
                                                       rtsp_server: RtspServer) -> None:
    def fill(cfg: Config) -> None:
        old = cfg.data_dir / "evidence" / "alert-1"
        old.mkdir(parents=True)
        (old / "cam1-old.ts").write_bytes(b"\x47" * 4096)

    with running_relay(data_dir, rtsp_server, budget_bytes=2048, before=fill) as relay:
        status, answer = relay.request("POST", "/clip",
                                       {"camera_id": 1, "alert_id": relay.alert_id})
        assert status == 507 and "4096 of 2048 bytes" in answer["error"]
        stats = relay.service.relay.stats()
        assert (stats["evidence_bytes"], stats["evidence_full"], stats["clips_refused"]) == (
            4096.0, 1.0, 1.0)
        assert stats["clips_recording"] == 0.0
        assert (relay.evidence / "alert-1" / "cam1-old.ts").stat().st_size == 4096


def test_budget_adds_incrementally_and_rescans_at_most_every_period(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.ts").write_bytes(b"0" * 300)
    budget = EvidenceBudget(folder, 1000, rescan_s=30.0)
    assert (budget.used, budget.full) == (300, False)  # scanned at start
    budget.add(700)
    assert budget.full and budget.stats() == {
        "evidence_bytes": 1000.0, "evidence_budget_bytes": 1000.0, "evidence_full": 1.0}
    (folder / "a" / "x.ts").unlink()
    assert not budget.maybe_rescan(time.monotonic() + 1.0)  # not due: no walk
    assert budget.full
    assert budget.maybe_rescan(time.monotonic() + 31.0)
    assert (budget.used, budget.full) == (0, False)
    assert EvidenceBudget(tmp_path / "missing", 10).used == 0


def test_limits_checks_accept_what_is_sane() -> None:
    assert limits.check_seconds(None, "ttl_s", limits.MAX_HOLD_TTL_S) is None
    assert limits.check_seconds(90, "ttl_s", limits.MAX_HOLD_TTL_S) == 90.0
    assert limits.check_ids([3, 1, 3], "camera_ids") == [3, 1]
    assert limits.check_id(2**31 - 1, "alert_id") == 2**31 - 1
    assert limits.check_actor(None) == "relay"
    assert limits.check_actor("운영자 김") == "운영자 김"
    with pytest.raises(limits.Refused, match="at most 600 s"):
        limits.check_seconds(float("nan"), "post_s", limits.MAX_POST_S)
