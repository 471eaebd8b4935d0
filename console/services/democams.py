"""The demo's stand-in CCTV cameras: a GStreamer RTSP server on 127.0.0.1
with a live test-pattern mount per demo camera.

The RTSP server itself runs under Debian's ``/usr/bin/python3`` (its
GStreamer bindings are a Debian package, not in the venv); this module is
the supervised process that owns it, so the supervisor starts, restarts
and stops it like any other. A mount encodes only while someone watches.

Each mount's picture shows the name of the demo camera that streams from
it (``models.cameras.short_title``, read from the store at start) with a
colour and pattern of its own, so an operator, a screenshot or a test can
tell which camera a tile really plays.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from console.services.runtime import start
from db.store import make_engine, session_factory
from db.tables import Camera
from models.cameras import short_title

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).resolve().parent.parent / "media" / "rtsp_test_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
# One mount per demo camera (24 in resources/demo/cameras.csv, with room to
# spare): a GStreamer mount shared by two RTSP sessions stalls the first one
# when the second joins. A mount encodes only while someone pulls it.
MOUNTS = 32


def stream_url(port: int, camera_id: int) -> str:
    """The demo stream of camera ``camera_id``."""
    return f"rtsp://127.0.0.1:{port}/cam{(camera_id - 1) % MOUNTS + 1}"


def mount_labels(db_url: str, port: int) -> dict[str, str]:
    """``{"cam3": "#3 북서방향 · 공원관리 · …"}`` for the cameras whose stream
    is one of our mounts (the first camera of a mount wins); empty when the
    store cannot be read: the pictures then show the mount names."""
    mounts = {stream_url(port, i): f"cam{i}" for i in range(1, MOUNTS + 1)}
    labels: dict[str, str] = {}
    try:
        engine = make_engine(db_url)
        try:
            with session_factory(engine)() as s:
                rows = s.execute(select(Camera.id, Camera.name, Camera.stream_url)
                                 .order_by(Camera.id)).all()
        finally:
            engine.dispose()
    except Exception as exc:  # a demo without a store still gets pictures
        log.warning("no camera names for the test pictures: %s", exc)
        return labels
    for camera_id, name, url in rows:
        mount = mounts.get(url or "")
        if mount is not None:
            labels.setdefault(mount, short_title(camera_id, name))
    return labels


def main(argv: list[str] | None = None) -> int:
    rt = start("democams", argv)
    port = rt.config.demo_rtsp_port
    labels = rt.config.run_dir / "democams-labels.json"
    labels.write_text(json.dumps(mount_labels(rt.config.db_url, port), ensure_ascii=False),
                      encoding="utf-8")
    server = subprocess.Popen(
        [SYSTEM_PYTHON, str(SCRIPT), "--port", str(port), "--mounts", str(MOUNTS),
         "--labels", str(labels)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert server.stdout is not None
    ready = server.stdout.readline().strip()
    if not ready.startswith("READY"):
        rt.log.error("the RTSP test server did not start: %s%s", ready,
                     server.stdout.read()[-2000:] if server.poll() is not None else "")
        server.kill()
        return 1
    rt.log.info("%d test-pattern cameras on rtsp://127.0.0.1:%d/cam1..cam%d", MOUNTS, port,
                MOUNTS)
    while not rt.should_stop() and server.poll() is None:
        rt.stop.wait(0.5)
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0 if rt.stop.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
