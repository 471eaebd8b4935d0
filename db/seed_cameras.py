"""The demo's CCTV: eight cameras around each demo zone, with test streams.

The cameras are authored in ``resources/demo/cameras.csv`` in the national
CCTV standard layout, so the demo exercises the same importer an
administrator uses.  Seeding runs on every demo start: the import updates
known cameras instead of duplicating them, and the stream URLs are set
again each time because they depend on this run's media relay / test
stream server (its port may change between runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.importers.cameras import camera_key, import_cameras, read_camera_csv
from db.tables import Camera
from resources import path

DEMO_CAMERAS: Path = path("demo", "cameras.csv")


def seed_cameras(session: Session, stream_url_for: Callable[[int], str]) -> int:
    """Import the demo cameras (idempotent) and give each ``stream_url_for(camera id)``.

    Returns the number of cameras created (0 when already seeded).  Cameras
    not in the demo file (a real registry imported into the demo store) are
    left alone.  Commits.
    """
    report = import_cameras(session, DEMO_CAMERAS)
    if not report.committed:  # an authored file: a reject is our bug, say which
        raise RuntimeError("demo cameras rejected: " + "; ".join(report.lines()[1:]))
    rows, _, _ = read_camera_csv(DEMO_CAMERAS)
    keys = {r.key() for r in rows}
    ids = [
        cid
        for cid, agency, lat, lon, name in session.execute(
            select(Camera.id, Camera.agency, Camera.lat, Camera.lon, Camera.name)
            .order_by(Camera.id))
        if camera_key(agency, lat, lon, name) in keys
    ]
    if ids:
        session.execute(update(Camera), [{"id": cid, "stream_url": stream_url_for(cid)}
                                         for cid in ids])
    session.commit()
    return report.imported
