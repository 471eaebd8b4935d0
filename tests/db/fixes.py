"""Fixes stored as the recorder stores them, for the store's tests."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine

from db import repositories as repo


def store_fixes(engine: Engine, device_id: str, times: np.ndarray) -> None:
    """One fix of ``device_id`` at each of ``times``, all at one place."""
    n = len(times)
    cols = {"t": times.astype(float), "lat": np.full(n, 37.5), "lon": np.full(n, 127.0),
            "speed": np.zeros(n, np.float32), "bearing": np.zeros(n, np.float32),
            "accuracy": np.full(n, 10, np.float32), "battery": np.full(n, 80, np.int8),
            "flags": np.zeros(n, np.uint8)}
    with engine.begin() as conn:
        repo.insert_fixes(conn, [device_id] * n, cols)
