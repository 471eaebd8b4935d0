"""Tokens that let a console watch cameras, and the engine drive the relay.

Why HMAC over a shared secret: the relay must decide on every request
(each tile's stream, each hold the engine renews) without a store, a bus
round trip or a session table of its own. The engine, which signs people
in, signs a token with ``<data_dir>/keys/media.secret`` (``console.keys``);
the relay holds the same secret and checks the signature and the expiry
in microseconds. Nothing is stored, so the relay stays a media process
that knows no accounts.

A token is ``<payload>.<signature>``, both base64url without padding (it
goes in a URL: libvlc can only be given a URL, so a viewer passes it as
``?t=``). The payload is ``2:<scope>:<expires, unix s>:<session>:<subject>``;
the signature is HMAC-SHA256 over a context string and the payload,
compared in constant time. Scopes:

- ``view``: streams and read endpoints; issued to a signed-in console at
  sign-in, and expires with its session.
- ``control``: hold, clip, release and revoke; the engine's own.

``session`` names the sign-in a view token belongs to (``session_id``: a
prefix of the session's hash in the store, never the console's secret).
Why: a token that outlives its session is video for whoever copied it.
The relay keeps no sessions, but it keeps the short list of ended ones
the engine posts (``/revoke``: signed out, account disabled, not yet
expired) and refuses their tokens, and cuts their streams, at once. The
list lives in the relay's memory; the engine posts it again every few
seconds, so a restarted relay has it back within that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

SCOPES = ("view", "control")
VERSION = "2"
MIN_SECRET = 16  # bytes; console.keys makes 32
MAX_TOKEN = 400  # characters; anything longer is refused before any work
MAX_SUBJECT = 64
SESSION_ID_LEN = 16  # hex characters of the session's hash: 64 bits, no collisions in a city
SESSION_PATTERN = re.compile(r"(?:[0-9a-f]{16})?")  # a session id, or none (the engine's)
_CONTEXT = b"childsafe media token v1\x00"  # a signature made for nothing else
_SIG_LEN = 32  # the whole HMAC-SHA256
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class BadToken(ValueError):
    """A token the relay refuses; ``reason`` is one of ``REASONS`` (what the
    refusal is counted under), the message the sentence the peer reads.
    Neither ever contains the token."""

    REASONS = ("malformed", "signature", "expired", "scope")

    def __init__(self, reason: str, message: str) -> None:
        assert reason in self.REASONS, reason
        super().__init__(message)
        self.reason = reason


def check_secret(secret: bytes) -> bytes:
    """The secret, if it is long enough to sign with; else ``ValueError``
    (a truncated key file must stop the process, not weaken every token)."""
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET:
        raise ValueError(f"the media secret must be at least {MIN_SECRET} bytes")
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """base64url without padding, in its one canonical spelling (so no two
    strings are the same token); ``binascii.Error`` on anything else."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise binascii.Error("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise binascii.Error("not canonical base64url")
    return data


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()


def session_id(token_hash: str) -> str:
    """The id a view token and a revocation name a session by: the start
    of the store's hash of its token (``db.accounts.token_hash``)."""
    sid = token_hash[:SESSION_ID_LEN].lower()
    if len(sid) != SESSION_ID_LEN or not SESSION_PATTERN.fullmatch(sid):
        raise ValueError("a session is named by the hex hash of its token")
    return sid


