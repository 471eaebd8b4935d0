"""Start, watch and end a training session from the trainer's live console.

A session is one ``childsafe replay`` process (``console.cli_training``)
and the training installation it supervises (bus, engine and recorder under
``<data_dir>/training``). The launcher runs it as a child process in a
session of its own (``python -m console replay ...``, output appended to
``<data_dir>/logs/replay.out``), so closing the console that started it
does not end the trainees' session; the trainer ends it with End session
here or on the replay bar.

Is one running? Two signs, either enough:

- the pid file ``<data_dir>/run/replay.pid`` the launcher writes: the pid
  and the process's start time read from ``/proc``, so a reused pid is
  never taken for the session. It sits in the live run folder, not under
  ``training/``, because every session's start wipes that folder;
- a training socket that accepts a connection (the session's control
  socket, or its bus or engine): what a session started elsewhere (a
  terminal's ``childsafe replay``, another console) also shows. A socket
  file alone proves nothing (a killed session leaves its files behind); a
  connection tells a listener from a leftover.

Only one session per installation: a second would wipe the first's
training folder, so ``start`` refuses while either sign says one runs.

Ending sends SIGTERM (the session then scores the trainees, writes its
report and stops its services), waits ``STOP_GRACE_S``, then SIGKILLs the
session and whatever of its services is left. The services run in sessions
of their own (``console.supervisor``), so a kill of the session's process
group would miss them: they are collected from ``/proc`` before the first
signal. A session started elsewhere is found by the socket it listens on
(``/proc/net/unix`` or ``/proc/net/tcp``, then ``/proc/*/fd``).

Qt-free and blocking where it must be (``stop`` waits): the console runs
``start``, ``stop`` and the listings off its GUI thread
(``console.training_panel_controller``); ``state`` is a few small reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from console.config import Config
from console.training.install import reports_dir, training_config
from console.training.player import SPEEDS
from db.tape import TapeReader, tape_dir
from models.scenario import Scenario, ScenarioError, load_scenarios

log = logging.getLogger(__name__)

PID_FILE = "replay.pid"  # in the live run dir
CONFIG_FILE = "replay-config.json"  # the settings the session runs on, in the live run dir
OUT_FILE = "replay.out"  # in the live log dir
CONSOLE_OUT_FILE = "training-console.out"
# A session scores, draws its report's charts and stops three services on
# SIGTERM (each up to console.supervisor.STOP_TIMEOUT_S): well under this.
STOP_GRACE_S = 60.0
KILL_WAIT_S = 5.0  # after SIGKILL, for the kernel to take a process away
PERIOD_SLACK_S = 1.0  # a period may overshoot the tape by this (editors round to seconds)
CONNECT_S = 0.2
OUT_TAIL_BYTES = 256 * 1024  # of replay.out read back for the outcome
READY = "training session: "  # what ``childsafe replay`` prints once trainees may join
ROOT = Path(__file__).resolve().parent.parent  # where ``python -m console`` resolves

Phase = Literal["idle", "starting", "running", "ending", "ended", "failed"]
ACTIVE: frozenset[str] = frozenset({"starting", "running", "ending"})


class LaunchError(ValueError):
    """A request the launcher refuses; its text is for the trainer."""


@dataclass(frozen=True, slots=True)
class Launch:
    """What to play: a scenario id, or a recorded period [t0, t1] (epoch s)."""

    scenario: str = ""
    t0: float = 0.0
    t1: float = 0.0
    speed: float = 1.0
    paused: bool = False
    by: str = ""  # the trainer, for the live usage log


@dataclass(frozen=True, slots=True)
class SessionState:
    """Where the installation's training session stands, for the panel."""

    phase: Phase = "idle"
    title: str = ""
    pid: int | None = None
    started_at: float | None = None
    ours: bool = True  # False: found by its sockets (started elsewhere)
    detail: str = ""  # why it failed, or what it left
    report: Path | None = None

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE


@dataclass(frozen=True, slots=True)
class Report:
    """One session's report folder (``console.training_report`` writes an
    HTML page, a CSV and chart images into it)."""

    folder: Path
    name: str  # the folder's name: the scenario id and the session's time
    when: float  # when it was written
    html: Path | None
    csv: Path | None


