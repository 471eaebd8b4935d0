"""One-command setup for a fresh checkout: ``demo`` and ``test``.

    python3 -m console.bootstrap demo [childsafe demo args...]
    python3 -m console.bootstrap test [pytest args...]

Why this exists: the README promises that these two commands work on a bare
Debian machine, and CI runs the second one in a fresh clone.  So this module
prepares everything a developer would otherwise do by hand (Debian packages,
the ``.venv``, the editable install) and then hands over to the real program.

It runs under the *system* Python before any virtualenv exists, so it must
import nothing outside the standard library (a test enforces this).  It also
serves the test suite: ``tests/services.py`` reuses :func:`start_xvfb`.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = REPO_ROOT / ".venv"
VENV_PYTHON = VENV_DIR / "bin" / "python"
PYPROJECT = REPO_ROOT / "pyproject.toml"
# Lives inside .venv so that deleting the venv also forgets the install.
INSTALL_STAMP = VENV_DIR / ".childsafe-install-stamp"

# Runtime libraries Qt's xcb platform plugin dlopen()s; PySide6 wheels do not
# ship them, and a missing one shows up only as "could not load xcb" at start.
QT_XCB_PACKAGES: tuple[str, ...] = (
    "libxcb-icccm4",
    "libxcb-keysyms1",
    "libxcb-cursor0",
    "libxcb-xinerama0",
    "libxcb-randr0",
    "libxcb-render-util0",
    "libxcb-image0",
    "libxcb-shape0",
    "libxcb-xkb1",
    "libxkbcommon-x11-0",
    "libegl1",
    "libgl1",
    "libfontconfig1",
    "libdbus-1-3",
)
# Hangul labels (zone and district names) need a Korean font; libvlc plays
# CCTV (its X11 video output is in vlc-plugin-video-output); the demo's
# stand-in cameras are a GStreamer RTSP server run by Debian's python3.
DEMO_PACKAGES: tuple[str, ...] = (
    *QT_XCB_PACKAGES,
    "fonts-nanum",
    "libvlc5",
    "vlc-plugin-base",
    "vlc-plugin-video-output",
    "gir1.2-gst-rtsp-server-1.0",
    "python3-gi",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-x",  # Pango's clockoverlay, a Recommends that --no-install-recommends skips
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-libav",
)
# Tests use real parts: Xvfb for GUI tests and a private PostgreSQL cluster.
# PostGIS: `bench zones` compares the geofence with ST_Contains (its smoke test too)
TEST_PACKAGES: tuple[str, ...] = (*DEMO_PACKAGES, "xvfb", "postgresql",
                                  "postgresql-15-postgis-3")

PYTEST_NO_TESTS_COLLECTED = 5
# pytest-xdist workers, each a test module at a time (--dist loadfile: a
# module's backend fixture starts once). Two, as CI's machine has two cores
# and most end-to-end time is waiting on processes and timers; more would
# start as many PostgreSQL servers and backends at once.
TEST_WORKERS = 2

USAGE = """\
usage: python3 -m console.bootstrap demo [--headless] [childsafe demo args...]
       python3 -m console.bootstrap test [pytest args...]

Installs missing Debian packages (as root), creates .venv, installs the
project into it, then runs the demo or the test suite (ruff, then pytest).
"""


class BootstrapError(Exception):
    """A setup step failed; the message tells the user what to do."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def log(message: str) -> None:
    """Print one progress line; flushed so it interleaves correctly with children."""
    print(f"[bootstrap] {message}", flush=True)


# --------------------------------------------------------------------------- Debian packages


def parse_dpkg_status(output: str) -> set[str]:
    """Return the packages that ``dpkg-query -W -f='${Package} ${Status}\\n'`` shows installed.

    Status is "want flag status"; only the last word matters ("install ok
    installed" and "hold ok installed" both count, "deinstall ok config-files"
    does not).  Multi-arch names come as ``name:arch`` and are reduced to ``name``.
    """
    installed: set[str] = set()
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-1] == "installed":
            installed.add(parts[0].split(":", 1)[0])
    return installed


