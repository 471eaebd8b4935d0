"""Bounds on every value a peer sends the relay, and the tally of refusals.

Why: the relay is driven by the engine (control) and by consoles
(streams), each with a token (``console.media.tokens``), but a token
proves who sent a request, not that it is sane. A bug or a hostile peer
must get a 400 with a sentence, never a crash, a six-year hold, a clip
that records for a month, or a file outside the evidence folder: no input
takes alerting down. Each refusal is counted by reason (the relay's
heartbeat carries the counts) and logged, at most ``LOG_BURST`` lines per
reason per minute so a flood cannot fill the disk with log lines.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import unicodedata
from collections import Counter

log = logging.getLogger(__name__)

MAX_ID = 2**31 - 1  # camera and alert ids are SQL INTEGER keys
MAX_HOLD_TTL_S = 6 * 3600.0  # a hold outliving this is a forgotten hold
MAX_POST_S = 600.0  # ten minutes after an SOS is a long clip already
MAX_CAMERAS_PER_HOLD = 64  # the engine holds a handful per alert
MAX_ACTOR_LEN = 64  # an operator's login, or "engine"
MAX_BODY = 64 * 1024  # every control request is a small JSON object
MAX_REVOKED = 1000  # ended sessions per /revoke: a shift's staff, many times over
REQUEST_DEADLINE_S = 5.0  # headers (and a POST's body) must be in by then
LOG_BURST = 20  # refusal lines logged per reason per LOG_WINDOW_S
LOG_WINDOW_S = 60.0

# The counters' keys: a fixed set, so no peer can grow the heartbeat.
REASONS = (
    "request_deadline", "content_length", "body", "unknown_field", "camera_id",
    "camera_ids", "alert_id", "ttl_s", "post_s", "actor", "clip_path", "evidence_full",
    "evidence_io", "too_many_connections", "sessions",
    # console.media.tokens: no token, or one that is malformed, forged,
    # expired, of the wrong scope or of a session that ended (each a 401)
    "token_missing", "token_malformed", "token_signature", "token_expired", "token_scope",
    "token_revoked",
)
TOKEN_REASONS = tuple(r for r in REASONS if r.startswith("token_"))


class Refused(ValueError):
    """A request the relay will not carry out: ``reason`` (one of
    ``REASONS``) is what it is counted under, ``status`` the HTTP answer,
    the message the sentence the peer reads."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.counted = False


class Refusals:
    """Thread-safe refusal counts by reason, with rate-limited logging."""

    def __init__(self, burst: int = LOG_BURST, window_s: float = LOG_WINDOW_S) -> None:
        self.burst = burst
        self.window_s = window_s
        self.counts: Counter[str] = Counter()
        self._logged: dict[str, tuple[float, int]] = {}  # reason -> (window start, lines)
        self._lock = threading.Lock()

    def note(self, exc: Refused, peer: str = "") -> None:
        """Count and log ``exc`` once, however many layers see it pass."""
        if exc.counted:
            return
        exc.counted = True
        now = time.monotonic()
        with self._lock:
            self.counts[exc.reason] += 1
            start, lines = self._logged.get(exc.reason, (now, 0))
            if now - start >= self.window_s:
                start, lines = now, 0
            self._logged[exc.reason] = (start, lines + 1)
        if lines < self.burst:
            log.warning("refused (%s) %s: %s", exc.reason, peer or "-", exc)
        elif lines == self.burst:
            log.warning("refused (%s): more than %d in %.0f s; not logging more for now",
                        exc.reason, self.burst, self.window_s)

    def stats(self) -> dict[str, float]:
        """``requests_refused`` and ``refused.<reason>`` for each reason."""
        with self._lock:
            counts = dict(self.counts)
        out = {f"refused.{r}": float(counts.get(r, 0)) for r in REASONS}
        out["requests_refused"] = float(sum(counts.values()))
        return out


# --------------------------------------------------------------- checks


def check_id(value: object, name: str) -> int:
    """A camera or alert id: an integer in 1..2**31-1 (JSON ``true`` is not one)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refused(name, f"{name} must be an integer (got {_show(value)})")
    if not 1 <= value <= MAX_ID:
        raise Refused(name, f"{name} must be 1 to {MAX_ID} (got {_show(value)})")
    return value


def check_ids(value: object, name: str, most: int = MAX_CAMERAS_PER_HOLD) -> list[int]:
    """A list of at most ``most`` ids; repeats are folded, order kept."""
    if not isinstance(value, list):
        raise Refused(name, f"{name} must be a list of integers (got {_show(value)})")
    if len(value) > most:
        raise Refused(name, f"{name}: at most {most} per request (got {len(value)})")
    for i, v in enumerate(value):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_ID:
            raise Refused(name, f"{name}[{i}] must be an integer 1 to {MAX_ID} "
                                f"(got {_show(v)})")
    return list(dict.fromkeys(value))


def check_seconds(value: object, name: str, most: float) -> float | None:
    """A duration in (0, ``most``] seconds, or None when not given (the
    relay's default applies); NaN, infinities and zero are refused."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Refused(name, f"{name} must be a number of seconds (got {_show(value)})")
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 < seconds <= most:
        raise Refused(name, f"{name} must be more than 0 and at most {most:g} s "
                            f"(got {_show(value)})")
    return seconds


def check_revocations(value: object, session: re.Pattern[str]) -> dict[str, float]:
    """``/revoke``'s ``sessions``: at most ``MAX_REVOKED`` session ids
    (``session`` is their shape) each with the finite unix time its
    tokens expire."""
    if not isinstance(value, dict):
        raise Refused("sessions", f"sessions must be an object (got {_show(value)})")
    if len(value) > MAX_REVOKED:
        raise Refused("sessions", f"sessions: at most {MAX_REVOKED} per request "
                                  f"(got {len(value)})")
    out: dict[str, float] = {}
    for sid, until in value.items():
        if not session.fullmatch(sid) or not sid:
            raise Refused("sessions", f"sessions: {_show(sid)} is not a session id")
        if (not isinstance(until, int | float) or isinstance(until, bool)
                or not math.isfinite(until) or until <= 0):
            raise Refused("sessions", f"sessions[{_show(sid)}] must be a time "
                                      f"(got {_show(until)})")
        out[sid] = float(until)
    return out


def check_actor(value: object, default: str = "relay") -> str:
    """Who asked for a clip, as the Evidence row records it: a printable
    name of at most ``MAX_ACTOR_LEN`` characters (no control characters,
    so it cannot forge log lines)."""
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise Refused("actor", f"actor must be a string (got {_show(value)})")
    if len(value) > MAX_ACTOR_LEN:
        raise Refused("actor", f"actor: at most {MAX_ACTOR_LEN} characters (got {len(value)})")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise Refused("actor", "actor must not contain control characters")
    return value


def check_fields(body: dict[str, object], allowed: frozenset[str]) -> None:
    """Unknown fields are refused: a misspelt ``ttl`` must not silently
    become the default hour."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        shown = ", ".join(_show(k) for k in unknown[:5])
        raise Refused("unknown_field", f"unknown field(s): {shown}")


def _show(value: object) -> str:
    """A peer's value for a message: short, whatever was sent."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (Python's digit limit)
        return "a number too long to show"
    return text if len(text) <= 40 else text[:37] + "..."