@dataclass(slots=True)
class _Record:
    """The pid file: enough to recognise the process and say what it plays."""

    pid: int
    ticks: int  # /proc start time: a reused pid has another
    started_at: float
    title: str
    out_offset: int  # where its output starts in replay.out
    ending: bool = False


# --------------------------------------------------------------------- /proc
def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start ticks) of a process, None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        rest = text[text.rindex(")") + 2:].split()  # the name may hold spaces and parens
        return rest[0], int(rest[1]), int(rest[19])
    except (OSError, ValueError, IndexError):
        return None


def _ticks(pid: int) -> int:
    got = _stat(pid)
    return got[2] if got is not None else 0


def alive(pid: int, ticks: int = 0) -> bool:
    """Whether ``pid`` runs (not a zombie) and, given ``ticks``, is still the
    process that had that start time."""
    got = _stat(pid)
    if got is None:
        return False
    state, _, start = got
    return state not in ("Z", "X") and (not ticks or start == ticks)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _tree(root: int) -> list[tuple[int, int]]:
    """(pid, ticks) of every live descendant of ``root``: one pass over /proc."""
    parent: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            got = _stat(int(entry))
            if got is not None and got[0] not in ("Z", "X"):
                parent.setdefault(got[1], []).append((int(entry), got[2]))
    found: list[tuple[int, int]] = []
    stack = list(parent.get(root, []))
    while stack:
        item = stack.pop()
        found.append(item)
        stack.extend(parent.get(item[0], []))
    return found


