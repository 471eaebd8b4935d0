"""The camera registry's commands: an admin's console lists, edits and
imports cameras through the engine, the only writer.

The command table has already checked the session and the role (admin)
when a handler runs. Edits and imports are checked by ``db.camera_admin``
(one set of rules whatever writes a camera); a refused edit lists every
problem at once. After anything that changed the table the engine reloads
its registry and publishes ``cam.registry``, so every console's map and
ranking follow, and the change goes in the access log.

An import runs in the engine's loop: a city registry (thousands of rows, a
few MB) takes a second or so; the file is bounded (``MAX_IMPORT_BYTES``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from console.engine.commands import Entry
from console.engine.sessions import SessionBook
from db import camera_admin as store
from db.importers.cameras import CameraCsvError, ImportReport
from models.alerts import Actor, Refused
from models.messages import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_PROBLEMS,
    CameraImportResult,
    CameraListRequest,
    CameraRows,
    CameraSaved,
    ImportCameras,
    ReloadCameras,
    Reply,
    SaveCamera,
)

log = logging.getLogger(__name__)

MAX_FILENAME = 200
MAX_PROBLEM_CHARS = 300  # a reason quotes the cell: a bad file must not bloat the reply
MAX_HEADERS = 50


def clip(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


class CameraHost(Protocol):
    """What the handlers use of ``console.services.engine.Engine``."""

    sessions: sessionmaker[Session]
    users: SessionBook

    def _reload_cameras(self, cmd: ReloadCameras, actor: Actor | None) -> Reply: ...


def camera_entries(engine: CameraHost) -> dict[type, Entry]:
    """The command-table entries for the camera registry (admin only, by
    ``models.accounts.PERMISSIONS``)."""
    commands = CameraCommands(engine)
    return {
        CameraListRequest: Entry(commands.list_cameras),
        SaveCamera: Entry(commands.save),
        ImportCameras: Entry(commands.import_file),
    }


def display_name(filename: str) -> str:
    """The file's own name (no folders, no control characters), bounded: it
    is only shown in the report and the log."""
    name = re.split(r"[\\/]", filename)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if len(name) > MAX_FILENAME:
        name = name[:MAX_FILENAME - 1] + "…"
    return name or "cameras.csv"


def import_message(name: str, r: ImportReport) -> str:
    """The outcome of an import in one sentence."""
    n = len(r.rejected)
    rows = f"{r.rows_read:,} rows, {r.valid:,} valid, {n:,} rejected"
    if not r.committed:
        return f"{name}: {rows}; nothing imported."
    return f"{name}: {rows}; imported {r.imported:,} new cameras, updated {r.updated:,}."


class CameraCommands:
    def __init__(self, engine: CameraHost) -> None:
        self.engine = engine

    def list_cameras(self, _req: CameraListRequest, _actor: Actor | None) -> Reply:
        with self.engine.sessions() as s:
            return CameraRows(rows=store.load_cameras(s))

    def save(self, req: SaveCamera, actor: Actor | None) -> Reply:
        assert actor is not None
        try:
            with self.engine.sessions() as s:
                row = store.save_camera(s, req.edit)
        except store.CameraEditError as exc:
            raise Refused("not_found" if exc.missing else "bad_value", str(exc)) from None
        except SQLAlchemyError as exc:
            log.exception("saving camera %s for %s failed", req.edit.id, actor.user)
            raise Refused("store", f"the store refused the edit ({type(exc).__name__})"
                          ) from None
        what = "added" if req.edit.id is None else "saved"
        log.info("camera %d %s by %s", row.id, what, actor.user)
        self.engine.users.record(actor.user, "cmd.camera", True, f"camera {row.id} {what}")
        self._registry_changed(req.token, actor)
        return CameraSaved(row=row)

    def import_file(self, req: ImportCameras, actor: Actor | None) -> Reply:
        assert actor is not None
        name = display_name(req.filename)
        size = len(req.data)
        if size > MAX_IMPORT_BYTES:
            raise Refused("too_large", f"{name} is {size / 2**20:.1f} MiB; an import takes at "
                                       f"most {MAX_IMPORT_BYTES // 2**20} MiB: split the file")
        started = time.monotonic()
        try:
            with self.engine.sessions() as s:
                report = store.import_data(s, name, req.data, req.allow_partial)
        except CameraCsvError as exc:
            reason = clip(str(exc))
            return CameraImportResult(
                committed=False, accepted=0, rejected=0, problems=[reason],
                message=f"{name}: {reason}. Nothing was written.", unreadable=True,
                filename=name, allow_partial=req.allow_partial)
        except SQLAlchemyError as exc:
            log.exception("importing %s for %s failed", name, actor.user)
            raise Refused("store", f"the store refused the import ({type(exc).__name__}) "
                                   "and it was rolled back") from None
        message = import_message(name, report)
        log.info("camera import by %s in %.1f s: %s", actor.user,
                 time.monotonic() - started, message)
        if report.committed:
            self.engine.users.record(actor.user, "cmd.import_cameras", True, message)
            self._registry_changed(req.token, actor)
        return CameraImportResult(
            committed=report.committed, accepted=report.valid, rejected=len(report.rejected),
            problems=[clip(f"line {line}: {reason}")
                      for line, reason in report.rejected[:MAX_IMPORT_PROBLEMS]],
            message=message, filename=name, encoding=report.encoding,
            rows_read=report.rows_read, imported=report.imported, updated=report.updated,
            unknown_headers=[clip(h, 80) for h in report.unknown_headers[:MAX_HEADERS]],
            missing_headers=report.missing_headers, allow_partial=report.allow_partial)

    def _registry_changed(self, token: str, actor: Actor) -> None:
        """Reload the engine's registry and publish it; the change itself is
        committed, so a failure here is logged, not answered as a refusal."""
        try:
            self.engine._reload_cameras(ReloadCameras(token=token), actor)
        except Exception:
            log.exception("camera registry reload after %s's change failed", actor.user)
