"""One function per fault of issue 13, and the suite that runs them.

Every fault runs the same way (``measure``): an SOS storm (half watches,
half phones, each press resent until acknowledged) and a fix load (phones)
start; after a second of normal traffic the fault is injected for the
window; devices keep resending until everything is acknowledged or the
window plus a settle time is over; then the store is read once the system
has settled and a headless console's timeline is consulted. A fault
function only injects (and notes what it saw); the counting is shared, so
every fault is judged by the same rules.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from console.chaos.devices import FixLoad, SosStorm, osmand_get
from console.chaos.harness import (
    CHAOS_USER,
    REPO_ROOT,
    DeviceInfo,
    Installation,
    SupervisorMode,
    can_mount_tmpfs,
    wait_until,
)
from console.chaos.observe import StoreCounts, fix_key, store_counts
from console.chaos.report import Figures, table

log = logging.getLogger(__name__)

STABLE_S = 3.0  # counts that have not changed this long (console LIVE) have settled
TMPFS_MB = 48


@dataclass
class Plan:
    """How hard to push. The defaults are the command line's; ``ci()`` is
    the short version the tests run."""

    seconds: float = 10.0  # the fault window
    sos_children: int = 24  # children pressing SOS (one episode each)
    presses: int = 3  # presses per child during the storm
    fix_rate: float = 60.0  # fixes/s from the other phones
    lead_s: float = 1.0  # normal traffic before the fault
    settle_s: float = 15.0  # after the window: resends, then the counts settle
    children: int = 100  # children in the private installation

    @classmethod
    def ci(cls) -> Plan:
        return cls(seconds=3.0, sos_children=16, presses=2, fix_rate=50.0, settle_s=12.0,
                   children=60)


@dataclass
class Run:
    """One fault being run: what the fault function reads and reports."""

    inst: Installation
    plan: Plan
    fig: Figures
    window_s: float
    t_inject: float = 0.0
    t_clear: float = 0.0  # when the fault ended (the last kill, SIGCONT, unlock...)
    failures: list[str] = field(default_factory=list)  # beyond the shared rules

    def note(self, text: str) -> None:
        self.fig.notes.append(text)

    def sleep_until(self, at: float) -> None:
        time.sleep(max(0.0, at - time.monotonic()))


Inject = Callable[[Run], None]


# ------------------------------------------------------------ the shared run


def pick_devices(inst: Installation, plan: Plan) -> tuple[list[DeviceInfo], list[DeviceInfo]]:
    """(SOS devices, fix-load phones): one device per child, half the SOS
    on watches and half on phones, and the load on the remaining phones but
    the last (``spare_phone``), so a storm child's SOS is never behind its
    own routine fixes."""
    seen: set[str] = set()
    watches, phones = [], []
    for d in inst.devices:
        if d.child in seen:
            continue
        seen.add(d.child)
        (watches if d.kind == "watch" else phones if d.kind == "phone" else []).append(d)
    n_phone = min(plan.sos_children // 2, max(0, len(phones) - 2))
    n_watch = min(plan.sos_children - n_phone, len(watches))
    return watches[:n_watch] + phones[:n_phone], phones[n_phone:-1]


def spare_phone(inst: Installation) -> DeviceInfo:
    """A phone neither in the storm nor in the load, for a fault's own input."""
    return [d for d in inst.devices if d.kind == "phone"][-1]


def measure(inst: Installation, plan: Plan, name: str, inject: Inject,
            window_s: float | None = None) -> Figures:
    """Run ``inject`` under an SOS storm and a fix load; count what survived."""
    fig = Figures(fault=name)
    run = Run(inst, plan, fig, window_s if window_s is not None else plan.seconds)
    sos_devices, load_devices = pick_devices(inst, plan)
    cfg = inst.config
    storm = SosStorm(sos_devices, plan.presses, plan.lead_s + run.window_s, cfg.watch_port,
                     cfg.osmand_port)
    load = FixLoad(load_devices, plan.fix_rate, plan.lead_s + run.window_s, cfg.osmand_port)
    t0 = time.monotonic()
    deadline = t0 + plan.lead_s + run.window_s + plan.settle_s
    storm.start(deadline)
    load.start(deadline)
    time.sleep(plan.lead_s)
    run.t_inject = time.monotonic()
    try:
        inject(run)
    finally:
        if not run.t_clear:
            run.t_clear = time.monotonic()
        storm.join()
        load.join()
    counts = settle(inst, storm, load, deadline + plan.settle_s)
    fill(fig, run, storm, load, counts)
    return fig