def _listening_inodes(endpoint: str) -> set[str]:
    """Inodes of the sockets listening on a zmq ``ipc://`` or ``tcp://`` endpoint."""
    found: set[str] = set()
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://"):]
        with contextlib.suppress(OSError):
            for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) >= 8 and cols[7] == path and cols[3] == "00010000":
                    found.add(cols[6])
    elif endpoint.startswith("tcp://"):
        port = int(endpoint.rsplit(":", 1)[1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    cols = line.split()
                    if len(cols) >= 10 and cols[3] == "0A" \
                            and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        found.add(cols[9])
    return found


def socket_owners(endpoint: str) -> list[int]:
    """Pids of this user's processes listening on ``endpoint``."""
    inodes = {f"socket:[{i}]" for i in _listening_inodes(endpoint)}
    if not inodes:
        return []
    owners: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        owners.append(int(entry))
                        break
    return owners


def accepts(endpoint: str) -> bool:
    """Whether something listens on a zmq endpoint (a connection is made and
    dropped at once; a leftover socket file refuses it)."""
    try:
        if endpoint.startswith("ipc://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(CONNECT_S)
                s.connect(endpoint[len("ipc://"):])
        else:
            host, port = endpoint[len("tcp://"):].rsplit(":", 1)
            socket.create_connection((host, int(port)), CONNECT_S).close()
    except (OSError, ValueError):
        return False
    return True


# ------------------------------------------------------------------ launcher
class TrainingLauncher:
    """The training sessions of one live installation, as its trainer's
    console sees them. Thread-safe: ``state`` may be asked while ``stop``
    waits in another thread."""

    def __init__(self, config: Config, python: str = sys.executable) -> None:
        self.config = config
        self.python = python
        self.train = training_config(config, 0.0)
        self.pid_file = config.run_dir / PID_FILE
        self.config_file = config.run_dir / CONFIG_FILE
        self.out_file = config.log_dir / OUT_FILE
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._consoles: list[subprocess.Popen[bytes]] = []
        self._last = SessionState()  # how the last session seen here ended
        self._ready_pid = 0  # the session seen saying it is ready

    # ----------------------------------------------------------- choices
    def scenarios(self) -> list[Scenario]:
        """The scenarios ``childsafe replay`` can play (the same directory)."""
        try:
            return load_scenarios()
        except ScenarioError as exc:
            raise LaunchError("the scenarios cannot be read: " + "; ".join(exc.problems)) \
                from exc

    def span(self) -> tuple[float, float] | None:
        """The recorded period on the live tape (first, last), None if empty."""
        return TapeReader(tape_dir(self.config.data_dir)).span()

    def reports(self, limit: int = 100) -> list[Report]:
        """Past sessions' report folders, newest first."""
        root = reports_dir(self.config)
        if not root.is_dir():
            return []
        found: list[Report] = []
        for folder in root.iterdir():
            if not folder.is_dir():
                continue
            pages = sorted(folder.glob("*.html"))
            index = folder / "index.html"
            html = index if index.is_file() else (pages[0] if pages else None)
            csv = next(iter(sorted(folder.glob("*.csv"))), None)
            try:
                when = (html or folder).stat().st_mtime
            except OSError:
                continue
            found.append(Report(folder, folder.name, when, html, csv))
        found.sort(key=lambda r: (r.when, r.name), reverse=True)
        return found[:limit]

    def local(self, t: float) -> str:
        """A time as the control room reads it (``local_utc_offset_s``)."""
        tz = dt.timezone(dt.timedelta(seconds=self.config.local_utc_offset_s))
        return f"{dt.datetime.fromtimestamp(t, tz):%Y-%m-%d %H:%M:%S}"

    def check(self, launch: Launch) -> tuple[Launch, str]:
        """The launch as it will run (a period kept inside the tape) and its
        title; ``LaunchError`` saying what is wrong otherwise."""
        if self.config.training:
            raise LaunchError("this console is on the training bus: start a session "
                              "from a live console")
        if launch.speed not in SPEEDS:
            raise LaunchError("the start speed is one of "
                              f"{', '.join(f'{s:g}×' for s in SPEEDS)}, not {launch.speed:g}×")
        if launch.scenario:
            if launch.t0 or launch.t1:
                raise LaunchError("choose a scenario or a recorded period, not both")
            found = {s.id: s for s in self.scenarios()}
            if launch.scenario not in found:
                raise LaunchError(f"there is no scenario {launch.scenario!r}; there are: "
                                  f"{', '.join(sorted(found)) or 'none'}")
            return launch, found[launch.scenario].title
        t0, t1 = launch.t0, launch.t1
        if not (t0 or t1):
            raise LaunchError("choose a scenario, or a recorded period (from and to)")
        if not (math.isfinite(t0) and math.isfinite(t1)):
            raise LaunchError("the period's times are not valid times")
        if not t0 < t1:
            raise LaunchError(f"the period's start ({self.local(t0)}) must come before "
                              f"its end ({self.local(t1)})")
        span = self.span()
        if span is None:
            raise LaunchError("nothing has been recorded yet (the live tape is empty): "
                              "choose a scenario")
        first, last = span
        inside = t0 >= first - PERIOD_SLACK_S and t1 <= last + PERIOD_SLACK_S
        t0, t1 = max(t0, first), min(t1, last)
        if not inside or not t0 < t1:
            raise LaunchError(f"the recording runs from {self.local(first)} to "
                              f"{self.local(last)}: the period {self.local(launch.t0)} – "
                              f"{self.local(launch.t1)} is not inside it")
        return dataclasses.replace(launch, t0=t0, t1=t1), \
            f"{self.local(t0)[:16]} – {self.local(t1)[11:16]}"

    # ------------------------------------------------------------- start
    def replay_argv(self, launch: Launch) -> list[str]:
        """The command line of a session (the settings from ``config_file``)."""
        what = ["--scenario", launch.scenario] if launch.scenario else \
            ["--from", repr(launch.t0), "--to", repr(launch.t1)]
        return [self.python, "-m", "console", "replay", *what, "--speed", f"{launch.speed:g}",
                *(["--paused"] if launch.paused else []),
                *([f"--by={launch.by}"] if launch.by else []),
                "--data-dir", str(self.config.data_dir), "--config", str(self.config_file)]

    def start(self, launch: Launch) -> SessionState:
        """Check ``launch`` and start its session; refused while one runs."""
        launch, title = self.check(launch)
        with self._lock:
            now = self._state()
            if now.active:
                raise LaunchError(self._busy(now))
            # The console's own settings, whatever gave them (a file, flags, a
            # supervisor's JSON): the session must run on exactly these.
            self.config.ensure_dirs()
            self.config_file.write_text(self.config.to_json(), encoding="utf-8")
            self.config_file.chmod(0o600)  # it may hold the store's password
            argv = self.replay_argv(launch)
            env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}  # the report's charts
            with open(self.out_file, "ab") as out:
                offset = out.tell()
                out.write(f"--- {self.local(time.time())} {' '.join(argv[1:])}\n".encode())
                out.flush()
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        cwd=ROOT, env=env)
            record = _Record(proc.pid, _ticks(proc.pid), time.time(), title, offset)
            self._proc = proc
            self._write(record)
            self._last = SessionState()
            log.info("training session started: %s (pid %d)", title, proc.pid)
            return SessionState("starting", title, proc.pid, record.started_at)

    def open_console(self) -> int:
        """A console on the training bus (``childsafe console --training``) as
        a process of its own; its pid. It outlives this console."""
        with self._lock:
            now = self._state()
        if not now.active:
            raise LaunchError("no training session is running: start one first")
        self.config.ensure_dirs()
        if not self.config_file.exists():  # a session started elsewhere
            self.config_file.write_text(self.config.to_json(), encoding="utf-8")
            self.config_file.chmod(0o600)
        argv = [self.python, "-m", "console", "console", "--training",
                "--data-dir", str(self.config.data_dir), "--config", str(self.config_file)]
        with open(self.config.log_dir / CONSOLE_OUT_FILE, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
        with self._lock:
            self._consoles.append(proc)
        return proc.pid

    # -------------------------------------------------------------- state
    def state(self) -> SessionState:
        with self._lock:
            return self._state()

    def _state(self) -> SessionState:
        self._consoles = [p for p in self._consoles if p.poll() is None]  # reaped
        record = self._read()
        if self._proc is not None and self._proc.poll() is not None:
            self._ended(record, self._proc.returncode)
            record = None
        if record is not None and not alive(record.pid, record.ticks):
            self._ended(record, None)  # not our child: its exit code is its parent's
            record = None
        if record is not None:
            phase: Phase = "ending" if record.ending else \
                "running" if self._ready(record) else "starting"
            return SessionState(phase, record.title, record.pid, record.started_at)
        if accepts(self.train.replay_rpc):
            return SessionState("running", "", ours=False)
        if any(accepts(e) for e in self._endpoints()[1:]):  # up to its control socket
            return SessionState("starting", "", ours=False)
        return self._last

    def _ready(self, record: _Record) -> bool:
        """Whether the session has said it is ready (its engine up, trainees
        may join): its control socket is bound before that."""
        if self._ready_pid != record.pid:
            if not any(ln.startswith(READY) for ln in self._output(record.out_offset)):
                return False
            self._ready_pid = record.pid
        return True

    def _endpoints(self) -> list[str]:
        """The training installation's listeners, the control socket first."""
        t = self.train
        return [t.replay_rpc, t.bus_sub, t.engine_rpc, t.bus_pub]

    def _busy(self, now: SessionState) -> str:
        who = f" (pid {now.pid})" if now.pid else " (started elsewhere)"
        return (f"a training session is already {now.phase}{who}: end it before "
                "starting another")

    def _ended(self, record: _Record | None, code: int | None, killed_after: float = 0.0
               ) -> None:
        """Remember how the session ended (from its output), forget its pid file."""
        self._proc = None
        self.pid_file.unlink(missing_ok=True)
        if record is None:
            self._last = SessionState("ended" if code == 0 else "failed",
                                      detail=f"exit code {code}")
            return
        lines = self._output(record.out_offset)
        report = next((Path(ln[len("report: "):]) for ln in reversed(lines)
                       if ln.startswith("report: ")), None)
        error = next((ln for ln in reversed(lines) if ln.startswith("replay: ")), "")
        base = SessionState(title=record.title, pid=record.pid, started_at=record.started_at,
                            report=report)
        failed = bool(error) or code not in (0, None)
        if killed_after:
            self._last = dataclasses.replace(
                base, phase="failed", detail=f"it did not end within {killed_after:g} s "
                "and was killed; no report was written")
        elif failed and not record.ending:
            self._last = dataclasses.replace(
                base, phase="failed",
                detail=error.removeprefix("replay: ") or
                f"it stopped with exit code {code}; see {self.out_file}")
        else:  # played out, or ended when asked (while starting, it fails to start)
            self._last = dataclasses.replace(
                base, phase="ended",
                detail=f"report: {report}" if report else
                "it ended before it had started" if failed else
                "no trainee worked its alerts (or it was a recorded period): no report")

    def _output(self, offset: int) -> list[str]:
        """The session's lines in replay.out (the tail, if it wrote much)."""
        try:
            with open(self.out_file, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(offset, size - OUT_TAIL_BYTES))
                return f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def _read(self) -> _Record | None:
        try:
            data = json.loads(self.pid_file.read_text(encoding="utf-8"))
            return _Record(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            log.warning("unreadable %s: ignored", self.pid_file)
            self.pid_file.unlink(missing_ok=True)
            return None

    def _write(self, record: _Record) -> None:
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(record)), encoding="utf-8")
        tmp.replace(self.pid_file)

    # --------------------------------------------------------------- stop
    def stop(self, grace_s: float = STOP_GRACE_S) -> SessionState:
        """End the running session: SIGTERM, then after ``grace_s`` SIGKILL
        for it and what is left of its services. Blocks until all are gone;
        returns how it ended."""
        with self._lock:
            now = self._state()
            record = self._read()
            proc = self._proc
            if record is not None:
                record.ending = True
                self._write(record)
        if not now.active:
            raise LaunchError("no training session is running")
        if record is not None:
            leader: int | None = record.pid
            ticks = record.ticks
            tree = _tree(record.pid)
        else:  # started elsewhere: the processes behind its sockets
            leader, tree = self._foreign()
            ticks = _ticks(leader) if leader is not None else 0
            if leader is None and not tree:
                raise LaunchError("a training session runs, but not as this user: end it "
                                  "from its replay bar or where it was started")
        forced = False
        if leader is not None:
            log.info("ending the training session (pid %d)", leader)
            with contextlib.suppress(ProcessLookupError):
                os.kill(leader, signal.SIGTERM)
            forced = not self._gone(leader, ticks, proc, grace_s)
        if leader is not None and forced:
            log.error("the training session (pid %d) ignored SIGTERM for %g s; killing it",
                      leader, grace_s)
            known = {p for p, _ in tree}  # services it started meanwhile
            tree += [item for item in _tree(leader) if item[0] not in known]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if proc is not None:
                    os.killpg(leader, signal.SIGKILL)  # its own group: start_new_session
                else:
                    os.kill(leader, signal.SIGKILL)
            self._gone(leader, ticks, proc, KILL_WAIT_S)
        self._sweep(tree)
        with self._lock:
            code = proc.returncode if proc is not None else None
            if record is not None:
                self._ended(record, code, grace_s if forced else 0.0)
            else:
                self._last = SessionState("ended", detail="the session started elsewhere "
                                          "was ended")
            return self._last

    def _foreign(self) -> tuple[int | None, list[tuple[int, int]]]:
        """A session started elsewhere: its ``replay`` process (the control
        socket's owner, or the services' parent while it has not bound that
        yet; None when its services outlived it) and its services."""
        owners = {p for e in self._endpoints() for p in socket_owners(e)}
        leader = next(iter(socket_owners(self.train.replay_rpc)), None)
        if leader is None:
            parents = {got[1] for p in owners if (got := _stat(p)) is not None}
            leader = next((pp for pp in sorted(parents) if pp not in (1, os.getpid())
                           and b"replay" in _cmdline(pp)), None)
        tree = _tree(leader) if leader is not None else []
        known = {p for p, _ in tree}
        tree += [(p, _ticks(p)) for p in sorted(owners) if p != leader and p not in known]
        return leader, tree

    @staticmethod
    def _gone(pid: int, ticks: int, proc: subprocess.Popen[bytes] | None,
              timeout_s: float) -> bool:
        if proc is not None:
            try:
                proc.wait(timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout_s
        while alive(pid, ticks):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _sweep(self, tree: list[tuple[int, int]]) -> None:
        """The session's services still running (it was killed, or they hang):
        SIGTERM, a moment, then SIGKILL."""
        left = [(p, t) for p, t in tree if alive(p, t)]
        for sig, wait_s in ((signal.SIGTERM, KILL_WAIT_S), (signal.SIGKILL, KILL_WAIT_S)):
            if not left:
                return
            log.warning("training services left behind: %s; %s",
                        ", ".join(str(p) for p, _ in left), sig.name)
            for pid, _ in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while left and time.monotonic() < deadline:
                time.sleep(0.05)
                left = [(p, t) for p, t in left if alive(p, t)]

    def close(self) -> None:
        """Forget the consoles opened here (they run on); nothing is stopped."""
        with self._lock:
            self._consoles.clear()
