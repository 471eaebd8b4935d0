"""``childsafe alerts list`` and ``childsafe alert ID …`` as real subprocesses
against a real backend: an SOS pressed on a phone, then worked from a script
the way a console works it (through the engine, naming the version seen)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from db.store import open_store
from db.tables import User, UserSession
from models.messages import AlertView
from tests.console.conftest import SEOUL_FOREST, TEST_PASSWORD, Backend, wait_for

ROOT = Path(__file__).resolve().parents[2]


def childsafe(data_dir: Path, *args: str, password: str = TEST_PASSWORD,
              config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHILDSAFE_PASSWORD": password}
    extra = ["--config", str(config)] if config else []
    return subprocess.run([sys.executable, "-m", "console", *args, "--data-dir", str(data_dir),
                           *extra], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


class Cli:
    """The backend's installation as seen from a script on the server."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.config = backend.config.data_dir / "cli-config.json"
        self.config.write_text(backend.config.to_json(), encoding="utf-8")

    def run(self, *args: str, password: str = TEST_PASSWORD) -> subprocess.CompletedProcess[str]:
        return childsafe(self.backend.config.data_dir, *args, password=password,
                         config=self.config)

    def alert(self, alert_id: int, *args: str, user: str = "operator1") -> str:
        out = self.run("alert", str(alert_id), *args, "--user", user)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def listed(self, *args: str, user: str = "operator1") -> dict[int, list[str]]:
        out = self.run("alerts", "list", *args, "--user", user)
        assert out.returncode == 0, out.stderr
        return {int(line.split("\t")[0]): line.split("\t")[1:]
                for line in out.stdout.splitlines()}


def sos(backend: Backend) -> AlertView:
    device = backend.roster[0].device_id
    assert backend.fix(device, *SEOUL_FOREST, alarm="sos")[0] == 200
    found: list[AlertView] = []

    def opened() -> bool:
        found[:] = [a for a in backend.snapshot().alerts
                    if a.kind == "sos" and a.device_id == device]
        return bool(found)

    wait_for(opened, 15, "the SOS alert")
    return found[0]


def open_sessions(backend: Backend) -> list[str]:
    engine, sessions = open_store(backend.config.db_url)
    try:
        with sessions() as s:
            return list(s.scalars(select(User.name).join(UserSession,
                                                         UserSession.user_id == User.id)
                                  .where(UserSession.ended_at.is_(None))))
    finally:
        engine.dispose()


def test_an_sos_is_listed_and_worked_from_the_command_line(backend: Backend) -> None:
    alert = sos(backend)
    cli = Cli(backend)
    n = alert.id
    token = backend.roster[0].token
    rows = cli.listed("--open")
    assert rows[n][:6] == ["sos", "P1", "new", "-", "1", token]
    assert rows[n][6] == alert.place

    assert cli.alert(n, "ack") == f"alert {n} acknowledged (owner -, version 2)"
    assert cli.listed()[n][2:4] == ["acknowledged", "-"]
    assert cli.alert(n, "take") == f"alert {n} in_progress (owner operator1, version 3)"
    assert cli.listed()[n][2:4] == ["in_progress", "operator1"]
    assert cli.alert(n, "hold", "--reason", "guardian calling back", "--until", "5") == (
        f"alert {n} on_hold (owner operator1, version 4)")
    held = next(a for a in backend.snapshot().alerts if a.id == n)
    assert held.hold_reason == "guardian calling back"
    assert 4 * 60 < held.hold_until - time.time() <= 5 * 60
    assert cli.listed("--open")[n][2:4] == ["on_hold", "operator1"]

    # Refusals: the role table, then the alert's own rules; nothing changes.
    reopen = cli.run("alert", str(n), "reopen", "--note", "again", "--user", "operator1")
    assert reopen.returncode == 1
    assert "refused (forbidden): operator1 (operator) may not do cmd.reopen" in reopen.stderr
    resume = cli.run("alert", str(n), "resume", "--user", "operator2")
    assert resume.returncode == 1
    assert f"refused (not_owner): alert {n} is operator1's" in resume.stderr
    assert cli.listed()[n][2:4] == ["on_hold", "operator1"]

    assert cli.alert(n, "resume") == f"alert {n} in_progress (owner operator1, version 5)"
    assert cli.alert(n, "step", "cctv", "--note", "nobody on camera") == (
        f"alert {n} in_progress (owner operator1, version 6)")
    assert cli.alert(n, "assign", "operator2", user="supervisor1") == (
        f"alert {n} in_progress (owner operator2, version 7)")
    assert cli.alert(n, "dispatch", "--target", "police", "--reference", "112-0042",
                     user="operator2") == f"alert {n} dispatched (owner operator2, version 8)"
    detail = next(a for a in backend.snapshot().alerts if a.id == n)
    assert (detail.steps, detail.dispatched_to, detail.dispatch_ref) == (
        ["cctv"], "police", "112-0042")
    assert cli.listed("--all", "--since", "1", user="auditor1")[n][2:4] == [
        "dispatched", "operator2"]

    wrong = cli.run("alerts", "list", "--user", "operator1", password="not-the-password")
    assert wrong.returncode == 1 and "wrong user name or password" in wrong.stderr
    missing = cli.run("alert", "999999", "ack", "--user", "operator1")
    assert missing.returncode == 1 and "refused" in missing.stderr
    # Every run signed out at its end, the refused ones too.
    assert open_sessions(backend) == []


def test_bad_arguments_are_refused_before_the_engine_is_asked(data_dir: Path) -> None:
    """No backend runs here: each of these must fail before connecting."""
    no_user = childsafe(data_dir, "alert", "1", "assign", "--user", "supervisor1")
    assert no_user.returncode == 2 and "alert assign needs a user" in no_user.stderr
    stray = childsafe(data_dir, "alert", "1", "ack", "operator2", "--user", "operator1")
    assert stray.returncode == 2 and "takes no argument" in stray.stderr
    no_target = childsafe(data_dir, "alert", "1", "dispatch", "--user", "operator1")
    assert no_target.returncode == 2 and "--target police|fire" in no_target.stderr
    no_outcome = childsafe(data_dir, "alert", "1", "resolve", "--user", "operator1")
    assert no_outcome.returncode == 2 and "needs --outcome" in no_outcome.stderr


def test_no_backend_is_a_clear_error_within_the_timeout(data_dir: Path) -> None:
    start = time.monotonic()
    out = childsafe(data_dir, "alerts", "list", "--user", "operator1", "--timeout", "1")
    assert out.returncode == 2
    assert "did not answer within 1 s; is the backend running?" in out.stderr
    assert time.monotonic() - start < 30
