"""Real external services for the test session, and process bookkeeping.

Why: the project tests against real parts (DESIGN.md, Conventions), so the
suite needs its own PostgreSQL server and X server.  Both are private to one
test session: a throw-away PostgreSQL cluster on a free loopback port and an
Xvfb on a free display, so parallel sessions (and a developer's own
PostgreSQL or X server) never collide.

The fixtures that use these live in ``tests/conftest.py``; this module holds
the plain code so it can be reused outside pytest (benchmarks, scripts).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from console.bootstrap import start_xvfb

PG_BIN_DIR = Path(os.environ.get("CHILDSAFE_PG_BIN_DIR", "/usr/lib/postgresql/15/bin"))
PG_APT_PACKAGE = "postgresql"  # Debian 12's metapackage, pulls postgresql-15
TEST_DATABASE = "childsafe_test"

# pids of processes started by session services; the leak check ignores them
# (and their descendants) wherever in the session they were started.
SERVICE_PIDS: set[int] = set()


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0).

    There is a small race until the caller binds it; servers started on such a
    port should be retried on "address in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceError(RuntimeError):
    """A test service could not start; the message says what to install or read."""


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster in a temp dir, listening on 127.0.0.1 only.

    ``initdb`` refuses to run as root, so as root every server-side command
    runs as the ``postgres`` user (created by the Debian package) via
    ``runuser``, and the temp dir is handed to that user.  Durability is off
    (fsync, synchronous_commit, full_page_writes): the cluster dies with the
    session, and speed matters more.
    """

    bin_dir: Path = PG_BIN_DIR
    database: str = TEST_DATABASE
    port: int = 0
    base_dir: Path | None = None
    _as_user: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver, trust auth as ``postgres``)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "server.log"

    def _check_binaries(self) -> None:
        missing = [b for b in ("initdb", "pg_ctl", "createdb") if not (self.bin_dir / b).exists()]
        if missing:
            raise ServiceError(
                f"PostgreSQL 15 server binaries not found in {self.bin_dir} "
                f"(missing: {', '.join(missing)}); install the Debian package "
                f"'{PG_APT_PACKAGE}' (apt-get install {PG_APT_PACKAGE}), or run "
                "'python3 -m console.bootstrap test' which installs it"
            )

    def _server_cmd(self, *args: str | Path) -> list[str]:
        return [*self._as_user, *(str(a) for a in args)]

    def _run(self, cmd: list[str], what: str) -> None:
        # cwd: the postgres user may not be allowed into the caller's directory.
        result = subprocess.run(
            cmd, cwd=self.base_dir, capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            raise ServiceError(
                f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except (OSError, AssertionError):
            return ""
        return "\n--- server log (tail) ---\n" + "\n".join(lines[-20:])

    def start(self) -> str:
        """initdb, start on a free port, create the test database; return the URL."""
        self._check_binaries()
        # Short path under /tmp: the unix socket path must stay under 107 chars.
        self.base_dir = Path(tempfile.mkdtemp(prefix="cs-pg-", dir="/tmp"))
        if os.geteuid() == 0:
            try:
                shutil.chown(self.base_dir, user="postgres", group="postgres")
            except LookupError as exc:
                raise ServiceError(
                    f"no 'postgres' system user to run the server as root; install the "
                    f"Debian package '{PG_APT_PACKAGE}'"
                ) from exc
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            self._server_cmd(
                self.bin_dir / "initdb",
                "-D", self.data_dir,
                "-U", "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ),
            "initdb",
        )
        last_error: ServiceError | None = None
        for _attempt in range(3):  # the free port may be taken before the server binds it
            self.port = free_tcp_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={self.port}",
                    f"-k {self.base_dir}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ]
            )
            try:
                self._run(
                    self._server_cmd(
                        self.bin_dir / "pg_ctl", "start", "-D", self.data_dir,
                        "-l", self.log_file, "-w", "-t", "60", "-o", options,
                    ),
                    "pg_ctl start",
                )
                break
            except ServiceError as exc:
                last_error = exc
        else:
            assert last_error is not None
            raise last_error
        self._run(
            [
                str(self.bin_dir / "createdb"),
                "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                self.database,
            ],
            "createdb",
        )
        return self.url

    def stop(self) -> None:
        """``pg_ctl stop -m fast``, killing the postmaster if that fails; remove the dir."""
        if self.base_dir is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run(
                    self._server_cmd(
                        self.bin_dir / "pg_ctl", "stop", "-D", self.data_dir, "-m", "fast", "-w"
                    ),
                    "pg_ctl stop",
                )
            except (ServiceError, subprocess.TimeoutExpired):
                self._kill_postmaster()
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- Xvfb


class XvfbServer:
    """An Xvfb on a free display (1600x1000x24, no TCP), for tests that need real xcb."""

    def __init__(self, screen: str = "1600x1000x24") -> None:
        self.screen = screen
        self.process: subprocess.Popen[bytes] | None = None
        self.display = ""

    def start(self) -> str:
        """Start the server, wait for /tmp/.X11-unix/XN; return the DISPLAY string."""
        if shutil.which("Xvfb") is None:
            raise ServiceError("Xvfb not found; install the Debian package 'xvfb'")
        self.process, self.display = start_xvfb(self.screen)
        SERVICE_PIDS.add(self.process.pid)
        return self.display

    def stop(self) -> None:
        """Terminate (then kill) the server and reap it."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        SERVICE_PIDS.discard(self.process.pid)
        self.process = None


# --------------------------------------------------------------------------- child processes


@dataclass(frozen=True)
class ProcInfo:
    """One live process as read from /proc."""

    pid: int
    ppid: int
    state: str
    start_time: int  # clock ticks since boot; with pid, identifies the process
    cmdline: str


def _read_proc(pid: int) -> ProcInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parens: split after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    if not cmdline:
        cmdline = stat[stat.find("(") + 1 : stat.rfind(")")]
    return ProcInfo(
        pid=pid, ppid=int(fields[1]), state=fields[0], start_time=int(fields[19]), cmdline=cmdline
    )


def descendants(root_pid: int | None = None) -> dict[int, ProcInfo]:
    """Live (non-zombie) processes whose parent chain reaches ``root_pid`` (default: us).

    One pass over /proc (this kernel has no /proc/PID/task/TID/children);
    a few hundred small reads, about a millisecond.
    """
    root = os.getpid() if root_pid is None else root_pid
    procs: dict[int, ProcInfo] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _read_proc(int(entry))
            if info is not None:
                procs[info.pid] = info
    children: dict[int, list[int]] = {}
    for info in procs.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found: dict[int, ProcInfo] = {}
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        info = procs[pid]
        stack.extend(children.get(pid, []))
        if info.state not in ("Z", "X"):  # exited, just not reaped yet: not running
            found[pid] = info
    return found


def service_tree_pids(procs: dict[int, ProcInfo]) -> set[int]:
    """The registered service pids plus, within ``procs``, all their descendants."""
    keep = {pid for pid in SERVICE_PIDS if pid in procs}
    changed = True
    while changed:
        changed = False
        for info in procs.values():
            if info.ppid in keep and info.pid not in keep:
                keep.add(info.pid)
                changed = True
    return keep


def find_leaks(
    before: dict[int, ProcInfo], grace: float = 2.0
) -> list[ProcInfo]:
    """Child processes started since ``before`` that are still running.

    Processes that are on their way out (a test sent SIGTERM but did not wait)
    get ``grace`` seconds; the common case (nothing new) costs one /proc scan.
    """
    known = {(p.pid, p.start_time) for p in before.values()}
    deadline = time.monotonic() + grace
    while True:
        now = descendants()
        ignored = service_tree_pids(now)
        leaked = [
            p for p in now.values() if (p.pid, p.start_time) not in known and p.pid not in ignored
        ]
        if not leaked or time.monotonic() >= deadline:
            return sorted(leaked, key=lambda p: p.pid)
        time.sleep(0.05)


def kill_processes(procs: list[ProcInfo]) -> None:
    """SIGKILL the given processes (ignoring ones that are already gone)."""
    for proc in procs:
        current = _read_proc(proc.pid)
        if current is None or current.start_time != proc.start_time:
            continue  # gone, or the pid now belongs to someone else
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGKILL)
