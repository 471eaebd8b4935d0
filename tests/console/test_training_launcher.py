"""The trainer console's launcher (``console.training_launcher``) with real
sessions: ``python -m console replay`` started as a process of its own,
seen running, ended by SIGTERM (or killed when it will not end) with
nothing of it left running; a session started elsewhere found by its
sockets and ended too; bad choices refused before anything starts; past
reports listed newest first.

The sessions play the smallest shipped scenario, paused (nothing is scored
and no trainee signs in), on ipc sockets under the test's short data dir.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from console.config import Config
from console.training.install import reports_dir
from console.training_launcher import (
    Launch,
    LaunchError,
    SessionState,
    TrainingLauncher,
    _tree,
    alive,
)
from db.tape import TapeWriter, tape_dir
from tests.console.conftest import make_config, wait_for

SCENARIO = "school-morning-sos"  # 400 children, the smallest population shipped
UP_S = 25.0  # a session's start: migrations, a seeded store, three services


@pytest.fixture
def live(data_dir: Path) -> Config:
    return make_config(data_dir)


@pytest.fixture
def launcher(live: Config) -> Iterator[TrainingLauncher]:
    """A launcher that leaves nothing running, whatever the test did."""
    launcher = TrainingLauncher(live)
    yield launcher
    if launcher.state().active:
        launcher.stop(grace_s=10.0)
    for proc in launcher._consoles:
        proc.kill()
        proc.wait(5)


def running(launcher: TrainingLauncher) -> SessionState:
    wait_for(lambda: launcher.state().phase == "running", UP_S, "the session to run")
    return launcher.state()


def gone(pids: list[tuple[int, int]]) -> list[int]:
    """Those of ``pids`` (pid, start ticks) still running."""
    return [p for p, t in pids if alive(p, t)]


def test_a_session_starts_runs_and_ends_on_sigterm_leaving_nothing(
        launcher: TrainingLauncher, live: Config) -> None:
    assert launcher.state().phase == "idle"
    started = launcher.start(Launch(scenario=SCENARIO, paused=True, by="trainer1"))
    assert started.phase == "starting" and started.title == "School morning: SOS at the gate"
    assert launcher.pid_file.exists()
    now = running(launcher)
    assert now.pid == started.pid and now.ours
    leader = now.pid
    assert leader is not None
    services = _tree(leader)  # the training bus, engine and recorder
    assert len(services) == 3, services
    argv = Path(f"/proc/{leader}/cmdline").read_bytes().split(b"\0")
    assert argv[1:6] == [b"-m", b"console", b"replay", b"--scenario", SCENARIO.encode()]
    assert b"--paused" in argv and b"--by=trainer1" in argv
    assert os.getpgid(leader) == leader  # a session of its own: the console's ^C misses it

    with pytest.raises(LaunchError, match=r"already running \(pid"):
        launcher.start(Launch(scenario=SCENARIO))
    # another console on this installation sees it through the pid file
    other = TrainingLauncher(live)
    assert other.state().phase == "running" and other.state().pid == leader
    # the trainer's console for it: a process of its own, up until closed
    console_pid = launcher.open_console()
    console_out = live.log_dir / "training-console.out"
    # up: its window shown (offscreen here), waiting for someone to sign in
    wait_for(lambda: "propagateSizeHints" in console_out.read_text(), 20, "the console")
    assert alive(console_pid)
    console = launcher._consoles[0]
    console.terminate()
    assert console.wait(10) in (0, -signal.SIGTERM)  # -15: before its handler was set
    assert "Traceback" not in console_out.read_text()

    t = time.monotonic()
    ended = launcher.stop()
    took = time.monotonic() - t
    assert took < 20, f"ending took {took:.1f} s"
    assert ended.phase == "ended", ended
    assert "no report" in ended.detail  # nobody worked an alert: nothing to score
    assert gone([(leader, 0), *services]) == []
    assert not launcher.pid_file.exists()
    assert launcher.state().phase == "ended"
    assert not any(p.exists() for p in launcher.train.ipc_paths())
    out = launcher.out_file.read_text(encoding="utf-8")
    assert "training session: School morning: SOS at the gate" in out
    with pytest.raises(LaunchError, match="no training session is running"):
        launcher.stop()


def test_a_session_that_will_not_end_is_killed_with_its_services(
        launcher: TrainingLauncher) -> None:
    launcher.start(Launch(scenario=SCENARIO, paused=True))
    leader = running(launcher).pid
    assert leader is not None
    services = _tree(leader)
    os.kill(leader, signal.SIGSTOP)  # hung: SIGTERM waits for ever
    t = time.monotonic()
    ended = launcher.stop(grace_s=1.0)
    assert time.monotonic() - t < 15
    assert ended.phase == "failed" and "did not end within 1 s and was killed" in ended.detail
    assert gone([(leader, 0), *services]) == []  # its orphaned services too
    assert launcher.state().phase == "failed" and not launcher.pid_file.exists()


def test_a_session_started_elsewhere_is_seen_and_can_be_ended(
        launcher: TrainingLauncher, live: Config) -> None:
    # as a terminal would run it: no pid file, not the launcher's child
    live.run_dir.joinpath("replay-config.json").write_text(live.to_json(), encoding="utf-8")
    argv = launcher.replay_argv(Launch(scenario=SCENARIO, paused=True))
    with open(live.log_dir / "terminal.out", "wb") as out:
        terminal = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    try:
        now = running(launcher)
        assert not now.ours and now.pid is None
        # ended once ready, it ends as on ^C (ended while starting, it says it failed)
        wait_for(lambda: "training session: " in (live.log_dir / "terminal.out").read_text(),
                 UP_S, "the terminal's session to be ready")
        with pytest.raises(LaunchError, match=r"already running \(started elsewhere"):
            launcher.start(Launch(scenario=SCENARIO))
        services = _tree(terminal.pid)
        ended = launcher.stop()
        assert ended.phase == "ended"
        assert terminal.wait(15) == 0  # it ended as on ^C: scored, services stopped
        assert gone(services) == []
        assert launcher.state().phase == "ended"
    finally:
        if terminal.poll() is None:
            os.killpg(terminal.pid, signal.SIGKILL)
            terminal.wait()


def _tape(live: Config, t0: float, t1: float) -> None:
    writer = TapeWriter(tape_dir(live.data_dir))
    for t in (t0, (t0 + t1) / 2, t1):
        writer.append(t, b"sys.heartbeat", b"\x80")
    writer.close()


@pytest.mark.parametrize("launch, says", [
    (Launch(), "choose a scenario, or a recorded period"),
    (Launch(scenario="no-such"), "there is no scenario 'no-such'; there are: after-school-rush"),
    (Launch(scenario=SCENARIO, t0=1.0, t1=2.0), "a scenario or a recorded period, not both"),
    (Launch(scenario=SCENARIO, speed=3.0), "the start speed is one of 0.25×, 0.5×, 1×"),
    (Launch(t0=1_796_000_000.0, t1=1_795_999_000.0), "must come before its end"),
    (Launch(t0=1_796_000_000.0, t1=float("nan")), "not valid times"),
    (Launch(t0=1_796_000_000.0, t1=1_796_000_600.0), "nothing has been recorded yet"),
])
def test_bad_choices_are_refused_before_anything_starts(
        launcher: TrainingLauncher, live: Config, launch: Launch, says: str) -> None:
    with pytest.raises(LaunchError, match=says.replace("(", r"\(").replace(".", r"\.")):
        launcher.start(launch)
    assert not launcher.pid_file.exists() and not (live.data_dir / "training").exists()
    assert launcher.state().phase == "idle"


def test_a_period_must_lie_inside_the_tape(launcher: TrainingLauncher, live: Config) -> None:
    t0 = dt.datetime(2026, 12, 6, 8, 20, tzinfo=dt.timezone(dt.timedelta(hours=9))).timestamp()
    _tape(live, t0, t0 + 3600)
    assert launcher.span() == (t0, t0 + 3600)
    with pytest.raises(LaunchError) as refused:
        launcher.check(Launch(t0=t0 - 600, t1=t0 + 600))
    assert str(refused.value) == (
        "the recording runs from 2026-12-06 08:20:00 to 2026-12-06 09:20:00: the period "
        "2026-12-06 08:10:00 – 2026-12-06 08:30:00 is not inside it")
    with pytest.raises(LaunchError, match="not inside it"):
        launcher.check(Launch(t0=t0 + 3700, t1=t0 + 3800))
    # inside (an editor's rounding past the end is forgiven, and clamped)
    checked, title = launcher.check(Launch(t0=t0 + 60, t1=t0 + 3600.4, speed=8.0))
    assert (checked.t0, checked.t1, checked.speed) == (t0 + 60, t0 + 3600, 8.0)
    assert title == "2026-12-06 08:21 – 09:20"
    argv = launcher.replay_argv(checked)
    assert argv[4:8] == ["--from", repr(t0 + 60), "--to", repr(t0 + 3600)]
    # a training console cannot start one inside its own session
    from console.training.install import for_console

    with pytest.raises(LaunchError, match="on the training bus"):
        TrainingLauncher(for_console(live)).check(Launch(scenario=SCENARIO))


def test_past_reports_are_listed_newest_first(launcher: TrainingLauncher, live: Config
                                              ) -> None:
    assert launcher.reports() == []
    root = reports_dir(live)
    made = {}
    for n, name in enumerate(("park-zone-exit-20261206-140000",
                              "school-morning-sos-20261206-081000",
                              "after-school-rush-20261207-134000")):
        folder = root / name
        folder.mkdir(parents=True)
        page = folder / f"training-{name}.html"
        page.write_text("<html></html>", encoding="utf-8")
        (folder / f"training-{name}.csv").write_text("row\n", encoding="utf-8")
        os.utime(page, (1_796_000_000 + n * 3600, 1_796_000_000 + n * 3600))
        made[name] = page
    # the first one's page was written last (a re-export): it comes first
    os.utime(made["park-zone-exit-20261206-140000"], (1_796_020_000, 1_796_020_000))
    (root / "index.html").write_text("", encoding="utf-8")  # a stray file: not a report
    empty = root / "cut-short"
    empty.mkdir()
    os.utime(empty, (1_795_000_000, 1_795_000_000))
    reports = launcher.reports()
    assert [r.name for r in reports] == ["park-zone-exit-20261206-140000",
                                         "after-school-rush-20261207-134000",
                                         "school-morning-sos-20261206-081000", "cut-short"]
    first = reports[0]
    assert first.html == made[first.name] and first.csv is not None
    assert first.csv.suffix == ".csv" and first.when == 1_796_020_000
    assert reports[-1].html is None and reports[-1].csv is None
    # an index.html, if a report has one, is its page
    (root / first.name / "index.html").write_text("", encoding="utf-8")
    assert launcher.reports()[0].html == root / first.name / "index.html"


def test_a_trainer_on_the_live_console_starts_and_ends_a_session_from_its_tab(
        data_dir: Path, qtbot: QtBot) -> None:
    """The Training tab is a trainer's (and their current tab), hidden from
    others and absent from a training console; Start and End session run
    a real session through the launcher, off the GUI thread."""
    from console.app import ConsoleWindow
    from console.training.install import for_console
    from models.messages import SignedIn

    def sign(window: ConsoleWindow, user: str, roles: list[str]) -> None:
        window.session.deliver([SignedIn(token=f"t-{user}", user=user, roles=roles,
                                         expires_at=time.time() + 3600)])

    live = make_config(data_dir)
    window = ConsoleWindow(live)
    qtbot.addWidget(window)
    window.resize(1600, 960)
    window.show()
    qtbot.waitExposed(window)
    assert window.training is not None
    tab, side = window.training.panel, window.side
    assert not side.isTabVisible(side.indexOf(tab))
    sign(window, "trainer1", ["trainer"])
    assert side.isTabVisible(side.indexOf(tab)) and side.currentWidget() is tab
    # no live right, no live picture: the map, cameras and gateway are withheld
    assert not window._live and not window.left_split.isVisible()
    assert not side.isTabVisible(side.indexOf(window.gateway))
    qtbot.waitUntil(lambda: tab.scenario_table.rowCount() >= 3, timeout=10_000)
    assert tab.state_label.text() == "No training session is running."
    assert tab.span is None and not tab.use_period.isEnabled()  # nothing recorded here

    ids = [tab.scenario_table.item(r, 0).data(Qt.ItemDataRole.UserRole + 1)
           for r in range(tab.scenario_table.rowCount())]
    tab.scenario_table.selectRow(ids.index(SCENARIO))
    tab.paused.setChecked(True)
    tab.start_button.click()
    launcher = window.training.launcher
    try:
        qtbot.waitUntil(lambda: window.training.state.phase == "running",
                        timeout=int(UP_S * 1000))
        assert "Running: “School morning: SOS at the gate”" in tab.state_label.text()
        assert tab.stop_button.isEnabled() and not tab.start_button.isEnabled()
        record = json.loads(launcher.pid_file.read_text())
        assert b"trainer1" in Path(f"/proc/{record['pid']}/cmdline").read_bytes()  # --by
        services = _tree(record["pid"])
        tab.confirm = lambda: True
        tab.stop_button.click()
        assert tab.state_label.property("state") == "ending" and tab.busy
        # (the panel's poll may see the end before the stop's worker returns)
        qtbot.waitUntil(lambda: window.training.state.phase == "ended" and not tab.busy,
                        timeout=30_000)
        assert tab.start_button.isEnabled()
        assert gone([(record["pid"], record["ticks"]), *services]) == []
    finally:
        if launcher.state().active:
            launcher.stop(grace_s=10.0)
    sign(window, "operator1", ["operator"])
    assert not side.isTabVisible(side.indexOf(tab)) and side.currentWidget() is not tab
    assert window._live and window.left_split.isVisible()
    window.close()

    trainee = ConsoleWindow(for_console(live))
    qtbot.addWidget(trainee)
    assert trainee.training is None
    assert all(trainee.side.tabText(i) != "Training" for i in range(trainee.side.count()))
    trainee.close()
