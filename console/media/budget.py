"""How much disk the evidence clips take, against a budget.

Why: a relay that records until the disk is full takes the store (SQLite
under the same ``data_dir``), the logs and so alerting down with it. With a
budget, a full evidence folder only refuses *new* clips (counted, logged,
and shown as DEGRADED on every console); the clips already kept stay.

Cheap by design: the total is kept incrementally (each chunk a clip writes
adds its size), and the folder is walked only at start and at most every
``rescan_s`` (that is how clips deleted or archived by an administrator
are noticed).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

RESCAN_S = 30.0


def folder_bytes(folder: Path) -> int:
    """Total size of the regular files under ``folder`` (symlinks are not
    followed; a file that vanishes while walking is skipped)."""
    total = 0
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


class EvidenceBudget:
    """Bytes under the evidence folder, and whether new clips still fit.

    Threads: puller threads call ``add``; HTTP threads read ``full``; the
    relay's owner thread calls ``maybe_rescan``.
    """

    def __init__(self, folder: Path, budget_bytes: int, rescan_s: float = RESCAN_S) -> None:
        self.folder = folder
        self.budget_bytes = budget_bytes
        self.rescan_s = rescan_s
        self._used = 0
        self._scanned_at = -float("inf")
        self._lock = threading.Lock()
        self.rescan()

    @property
    def used(self) -> int:
        with self._lock:
            return self._used

    @property
    def full(self) -> bool:
        return self.used >= self.budget_bytes

    def add(self, nbytes: int) -> None:
        """A clip wrote ``nbytes`` more (called per chunk: one add under a lock)."""
        with self._lock:
            self._used += nbytes

    def rescan(self) -> int:
        """Walk the folder and take its real total (clips deleted or added
        behind the relay's back); returns it."""
        was_full = self.full
        total = folder_bytes(self.folder)
        with self._lock:
            self._used = total
            self._scanned_at = time.monotonic()
        if self.full != was_full:
            log.warning("evidence storage %s: %d of %d bytes",
                        "full, new clips refused" if self.full else "has room again",
                        total, self.budget_bytes)
        return total

    def maybe_rescan(self, now: float | None = None) -> bool:
        """Rescan if ``rescan_s`` passed since the last walk; True if it did."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = now - self._scanned_at >= self.rescan_s
        if due:
            self.rescan()
        return due

    def stats(self) -> dict[str, float]:
        used = self.used
        return {"evidence_bytes": float(used), "evidence_budget_bytes": float(self.budget_bytes),
                "evidence_full": 1.0 if used >= self.budget_bytes else 0.0}
