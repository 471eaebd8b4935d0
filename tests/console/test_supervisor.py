"""The supervisor never gives up on a process that keeps dying: it retries
with a doubling delay up to a cap, says so louder once it keeps dying, and
reports what it is doing instead of a silent "running"."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import Config
from console.supervisor import KEEPS_DYING, Supervisor
from tests.console.conftest import wait_for


def test_a_process_that_keeps_dying_is_retried_forever_with_a_capped_backoff(
        data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    sup = Supervisor(Config(data_dir=data_dir), ("crashing_service",), package="tests.console",
                     backoff=(0.05, 0.4))
    sup.start()
    try:
        child = sup.children[0]
        wait_for(lambda: child.restarts >= KEEPS_DYING + 4, 30, "restarts past the old budget")
        assert child.delays[:4] == [0.05, 0.1, 0.2, 0.4]  # doubling ...
        assert set(child.delays[4:]) == {0.4}  # ... up to the cap, and on
        wait_for(lambda: sup.status()["crashing_service"].startswith("restarting in"), 10,
                 "the status saying so")
        assert "died" in sup.status()["crashing_service"]
        assert child.proc is not None and child.proc.returncode == 3
        assert "keeps dying" in caplog.text and "retrying" in caplog.text
    finally:
        sup.stop()
    assert sup.status()["crashing_service"] != "running"
