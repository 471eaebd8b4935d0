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
``?t=``). The payload is ``1:<scope>:<expires, unix s>:<subject>``; the
signature is HMAC-SHA256 over a context string and the payload, compared
in constant time. Scopes:

- ``view``: streams and read endpoints; issued to a signed-in console at
  sign-in, and expires with its session.
- ``control``: hold, clip and release; the engine's own.

A token cannot be revoked before it expires (that would need the store
this design avoids): signing out ends the session at the engine at once,
and the console drops its token, but a copied view token plays until the
session would have ended.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

SCOPES = ("view", "control")
VERSION = "1"
MIN_SECRET = 16  # bytes; console.keys makes 32
MAX_TOKEN = 400  # characters; anything longer is refused before any work
MAX_SUBJECT = 64
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


def issue(secret: bytes, subject: str, scope: str, expires_at: float) -> str:
    """A token for ``subject`` (a user name, or ``engine``) with ``scope``,
    valid until ``expires_at`` (unix seconds, rounded down: never later
    than asked)."""
    check_secret(secret)
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
    if (not subject or len(subject) > MAX_SUBJECT
            or any(unicodedata.category(ch).startswith("C") for ch in subject)):
        raise ValueError(f"a subject is 1 to {MAX_SUBJECT} printable characters")
    if not math.isfinite(expires_at) or expires_at <= 0:
        raise ValueError("expires_at must be a positive time")
    payload = f"{VERSION}:{scope}:{int(expires_at)}:{subject}".encode()
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a checked token allows: who, and until when (a stream is cut
    off then, however long it has been playing)."""

    subject: str
    scope: str
    expires_at: float


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
        version, got_scope, expires, subject = payload.decode().split(":", 3)
        expires_at = int(expires)
    except ValueError:  # UnicodeDecodeError is one; signed by us, so a bug
        raise BadToken("malformed", "the token is malformed") from None
    if version != VERSION or not subject:
        raise BadToken("malformed", "the token is malformed")
    if got_scope != scope:
        raise BadToken("scope", f"a {got_scope!r} token does not allow {scope!r}")
    if (time.time() if now is None else now) >= expires_at:
        raise BadToken("expired", "the token has expired: sign in again")
    return Grant(subject, got_scope, float(expires_at))


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