def issue(secret: bytes, subject: str, scope: str, expires_at: float,
          session: str = "") -> str:
    """A token for ``subject`` (a user name, or ``engine``) with ``scope``,
    valid until ``expires_at`` (unix seconds, rounded down: never later
    than asked) unless ``session`` (a ``session_id``) is revoked first."""
    check_secret(secret)
    if not SESSION_PATTERN.fullmatch(session):
        raise ValueError("session must be a session_id, or empty")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
    if (not subject or len(subject) > MAX_SUBJECT
            or any(unicodedata.category(ch).startswith("C") for ch in subject)):
        raise ValueError(f"a subject is 1 to {MAX_SUBJECT} printable characters")
    if not math.isfinite(expires_at) or expires_at <= 0:
        raise ValueError("expires_at must be a positive time")
    payload = f"{VERSION}:{scope}:{int(expires_at)}:{session}:{subject}".encode()
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a checked token allows: who, and until when (a stream is cut
    off then, however long it has been playing, or when ``session`` is
    revoked)."""

    subject: str
    scope: str
    expires_at: float
    session: str = ""


def check(secret: bytes, token: str, scope: str, now: float | None = None) -> str:
    """The subject of ``token`` if it is genuine, of ``scope`` and not
    expired at ``now`` (default: the clock); else ``BadToken``."""
    return grant(secret, token, scope, now).subject


def grant(secret: bytes, token: str, scope: str, now: float | None = None) -> Grant:
    """``check``, with the token's expiry too.

    The signature is checked before anything in the payload is believed.
    Scopes match exactly: the engine's control token does not play video,
    a console's view token does not cut clips.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(".") != 1:
        raise BadToken("malformed", "the token is malformed")
    body, _, sig_text = token.partition(".")
    try:
        payload, sig = _unb64(body), _unb64(sig_text)
    except ValueError:  # binascii.Error is one
        raise BadToken("malformed", "the token is malformed") from None
    if len(sig) != _SIG_LEN:
        raise BadToken("malformed", "the token is malformed")
    if not hmac.compare_digest(sig, _sign(secret, payload)):
        raise BadToken("signature", "the token's signature is not valid")
    try:
        version, got_scope, expires, session, subject = payload.decode().split(":", 4)
        expires_at = int(expires)
    except ValueError:  # UnicodeDecodeError is one; signed by us, so a bug
        raise BadToken("malformed", "the token is malformed") from None
    if version != VERSION or not subject or not SESSION_PATTERN.fullmatch(session):
        raise BadToken("malformed", "the token is malformed")
    if got_scope != scope:
        raise BadToken("scope", f"a {got_scope!r} token does not allow {scope!r}")
    if (time.time() if now is None else now) >= expires_at:
        raise BadToken("expired", "the token has expired: sign in again")
    return Grant(subject, got_scope, float(expires_at), session)


def renewing(secret: bytes, subject: str, scope: str, ttl_s: float = 3600.0,
             margin_s: float = 300.0,
             clock: Callable[[], float] = time.time) -> Callable[[], str]:
    """A token provider that keeps one token and makes a new one when less
    than ``margin_s`` of its ``ttl_s`` is left: what the engine hands its
    relay control (one HMAC an hour, not one per request)."""
    check_secret(secret)
    if not 0 <= margin_s < ttl_s:
        raise ValueError("margin_s must be less than ttl_s")
    held: list[tuple[str, float]] = []

    def current() -> str:
        now = clock()
        if not held or held[0][1] - now < margin_s:
            expires_at = now + ttl_s
            held[:] = [(issue(secret, subject, scope, expires_at), int(expires_at))]
        return held[0][0]

    return current


class Revocations:
    """The sessions whose view tokens the relay refuses before they expire:
    session id -> the expiry its tokens carry (after which the entry is
    dropped: the token is refused as expired anyway).

    The engine posts the whole list each time (``replace``), so the relay
    never needs to reconcile, and a list it lost in a restart comes back
    with the next post. Thread-safe: viewer threads ask while the control
    thread replaces.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def replace(self, until: dict[str, float]) -> int:
        """Make ``until`` (checked session ids) the list; returns how many
        are in force."""
        now = self.clock()
        kept = {sid: t for sid, t in until.items() if t > now}
        with self._lock:
            self._until = kept
        return len(kept)

    def revoked(self, grant: Grant | None) -> bool:
        """Is this grant's session one that ended early?"""
        if grant is None or not grant.session:
            return False
        with self._lock:
            return grant.session in self._until

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)
