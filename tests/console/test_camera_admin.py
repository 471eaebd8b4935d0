"""Camera admin through the engine (``console.engine.cameras``): a real bus
and engine as processes on a demo store with the demo cameras, requests
over the engine's socket as a console sends them, and real console feeds
(``console.feed.LiveFeed``) watching the bus.

The engine is the only writer: it checks the role (admin only), every
field of an edit (all the problems at once), bounds an import, and
publishes the new registry to every console.  The rules themselves are
tested on the store in ``tests/db/test_camera_admin.py``.

One backend serves the module (starting one costs seconds); each test
signs in its own sessions and only counts what it changed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest
from sqlalchemy import select

from console.feed import Frame, LiveFeed
from db.seed_cameras import seed_cameras
from db.store import open_store
from db.tables import AccessRecord
from models.messages import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_PROBLEMS,
    CameraEditRecord,
    CameraImportResult,
    CameraListRequest,
    CameraRecord,
    CameraRows,
    CameraSaved,
    CommandReply,
    ImportCameras,
    ReloadCameras,
    SaveCamera,
)
from tests.console.conftest import Backend, make_config, running_backend, wait_for

T = TypeVar("T")
HEADER = ("관리기관명,소재지도로명주소,소재지지번주소,설치목적구분,카메라대수,카메라화소수,"
          "촬영방면정보,보관일수,설치연월,관리기관전화번호,WGS84위도,WGS84경도,데이터기준일자")


def csv_bytes(rows: list[str], encoding: str = "utf-8") -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode(encoding)


def row(n: int, lat: str = "", lon: str = "127.0420", road: str = "방학로") -> str:
    """A valid row around Sinhak Elementary, distinct by its address."""
    lat = lat or f"{37.6600 + n * 0.00001:.6f}"
    return (f"서울특별시 도봉구청,서울특별시 도봉구 {road} {n},,어린이보호,1,200,북측,30,"
            f"2019-04,02-2091-1234,{lat},{lon},2024-06-30")


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    """Bus and engine only: nothing here needs devices or video."""
    data_dir = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    cfg = make_config(data_dir, children=10)
    try:
        with running_backend(cfg, ("bus", "engine"), ports=(),
                             seed=lambda s: seed_cameras(s, lambda i: f"rtsp://10.0.0.{i}/x")
                             ) as b:
            yield b
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def admin(backend: Backend) -> str:
    return backend.sign_in("admin1")


def refused(reply: object, code: str) -> str:
    assert isinstance(reply, CommandReply) and not reply.ok, reply
    assert reply.code == code, reply
    return reply.error


def access_records(b: Backend, user: str, action: str) -> list[AccessRecord]:
    engine, sessions = open_store(b.config.db_url)
    try:
        with sessions() as s:
            return list(s.scalars(select(AccessRecord).where(
                AccessRecord.user == user, AccessRecord.action == action)
                .order_by(AccessRecord.id)))
    finally:
        engine.dispose()


def cameras(b: Backend, token: str) -> list[CameraRecord]:
    reply = b.command(CameraListRequest(token=token))
    assert isinstance(reply, CameraRows), reply
    return reply.rows


def as_edit(r: CameraRecord, **changes: object) -> CameraEditRecord:
    return CameraEditRecord(**{**msgspec.structs.asdict(r), **changes})


def until(feed: LiveFeed, pick: Callable[[Frame], T | None], what: str,
          timeout_s: float = 10.0) -> T:
    """Take frames from ``feed`` as a window does until ``pick`` finds something."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = pick(feed.take())
        if found is not None:
            return found
        time.sleep(0.03)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_an_admin_edits_a_camera_and_every_console_sees_it(backend: Backend,
                                                           admin: str) -> None:
    rows = cameras(backend, admin)
    assert len(rows) >= 24 and [r.id for r in rows] == sorted(r.id for r in rows)
    target = rows[2]
    assert target.stream_url == f"rtsp://10.0.0.{target.id}/x"  # the admin sees the URL
    editor, watcher = LiveFeed(backend.config), LiveFeed(backend.config)
    editor.start()
    watcher.start()
    try:
        until(watcher, lambda f: f.cameras, "the watching console's snapshot")
        time.sleep(0.3)  # let its subscription reach the bus's publisher side
        edit = as_edit(target, name="방학로 정문 · 어린이보호", stream_url="", fov_deg=60.0)
        ref = editor.send(SaveCamera(token=admin, edit=edit))
        saved = until(editor, lambda f: next((r for r in f.replies
                                              if getattr(r, "ref", 0) == ref), None),
                      "the editor's reply")
        assert isinstance(saved, CameraSaved), saved
        assert saved.row == CameraRecord(**{**msgspec.structs.asdict(edit), "id": target.id})
        seen = until(watcher, lambda f: next(
            (c for c in f.cameras or [] if c.id == target.id and c.name == edit.name), None),
            "the new registry on the other console")
        assert seen.fov_deg == 60.0 and not seen.has_stream
    finally:
        editor.stop()
        watcher.stop()
    assert cameras(backend, admin)[2] == saved.row
    assert next(c for c in backend.snapshot().cameras if c.id == target.id).name == edit.name

    new = CameraEditRecord(id=None, name="신학초 후문", lat=37.6650, lon=127.0425,
                           agency="서울특별시 도봉구청", purpose="어린이보호",
                           address="서울특별시 도봉구 방학동 123", direction_deg=270.0,
                           fov_deg=90.0, range_m=80.0, ptz=False,
                           stream_url="rtsp://10.0.0.5:554/live", status="active")
    added = backend.command(SaveCamera(token=admin, edit=new, seq=41))
    assert isinstance(added, CameraSaved) and added.ref == 41, added
    assert added.row.id > max(r.id for r in rows) and added.row.name == "신학초 후문"
    assert any(c.id == added.row.id for c in backend.snapshot().cameras)
    assert [r.detail for r in access_records(backend, "admin1", "cmd.camera") if r.ok] == [
        f"camera {target.id} saved", f"camera {added.row.id} added"]


