"""Guardians' routine notices, Qt-free and store-free: their kinds, their
words, when a failed one is tried again, and which failures are final.

Routine notices (arrival at and departure from school or an academy) are
what a guardian consented to under the "routine" service; the guardian is
entitled to the child's name, so the text names the child, unlike anything
an operator sees on the routine map. Korean comes first for Seoul's
guardians, with an English line for those who read it better.

The outbox (``db.outbox``) and the notifier (``console.services.notifier``)
apply the retry schedule and the error classes from here, so the store,
the process and the tests agree on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, get_args

NoticeKind = Literal["school_arrival", "school_departure", "academy_arrival",
                     "academy_departure"]
NOTICE_KINDS: tuple[NoticeKind, ...] = get_args(NoticeKind)

# email: the guardian has an e-mail address; sms: only a phone (handed to
# the record file until an SMS gateway is plugged in); record: neither, so
# the notice is at least recorded rather than dropped.
Channel = Literal["email", "sms", "record"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)

# A row's state in the store. "Retrying" is a pending row that has failed
# before (attempts > 0); the bus says so in words (models.messages.NoticeState).
OutboxState = Literal["pending", "sent", "dead"]
OUTBOX_STATES: tuple[OutboxState, ...] = get_args(OutboxState)

BRAND = "서울 아동안전"

# Seconds to wait after the n-th failure (the last one repeats): quick at
# first, since most failures are a busy or restarting mail server, then
# slower so an outage does not hammer it. An arrival notice is worth little
# after a few hours, which the attempts limit (config notice_max_attempts)
# turns into a dead letter an operator sees.
RETRY_DELAYS_S: tuple[float, ...] = (30.0, 120.0, 600.0, 1800.0, 3600.0)

_ZONE_WORD = {"school": ("학교", "school"), "academy": ("학원", "academy")}


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One notice as an adapter sends it: plain values, so adapters never
    touch the store and can run on the notifier's sending thread."""

    id: int
    key: str
    child_token: str
    kind: str
    zone: str
    channel: str
    address: str
    subject: str
    body: str
    event_at: float
    attempts: int  # failed or made before this one


def check_kind(kind: str) -> NoticeKind:
    if kind not in NOTICE_KINDS:
        raise ValueError(f"notice kind must be one of {', '.join(NOTICE_KINDS)}, not {kind!r}")
    return kind  # type: ignore[return-value]


def local_clock(at: float, offset_s: float) -> tuple[str, str]:
    """``("2025-03-04", "08:32")`` for epoch ``at`` in local time: Korea has
    no daylight saving, so a fixed offset is exact."""
    t = time.gmtime(at + offset_s)
    return time.strftime("%Y-%m-%d", t), time.strftime("%H:%M", t)


def utc_label(offset_s: float) -> str:
    """``UTC+09:00`` for 32400, so the reader knows which clock was meant."""
    sign = "-" if offset_s < 0 else "+"
    minutes = round(abs(offset_s) / 60)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def render(kind: str, child_name: str, zone: str, event_at: float,
           offset_s: float) -> Rendered:
    """Subject and body of one notice, e.g. "[서울 아동안전] 김민준 학생이
    신도림초등학교에 도착했습니다 (08:32)". "학생이", "에" and "에서" take no
    particle change, so the sentence is right for every name and place."""
    place_kind, arriving = _parts(check_kind(kind))
    name = " ".join(child_name.split()) or "자녀"
    ko_place, en_place = _ZONE_WORD[place_kind]
    place = " ".join(zone.split()) or ko_place
    en_where = " ".join(zone.split()) or f"the {en_place}"
    day, hhmm = local_clock(event_at, offset_s)
    if arriving:
        ko = f"{name} 학생이 {place}에 도착했습니다 ({hhmm})"
        en = f"{name} arrived at {en_where} at {hhmm}."
    else:
        ko = f"{name} 학생이 {place}에서 출발했습니다 ({hhmm})"
        en = f"{name} left {en_where} at {hhmm}."
    subject = f"[{BRAND}] {ko}"
    body = "\n".join((
        f"{ko}.",
        en,
        "",
        f"일시 / Time: {day} {hhmm} ({utc_label(offset_s)})",
        "",
        "이 알림은 보호자께서 동의하신 등·하교 및 학원 도착·출발 알림에 따라 발송되었습니다.",
        "You receive this because you consented to arrival and departure notices "
        "for this child.",
    ))
    return Rendered(subject[:200], body)


def _parts(kind: NoticeKind) -> tuple[str, bool]:
    place, _, event = kind.partition("_")
    return place, event == "arrival"


def retry_delay(failures: int) -> float:
    """Seconds until the next try after ``failures`` failed attempts (1..)."""
    if failures < 1:
        return 0.0
    return RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S)) - 1]


def after_failure(failures: int, permanent: bool,
                  max_attempts: int) -> Literal["retrying", "dead"]:
    """A permanent failure ends the notice at once; a transient one ends it
    only when ``max_attempts`` attempts have been made."""
    return "dead" if permanent or failures >= max(1, max_attempts) else "retrying"


def smtp_code_is_permanent(code: int | None) -> bool:
    """RFC 5321: a 5yz reply refuses for good, a 4yz one asks to try later;
    no reply at all (refused connection, timeout, a dropped line) is the
    network's fault, never the notice's, so it is transient."""
    return code is not None and 500 <= code <= 599


def address_problem(channel: str, address: str) -> str:
    """Why ``address`` cannot be sent to on ``channel``, or "" when it can:
    a notice with a bad address fails for good before anything is dialled."""
    if channel == "email":
        local, at, domain = address.rpartition("@")
        if not at or not local or "." not in domain.strip(".") or domain != domain.strip("."):
            return f"bad e-mail address {address!r}"
        if any(c.isspace() or not c.isprintable() for c in address) or len(address) > 254:
            return f"bad e-mail address {address!r}"
    elif channel == "sms":
        digits = sum(c.isdigit() for c in address)
        if not 7 <= digits <= 15:
            return f"bad phone number {address!r}"
    elif channel != "record":
        return f"unknown channel {channel!r}"
    return ""
