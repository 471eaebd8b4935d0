"""Tests for the bootstrap script and the shared test services.

Why: CI trusts ``python3 -m console.bootstrap test`` to fail when nothing ran,
and every PostgreSQL / Xvfb test trusts the session fixtures to give it a
private, working server.  If either is wrong, the rest of the suite lies.
"""

from __future__ import annotations

import ast
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from console import bootstrap
from tests.services import descendants, find_leaks, free_tcp_port, kill_processes

REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- exit status


@pytest.mark.parametrize(
    ("pytest_code", "expected"),
    [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 1)],
)
def test_no_tests_collected_is_a_failure(pytest_code: int, expected: int) -> None:
    assert bootstrap.exit_status_for(pytest_code) == expected


def test_junit_summary_counts_outcomes_and_folders(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        textwrap.dedent(
            """\
            <?xml version="1.0" encoding="utf-8"?>
            <testsuites><testsuite name="pytest">
              <testcase classname="tests.test_bootstrap" name="test_a"/>
              <testcase classname="tests.models.test_zones.TestEnter" name="test_b"/>
              <testcase classname="tests.models.test_zones" name="test_c">
                <skipped message="no"/></testcase>
              <testcase classname="tests.db.test_store" name="test_d">
                <failure message="boom"/></testcase>
              <testcase classname="tests.db.test_store" name="test_e">
                <error message="setup"/></testcase>
            </testsuite></testsuites>
            """
        )
    )
    summary = bootstrap.summarize_junit(report)
    assert summary is not None
    assert (summary.passed, summary.failed, summary.errors, summary.skipped) == (2, 1, 1, 1)
    assert dict(summary.by_folder) == {"tests": 1, "tests/models": 2, "tests/db": 2}
    assert summary.result_line() == "bootstrap: 2 passed, 2 failed, 1 skipped"
    assert "ran 5 tests" in summary.which_line()


def test_junit_summary_of_missing_report_is_none(tmp_path: Path) -> None:
    assert bootstrap.summarize_junit(tmp_path / "absent.xml") is None


# --------------------------------------------------------------------------- packages, stdlib


def test_dpkg_status_parsing() -> None:
    output = (
        "libgl1 install ok installed\n"
        "libgl1:i386 deinstall ok config-files\n"
        "xvfb hold ok installed\n"
        "postgresql deinstall ok config-files\n"
    )
    assert bootstrap.parse_dpkg_status(output) == {"libgl1", "xvfb"}


def test_test_packages_include_demo_packages_and_services() -> None:
    assert set(bootstrap.DEMO_PACKAGES) <= set(bootstrap.TEST_PACKAGES)
    assert {"xvfb", "postgresql", "fonts-nanum"} <= set(bootstrap.TEST_PACKAGES)


def test_bootstrap_imports_only_the_standard_library() -> None:
    """It runs under the system python before the venv exists."""
    tree = ast.parse(Path(bootstrap.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    non_stdlib = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert not non_stdlib


def test_ci_runs_exactly_the_readme_test_command() -> None:
    script = REPO_ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    commands = [
        line.strip()
        for line in script.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))
    ]
    assert commands == ["python3 -m console.bootstrap test"]


# --------------------------------------------------------------------------- PostgreSQL


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN state on ``port`` (from /proc/net)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


@pytest.mark.postgres
def test_postgres_fixture_gives_a_working_loopback_only_server(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
            assert conn.execute(text("select current_database()")).scalar_one() == "childsafe_test"
            assert conn.execute(text("show listen_addresses")).scalar_one() == "127.0.0.1"
            assert conn.execute(text("show server_version_num")).scalar_one().startswith("15")
    finally:
        engine.dispose()
    port = engine.url.port
    assert port is not None
    # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex; nothing else may listen.
    assert _listening_addresses(port) == {"0100007F"}


# --------------------------------------------------------------------------- Xvfb


@pytest.mark.xvfb
def test_xvfb_fixture_gives_a_display(xvfb_display: str) -> None:
    number = xvfb_display.lstrip(":")
    assert Path(f"/tmp/.X11-unix/X{number}").is_socket()
    if shutil.which("xdpyinfo") is None:
        return
    result = subprocess.run(
        ["xdpyinfo", "-display", xvfb_display],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "dimensions:    1600x1000 pixels" in result.stdout


# --------------------------------------------------------------------------- helpers


def test_free_tcp_port_can_be_bound() -> None:
    port = free_tcp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_data_dir_is_short_and_fresh(data_dir: Path) -> None:
    assert data_dir.is_dir()
    assert not any(data_dir.iterdir())
    # room for "<data_dir>/run/bus/<name>.ipc" under the 107-byte sun_path limit
    assert len(str(data_dir)) < 40


def test_leak_check_sees_a_running_child_and_kills_it() -> None:
    before = descendants()
    child = subprocess.Popen(["sleep", "60"])
    try:
        leaked = find_leaks(before, grace=0.0)
        assert [p.pid for p in leaked] == [child.pid]
        for _ in range(100):  # right after exec, /proc/<pid>/cmdline can still be empty
            if "sleep 60" in leaked[0].cmdline:
                break
            time.sleep(0.02)
            leaked = find_leaks(before, grace=0.0)
        assert "sleep 60" in leaked[0].cmdline
        kill_processes(leaked)
        assert child.wait(timeout=5) == -9
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert find_leaks(before, grace=0.0) == []


@pytest.mark.parametrize(("args", "chosen"), [
    ([], False), (["-k", "system", "-x"], False), (["tests/console/test_demo.py"], False),
    (["--no-header"], False), (["-n", "0"], True), (["-n4"], True), (["-nauto"], True),
    (["--numprocesses=3"], True), (["--dist", "load"], True), (["-p", "no:xdist"], True),
    (["-pno:xdist"], True), (["-p", "no:randomly"], False),
])
def test_the_suite_runs_on_two_workers_unless_told_otherwise(args: list[str],
                                                             chosen: bool) -> None:
    assert bootstrap._chooses_workers(args) is chosen