def settle(inst: Installation, storm: SosStorm, load: FixLoad, until: float) -> StoreCounts:
    """The store's counts once nothing acknowledged is missing, or once they
    stopped changing with the console LIVE, or at ``until``."""
    acked_presses = Counter(p.device.child for p in storm.presses if p.acked)
    acked_fixes = {fix_key(f.device_id, f.t) for f in load.acked()}
    devices = {d.device_id for d in load.devices}
    last: tuple[int, ...] | None = None
    stable_since = time.monotonic()
    counts = StoreCounts()
    while True:
        try:
            counts = store_counts(inst.config.db_url, devices)
        except Exception as exc:  # locked or full right now: the store decides when
            log.debug("store not readable yet: %s", exc)
        complete = (storm.children <= set(counts.sos_alerts)
                    and all(_folded(counts, c) >= n for c, n in acked_presses.items())
                    and acked_fixes <= counts.fixes
                    and counts.alert_ids <= counts.opened_events)
        now = time.monotonic()
        shape = (sum(map(len, counts.sos_alerts.values())), sum(counts.trigger_counts.values()),
                 len(counts.fixes), len(counts.opened_events))
        if shape != last:
            last, stable_since = shape, now
        live = inst.health is not None and inst.health.is_live()
        if (complete and live) or (live and now - stable_since >= STABLE_S) or now >= until:
            return counts
        time.sleep(0.5)


def _folded(counts: StoreCounts, child: str) -> int:
    """Presses the store counts on ``child``'s SOS alerts."""
    return sum(counts.trigger_counts.get(a, 0) for a in counts.sos_alerts.get(child, []))


def fill(fig: Figures, run: Run, storm: SosStorm, load: FixLoad, counts: StoreCounts) -> None:
    """The shared figures from the devices' ledgers, the store and the console."""
    refusals: Counter[str] = Counter()
    for p in storm.presses:
        refusals.update(p.refusals)
    fig.sos_presses = sum(1 for p in storm.presses if p.attempts)
    fig.sos_acked = sum(1 for p in storm.presses if p.acked)
    fig.sos_sends = sum(p.attempts for p in storm.presses)
    fig.sos_refusals = dict(refusals)
    children = {p.device.child for p in storm.presses if p.attempts}
    fig.episodes = len(children)
    per_child = {c: len(counts.sos_alerts.get(c, [])) for c in children}
    fig.episodes_one_alert = sum(1 for n in per_child.values() if n == 1)
    fig.episodes_no_alert = sum(1 for n in per_child.values() if n == 0)
    fig.episodes_many_alerts = sum(1 for n in per_child.values() if n > 1)
    fig.acked_sos_without_alert = sum(1 for p in storm.presses
                                      if p.acked and not per_child.get(p.device.child))
    fig.sos_alerts = sum(per_child.values())
    for child in children:  # presses folded into the child's alert vs pressed
        folded = _folded(counts, child)
        acked = sum(1 for p in storm.presses if p.acked and p.device.child == child)
        sent = sum(1 for p in storm.presses if p.attempts and p.device.child == child)
        if folded:
            fig.presses_not_counted += max(0, acked - folded)
            fig.presses_counted_twice += max(0, folded - sent)
    acked = load.acked()
    fig.fixes_sent = len(load.fixes)
    fig.fixes_acked = len(acked)
    fig.fixes_stored = sum(1 for f in acked if fix_key(f.device_id, f.t) in counts.fixes)
    fig.fixes_refused = sum(1 for f in load.fixes if f.acked and f.answer != "200")
    fig.fix_sends = sum(f.attempts for f in load.fixes)
    fig.alerts_total = len(counts.alert_ids)
    fig.alerts_with_event = len(counts.alert_ids & counts.opened_events)
    health = run.inst.health
    if health is not None:
        fig.console_sos_alerts = health.sos_rows(children)
        first = health.first_not_live(run.t_inject)
        if first is not None:
            fig.to_unhealthy_s = first.at - run.t_inject
            fig.unhealthy_state = first.state
            fig.unhealthy_reason = "; ".join(first.reasons)
            fig.worst_state = health.worst_since(run.t_inject)
        back = health.live_again(run.t_clear)
        fig.to_live_s = None if back is None else max(0.0, back - run.t_clear)
    fig.failures = list(run.failures)


