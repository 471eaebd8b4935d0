"""The rules of revealing a child and disclosing an alert, Qt- and store-free.

Children are pseudonymous tokens everywhere; a name, the guardians'
contacts or a history are shown only for a reason the engine accepted. Two
reasons exist (DESIGN.md, Privacy):

- an open alert about that child which the requester is working: granted at
  once, because an operator handling an SOS must not wait for anyone, and
  for ``reveal_s`` only, because the need ends with the incident;
- anything else waits for a supervisor, who is never the requester (four
  eyes): one person alone can never look up a child out of curiosity.

"Working it" means *owning* it (``AlertView.owner``). A supervisor gets no
shortcut for being a supervisor: a supervisor who wants a child's identity
for an alert takes the alert first (``cmd.take``; they may take anyone's),
which leaves a line in its history, or asks another supervisor. Anything
weaker (e.g. any worker while an alert is open) would let every operator on
shift reveal every child with an open low-battery alert.

A disclosure to police or fire (Location Information Act §29) is bound to an
unresolved alert of an emergency kind, always needs a supervisor who did not
ask for it, and an approval records how the guardian was told (§19(3)).

Everything here raises ``models.alerts.Refused`` with the code the engine
answers (``bad_value``, ``illegal``, ``four_eyes``), so the engine, a future
console dialog and the tests apply the same words.
"""

from __future__ import annotations

import math
from typing import Literal

from models.alerts import SUPERVISOR, Refused
from models.messages import MAX_TRAIL_S, AlertKind, AlertView

# Alert kinds a disclosure may be bound to: the emergency sector's services
# (6: SOS; 7: safety-zone exit, lost signal, unusual movement) and the watch's
# alarms that mean the same danger: a fall (priority 1, like an SOS) and a
# watch taken off (a child may have been made to take it off). A low battery
# is a device matter, never a reason to hand a child's data to the police.
EMERGENCY_KINDS: frozenset[AlertKind] = frozenset({"sos", "fall", "removed", "zone_exit"})

MIN_REASON, MAX_REASON = 5, 200  # db.tables.Reveal.reason / Disclosure.reason
MIN_NOTICE, MAX_NOTICE = 5, 300  # db.tables.Disclosure.guardian_notice
MAX_TOKEN = 32  # a child token as the usage log stores it (``subject``)

RevealState = Literal["pending", "granted", "refused", "expired"]
Grant = tuple[Literal["granted", "pending"], float]


def _text(value: str, what: str, low: int, high: int) -> str:
    """``value`` stripped, or Refused("bad_value") saying what a valid one is."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise Refused("bad_value", f"give {what}: it is written to the usage log")
    if not low <= len(text) <= high:
        raise Refused("bad_value", f"{what} must be {low} to {high} characters, "
                                   f"not {len(text)}")
    if not text.isprintable():
        raise Refused("bad_value", f"{what} must be one line of text (no control characters)")
    return text


def check_reason(reason: str) -> str:
    """The reason for a reveal or a disclosure, as the usage log keeps it
    (its ``purpose``): a sentence an auditor can judge, not a blank."""
    return _text(reason, "a reason", MIN_REASON, MAX_REASON)


def check_notice(notice: str) -> str:
    """How the guardian was told of a disclosure (§19(3)): required to approve one."""
    return _text(notice, "how the guardian was told (guardian notice)", MIN_NOTICE, MAX_NOTICE)


def check_child_token(token: str) -> str:
    """A child token as sent: short and printable, before it reaches a query."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN \
            or not token.isprintable():
        raise Refused("bad_value", "child must be a child's token (e.g. C-9D396A5)")
    return token


def reveal_grant(requester: str, roles: frozenset[str], child: str, alert: AlertView | None,
                 now: float, reveal_s: float) -> Grant:
    """Whether a reveal of ``child`` is granted at once, and until when.

    ``("granted", now + reveal_s)`` only when ``alert`` is about that child,
    is not resolved, and ``requester`` owns it (whatever their roles: see the
    module docstring); ``("pending", 0.0)`` otherwise, for a supervisor to
    decide. An alert about another child is refused outright, so that no
    reveal row or usage record ever names an alert that was not its reason.
    """
    if alert is not None and alert.child_token != child:
        raise Refused("bad_value", f"alert {alert.id} is not about child {child}: name "
                                   "that child's alert, or none")
    if not math.isfinite(reveal_s) or reveal_s <= 0:
        raise ValueError(f"reveal_s must be a positive number of seconds, not {reveal_s!r}")
    if (alert is not None and alert.state != "resolved" and alert.owner
            and alert.owner == requester):
        return "granted", now + reveal_s
    return "pending", 0.0


def may_decide(decider: str, requester: str) -> bool:
    """Four eyes: nobody decides their own request, whatever their roles."""
    return bool(decider) and decider != requester


def check_decider(decider: str, roles: frozenset[str], requester: str, state: str,
                  what: str) -> None:
    """Refused unless ``decider`` is a supervisor other than ``requester``
    and the request still waits (``what`` names it in the message). The
    engine's permission table already checks the role; this says it again
    so the rule holds wherever it is applied."""
    if SUPERVISOR not in roles:
        raise Refused("forbidden", f"only a supervisor may decide {what}")
    if not may_decide(decider, requester):
        raise Refused("four_eyes", f"{what} is your own: another supervisor must decide it")
    if state != "pending":
        raise Refused("illegal", f"{what} was already decided ({state})")


PENDING_S = 3600.0  # a reveal request nobody decided within the hour lapses


def reveal_state(state: str, expires_at: float, now: float,
                 requested_at: float | None = None) -> RevealState:
    """A stored reveal's state as people see it: a grant past its time is
    "expired" (the store keeps "granted" and the time, never rewritten), and
    so is a request left pending for ``PENDING_S`` (the need it was made
    for has passed; an approval then would grant a stale reason)."""
    if state == "granted":
        return "expired" if expires_at <= now else "granted"
    if state == "pending" and requested_at is not None and now - requested_at >= PENDING_S:
        return "expired"
    if state in ("pending", "refused"):
        return state  # type: ignore[return-value]
    raise ValueError(f"unknown reveal state {state!r}")


def live_grant(state: str, expires_at: float, now: float) -> bool:
    """Whether a stored reveal lets its user see the child now."""
    return state == "granted" and expires_at > now


def check_disclosable(alert: AlertView) -> None:
    """Refused("illegal") unless the alert is an unresolved emergency: a
    disclosure is bound to a live emergency case, never to a routine one or
    to a case already closed (checked again when a supervisor approves)."""
    if alert.kind not in EMERGENCY_KINDS:
        kinds = ", ".join(sorted(EMERGENCY_KINDS))
        raise Refused("illegal", f"alert {alert.id} is a {alert.kind.replace('_', ' ')} "
                                 f"alert: disclosure is only for emergencies ({kinds})")
    if alert.state == "resolved":
        raise Refused("illegal", f"alert {alert.id} is resolved: a closed case is not "
                                 "disclosed (reopen it if the emergency goes on)")


def trail_window(trail_s: float) -> float:
    """Seconds of history a reveal shows: none for 0 or less, at most
    ``MAX_TRAIL_S``; Refused for a value that is not a number."""
    if isinstance(trail_s, bool) or not isinstance(trail_s, (int, float)) \
            or math.isnan(trail_s):
        raise Refused("bad_value", "trail_s must be a number of seconds")
    return float(min(max(trail_s, 0.0), MAX_TRAIL_S))
