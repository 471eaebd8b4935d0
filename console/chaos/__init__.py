"""The fault suite: ``childsafe chaos`` and the short CI version in ``tests/faults``.

Why: a control room's first promise is that an acknowledged SOS is never
lost and that operators always know when the system is degraded (issue 13).
That promise is only as good as the last time someone killed the engine in
the middle of an SOS storm and counted. This package does the killing and
the counting against a private installation (its own data dir under /tmp,
its own free ports on 127.0.0.1), so it can run on any machine without
touching a real one.

- ``harness``: the private installation (prepare, start, find pids, stop).
- ``devices``: simulated watches and phones that resend what was not
  acknowledged, as real devices do.
- ``observe``: a headless console's health timeline and the store's counts.
- ``faults``: one function per fault, each returning its ``Figures``.
- ``report``: the figures, the verdict and the printed table.

This module stays import-light: the command line's parser reads
``FAULT_NAMES`` without starting anything.
"""

from __future__ import annotations

from pathlib import Path

FAULT_NAMES: tuple[str, ...] = (
    "engine-kill", "bus-kill", "bus-frozen", "store-locked", "disk-full", "recorder-kill",
    "poison", "future-fix", "engine-hung", "supervisor-kill",
)


def run(seconds: float = 10.0, only: list[str] | None = None, parent: Path | None = None,
        keep: bool = False) -> int:
    """Run the chosen faults one after another, each on a fresh installation,
    print the table, and return the exit status (0 nothing lost, 1 something
    acknowledged was lost or an SOS episode had not exactly one alert, 3 a
    fault could not be measured)."""
    from console.chaos.faults import run_suite

    return run_suite(seconds, list(only or FAULT_NAMES), parent, keep)