def _storm_text(plan: Plan) -> str:
    return (f"during an SOS storm ({plan.sos_children} children × {plan.presses} presses) "
            f"and {plan.fix_rate:.0f} fixes/s")


# ------------------------------------------------------------------- faults


def _kill_repeatedly(run: Run, service: str, kills: int) -> None:
    """kill -9 ``service`` ``kills`` times spread over the window, each time
    once a new incarnation runs (a kill of a dead process measures nothing)."""
    every = run.window_s / kills
    pids: list[int] = []
    start = time.monotonic()
    for k in range(kills):
        run.sleep_until(start + k * every)
        pid = run.inst.wait_service(service, other_than=pids[-1] if pids else None,
                                    timeout_s=max(every, 5.0))
        if pid is None:
            run.note(f"{service} not running before kill {k + 1}: the supervisor did not "
                     f"bring it back")
            break
        os.kill(pid, signal.SIGKILL)
        pids.append(pid)
        run.t_clear = time.monotonic()
    run.sleep_until(start + run.window_s)
    back = run.inst.wait_service(service, other_than=pids[-1] if pids else None,
                                 timeout_s=10.0)
    run.fig.injected = (f"kill -9 {service} {len(pids)}× (every {every:.1f} s) "
                        f"{_storm_text(run.plan)}")
    if back is None:
        run.failures.append(f"{service} not running 10 s after the last kill")


