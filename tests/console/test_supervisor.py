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


def test_a_hung_engine_or_bus_is_killed_and_restarted(data_dir: Path) -> None:
    """SIGSTOP: the process lives but says nothing. The supervisor notices by
    the missing heartbeats (not by an exit), kills it and starts it again."""
    import os
    import signal

    from tests.console.conftest import make_config, running_backend

    cfg = make_config(data_dir, children=10)
    with running_backend(cfg) as b:
        # (production waits 20 s; a restarted engine must have beaten by then:
        # under a loaded CI it takes a few seconds to load its state)
        b.supervisor.hung_s = 6.0
        engine = b.supervisor.pid("engine")
        os.kill(engine, signal.SIGSTOP)
        wait_for(lambda: b.supervisor.pid("engine") != engine, 30, "the hung engine replaced")
        assert b.supervisor.hung_kills == ["engine"]
        b.snapshot(timeout_s=15)  # the new engine answers
        bus = b.supervisor.pid("bus")
        os.kill(bus, signal.SIGSTOP)
        wait_for(lambda: b.supervisor.pid("bus") != bus, 30, "the hung bus replaced")
        assert b.supervisor.hung_kills == ["engine", "bus"]
        wait_for(lambda: b.snapshot().children != [], 15, "the backend back")
