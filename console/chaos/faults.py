"""One function per fault of issue 13, and the suite that runs them.

Each fault function builds its injection (a ``Run`` callback) and hands it
to ``console.chaos.measure.measure``, which runs the SOS storm and the fix
load around it and counts; so a fault here only says what it did and what
else it saw (``Run.note``) or broke (``Run.failures``).
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
from dataclasses import dataclass
from pathlib import Path

from console.chaos.devices import osmand_get
from console.chaos.harness import (
    CHAOS_USER,
    REPO_ROOT,
    Installation,
    SupervisorMode,
    can_mount_tmpfs,
    wait_until,
)
from console.chaos.measure import Plan, Run, measure, spare_phone, storm_text
from console.chaos.report import Figures, table
from db.store import FIXES_SCHEMA, fixes_file

log = logging.getLogger(__name__)

TMPFS_MB = 48


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
                        f"{storm_text(run.plan)}")
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
                        f"{storm_text(run.plan)}")
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
    run.fig.injected = f"SIGSTOP {service} (left stopped) {storm_text(run.plan)}"


def service_hung(inst: Installation, plan: Plan, service: str = "engine") -> Figures:
    from console.supervisor import HUNG_S

    window = (inst.hung_s if inst.hung_s is not None and inst.supervisor == "inline"
              else HUNG_S) + 10.0
    return measure(inst, plan, f"{service}-hung", lambda r: _hang(r, service), window)


def _lock_store(run: Run) -> None:
    """A separate connection holds ``BEGIN EXCLUSIVE`` on the store (both
    its files: ``BEGIN`` takes every attached database)."""
    url = run.inst.config.db_url
    conn = sqlite3.connect(Path(url.removeprefix("sqlite:///")), timeout=10,
                           isolation_level=None)
    try:
        if (fixes := fixes_file(url)) is not None:
            conn.execute(f"ATTACH DATABASE ? AS {FIXES_SCHEMA}", (str(fixes),))
        conn.execute("BEGIN EXCLUSIVE")
        run.t_inject = time.monotonic()
        run.sleep_until(run.t_inject + run.window_s)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    run.t_clear = time.monotonic()
    run.fig.injected = (f"another connection held BEGIN EXCLUSIVE on the store for "
                        f"{run.window_s:.0f} s {storm_text(run.plan)}")


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
                        f"{storm_text(run.plan)}")


def disk_full(inst: Installation, plan: Plan) -> Figures:
    return measure(inst, plan, "disk-full", _fill_disk)


def _poison(run: Run) -> None:
    """As a peer on the bus would: fix batches with latitude 95 and with a
    3-byte column; and as a signed-in console would: an alert command for
    alert id 2**63. Each about once a second through the window."""
    import zmq

    from console.bus import Publisher
    from console.engine_client import EngineClient, EngineUnavailable
    from console.security import Security
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
    # As a peer holding the gateway's key: the bus forwards only fix
    # batches from it, and the engine must still check every value.
    pub = Publisher(ctx, inst.config.bus_pub, origin="gateway",
                    security=Security.of(inst.config, "gateway"))
    client = EngineClient(inst.config.engine_rpc, timeout_s=2.0, console="chaos",
                          security=Security.console(inst.config))
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
                        f"in) {storm_text(run.plan)}")
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
    from console.security import Security
    from models.messages import SnapshotRequest, encode, unpack

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    req = zsocket(ctx, zmq.REQ)
    try:
        Security.console(inst.config).client(req, "engine")
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
    where = _engine_time_of(inst, d.child)
    give_up = time.monotonic() + 5.0  # the engine may still be applying the last ones
    while not (where is not None and abs(where - last) < 1.0) and time.monotonic() < give_up:
        time.sleep(0.5)
        where = _engine_time_of(inst, d.child)
    if last and where is not None and abs(where - last) < 1.0:
        run.note("afterwards the child moved with its normal fixes")
    else:
        run.failures.append(f"the child froze on the map: the engine's time for it is "
                            f"{where} (last normal fix {last:.0f}, the future one {ahead:.0f})")
    run.fig.injected = (f"one OsmAnd fix dated 24 h ahead, then a fix every 0.5 s from the "
                        f"same phone for {run.window_s:.0f} s {storm_text(run.plan)}")


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
    run.fig.injected = f"kill -9 the supervisor (childsafe serve) {storm_text(run.plan)}"


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
