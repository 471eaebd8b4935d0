"""Is the system healthy, and if not, why, in words (Qt-free).

A console is never LIVE while something is held back: the engine has
alerts it could not save, a process is down or restarting, or a service
has stopped sending its heartbeat. Each of those turns the console's state
DEGRADED with the reasons an operator reads in the status bar. Sources: the
heartbeats on the bus (the engine's, the gateway's, the relay's, and the
supervisor's report of every process it runs).
"""

from __future__ import annotations

SILENT_S = 5.0  # a service heard before and silent this long is not healthy
# Services whose heartbeat a console expects (the engine's is the bus state
# itself: STALE / DISCONNECTED).
WATCHED = ("gateway", "recorder", "relay")


# The store as its writers saw it at their last try (heartbeat stat
# ``store_state``): what an operator needs to tell apart.
STORE_STATES = ("writable", "locked", "full", "failing")


def store_state(error: str) -> int:
    """The ``STORE_STATES`` index for a store error's text ("" for none)."""
    text = error.lower()
    if not text:
        return 0
    if "locked" in text or "lock timeout" in text or "busy" in text:
        return 1
    if "full" in text or "no space" in text or "quota" in text:
        return 2
    return 3


def supervisor_stats(status: dict[str, tuple[bool, int]], hung_kills: int) -> dict[str, float]:
    """What the supervisor puts in its heartbeat: ``up.<name>`` (1/0) and
    ``restarts.<name>`` for each process, and the hung processes it killed."""
    stats: dict[str, float] = {"hung_kills": float(hung_kills)}
    for name, (up, restarts) in status.items():
        stats[f"up.{name}"] = 1.0 if up else 0.0
        stats[f"restarts.{name}"] = float(restarts)
    return stats


def reasons(engine: dict[str, float], supervisor: dict[str, float],
            heard: dict[str, float], now: float, *,
            relay: dict[str, float] | None = None, gateway: dict[str, float] | None = None,
            recorder: dict[str, float] | None = None) -> list[str]:
    """Why the system is degraded; empty when it is healthy.

    ``heard`` maps a role to when (monotonic) its last heartbeat came;
    ``relay``, ``gateway`` and ``recorder`` are those services' last
    heartbeat stats, if any (a full evidence folder means an SOS gets no
    clip; a gateway that cannot journal or hear the engine tells devices to
    resend; a recorder with a backlog is not storing: operators must know).
    """
    out: list[str] = []
    unsaved = int(engine.get("unsaved_alerts", 0))
    if unsaved:
        out.append(f"{unsaved} alert{'s' if unsaved != 1 else ''} not yet saved")
    if engine.get("journal_behind"):
        out.append("engine catching up with devices' reports")
    gateway = gateway or {}
    if gateway.get("journal_ok") == 0.0:
        out.append("gateway cannot store reports: devices are told to send again")
    if gateway.get("engine_up") == 0.0:
        out.append("gateway hears no engine: SOS not acknowledged to devices")
    backlog = int((recorder or {}).get("backlog", 0))
    if backlog:
        out.append(f"recorder: {backlog} event{'s' if backlog != 1 else ''} waiting for the "
                   "store")
    for key, value in sorted(supervisor.items()):
        if key.startswith("up.") and value == 0.0:
            name = key[3:]
            restarts = int(supervisor.get(f"restarts.{name}", 0))
            out.append(f"{name} down (restarted {restarts} time{'s' if restarts != 1 else ''})")
    for role in WATCHED:
        if role in heard and now - heard[role] > SILENT_S:
            out.append(f"{role} silent for {now - heard[role]:.0f} s")
    if "supervisor" in heard and now - heard["supervisor"] > SILENT_S:
        out.append(f"supervisor silent for {now - heard['supervisor']:.0f} s")
    if relay and relay.get("evidence_full"):
        out.append(evidence_full_reason(relay))
    return out


def evidence_full_reason(relay: dict[str, float]) -> str:
    """Words such as "evidence storage full (2.0 of 2.0 GB): new clips
    refused", in the budget's own unit (GB, MB or kB) so that a small
    budget does not read 0.0 of 0.0."""
    used = float(relay.get("evidence_bytes", 0.0))
    budget = float(relay.get("evidence_budget_bytes", 0.0))
    scale, unit = next(((s, u) for s, u in ((2**30, "GB"), (2**20, "MB"))
                        if budget >= s), (2**10, "kB"))
    return (f"evidence storage full ({used / scale:.1f} of {budget / scale:.1f} {unit}): "
            "new clips refused")
