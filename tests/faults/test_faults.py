"""One short test per fault of issue 13 (see ``conftest.py``).

Supervisor backoff is not repeated here: ``tests/console/test_supervisor.py``
already drives a process that keeps dying through the doubling, capped,
never-ending restarts. The hung-process test here adds what that one does
not check: that the SOS sent while the engine hangs are not lost.
"""

from __future__ import annotations

import pytest

from console.chaos.harness import can_mount_tmpfs
from tests.faults.conftest import RunFault, assert_nothing_lost

pytestmark = pytest.mark.slow


def test_engine_killed_during_an_sos_storm_loses_no_acknowledged_sos(fault: RunFault) -> None:
    assert_nothing_lost(fault("engine-kill"))


def test_recorder_killed_under_load_loses_no_fix_and_no_alert_record(fault: RunFault) -> None:
    fig = fault("recorder-kill")
    assert_nothing_lost(fig)
    assert fig.events_missing == 0, fig.summary()  # every alert.opened in the event log


def test_bus_killed_loses_nothing_acknowledged(fault: RunFault) -> None:
    assert_nothing_lost(fault("bus-kill"))


def test_store_locked_loses_nothing_acknowledged(fault: RunFault) -> None:
    assert_nothing_lost(fault("store-locked"))


def test_hung_engine_is_replaced_and_its_sos_are_not_lost(fault: RunFault) -> None:
    fig = fault("engine-hung", supervisor="inline", hung_s=3.0)
    assert_nothing_lost(fig)


def test_poison_on_the_bus_and_in_commands_loses_nothing(fault: RunFault) -> None:
    fig = fault("poison")
    assert_nothing_lost(fig)  # includes: the engine never died of it


@pytest.mark.skipif(not can_mount_tmpfs(), reason="a real ENOSPC needs root to mount a tmpfs "
                    "data dir")
def test_disk_full_loses_nothing_acknowledged(fault: RunFault) -> None:
    assert_nothing_lost(fault("disk-full"))
