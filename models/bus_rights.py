"""Who may say what on the bus: the rights each key's role carries.

The bus proxy applies these to every message a publisher sends (its CURVE
key's name is the ZAP User-Id): a topic outside the role's prefixes, or a
body whose ``origin`` names another role, is dropped and counted, never
forwarded, so no subscriber (nor the recorder's event log) ever takes a
forgery as fact. Consoles only subscribe and send commands to the engine.
"""

from __future__ import annotations

from typing import Literal

KeyRole = Literal["bus", "engine", "gateway", "recorder", "relay", "notifier", "supervisor",
                  "replayer", "console"]

# One pair per backend process; consoles are "console" or "console-<name>".
SERVICE_KEYS: tuple[KeyRole, ...] = ("bus", "engine", "gateway", "recorder", "relay",
                                     "notifier", "supervisor", "replayer")

PUBLISHES: dict[KeyRole, tuple[str, ...]] = {
    "engine": ("alert.", "pos.", "zone.", "roster.", "cam.registry", "sys.heartbeat"),
    "gateway": ("fix.", "gw.", "sys.heartbeat"),
    "relay": ("cam.status", "sys.heartbeat"),
    "recorder": ("sys.heartbeat",),
    "notifier": ("notice.", "sys.heartbeat"),
    "supervisor": ("sys.heartbeat",),
    # A training session (``console.training``) plays a period or a scenario
    # onto its training bus: device fixes, camera states and its clock.
    "replayer": ("fix.batch", "cam.status", "replay.", "sys.heartbeat"),
    "bus": (),
    "console": (),
}

# Who may connect to the engine's command socket: the people's tools.
COMMANDS_FROM: frozenset[KeyRole] = frozenset({"console"})


def role_of_key(name: str) -> KeyRole:
    """``console-ws2`` -> ``console``; a name with no role is a ValueError."""
    if name in SERVICE_KEYS:
        return name  # type: ignore[return-value]
    if name == "console" or name.startswith("console-"):
        return "console"
    raise ValueError(f"key {name!r} has no role: name it after a service "
                     f"({', '.join(SERVICE_KEYS)}) or console-<workstation>")


def may_publish(role: KeyRole, topic: str) -> bool:
    return topic.startswith(PUBLISHES[role]) if PUBLISHES[role] else False
