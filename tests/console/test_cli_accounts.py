"""``childsafe users …`` as real subprocesses on a fresh store, and the demo's
accounts: what an administrator types on the server, checked against what
the store then lets people do."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from db import accounts
from db.demo_accounts import DEMO_USERS, ensure_demo_accounts, read_demo_accounts
from db.store import open_store, sqlite_url

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-1"


def childsafe(data_dir: Path, *args: str, password: str | None = PASSWORD
              ) -> subprocess.CompletedProcess[str]:
    """One ``python -m console`` run; stdin is never a terminal, so a prompt
    the command should not have made shows up as an error, not a hang."""
    env = {k: v for k, v in os.environ.items() if k != "CHILDSAFE_PASSWORD"}
    if password is not None:
        env["CHILDSAFE_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "console", *args, "--data-dir", str(data_dir)],
                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


def sign_in(data_dir: Path, user: str, password: str) -> accounts.SessionInfo:
    engine, sessions = open_store(sqlite_url(data_dir))
    try:
        with sessions() as s:
            try:
                return accounts.sign_in(s, user, password, "test")
            finally:
                s.commit()
    finally:
        engine.dispose()


def listed(data_dir: Path) -> dict[str, list[str]]:
    out = childsafe(data_dir, "users", "list", password=None)
    assert out.returncode == 0, out.stderr
    return {line.split("\t")[0]: line.split("\t")[1:] for line in out.stdout.splitlines()}


def test_add_list_passwd_disable(data_dir: Path) -> None:
    out = childsafe(data_dir, "users", "add", "kim.operator", "--role", "operator",
                    "--role", "supervisor")
    assert out.returncode == 0, out.stderr
    assert PASSWORD not in out.stdout + out.stderr
    assert listed(data_dir) == {"kim.operator": ["operator,supervisor", "enabled"]}
    assert sign_in(data_dir, "kim.operator", PASSWORD).roles == {"operator", "supervisor"}

    again = childsafe(data_dir, "users", "add", "kim.operator", "--role", "operator")
    assert again.returncode == 2
    assert "user kim.operator exists already" in again.stderr

    new_password = "battery-staple-2"
    out = childsafe(data_dir, "users", "passwd", "kim.operator", password=new_password)
    assert out.returncode == 0, out.stderr
    with pytest.raises(accounts.SignInRefused):
        sign_in(data_dir, "kim.operator", PASSWORD)
    assert sign_in(data_dir, "kim.operator", new_password).user == "kim.operator"

    out = childsafe(data_dir, "users", "disable", "kim.operator", password=None)
    assert out.returncode == 0, out.stderr
    assert "ended 2 session(s)" in out.stdout  # the two sign-ins above
    assert listed(data_dir)["kim.operator"] == ["operator,supervisor", "disabled"]
    with pytest.raises(accounts.SignInRefused, match="disabled"):
        sign_in(data_dir, "kim.operator", new_password)


def test_bad_input_is_refused_with_a_reason(data_dir: Path) -> None:
    short = childsafe(data_dir, "users", "add", "lee", "--role", "operator", password="short")
    assert short.returncode == 2
    assert "at least 10 characters" in short.stderr
    bad_role = childsafe(data_dir, "users", "add", "lee", "--role", "janitor")
    assert bad_role.returncode == 2 and "invalid choice: 'janitor'" in bad_role.stderr
    bad_name = childsafe(data_dir, "users", "add", "Lee Park", "--role", "operator")
    assert bad_name.returncode == 2 and "user name 'Lee Park'" in bad_name.stderr
    nobody = childsafe(data_dir, "users", "passwd", "nobody")
    assert nobody.returncode == 2 and "no user nobody" in nobody.stderr
    assert listed(data_dir) == {}


def test_a_locked_account_is_listed_with_its_lock(data_dir: Path) -> None:
    assert childsafe(data_dir, "users", "add", "park", "--role", "auditor").returncode == 0
    for _ in range(accounts.MAX_FAILURES):
        with pytest.raises(accounts.SignInRefused):
            sign_in(data_dir, "park", "wrong-password")
    roles, state, lock = listed(data_dir)["park"]
    assert (roles, state) == ("auditor", "enabled")
    assert lock.startswith("locked until ")
    # A new password is the administrator's way to unlock.
    assert childsafe(data_dir, "users", "passwd", "park").returncode == 0
    assert listed(data_dir)["park"] == ["auditor", "enabled"]


def test_no_password_and_no_terminal_is_an_error_not_a_hang(data_dir: Path) -> None:
    out = childsafe(data_dir, "users", "add", "choi", "--role", "operator", password=None)
    assert out.returncode == 2
    assert "set CHILDSAFE_PASSWORD or run this in a terminal" in out.stderr
    assert listed(data_dir) == {}


def test_the_password_is_not_taken_from_the_command_line(data_dir: Path) -> None:
    out = childsafe(data_dir, "users", "add", "choi", "--role", "operator", "--password",
                    PASSWORD, password=None)
    assert out.returncode == 2 and "unrecognized arguments" in out.stderr


def test_demo_accounts_are_made_once_in_a_private_file(data_dir: Path) -> None:
    path = data_dir / "demo-accounts.txt"
    engine, sessions = open_store(sqlite_url(data_dir))
    try:
        with sessions() as s:
            made = ensure_demo_accounts(s, path)
        assert made is not None and set(made) == set(DEMO_USERS) == {
            "operator1", "supervisor1", "trainer1", "auditor1", "admin1"}
        assert len(set(made.values())) == 5 and all(len(p) >= 16 for p in made.values())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert read_demo_accounts(path) == made
        lines = path.read_text().splitlines()
        assert f"supervisor1\t{made['supervisor1']}\tsupervisor,operator" in lines
        with sessions() as s:
            assert ensure_demo_accounts(s, path) is None
            info = accounts.sign_in(s, "supervisor1", made["supervisor1"])
            assert info.roles == {"supervisor", "operator"}
            assert accounts.sign_in(s, "trainer1", made["trainer1"]).roles == {"trainer"}
        assert read_demo_accounts(path) == made
    finally:
        engine.dispose()
    assert set(listed(data_dir)) == set(DEMO_USERS)
