"""The supervisor's restart budget: a process that keeps dying is given up
on, loudly, instead of being restarted forever."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import Config
from console.supervisor import RESTART_BUDGET, Supervisor
from tests.console.conftest import wait_for


def test_a_process_that_keeps_dying_is_given_up_after_the_budget(
        data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    sup = Supervisor(Config(data_dir=data_dir), ("crashing_service",), package="tests.console")
    sup.start()
    try:
        wait_for(lambda: sup.status()["crashing_service"] == "gave up", 30, "the budget")
        child = sup.children[0]
        assert len(child.restarts) == RESTART_BUDGET
        assert child.proc is not None and child.proc.returncode == 3
        assert "not restarting" in caplog.text
    finally:
        sup.stop()
