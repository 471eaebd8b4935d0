"""The stand-in cameras' pictures: every mount clearly not black, different
from every other mount, and changing; the demo labels each mount with the
name of the camera that streams from it."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from console.services.democams import MOUNTS, mount_labels, stream_url
from db.seed import seed_demo
from db.seed_cameras import seed_cameras
from db.store import open_store, sqlite_url
from tests.media.conftest import RtspServer, _check_gstreamer


def frames(url: str, picks: tuple[int, ...] = (3, 13)) -> list[np.ndarray]:
    """Decoded RGB frames number ``picks`` of a live RTSP stream."""
    got: list[np.ndarray] = []
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in picks:
                got.append(frame.to_ndarray(format="rgb24").astype(np.int16))
            if i >= max(picks):
                break
    return got


@pytest.mark.slow
def test_every_mount_shows_its_own_bright_moving_picture() -> None:
    _check_gstreamer()
    server = RtspServer(mounts=5)
    server.start()
    try:
        shots = {m: frames(server.url(f"cam{m}")) for m in range(1, 6)}
    finally:
        server.stop()
    colours = {}
    for m, (first, later) in shots.items():
        assert first.mean() > 60, f"cam{m} is dark: mean {first.mean():.1f}"
        assert (first.max(axis=2) >= 160).sum() > 500, f"cam{m} has nothing bright"
        moved = (np.abs(first - later).max(axis=2) > 40).sum()
        assert moved > 200, f"cam{m} is frozen ({moved} pixels changed)"
        colours[m] = first.reshape(-1, 3).mean(axis=0)
    for a in colours:
        for b in colours:
            if a < b:
                assert np.abs(colours[a] - colours[b]).max() > 15, (
                    f"cam{a} and cam{b} look alike: {colours[a]} vs {colours[b]}")


def test_demo_mounts_are_labelled_with_their_cameras(data_dir: Path) -> None:
    url = sqlite_url(data_dir)
    engine, sessions = open_store(url)
    with sessions() as s:
        seed_demo(s, 10)
        seed_cameras(s, lambda i: stream_url(8554, i))
    engine.dispose()
    labels = mount_labels(url, 8554)
    assert len(labels) == 24 <= MOUNTS
    assert labels["cam1"] == "#1 360도 · 공원관리 · 성동구 뚝섬로 273"
    assert labels["cam2"].startswith("#2 동측 · ")
    assert len(set(labels.values())) == 24
    assert mount_labels(url, 9999) == {}  # another server's mounts: none of ours
    assert mount_labels("sqlite:////nonexistent/dir/x.sqlite3", 8554) == {}