def missing_debian_packages(packages: Iterable[str]) -> list[str]:
    """Ask dpkg (in one call, it is cheap) which of ``packages`` are not installed."""
    wanted = list(dict.fromkeys(packages))
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\n", *wanted],
        capture_output=True,
        text=True,
        check=False,  # exits 1 when some package is unknown; stdout still lists the rest
    )
    installed = parse_dpkg_status(result.stdout)
    return [p for p in wanted if p not in installed]


def ensure_debian_packages(packages: Sequence[str]) -> None:
    """Install what is missing (root) or print the exact command (not root) and stop."""
    if shutil.which("dpkg-query") is None:
        log("dpkg-query not found: not a Debian system, skipping the system package check")
        return
    missing = missing_debian_packages(packages)
    if not missing:
        return
    if os.geteuid() != 0:
        raise BootstrapError(
            f"missing Debian packages: {' '.join(missing)}. Install them, then re-run:\n\n"
            f"    sudo apt-get install -y {' '.join(missing)}\n",
            exit_code=2,
        )
    log(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], env=env, what="apt-get update")
    _run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        env=env,
        what="apt-get install",
    )
    still_missing = missing_debian_packages(missing)
    if still_missing:
        raise BootstrapError(f"apt-get did not install: {' '.join(still_missing)}")