def engine_kill(inst: Installation, plan: Plan) -> Figures:
    kills = max(2, min(6, int(plan.seconds // 2)))
    return measure(inst, plan, "engine-kill", lambda r: _kill_repeatedly(r, "engine", kills))


def bus_kill(inst: Installation, plan: Plan) -> Figures:
    return measure(inst, plan, "bus-kill", lambda r: _kill_repeatedly(r, "bus", 2))


def recorder_kill(inst: Installation, plan: Plan) -> Figures:
    return measure(inst, plan, "recorder-kill", lambda r: _kill_repeatedly(r, "recorder", 2))


def _freeze(run: Run, service: str) -> None:
    """SIGSTOP for the window, then SIGCONT (unless the supervisor replaced it)."""
    pid = run.inst.signal(service, signal.SIGSTOP)
    if pid is None:
        run.failures.append(f"{service} not running: nothing to freeze")
        return
    run.sleep_until(run.t_inject + run.window_s)
    now = run.inst.service_pid(service)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
    run.t_clear = time.monotonic()
    run.fig.injected = (f"SIGSTOP {service} for {run.window_s:.0f} s, then SIGCONT "
                        f"{_storm_text(run.plan)}")
    if now != pid:
        run.note(f"the supervisor replaced the frozen {service} within the window")
    else:
        run.note(f"the supervisor left the frozen {service} alone for {run.window_s:.0f} s "
                 "(its hung limit is longer)")


def bus_frozen(inst: Installation, plan: Plan) -> Figures:
    return measure(inst, plan, "bus-frozen", lambda r: _freeze(r, "bus"))


def _hang(run: Run, service: str) -> None:
    """SIGSTOP and leave it stopped: the supervisor must notice (by its
    missing heartbeats) and replace it."""
    pid = run.inst.signal(service, signal.SIGSTOP)
    if pid is None:
        run.failures.append(f"{service} not running: nothing to hang")
        return
    new = run.inst.wait_service(service, other_than=pid, timeout_s=run.window_s)
    run.t_clear = time.monotonic()
    if new is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        run.failures.append(f"the supervisor did not replace the hung {service} within "
                            f"{run.window_s:.0f} s (SIGCONT sent)")
    else:
        run.note(f"hung {service} replaced after {run.t_clear - run.t_inject:.1f} s")
    run.fig.injected = f"SIGSTOP {service} (left stopped) {_storm_text(run.plan)}"


def service_hung(inst: Installation, plan: Plan, service: str = "engine") -> Figures:
    from console.supervisor import HUNG_S

    window = (inst.hung_s if inst.hung_s is not None and inst.supervisor == "inline"
              else HUNG_S) + 10.0
    return measure(inst, plan, f"{service}-hung", lambda r: _hang(r, service), window)


def _lock_store(run: Run) -> None:
    """A separate connection holds ``BEGIN EXCLUSIVE`` on the store."""
    db = Path(run.inst.config.db_url.removeprefix("sqlite:///"))
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        run.t_inject = time.monotonic()
        run.sleep_until(run.t_inject + run.window_s)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    run.t_clear = time.monotonic()
    run.fig.injected = (f"another connection held BEGIN EXCLUSIVE on the store for "
                        f"{run.window_s:.0f} s {_storm_text(run.plan)}")


def store_locked(inst: Installation, plan: Plan) -> Figures:
    return measure(inst, plan, "store-locked", _lock_store)


def _fill_disk(run: Run) -> None:
    """Fill the tmpfs data dir to the last byte, hold, then free it."""
    filler = run.inst.data_dir / "chaos-filler.bin"
    written = 0
    with open(filler, "wb", buffering=0) as f:
        for block in (1 << 20, 1 << 12, 1):
            chunk = b"\0" * block
            try:
                while True:
                    written += f.write(chunk)
            except OSError:
                pass
    run.t_inject = time.monotonic()
    run.sleep_until(run.t_inject + run.window_s)
    filler.unlink()
    run.t_clear = time.monotonic()
    run.fig.injected = (f"data dir (a {TMPFS_MB} MiB tmpfs) filled to the last byte "
                        f"({written / 2**20:.1f} MiB) for {run.window_s:.0f} s "
                        f"{_storm_text(run.plan)}")


def disk_full(inst: Installation, plan: Plan) -> Figures:
    return measure(inst, plan, "disk-full", _fill_disk)


def _poison(run: Run) -> None:
    """As a peer on the bus would: fix batches with latitude 95 and with a
    3-byte column; and as a signed-in console would: an alert command for
    alert id 2**63. Each about once a second through the window."""
    import zmq

    from console.bus import Publisher
    from console.engine_client import EngineClient, EngineUnavailable
    from models.messages import AckAlert, CommandReply, FixBatch, pack

    inst = run.inst
    device = spare_phone(inst)

    def batch(lat: float, raw_lat: bytes | None = None) -> FixBatch:
        now = time.time()
        return FixBatch(device_ids=[device.device_id], t=pack("t", [now]),
                        lat=raw_lat if raw_lat is not None else pack("lat", [lat]),
                        lon=pack("lon", [device.lon]), speed=pack("speed", [0.0]),
                        bearing=pack("bearing", [0.0]), accuracy=pack("accuracy", [8.0]),
                        battery=pack("battery", [80]), flags=pack("flags", [0]))

    engine_pid = inst.service_pid("engine")
    answers: Counter[str] = Counter()
    sent = 0
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, inst.config.bus_pub, origin="chaos-peer")
    client = EngineClient(inst.config.engine_rpc, timeout_s=2.0, console="chaos")
    try:
        time.sleep(0.3)  # the bus forwards once the connection is up
        end = run.t_inject + run.window_s
        while time.monotonic() < end:
            pub.send(batch(95.0))
            pub.send(batch(37.5, raw_lat=b"\x00\x01\x02"))
            try:
                if not client.token:
                    client.sign_in(CHAOS_USER, inst.password)
                reply = client.request(AckAlert(token=client.token, alert_id=2**63,
                                                alert_version=1))
                answers["refused " + reply.code if isinstance(reply, CommandReply)
                        and not reply.ok else type(reply).__name__] += 1
            except EngineUnavailable:
                answers["no answer"] += 1
            except Exception as exc:  # a refused sign-in, an engine gone mid-call
                answers[type(exc).__name__] += 1
            sent += 1
            time.sleep(1.0)
    finally:
        client.close()
        pub.close()
        ctx.term()
    run.t_clear = time.monotonic()
    run.fig.injected = (f"{sent}× each: fix.batch with latitude 95, fix.batch with a 3-byte "
                        f"lat column (on the bus, as a peer), cmd.ack for alert 2**63 (signed "
                        f"in) {_storm_text(run.plan)}")
    run.note("engine answered the 2**63 command: "
             + ", ".join(f"{k} ×{v}" for k, v in sorted(answers.items())))
    if inst.service_pid("engine") != engine_pid:
        run.failures.append("the engine died of poison (its pid changed)")


def poison(inst: Installation, plan: Plan) -> Figures:
    return measure(inst, plan, "poison", _poison)


def _engine_time_of(inst: Installation, child: str) -> float | None:
    """The device time of ``child``'s position in the engine's live state
    (its snapshot, read as plain MessagePack so that a field the product
    added since this process started does not stop the measurement)."""
    import msgspec
    import zmq

    from console.bus import socket as zsocket
    from models.messages import SnapshotRequest, encode, unpack

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    req = zsocket(ctx, zmq.REQ)
    try:
        req.connect(inst.config.engine_rpc)
        req.send(encode(SnapshotRequest()))
        if not req.poll(5000):
            return None
        snap = msgspec.msgpack.decode(req.recv())
    finally:
        req.close(0)
        ctx.term()
    try:
        slot = snap["children"].index(child)
        slots = unpack("slots", snap["positions"]["slots"]).tolist()
        return float(unpack("t", snap["positions"]["t"])[slots.index(slot)])
    except (KeyError, TypeError, ValueError):  # not a snapshot, or no position yet
        return None


def _future_fix(run: Run) -> None:
    """One phone reports a fix dated 24 h ahead, then normal fixes: its child
    must keep moving on the map (and its zone exits keep working)."""
    inst = run.inst
    d = spare_phone(inst)
    ahead = round(time.time() + 24 * 3600, 3)
    answer = osmand_get(inst.config.osmand_port, {
        "id": d.device_id, "lat": f"{d.lat:.6f}", "lon": f"{d.lon:.6f}",
        "timestamp": f"{ahead:.3f}", "accuracy": 8})
    run.note(f"the fix 24 h ahead was answered: {answer.what}")
    last = 0.0
    end = run.t_inject + run.window_s
    while time.monotonic() < end:
        t = round(time.time(), 3)
        if osmand_get(inst.config.osmand_port, {
                "id": d.device_id, "lat": f"{d.lat + 1e-4:.6f}", "lon": f"{d.lon:.6f}",
                "timestamp": f"{t:.3f}", "accuracy": 8}).acked:
            last = t
        time.sleep(0.5)
    run.t_clear = time.monotonic()
    seen: list[float | None] = []
    wait_until(lambda: seen.append(_engine_time_of(inst, d.child)) or
               (seen[-1] is not None and abs(seen[-1] - last) < 1.0), 5.0, 0.5)
    where = seen[-1] if seen else None
    if last and where is not None and abs(where - last) < 1.0:
        run.note("afterwards the child moved with its normal fixes")
    else:
        run.failures.append(f"the child froze on the map: the engine's time for it is "
                            f"{where} (last normal fix {last:.0f}, the future one {ahead:.0f})")
    run.fig.injected = (f"one OsmAnd fix dated 24 h ahead, then a fix every 0.5 s from the "
                        f"same phone for {run.window_s:.0f} s {_storm_text(run.plan)}")


def future_fix(inst: Installation, plan: Plan) -> Figures:
    return measure(inst, plan, "future-fix", _future_fix)


def _restart_sec() -> float:
    """``RestartSec`` of the shipped systemd unit (what ``Restart=always`` waits)."""
    unit = REPO_ROOT / "resources" / "systemd" / "childsafe.service"
    with contextlib.suppress(OSError):
        m = re.search(r"^RestartSec=(\d+(?:\.\d+)?)", unit.read_text(), re.M)
        if m:
            return float(m.group(1))
    return 0.1  # systemd's default


def _kill_supervisor(run: Run) -> None:
    """kill -9 ``serve``; see what its services do alone; then do what
    systemd does (control-group kill, ``RestartSec``, start again)."""
    inst = run.inst
    pid = inst.kill_serve()
    if pid is None:
        run.failures.append("serve was not running")
        return
    killed_at = time.monotonic()
    alone = min(run.window_s, 10.0)
    wait_until(lambda: not inst.service_pids(), alone)
    left = inst.service_pids()
    run.note(f"{5 - len(left)} of 5 services stopped by themselves within {alone:.0f} s of "
             f"the supervisor's death; nothing restarted the supervisor")
    for name, spid in left.items():
        run.note(f"{name} (pid {spid}) still running: the control-group kill takes it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(spid, signal.SIGTERM)
    if not wait_until(lambda: not inst.service_pids(), 5.0):
        for spid in inst.service_pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(spid, signal.SIGKILL)
        wait_until(lambda: not inst.service_pids(), 5.0)
    time.sleep(_restart_sec())
    inst.restart_serve()
    run.t_clear = time.monotonic()
    run.note(f"serve started again {run.t_clear - killed_at:.1f} s after the kill, as "
             f"systemd's Restart=always would (RestartSec={_restart_sec():g})")
    run.sleep_until(run.t_inject + run.window_s)
    run.fig.injected = f"kill -9 the supervisor (childsafe serve) {_storm_text(run.plan)}"


def supervisor_kill(inst: Installation, plan: Plan) -> Figures:
    return measure(inst, plan, "supervisor-kill", _kill_supervisor)


# -------------------------------------------------------------------- suite


@dataclass(frozen=True)
class FaultSpec:
    run: Callable[[Installation, Plan], Figures]
    supervisor: SupervisorMode = "serve"
    tmpfs: bool = False


FAULTS: dict[str, FaultSpec] = {
    "engine-kill": FaultSpec(engine_kill),
    "bus-kill": FaultSpec(bus_kill),
    "bus-frozen": FaultSpec(bus_frozen),
    "store-locked": FaultSpec(store_locked),
    "disk-full": FaultSpec(disk_full, tmpfs=True),
    "recorder-kill": FaultSpec(recorder_kill),
    "poison": FaultSpec(poison),
    "future-fix": FaultSpec(future_fix),
    "engine-hung": FaultSpec(service_hung),
    "supervisor-kill": FaultSpec(supervisor_kill),
}


def run_fault(name: str, plan: Plan, parent: Path | None = None, keep: bool = False,
              **install: object) -> Figures:
    """One fault on a fresh installation; never raises for the fault's sake
    (a harness failure comes back as ``Figures.error``). ``install``
    overrides the installation's settings (a test runs the supervisor
    inline with a short hung-process limit)."""
    spec = FAULTS[name]
    if spec.tmpfs and not can_mount_tmpfs():
        return Figures(fault=name, simulated=False,
                       injected="not simulated: a disk-full needs root to mount a small "
                                "tmpfs as the data dir")
    options: dict[str, object] = {"supervisor": spec.supervisor,
                                  "tmpfs_mb": TMPFS_MB if spec.tmpfs else None, **install}
    inst = Installation(children=plan.children, parent=parent, keep=keep,
                        **options)  # type: ignore[arg-type]
    try:
        with inst:
            return spec.run(inst, plan)
    except Exception as exc:
        log.exception("chaos: %s could not be measured", name)
        return Figures(fault=name, error=f"{type(exc).__name__}: {exc}")


def run_suite(seconds: float, names: list[str], parent: Path | None, keep: bool) -> int:
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s): {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    for noisy in ("console.feed", "console.bus"):  # the headless console's resync chatter
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the private store's migrations
    plan = Plan(seconds=seconds)
    figures: list[Figures] = []
    for name in names:
        print(f"chaos: {name} …", file=sys.stderr, flush=True)
        started = time.monotonic()
        fig = run_fault(name, plan, parent, keep)
        print(f"chaos: {name}: {fig.verdict()} ({time.monotonic() - started:.0f} s)",
              file=sys.stderr, flush=True)
        figures.append(fig)
    print(table(figures))
    if any(f.error for f in figures):
        return 3
    return 0 if all(f.ok for f in figures) else 1
