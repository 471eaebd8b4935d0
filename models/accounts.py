"""Roles and the rules of signing in, Qt-free and store-free.

The engine is the gate: every command names the roles that may give it here
(``PERMISSIONS``), and the engine refuses, records and answers anything
else. Consoles read the same table to hide what a role cannot do, so the
two can never disagree about who may do what.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

Role = Literal["operator", "supervisor", "trainer", "auditor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

MAX_FAILURES = 5  # wrong passwords in a row before the account locks
LOCKOUT_S = 5 * 60.0
SESSION_S = 12 * 3600.0  # a shift; a session also ends at sign-out
MIN_PASSWORD = 10
USER_NAME = re.compile(r"[a-z][a-z0-9_.-]{1,31}")

# Command schema tag -> roles that may send it. Alert commands add their own
# rules (ownership, supervisor-only actions) in ``models.alerts``.
_WORK: frozenset[Role] = frozenset({"operator", "supervisor"})
PERMISSIONS: dict[str, frozenset[Role]] = {
    "cmd.ack": _WORK, "cmd.take": _WORK, "cmd.assign": frozenset({"supervisor"}),
    "cmd.hold": _WORK, "cmd.resume": _WORK, "cmd.dispatch": _WORK, "cmd.resolve": _WORK,
    "cmd.reopen": frozenset({"supervisor"}), "cmd.step": _WORK, "cmd.note": _WORK,
    "cmd.evidence": _WORK, "cmd.viewed": _WORK,
    "req.alert": frozenset({"operator", "supervisor", "auditor"}),
    "req.alerts": frozenset({"operator", "supervisor", "auditor"}),
    "req.shift": frozenset({"supervisor", "auditor"}),
    "req.cameras": frozenset({"admin"}),
    "cmd.camera": frozenset({"admin"}),
    "cmd.import_cameras": frozenset({"admin"}),
    "cmd.cameras": frozenset({"admin"}),
    # privacy (console.engine.privacy): reveals need a reason, four eyes
    # when there is no open alert; disclosures always a supervisor's.
    "cmd.reveal": _WORK, "cmd.decide_reveal": frozenset({"supervisor"}),
    "req.reveals": _WORK, "req.child": _WORK,
    "cmd.disclose": _WORK, "cmd.decide_disclosure": frozenset({"supervisor"}),
    "req.disclosures": frozenset({"operator", "supervisor", "auditor"}),
    "req.usage": frozenset({"auditor"}),
    "req.child_card": _WORK,  # the child card (console.engine.child_card)
    # zones and enrolment (console.engine.admin_services)
    "cmd.save_zone": frozenset({"admin"}), "cmd.remove_zone": frozenset({"admin"}),
    "cmd.import_zones": frozenset({"admin"}), "req.export_zones": frozenset({"admin"}),
    "req.enrolled": frozenset({"admin"}), "cmd.enrol": frozenset({"admin"}),
    "cmd.unenrol": frozenset({"admin"}), "cmd.import_roster": frozenset({"admin"}),
    "cmd.add_device": frozenset({"admin"}), "cmd.remove_device": frozenset({"admin"}),
    # a training session's controls (console.training.session), on its own socket
    "cmd.replay": frozenset({"trainer"}),
}


# On a training installation only: a trainer reviews how trainees work the
# session's alerts (replayed or scripted), never the live ones.
TRAINING_PERMISSIONS: dict[str, frozenset[Role]] = {
    "req.alert": frozenset({"trainer"}), "req.alerts": frozenset({"trainer"}),
    "req.shift": frozenset({"trainer"}),
}


def may(roles: frozenset[str] | set[str], schema: str, training: bool = False) -> bool:
    """Whether any of ``roles`` may send the command tagged ``schema``."""
    allowed = PERMISSIONS.get(schema, frozenset())
    if training:
        allowed = allowed | TRAINING_PERMISSIONS.get(schema, frozenset())
    return bool(allowed & roles)


def parse_roles(values: list[str] | tuple[str, ...] | str) -> frozenset[Role]:
    """Roles from a list or a comma-separated string; an unknown role is an error."""
    items = values.split(",") if isinstance(values, str) else values
    roles = {v.strip() for v in items if v.strip()}
    unknown = sorted(roles - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    if not roles:
        raise ValueError("an account needs at least one role")
    return frozenset(roles)  # type: ignore[arg-type]


def check_user_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise ValueError(f"user name {name!r}: 2-32 characters, lower-case letters, digits, "
                         "'.', '_' or '-', starting with a letter")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > 256:
        raise ValueError("a password is at most 256 characters")
    return password