def test_only_an_admin_may_and_a_bad_edit_lists_every_problem(backend: Backend,
                                                              admin: str) -> None:
    before = cameras(backend, admin)
    first = before[0]
    operator = backend.sign_in("operator1")
    supervisor = backend.sign_in("supervisor1")
    data = csv_bytes([row(1)])
    for token in (operator, supervisor):
        for req in (CameraListRequest(token=token), SaveCamera(token=token, edit=as_edit(first)),
                    ImportCameras(token=token, filename="x.csv", data=data),
                    ReloadCameras(token=token)):
            assert "may not do" in refused(backend.command(req), "forbidden")
    refused(backend.command(CameraListRequest(token="")), "unauthenticated")
    refused(backend.command(SaveCamera(token="forged", edit=as_edit(first))),
            "unauthenticated")

    bad = as_edit(first, name=" ", lat=0.0, fov_deg=0.0, range_m=5000.0,
                  stream_url="file:///etc/passwd", status="broken")
    error = refused(backend.command(SaveCamera(token=admin, edit=bad, seq=7)), "bad_value")
    problems = error.split("; ")
    assert len(problems) == 6, problems
    for reason in ("the name is empty", "latitude 0.0 is not in South Korea",
                   "field of view 0.0 must be 1–360°", "range 5000.0 must be 1–1000 m",
                   "must start with rtsp://, http:// or https://", "status 'broken'"):
        assert any(reason in p for p in problems), (reason, problems)
    reply = backend.command(SaveCamera(token=admin, edit=bad, seq=7))
    assert isinstance(reply, CommandReply) and reply.ref == 7
    gone = as_edit(first, id=first.id + 100_000)
    assert "no longer in the store" in refused(
        backend.command(SaveCamera(token=admin, edit=gone)), "not_found")
    assert cameras(backend, admin) == before  # nothing was written

    refusals = access_records(backend, "operator1", "cmd.camera")
    assert refusals and not refusals[-1].ok and "forbidden" in refusals[-1].detail


def test_import_through_the_engine(backend: Backend, admin: str) -> None:
    before = len(cameras(backend, admin))

    def send(data: bytes, partial: bool = False,
             name: str = "dobong.csv") -> CameraImportResult:
        reply = backend.command(ImportCameras(token=admin, filename=name, data=data,
                                              allow_partial=partial), timeout_s=30)
        assert isinstance(reply, CameraImportResult), reply
        return reply

    # All or nothing: one bad row and nothing is written.
    r = send(csv_bytes([row(1), row(2, lat="abc"), row(3)]))
    assert (r.committed, r.accepted, r.rejected, r.rows_read, r.imported) == (
        False, 2, 1, 3, 0)
    assert r.problems == ["line 3: WGS84위도 'abc' is not a number"]
    assert r.encoding == "utf-8" and "nothing imported" in r.message and not r.unreadable
    assert len(cameras(backend, admin)) == before

    # The valid rows of a CP949 file; the problems listed are bounded.
    bad = [row(n, lat="0", road="창동로") for n in range(1, 251)]
    r = send(csv_bytes([row(1), *bad, row(2), row(3)], "cp949"), partial=True,
             name="C:\\exports\\도봉구 CCTV.csv")
    assert r.committed and r.encoding == "cp949" and r.filename == "도봉구 CCTV.csv"
    assert (r.accepted, r.rejected, r.imported, r.updated) == (3, 250, 3, 0)
    assert len(r.problems) == MAX_IMPORT_PROBLEMS
    assert r.problems[0] == "line 3: position 0.0, 127.042 is outside South Korea"
    assert "imported 3 new cameras" in r.message
    assert len(cameras(backend, admin)) == before + 3
    wait_for(lambda: len(backend.snapshot().cameras) == before + 3, 5,
             "the engine's registry")

    # Again: the same cameras are updated in place.
    r = send(csv_bytes([row(1), row(2), row(3)]))
    assert (r.committed, r.imported, r.updated) == (True, 0, 3)

    # A file that is not the national layout, and an empty one.
    r = send("이름,주소\n가,나\n".encode(), name="wrong.csv")
    assert r.unreadable and not r.committed
    assert "missing required columns" in r.problems[0]
    assert r.message.startswith("wrong.csv: ") and r.message.endswith("Nothing was written.")
    assert send(b"").unreadable

    # Over the bound: refused before it is parsed, with the sizes.
    error = refused(backend.command(ImportCameras(
        token=admin, filename="huge.csv", data=b"x" * (MAX_IMPORT_BYTES + 1), seq=9),
        timeout_s=30), "too_large")
    assert "huge.csv is 32.0 MiB" in error and "at most 32 MiB" in error
    assert len(cameras(backend, admin)) == before + 3
