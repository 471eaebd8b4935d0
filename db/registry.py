"""The device registry as the admin edits it: which device belongs to which
child. The gateway refuses every device that is not registered here."""

from __future__ import annotations

import time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db import changes
from db.tables import Child, Device, UnregisteredDevice
from models.enrolment import DEVICE_KINDS


class RegistryError(ValueError):
    """An admin request that cannot be applied; the message says why."""


def add_device(session: Session, device_id: str, kind: str, child_token: str,
               actor: str = "admin") -> Device:
    """Register ``device_id`` to the child with ``child_token``; the caller commits."""
    device_id = device_id.strip()
    if not device_id or len(device_id) > 64 or not device_id.isprintable():
        raise RegistryError(f"device id {device_id!r} must be 1-64 printable characters")
    if kind not in DEVICE_KINDS:
        raise RegistryError(f"kind must be one of {', '.join(DEVICE_KINDS)}, not {kind!r}")
    child = session.scalar(select(Child).where(Child.token == child_token))
    if child is None or child.removed_at is not None:
        raise RegistryError(f"no enrolled child with token {child_token}")
    if session.get(Device, device_id) is not None:
        raise RegistryError(f"device {device_id} is already registered")
    device = Device(id=device_id, kind=kind, child_id=child.id, registered_at=time.time())
    session.add(device)
    session.execute(delete(UnregisteredDevice).where(UnregisteredDevice.id == device_id))
    changes.record(session, "roster", child_token, "add_device", actor, f"{kind} {device_id}")
    return device


def remove_device(session: Session, device_id: str, actor: str = "admin") -> None:
    """Unregister a device; its stored fixes stay (they belong to history)."""
    device = session.get(Device, device_id)
    if device is None:
        raise RegistryError(f"no device {device_id}")
    child = session.get(Child, device.child_id) if device.child_id is not None else None
    session.delete(device)
    changes.record(session, "roster", child.token if child else "", "remove_device", actor,
                   device_id)


def unregistered(session: Session) -> list[UnregisteredDevice]:
    """Ids the gateway refused, most recent first, for the admin to act on."""
    return list(session.scalars(
        select(UnregisteredDevice).order_by(UnregisteredDevice.last_seen.desc())))
