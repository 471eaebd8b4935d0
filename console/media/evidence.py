"""What the relay reads from and writes to the store.

Cameras: the relay looks up a camera's ``stream_url`` when a console or a
hold first asks for it (cached briefly, so a camera added or re-addressed
by an admin is picked up without restarting the relay).

Evidence: a finished clip becomes an ``Evidence`` row linked to its alert,
in a session of its own (one session per unit of work, none shared across
threads), committed off the puller threads so a busy SQLite file never
stalls video.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.tables import Camera, Evidence

URL_CACHE_S = 30.0


class CameraBook:
    """Camera id -> stream URL, from the store."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._cache: dict[int, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def url(self, camera_id: int) -> str | None:
        """The camera's stream URL, or None if unknown or without a stream."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(camera_id)
        if hit is not None and now - hit[0] < URL_CACHE_S:
            return hit[1] or None
        with self.sessions() as s:
            url = s.scalar(select(Camera.stream_url).where(Camera.id == camera_id))
        with self._lock:
            self._cache[camera_id] = (now, url or "")
        return url or None


class UnsafePath(ValueError):
    """A clip path that would leave the evidence folder."""


def clip_path(evidence_dir: Path, camera_id: int, alert_id: int | None, t: float) -> Path:
    """``<evidence>/alert-<id>/cam<id>-<UTC time>.ts``: one folder per case,
    so an incident's evidence can be exported (or kept past retention) as
    a whole. Only integer ids go into the name, and the result is checked
    to stay inside ``evidence_dir`` (``UnsafePath`` otherwise)."""
    for name, value in (("camera_id", camera_id), ("alert_id", alert_id)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise UnsafePath(f"{name} must be an integer to name a clip (got {value!r:.40})")
    stamp = datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    case = f"alert-{alert_id}" if alert_id is not None else "no-alert"
    return inside(evidence_dir, evidence_dir / case / f"cam{camera_id}-{stamp}.ts")


def inside(folder: Path, path: Path) -> Path:
    """``path`` itself, once checked that it resolves (``..`` and symlinks
    followed) to somewhere strictly below ``folder``: no peer-supplied part
    and no planted symlink may send evidence elsewhere on the disk."""
    try:
        root = folder.resolve()
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError before 3.13)
        raise UnsafePath(f"{path} cannot be resolved: {exc}") from None
    if real == root or not real.is_relative_to(root):
        raise UnsafePath(f"{path} is not inside the evidence folder {root}")
    return path


def save_evidence(sessions: sessionmaker[Session], *, camera_id: int, alert_id: int | None,
                  path: Path, t_start: float, t_end: float, actor: str,
                  kind: str = "clip") -> int:
    """Insert one Evidence row; returns its id."""
    with sessions() as s:
        row = Evidence(alert_id=alert_id, camera_id=camera_id, kind=kind, path=str(path),
                       created_at=time.time(), t_start=t_start, t_end=t_end, actor=actor)
        s.add(row)
        s.commit()
        return row.id
