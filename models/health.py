"""Is the system healthy, and if not, why, in words (Qt-free).

A console is never LIVE while something is held back: the engine has
alerts it could not save, a process is down or restarting, or a service
has stopped sending its heartbeat. Each of those turns the console's state
DEGRADED with the reasons an operator reads in the status bar. Sources: the
heartbeats on the bus (the engine's, the gateway's, the relay's, and the
supervisor's report of every process it runs).
"""

from __future__ import annotations

from dataclasses import dataclass

SILENT_S = 5.0  # a service heard before and silent this long is not healthy
# Services whose heartbeat a console expects (the engine's is the bus state
# itself: STALE / DISCONNECTED).
WATCHED = ("gateway", "recorder", "relay", "notifier")


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
    if (recorder or {}).get("usage_chain_broken"):
        out.append("location-usage log chain broken: run childsafe audit verify")
    stores = [STORE_STATES[int(st.get("store_state", 0))] for st in (engine, recorder or {})
              if 0 < int(st.get("store_state", 0)) < len(STORE_STATES)]
    if stores:
        worst = max(stores, key=STORE_STATES.index)
        out.append(f"store {worst}: changes wait and are retried")
    down = set()
    for key, value in sorted(supervisor.items()):
        if key.startswith("up.") and value == 0.0:
            name = key[3:]
            down.add(name)
            restarts = int(supervisor.get(f"restarts.{name}", 0))
            out.append(f"{name} down (restarted {restarts} time{'s' if restarts != 1 else ''})")
    for role in WATCHED:
        if role not in down and role in heard and now - heard[role] > SILENT_S:
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


# ---------------------------------------------------------------- the strip
# The processes every console lists, in the order an operator reads the
# data flow; any other process the supervisor runs (the demo's cameras and
# simulator) follows, then the supervisor itself.
PROCESSES = ("bus", "engine", "recorder", "notifier", "gateway", "relay")
# A training installation (console.training): the session plays in place
# of devices, no video, no notices.
TRAINING_PROCESSES = ("bus", "engine", "recorder", "replayer")
SUPERVISOR = "supervisor"
PROCESS_STATES = ("up", "down", "silent", "unknown")


@dataclass(frozen=True)
class ProcessHealth:
    """One process as the health strip shows it.

    ``state``: "up", "down" (the supervisor says it is not running),
    "silent" (heard before, no heartbeat for too long) or "unknown" (never
    heard, no word from the supervisor). ``age_s`` is the time since its
    last heartbeat (None: it sends none, or none yet); ``detail`` is what is
    wrong with it while it runs, in words ("" when nothing is).
    """

    name: str
    state: str
    restarts: int = 0
    age_s: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class HealthSummary:
    """The store and the figures that say whether anything is held back.

    ``store`` is the worst state its writers (engine, recorder) saw at their
    last try, "unknown" before either reported; ``store_by`` is each
    writer's own view, for words. ``gaps`` counts the engine's sequence
    gaps (recovered from the journal) plus ``lost`` batches it could not
    recover; ``refused`` is every device report the gateway refused.
    """

    store: str = "unknown"
    store_by: tuple[tuple[str, str], ...] = ()
    store_failures: int = 0
    unsaved_alerts: int = 0
    gaps: int = 0
    lost: int = 0
    refused: int = 0
    unregistered_devices: int = 0
    hung_kills: int = 0


def _store_index(stats: dict[str, float]) -> int | None:
    if "store_state" not in stats:
        return None
    return min(max(int(stats["store_state"]), 0), len(STORE_STATES) - 1)


def _details(name: str, engine: dict[str, float], recorder: dict[str, float],
             gateway: dict[str, float], relay: dict[str, float]) -> str:
    """What is wrong with a running process, shortest words first. The
    store's state and unsaved alerts have their own places in the strip."""
    said: list[str] = []
    if name == "engine" and engine.get("journal_behind"):
        said.append("catching up")
    elif name == "recorder" and int(recorder.get("backlog", 0)):
        said.append(f"backlog {int(recorder['backlog']):,}")
    elif name == "gateway":
        if gateway.get("engine_up") == 0.0:
            said.append("hears no engine")
        if gateway.get("journal_ok") == 0.0:
            said.append("journal refusing")
    elif name == "relay" and relay.get("evidence_full"):
        said.append("evidence full")
    return ", ".join(said)


def process_health(engine: dict[str, float], supervisor: dict[str, float],
                   heard: dict[str, float], now: float, *,
                   relay: dict[str, float] | None = None,
                   gateway: dict[str, float] | None = None,
                   recorder: dict[str, float] | None = None,
                   engine_late_s: float = SILENT_S,
                   processes: tuple[str, ...] = PROCESSES) -> list[ProcessHealth]:
    """Each process's state, restarts and heartbeat age, from the same
    inputs as ``reasons`` (``heard`` may also hold "engine").

    Consistent with ``reasons`` by construction: "down" is exactly the
    supervisor's ``up.<name>`` = 0 and "silent" uses ``SILENT_S``, so every
    process shown down or silent is one ``reasons`` names, except the
    engine and the bus, whose silence is the console's own STALE or
    DISCONNECTED (``engine_late_s`` lets a console match its STALE
    threshold). The bus sends no heartbeat: it is up while anyone's
    heartbeats arrive through it.
    """
    relay, gateway, recorder = relay or {}, gateway or {}, recorder or {}
    extra = sorted({k[3:] for k in supervisor if k.startswith("up.")} - set(processes))
    out: list[ProcessHealth] = []
    for name in (*processes, *extra, SUPERVISOR):
        restarts = int(supervisor.get(f"restarts.{name}", 0))
        last = max(heard.values(), default=None) if name == "bus" else heard.get(name)
        age = None if last is None else max(now - last, 0.0)
        late = engine_late_s if name == "engine" else SILENT_S
        if supervisor.get(f"up.{name}") == 0.0:
            state = "down"
        elif age is not None:
            state = "silent" if age > late else "up"
        elif supervisor.get(f"up.{name}") == 1.0 and name not in (*WATCHED, "engine",
                                                                   "replayer"):
            state = "up"  # sends no heartbeat: the supervisor's word is all there is
        else:
            state = "unknown"
        detail = _details(name, engine, recorder, gateway, relay) if state == "up" else ""
        out.append(ProcessHealth(name, state, restarts, age, detail))
    return out


def health_summary(engine: dict[str, float], supervisor: dict[str, float], *,
                   gateway: dict[str, float] | None = None,
                   recorder: dict[str, float] | None = None) -> HealthSummary:
    """The store's state and the figures behind DEGRADED, from the last
    heartbeats (a silent writer's last word stands until it speaks again)."""
    gateway, recorder = gateway or {}, recorder or {}
    views = [(role, i) for role, stats in (("engine", engine), ("recorder", recorder))
             if (i := _store_index(stats)) is not None]
    gaps, lost = int(engine.get("journal_gaps", 0)), int(engine.get("journal_lost", 0))
    return HealthSummary(
        store=STORE_STATES[max(i for _, i in views)] if views else "unknown",
        store_by=tuple((role, STORE_STATES[i]) for role, i in views),
        store_failures=int(engine.get("store_failures", 0))
        + int(recorder.get("store_failures", 0)),
        unsaved_alerts=int(engine.get("unsaved_alerts", 0)),
        gaps=gaps + lost, lost=lost,
        refused=int(sum(v for k, v in gateway.items() if k.startswith("rejected."))),
        unregistered_devices=int(gateway.get("unregistered_devices", 0)),
        hung_kills=int(supervisor.get("hung_kills", 0)),
    )
