"""Starts the backend processes in a fixed order, restarts one that dies
with a growing delay (it never gives up: a control room without its engine
is worse than one retrying it), and stops them all in reverse order.

Each service is its own OS process (``python -m console.services.<name>``)
in its own session, so a Ctrl+C at the terminal reaches only the
supervisor, which then stops the others in order: nothing is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from console.config import Config

log = logging.getLogger(__name__)

BACKEND = ("bus", "engine", "recorder", "notifier", "gateway", "relay")
DEMO = ("democams", *BACKEND, "simulator")
BACKOFF_S = (0.5, 30.0)  # the first restart's delay, doubled per quick death up to the cap
STABLE_S = 30.0  # a process that ran this long starts the backoff afresh when it dies
KEEPS_DYING = 5  # quick deaths in a row before it is logged as an error
STOP_TIMEOUT_S = 8.0
# Services that publish a heartbeat every second: one silent this long while
# its process lives is hung (SIGSTOP, a deadlock) and is killed to restart.
HEARTBEATS = frozenset({"engine", "gateway", "recorder", "relay", "notifier"})
HUNG_S = 20.0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0  # in all, since the supervisor started
    quick_deaths: int = 0  # in a row, each within STABLE_S of its start
    restart_at: float | None = None  # when a dead process is due to be started again
    delays: list[float] = field(default_factory=list)  # each restart's delay, for the record


class Supervisor:
    def __init__(self, config: Config, services: tuple[str, ...] = DEMO,
                 package: str = "console.services",
                 backoff: tuple[float, float] = BACKOFF_S, hung_s: float = HUNG_S) -> None:
        self.config = config
        self.package = package
        self.backoff = backoff
        self.hung_s = hung_s
        self.beats: dict[int, float] = {}  # pid -> monotonic time of its last heartbeat
        self.hung_kills: list[str] = []  # services killed as hung, in order
        self._grace_from = 0.0  # silences count from here (the last hung kill)
        self.children = [Child(name) for name in services]
        self._stopping = threading.Event()
        self._watch: threading.Thread | None = None
        self._listen: threading.Thread | None = None
        self._lock = threading.Lock()
        config.ensure_dirs()
        self.config_file: Path = config.run_dir / "config.json"

    def _spawn(self, child: Child) -> None:
        out = open(self.config.log_dir / f"{child.name}.out", "ab")  # noqa: SIM115
        child.proc = subprocess.Popen(
            [sys.executable, "-m", f"{self.package}.{child.name}",
             "--config", str(self.config_file)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        out.close()
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def start(self) -> None:
        self.config_file.write_text(self.config.to_json(), encoding="utf-8")
        if self.config.bus_security == "curve":
            from console import keys

            made = keys.init(self.config.data_dir)  # security is on from the first run
            if made:
                log.info("made CURVE keys under %s: %s", keys.keys_dir(self.config.data_dir),
                         ", ".join(made))
        for child in self.children:
            self._spawn(child)
            if child.name == "bus":
                self._wait_for_bus()
        self._watch = threading.Thread(target=self._watchdog, name="supervisor", daemon=True)
        self._watch.start()
        if "bus" in {c.name for c in self.children}:
            self._listen = threading.Thread(target=self._heartbeats, name="supervisor-beats",
                                            daemon=True)
            self._listen.start()

    def _wait_for_bus(self, timeout: float = 10.0) -> None:
        """Publishers may connect before the bus binds (ZeroMQ reconnects), but
        waiting here makes a broken bus fail the start, not later."""
        deadline = time.monotonic() + timeout
        paths = self.config.ipc_paths()[:2]
        while paths and not all(p.exists() for p in paths):
            if time.monotonic() > deadline:
                raise RuntimeError("the bus did not come up; see logs/bus.log")
            time.sleep(0.02)

    def _watchdog(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                now = time.monotonic()
                for child in self.children:
                    if child.proc is None or child.proc.poll() is None:
                        continue
                    if child.restart_at is None:
                        self._schedule(child, now)
                    elif now >= child.restart_at:
                        child.restarts += 1
                        self._spawn(child)

    def _heartbeats(self) -> None:
        """Listen to the bus's heartbeats and kill a service that stopped
        giving them while its process lives (a hung process never exits, so
        exit codes alone never see it). No heartbeat from anyone means the
        bus itself is hung."""
        import zmq

        from console.bus import Publisher, Subscriber, role_of
        from console.security import Security
        from models.health import supervisor_stats
        from models.messages import Heartbeat

        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        security = Security.of(self.config, "supervisor")
        sub = Subscriber(ctx, self.config.bus_sub, ("sys.heartbeat",), security=security,
                         sources=self.config.bus_sources)
        pub = Publisher(ctx, self.config.bus_pub, origin="supervisor", security=security,
                        source=self.config.bus_source)
        last_any = next_report = time.monotonic()
        try:
            while not self._stopping.is_set():
                got = sub.recv(timeout_ms=200)
                now = time.monotonic()
                if now >= next_report:  # every console shows what runs and what does not
                    pub.heartbeat(supervisor_stats(self._states(), len(self.hung_kills)))
                    next_report = now + 1.0
                if got is not None and isinstance(got[1], Heartbeat):
                    _, _, pid = got[1].origin.partition(":")
                    if role_of(got[1].origin) in HEARTBEATS and pid.isdigit():
                        self.beats[int(pid)] = now
                        last_any = now
                self._kill_hung(now, last_any)
        finally:
            sub.close()
            pub.close()
            ctx.term()

    def _kill_hung(self, now: float, last_any: float) -> None:
        """At most one kill per look: the bus when nobody is heard through it,
        else the service silent longest while the others are heard; then
        everyone gets a fresh ``hung_s`` (a stall spreads before it is seen)."""
        with self._lock:
            beating = [c for c in self.children if c.name in HEARTBEATS and c.proc is not None
                       and c.proc.poll() is None and now - c.started_at > self.hung_s]
            bus = next((c for c in self.children if c.name == "bus"), None)
            if not beating or bus is None or bus.proc is None or bus.proc.poll() is not None:
                return
            floor = max(bus.started_at, self._grace_from)
            if now - floor <= self.hung_s:
                return
            if now - max(last_any, floor) > self.hung_s:
                self._kill(bus, f"no heartbeat from anyone through it for {now - last_any:.0f} s")
            elif now - last_any < 2.0:  # the bus delivers: a silent service is hung itself
                silence = {c.name: now - max(self.beats.get(c.proc.pid, c.started_at), floor)
                           for c in beating if c.proc is not None}
                worst = max(beating, key=lambda c: silence[c.name])
                if silence[worst.name] > self.hung_s:
                    self._kill(worst, f"no heartbeat for {silence[worst.name]:.0f} s")
                else:
                    return
            else:
                return
            self._grace_from = now

    def _kill(self, child: Child, why: str) -> None:
        """SIGKILL a hung service (it works on a stopped process too); the
        watchdog then restarts it like any death."""
        assert child.proc is not None
        log.error("%s (pid %d) is hung: %s; killing it to restart", child.name,
                  child.proc.pid, why)
        self.hung_kills.append(child.name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        child.proc.wait()

    def _schedule(self, child: Child, now: float) -> None:
        """A process died: start it again after a delay that doubles with each
        quick death in a row (capped), and say so louder when it keeps dying."""
        assert child.proc is not None
        quick = now - child.started_at < STABLE_S
        child.quick_deaths = child.quick_deaths + 1 if quick else 1
        base, cap = self.backoff
        delay = min(cap, base * 2 ** (child.quick_deaths - 1))
        child.delays.append(delay)
        child.restart_at = now + delay
        code = child.proc.returncode
        if child.quick_deaths >= KEEPS_DYING:
            log.error("%s keeps dying (exit %s, %d times in a row); retrying in %.1f s, and "
                      "every %.0f s at most from now on", child.name, code, child.quick_deaths,
                      delay, cap)
        else:
            log.warning("%s died (exit %s); restarting in %.1f s", child.name, code, delay)

    def status(self) -> dict[str, str]:
        """Each service's state in words: running, restarting (and when), stopped."""
        with self._lock:
            now = time.monotonic()
            out: dict[str, str] = {}
            for c in self.children:
                if c.proc is not None and c.proc.poll() is None:
                    out[c.name] = "running"
                elif c.restart_at is not None:
                    out[c.name] = (f"restarting in {max(0.0, c.restart_at - now):.1f} s "
                                   f"(died {c.quick_deaths} times in a row)")
                else:
                    out[c.name] = "stopped"
            return out

    def _states(self) -> dict[str, tuple[bool, int]]:
        """(up, restarts so far) of each process."""
        with self._lock:
            return {c.name: (c.proc is not None and c.proc.poll() is None, c.restarts)
                    for c in self.children}

    def alive(self) -> bool:
        """The supervisor's own health: its watchdog thread is running."""
        return self._watch is not None and self._watch.is_alive()

    def pid(self, name: str) -> int:
        with self._lock:
            child = next(c for c in self.children if c.name == name)
            assert child.proc is not None
            return child.proc.pid

    def restart(self, name: str, config: Config | None = None,
                between: Callable[[], object] | None = None) -> None:
        """Stop ``name`` (SIGTERM, then SIGKILL) and start it again now, with
        ``config`` if given, running ``between`` while it is stopped (a
        training session's seek back restarts its engine on an earlier
        replayed clock, with its store emptied). Not a death: no backoff."""
        with self._lock:
            if config is not None:
                self.config = config
                self.config_file.write_text(config.to_json(), encoding="utf-8")
            child = next(c for c in self.children if c.name == name)
            proc = child.proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.beats.pop(proc.pid if proc is not None else -1, None)
            if between is not None:
                between()
            self._grace_from = time.monotonic()  # its first heartbeat is a while away
            self._spawn(child)

    def stop(self) -> None:
        """Stop in reverse start order: producers first, the bus last."""
        self._stopping.set()
        if self._watch is not None:
            self._watch.join()
        if self._listen is not None:
            self._listen.join()
        with self._lock:
            for child in reversed(self.children):
                proc = child.proc
                if proc is None or proc.poll() is not None:
                    continue
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    log.error("%s ignored SIGTERM; killing it", child.name)
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                log.info("stopped %s (exit %s)", child.name, proc.returncode)
        for path in self.config.ipc_paths():
            path.unlink(missing_ok=True)

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
