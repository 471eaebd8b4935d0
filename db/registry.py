"""The device registry as the admin edits it: which device belongs to which
child. The gateway refuses every device that is not registered here."""

from __future__ import annotations

import time

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from db import changes
from db.tables import Child, Device, DeviceHolding, UnregisteredDevice
from models.enrolment import DEVICE_KINDS


class RegistryError(ValueError):
    """An admin request that cannot be applied; the message says why."""


def add_device(session: Session, device_id: str, kind: str, child_token: str,
               actor: str = "admin", now: float | None = None) -> Device:
    """Register ``device_id`` to the child with ``child_token`` (at ``now``,
    the clock's by default); the caller commits."""
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
    now = time.time() if now is None else now
    device = Device(id=device_id, kind=kind, child_id=child.id, registered_at=now)
    session.add(device)
    session.add(DeviceHolding(device_id=device_id, child_id=child.id, since=now))
    session.execute(delete(UnregisteredDevice).where(UnregisteredDevice.id == device_id))
    changes.record(session, "roster", child_token, "add_device", actor, f"{kind} {device_id}")
    return device


def remove_device(session: Session, device_id: str, actor: str = "admin",
                  now: float | None = None) -> None:
    """Unregister a device; its stored fixes stay (they belong to history),
    and its holding is closed, so they stay the child's (``DeviceHolding``)."""
    device = session.get(Device, device_id)
    if device is None:
        raise RegistryError(f"no device {device_id}")
    child = session.get(Child, device.child_id) if device.child_id is not None else None
    now = time.time() if now is None else now
    closed = session.execute(
        update(DeviceHolding)
        .where(DeviceHolding.device_id == device_id, DeviceHolding.until.is_(None))
        .values(until=now))
    if not closed.rowcount and device.child_id is not None:  # registered without one
        session.add(DeviceHolding(device_id=device_id, child_id=device.child_id,
                                  since=device.registered_at, until=now))
    session.delete(device)
    changes.record(session, "roster", child.token if child else "", "remove_device", actor,
                   device_id)


def unregistered(session: Session) -> list[UnregisteredDevice]:
    """Ids the gateway refused, most recent first, for the admin to act on."""
    return list(session.scalars(
        select(UnregisteredDevice).order_by(UnregisteredDevice.last_seen.desc())))