def _run(
    cmd: Sequence[str | Path],
    *,
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run a setup command; turn a failure into a one-line BootstrapError."""
    result = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, check=False)
    if result.returncode != 0:
        command = shlex.join(str(c) for c in cmd)
        raise BootstrapError(f"{what} failed (exit {result.returncode}): {command}")


# --------------------------------------------------------------------------- virtualenv


def _pyproject_digest() -> str:
    """Content hash of pyproject.toml plus the interpreter, recorded in the stamp."""
    digest = hashlib.sha256(PYPROJECT.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def install_is_current() -> bool:
    """True when .venv already holds an install of this pyproject.toml.

    The cheap test is "pyproject.toml is not newer than the stamp".  A newer
    mtime with identical content (git checkout, touch) is also current: the
    stamp is refreshed so the next run takes the fast path again.
    """
    if not INSTALL_STAMP.exists() or not VENV_PYTHON.exists():
        return False
    if PYPROJECT.stat().st_mtime <= INSTALL_STAMP.stat().st_mtime:
        return True
    if INSTALL_STAMP.read_text().strip() == _pyproject_digest():
        INSTALL_STAMP.touch()
        return True
    return False


def _venv_python_works() -> bool:
    """A venv whose base interpreter was removed (pyenv upgrade) has a dead bin/python."""
    if not VENV_PYTHON.exists():
        return False
    probe = subprocess.run([str(VENV_PYTHON), "-c", "pass"], capture_output=True, check=False)
    return probe.returncode == 0


def ensure_venv() -> None:
    """Create .venv if needed and (re)install the project when pyproject.toml changed."""
    if VENV_DIR.exists() and not _venv_python_works():
        log(f"{VENV_DIR} is broken (its python does not run); recreating it")
        shutil.rmtree(VENV_DIR)
    if not VENV_DIR.exists():
        log(f"creating {VENV_DIR} with {sys.executable}")
        _run([sys.executable, "-m", "venv", VENV_DIR], what="python3 -m venv")
    if install_is_current():
        return
    log("installing the project into .venv (pip install -e '.[test]'; minutes on a cold cache)")
    started = time.monotonic()
    pip = [VENV_PYTHON, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "-qq", "--upgrade", "pip"], what="pip upgrade")
    _run([*pip, "install", "--quiet", "-e", ".[test]"], cwd=REPO_ROOT, what="pip install")
    INSTALL_STAMP.write_text(_pyproject_digest() + "\n")
    log(f"installed in {time.monotonic() - started:.0f}s")


def venv_packages_needed() -> list[str]:
    """Debian's python3 has no ensurepip (so no venv) until python3-venv is installed."""
    if VENV_DIR.exists() or find_spec("ensurepip") is not None:
        return []
    return ["python3-venv"]


# --------------------------------------------------------------------------- Xvfb


def _display_taken(number: int) -> bool:
    return Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists()


def _xvfb_ready(number: int, pid: int) -> bool:
    """Our server (its pid is in the lock file, not a racing one's) has made its socket."""
    try:
        owner = int(Path(f"/tmp/.X{number}-lock").read_text().strip())
    except (OSError, ValueError):
        return False
    return owner == pid and Path(f"/tmp/.X11-unix/X{number}").exists()


def start_xvfb(
    screen: str = "1600x1000x24",
    *,
    first_display: int = 90,
    timeout: float = 15.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``Xvfb :N`` on a free display and wait until its socket accepts clients.

    Returns the process and the DISPLAY string (":N").  Display numbers are
    probed via lock files; if another Xvfb grabs the same number between the
    probe and our start, ours exits and the next number is tried.

    The server is started under ``setpriv --pdeathsig TERM`` so it dies with
    the process that started it: a demo that was exec()'d, or a pytest run
    that was killed, never leaves an Xvfb behind.
    """
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise BootstrapError("Xvfb not found: install the Debian package xvfb")
    wrapper = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
    number = first_display
    attempts = 0
    while attempts < 20 and number < first_display + 500:
        if _display_taken(number):
            number += 1
            continue
        attempts += 1
        with tempfile.TemporaryFile() as err_log:
            cmd = [*wrapper, xvfb, f":{number}", "-screen", "0", screen, "-nolisten", "tcp"]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err_log, stderr=err_log)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                if _xvfb_ready(number, proc.pid):
                    return proc, f":{number}"
                time.sleep(0.02)
            if proc.poll() is None:  # alive but never became ready
                proc.kill()
                proc.wait()
                err_log.seek(0)
                raise BootstrapError(
                    f"Xvfb :{number} was not ready within {timeout:.0f}s:\n"
                    + err_log.read().decode(errors="replace")
                )
        number += 1  # lost a race for this display number
    raise BootstrapError("could not start Xvfb on any free display")


# --------------------------------------------------------------------------- demo


def run_demo(args: list[str]) -> int:
    """Prepare the machine, then exec ``python -m console demo`` (never returns on success)."""
    headless = "--headless" in args
    needs_xvfb = not headless and not os.environ.get("DISPLAY")
    packages = [*DEMO_PACKAGES, *venv_packages_needed()]
    if needs_xvfb:
        packages.append("xvfb")
    ensure_debian_packages(packages)
    ensure_venv()
    env = dict(os.environ)
    if needs_xvfb:
        _proc, display = start_xvfb()
        env["DISPLAY"] = display
        log(
            f"no $DISPLAY: the window is on a virtual screen (Xvfb {display}) that you cannot see;"
            " use --headless, or run with a real display"
        )
    cmd = [str(VENV_PYTHON), "-m", "console", "demo", *args]
    log("exec " + shlex.join(cmd))
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


# --------------------------------------------------------------------------- test


def exit_status_for(pytest_code: int) -> int:
    """Map pytest's exit code to ours: "no tests collected" (5) is a failure.

    A run that executes nothing must never look green (a wrong path or -k
    expression would otherwise pass CI silently).
    """
    if pytest_code == PYTEST_NO_TESTS_COLLECTED:
        return 1
    return pytest_code


@dataclass
class RunSummary:
    """What a JUnit XML report says ran: outcome counts and tests per folder."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    by_folder: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    def result_line(self) -> str:
        """The closing line, in the plain "N passed, N failed" form CI tools read."""
        return (
            f"bootstrap: {self.passed} passed, {self.failed + self.errors} failed,"
            f" {self.skipped} skipped"
        )

    def which_line(self) -> str:
        """Say which tests ran: the count per test folder."""
        parts = ", ".join(f"{name} ({n})" for name, n in sorted(self.by_folder.items()))
        extra = f", {self.errors} errors" if self.errors else ""
        return f"ran {self.total} tests{extra} from: {parts or 'nothing'}"


def _folder_of(classname: str) -> str:
    """``tests.models.test_zones.TestX`` -> ``tests/models`` (module's folder)."""
    parts = classname.split(".")
    module_end = len(parts)
    for i, part in enumerate(parts):
        if part.startswith("test_") or part.endswith("_test"):
            module_end = i + 1
            break
    return "/".join(parts[: max(module_end - 1, 1)])


def summarize_junit(path: Path) -> RunSummary | None:
    """Read pytest's JUnit XML report; None when it is missing or unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    summary = RunSummary()
    for case in root.iter("testcase"):
        if case.find("error") is not None:
            summary.errors += 1
        elif case.find("failure") is not None:
            summary.failed += 1
        elif case.find("skipped") is not None:
            summary.skipped += 1
        else:
            summary.passed += 1
        summary.by_folder[_folder_of(case.get("classname", "?"))] += 1
    return summary


def _user_junit_path(args: Sequence[str]) -> Path | None:
    """The report path the user asked for with --junitxml/--junit-xml, if any."""
    for i, arg in enumerate(args):
        for flag in ("--junitxml", "--junit-xml"):
            if arg == flag and i + 1 < len(args):
                return REPO_ROOT / args[i + 1]
            if arg.startswith(flag + "="):
                return REPO_ROOT / arg.split("=", 1)[1]
    return None


def _run_forwarding_signals(cmd: Sequence[str], env: dict[str, str]) -> int:
    """Run a child in the repo root and return its exit code.

    Ctrl-C reaches the child directly (same process group), so we just keep
    waiting for it to print its summary; SIGTERM (a CI timeout) is forwarded.
    """
    proc = subprocess.Popen(list(cmd), cwd=REPO_ROOT, env=env)
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: proc.terminate())
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def _chooses_workers(args: Sequence[str]) -> bool:
    """Whether the caller's pytest arguments already say how to run
    (``-n N``, ``--numprocesses``, ``--dist``, or ``-p no:xdist``)."""
    for i, arg in enumerate(args):
        if arg.startswith(("-n", "--numprocesses", "--dist")):
            return True
        if arg == "-p" and i + 1 < len(args) and args[i + 1] == "no:xdist":
            return True
        if arg == "-pno:xdist":
            return True
    return False


def run_tests(args: list[str]) -> int:
    """Lint with ruff, then run pytest; return our exit status."""
    ensure_debian_packages([*TEST_PACKAGES, *venv_packages_needed()])
    ensure_venv()
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")

    log("ruff check .")
    ruff_code = _run_forwarding_signals([str(VENV_PYTHON), "-m", "ruff", "check", "."], env)
    if ruff_code != 0:
        log(f"FAIL: ruff found lint errors (exit {ruff_code}); tests were not run")
        return ruff_code

    junit = _user_junit_path(args)
    with tempfile.TemporaryDirectory(prefix="cs-bootstrap-") as tmp:
        pytest_args = list(args)
        if not _chooses_workers(args):
            pytest_args += ["-n", str(TEST_WORKERS), "--dist", "loadfile"]
        if not any(a.startswith("--durations") for a in args):
            # the slowest tests at the end of every run: the suite must stay
            # well under CI's 30 minutes, and this says where the time goes
            pytest_args.append("--durations=25")
        if junit is None:
            junit = Path(tmp) / "junit.xml"
            pytest_args.append(f"--junitxml={junit}")
        cmd = [str(VENV_PYTHON), "-m", "pytest", *pytest_args]
        log(f"{shlex.join(['pytest', *args])} with QT_QPA_PLATFORM={env['QT_QPA_PLATFORM']}")
        started = time.monotonic()
        pytest_code = _run_forwarding_signals(cmd, env)
        elapsed = time.monotonic() - started
        summary = summarize_junit(junit)

    status = exit_status_for(pytest_code)
    if pytest_code == PYTEST_NO_TESTS_COLLECTED:
        log("FAIL: pytest collected no tests (exit 5); a run that tests nothing is a failure")
    elif status != 0:
        log(f"FAIL: pytest exited with {pytest_code}")
    if summary is None:
        log(f"pytest exit {pytest_code} after {elapsed:.0f}s; no JUnit report to summarize")
        return status
    log(summary.which_line() + f" in {elapsed:.0f}s")
    print(summary.result_line(), flush=True)
    return status


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``demo`` / ``test``; everything after the command is passed through."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    try:
        if command == "demo":
            return run_demo(rest)
        if command == "test":
            return run_tests(rest)
    except BootstrapError as exc:
        log(f"FAIL: {exc}")
        return exc.exit_code
    print(f"unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
