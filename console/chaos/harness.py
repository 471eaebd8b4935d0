"""A private installation to inject faults into: its own data dir, free
ports on 127.0.0.1, its own processes, stopped and cleaned up in bounded time.

Why a private one: faults are destructive (kill -9, a locked or full store),
so they must never reach a real installation or another engineer's run.
Everything lives under one temp dir (``/tmp/cs-chaos-…``: ipc socket paths
must stay short): ``data/`` is the installation's data dir, ``serve.out``
what ``childsafe serve`` printed. When asked (and allowed: root), ``data/``
is a small tmpfs, so "disk full" is a real ENOSPC that touches nothing else.

Two ways to run the supervisor: ``serve`` (a real ``python -m console
serve`` process, as an operator runs it; the only way to kill the
supervisor itself) or ``inline`` (a ``Supervisor`` in this process, whose
hung-process timeout a short test can lower).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from console.config import Config

if TYPE_CHECKING:
    from console.chaos.observe import HealthWatch
    from console.supervisor import Supervisor

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("bus", "engine", "recorder", "gateway", "relay")
CHAOS_USER = "chaos-operator"
START_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 20.0
SupervisorMode = Literal["serve", "inline"]


def free_port() -> int:
    """A port on 127.0.0.1 free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate: object, timeout_s: float, step_s: float = 0.1) -> bool:
    """Poll ``predicate()`` until true or ``timeout_s``; never raises for time."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():  # type: ignore[operator]
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step_s)


def can_mount_tmpfs() -> bool:
    """Root on Linux with ``mount``: the precondition of a real disk-full."""
    return os.geteuid() == 0 and shutil.which("mount") is not None


@dataclass(frozen=True)
class DeviceInfo:
    """One registered device and where its child normally is (its zone)."""

    device_id: str
    kind: str  # watch | phone | tag
    child: str  # the child's token
    lat: float
    lon: float
    radius_m: float


@dataclass
class Installation:
    """One private backend. Use as a context manager: ``prepare`` and
    ``start`` on entry, ``stop`` (always) on exit."""

    children: int = 60
    supervisor: SupervisorMode = "serve"
    hung_s: float | None = None  # inline only: the supervisor's hung-process timeout
    tmpfs_mb: int | None = None  # a tmpfs of this size as the data dir (root only)
    parent: Path | None = None  # where the temp dir goes (default /tmp)
    keep: bool = False  # leave the files behind for a post-mortem
    root: Path = field(init=False)
    config_file: Path = field(init=False)
    config: Config = field(init=False)
    password: str = field(init=False, default_factory=lambda: secrets.token_urlsafe(18))
    devices: list[DeviceInfo] = field(init=False, default_factory=list)
    health: HealthWatch | None = field(init=False, default=None)
    _serve: subprocess.Popen[bytes] | None = field(init=False, default=None)
    _sup: Supervisor | None = field(init=False, default=None)
    _mounted: bool = field(init=False, default=False)
    _prepared: bool = field(init=False, default=False)

    # ------------------------------------------------------------ paths
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def run_config(self) -> Path:
        """The JSON config the supervisor hands its services (it names the
        installation in every service's command line)."""
        return self.data_dir / "run" / "config.json"

    # ---------------------------------------------------------- prepare
    def prepare(self) -> None:
        """Temp dir, (tmpfs), settings, store with its children and one
        operator account; nothing runs yet."""
        base = str(self.parent) if self.parent is not None else "/tmp"
        Path(base).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="cs-chaos-", dir=base))
        self._prepared = True
        self.data_dir.mkdir()
        if self.tmpfs_mb is not None:
            self._mount_tmpfs(self.tmpfs_mb)
        ports = {name: free_port() for name in ("osmand_port", "watch_port", "feeds_port",
                                                 "relay_port", "demo_rtsp_port")}
        self.config_file = self.root / "chaos.toml"
        self.config_file.write_text(f"children = {self.children}\n" + "".join(
            f"{k} = {v}\n" for k, v in ports.items()), encoding="utf-8")
        self.config = Config.load(self.config_file, data_dir=self.data_dir)
        self.config.ensure_dirs()
        self._seed()

    def _mount_tmpfs(self, size_mb: int) -> None:
        if not can_mount_tmpfs():
            raise RuntimeError("a tmpfs data dir needs root and mount(8)")
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs",
                        str(self.data_dir)], check=True, capture_output=True, timeout=10)
        self._mounted = True

    def _seed(self) -> None:
        from db import accounts
        from db import repositories as repo
        from db.seed import seed_demo
        from db.store import open_store

        engine, sessions = open_store(self.config.db_url)
        try:
            with sessions() as s:
                seed_demo(s, self.children)
                accounts.add_user(s, CHAOS_USER, ["operator"], self.password)
                s.commit()
                zones = {z.id: z for z in repo.zones(s)}
                self.devices = []
                for entry in repo.roster(s):
                    z = zones.get(entry.zone_id) if entry.zone_id is not None else None
                    if z is None:
                        continue
                    self.devices.append(DeviceInfo(entry.device_id, entry.kind, entry.token,
                                                   z.lat, z.lon, z.radius_m))
        finally:
            engine.dispose()

    # ------------------------------------------------------------ start
    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the backend and a headless console; return once devices can
        connect, the engine answers and the console is LIVE."""
        from console.chaos.observe import HealthWatch

        self._start_supervisor()
        cfg = self.config
        for port in (cfg.osmand_port, cfg.watch_port):
            if not wait_until(lambda p=port: port_open(p), timeout_s):
                raise RuntimeError(f"the gateway did not open port {port}; see {self.logs()}")
        self.health = HealthWatch(cfg)
        self.health.start()
        if not wait_until(self.health.is_live, timeout_s):
            raise RuntimeError(f"the console never saw LIVE ({self.health.last_state()}); "
                               f"see {self.logs()}")

    def _start_supervisor(self) -> None:
        if self.supervisor == "inline":
            from console.supervisor import BACKEND, Supervisor

            kw = {} if self.hung_s is None else {"hung_s": self.hung_s}
            self._sup = Supervisor(self.config, BACKEND, **kw)  # type: ignore[arg-type]
            self._sup.start()
            return
        out = open(self.root / "serve.out", "ab")  # noqa: SIM115 (handed to the child)
        try:
            self._serve = subprocess.Popen(
                [sys.executable, "-m", "console", "serve", "--data-dir", str(self.data_dir),
                 "--config", str(self.config_file)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT, start_new_session=True)
        finally:
            out.close()

    def restart_serve(self) -> None:
        """Start ``serve`` again after its death, as systemd's
        ``Restart=always`` would (``resources/systemd``)."""
        assert self.supervisor == "serve"
        self._start_supervisor()

    def logs(self) -> Path:
        return self.data_dir / "logs"

    # ------------------------------------------------------------- pids
    def service_pids(self) -> dict[str, int]:
        """Live service processes of this installation, by name, found by
        their command line (``-m console.services.NAME --config <ours>``)."""
        mark = str(self.run_config)
        found: dict[str, int] = {}
        for pid, argv in _processes():
            if mark in argv and "-m" in argv:
                module = argv[argv.index("-m") + 1] if argv.index("-m") + 1 < len(argv) else ""
                if module.startswith("console.services."):
                    found[module.rsplit(".", 1)[1]] = pid
        return found

    def service_pid(self, name: str) -> int | None:
        return self.service_pids().get(name)

    def wait_service(self, name: str, other_than: int | None = None,
                     timeout_s: float = 30.0) -> int | None:
        """The pid of ``name`` once one runs that is not ``other_than``."""
        got: list[int] = []

        def up() -> bool:
            pid = self.service_pid(name)
            if pid is not None and pid != other_than and _state(pid) not in ("Z", "T", ""):
                got.append(pid)
                return True
            return False

        return got[-1] if wait_until(up, timeout_s) else None

    def supervisor_pid(self) -> int | None:
        if self._serve is not None and self._serve.poll() is None:
            return self._serve.pid
        return os.getpid() if self._sup is not None else None

    def signal(self, name: str, sig: int) -> int | None:
        """Send ``sig`` to the service ``name``; its pid, or None if it was not running."""
        pid = self.service_pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pid

    def kill_serve(self) -> int | None:
        """kill -9 the supervisor (``serve``) alone; its services are left
        to notice it by themselves."""
        if self._serve is None or self._serve.poll() is not None:
            return None
        pid = self._serve.pid
        os.kill(pid, signal.SIGKILL)
        self._serve.wait(5)
        return pid

    # ------------------------------------------------------------- stop
    def stop(self) -> None:
        """Stop everything of this installation (bounded), then unmount and
        remove its files unless ``keep``."""
        if self.health is not None:
            self.health.stop()
            self.health = None
        for name in SERVICES:  # a frozen process cannot take SIGTERM
            pid = self.service_pid(name)
            if pid is not None and _state(pid) == "T":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        if self._sup is not None:
            self._sup.stop()
            self._sup = None
        if self._serve is not None:
            if self._serve.poll() is None:
                self._serve.send_signal(signal.SIGTERM)
                try:
                    self._serve.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    log.error("serve ignored SIGTERM for %.0f s; killing it", STOP_TIMEOUT_S)
                    self._serve.kill()
                    self._serve.wait(5)
            self._serve = None
        self._kill_leftovers()
        if self._mounted:
            self._unmount()
        if self._prepared and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """Anything still running with our config (orphans of a killed
        supervisor): SIGKILL by pid, as systemd's control-group kill would."""
        if not self._prepared:
            return
        deadline = time.monotonic() + 5.0
        while True:
            left = self.service_pids()
            if not left:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        for name, pid in left.items():
            log.warning("%s (pid %d) outlived its supervisor; killing it", name, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.service_pids(), 5.0)

    def _unmount(self) -> None:
        for args in (["umount", str(self.data_dir)], ["umount", "-l", str(self.data_dir)]):
            done = subprocess.run(args, capture_output=True, timeout=10, check=False)
            if done.returncode == 0:
                self._mounted = False
                return
        log.error("could not unmount the tmpfs at %s", self.data_dir)

    def __enter__(self) -> Installation:
        try:
            self.prepare()
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _processes() -> list[tuple[int, list[str]]]:
    """(pid, argv) of every process we may read, from /proc."""
    out: list[tuple[int, list[str]]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            out.append((int(entry), raw.rstrip(b"\0").decode(errors="replace").split("\0")))
    return out


def _state(pid: int) -> str:
    """The process's state letter (R, S, T stopped, Z zombie…), "" when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rfind(")") + 2:].split(" ", 1)[0]
