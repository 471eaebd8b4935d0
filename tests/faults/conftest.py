"""The short fault suite: each test injects one fault of issue 13 into a
private installation (``console.chaos``) under a small SOS storm and fix
load, and asserts counts only.

Why counts and never times: a 2-core CI machine shared with other work
makes every duration noise, while "an acknowledged SOS has its alert" and
"one alert per child's episode" hold or fail whatever the load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from console.chaos.faults import run_fault
from console.chaos.measure import Plan
from console.chaos.report import Figures

RunFault = Callable[..., Figures]


@pytest.fixture
def plan() -> Plan:
    """Tens of SOS, hundreds of fixes, a few seconds of fault."""
    return Plan.ci()


@pytest.fixture
def fault(data_dir: Path, plan: Plan) -> Iterator[RunFault]:
    """``fault(name, **installation settings)``: run it on a fresh private
    installation inside the test's data dir; the harness's own failure
    fails the test (it measured nothing)."""
    for noisy in ("console.feed", "console.bus"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    def run(name: str, **install: object) -> Figures:
        fig = run_fault(name, plan, parent=data_dir, **install)
        assert not fig.error, f"{name} could not be measured: {fig.error}"
        return fig

    yield run


def assert_nothing_lost(fig: Figures) -> None:
    """Nothing acknowledged lost, exactly one alert per child's SOS episode,
    and the fault's own checks; every count in the message when not."""
    assert fig.sos_presses > 0 and fig.fixes_sent > 0, f"nothing was sent: {fig.summary()}"
    assert fig.acked_sos_without_alert == 0, fig.summary()
    assert fig.fixes_lost == 0, fig.summary()
    assert fig.episodes_many_alerts == 0, fig.summary()
    assert fig.episodes_no_alert == 0, fig.summary()
    assert not fig.failures, fig.summary()
