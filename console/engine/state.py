"""What the engine loads from the store at start: roster, zones, readers,
cameras and every unresolved alert, in the slots the tracker uses."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from db import alerts as db_alerts
from db import repositories as repo
from db.zones import zone_views
from models.messages import AlertView, CameraView, ReaderView, ZoneView
from models.tracking import Tracker


@dataclass
class EngineState:
    tracker: Tracker
    alerts: dict[int, AlertView]  # unresolved alerts by id
    zones: list[ZoneView]
    zone_names: dict[int, str]  # zone id -> name
    readers: list[ReaderView]
    cameras: list[CameraView]
    child_ids: list[int]  # slot -> the child's id in the store
    slot_of_child: dict[int, int]
    device_kinds: dict[str, str]  # device id -> watch | phone | tag


def load_state(sessions: sessionmaker[Session]) -> EngineState:
    with sessions() as s:
        roster = repo.roster(s)
        zones = zone_views(s)
        open_rows = db_alerts.unresolved(s)
        readers = [ReaderView(id=r.id, name=r.name, lat=r.lat, lon=r.lon, range_m=r.range_m)
                   for r in repo.readers(s)]
        cameras = camera_views(s)
        # One slot per child, in roster order; a child may own several devices.
        slot_of_child: dict[int, int] = {}
        child_ids: list[int] = []
        tokens: list[str] = []
        home: list[int] = []
        device_slots: dict[str, int] = {}
        device_kinds = {r.device_id: r.kind for r in roster}
        for r in roster:
            if r.child_id not in slot_of_child:
                slot_of_child[r.child_id] = len(tokens)
                child_ids.append(r.child_id)
                tokens.append(r.token)
                home.append(r.zone_id if r.zone_id is not None else -1)
            device_slots[r.device_id] = slot_of_child[r.child_id]
        alerts = {}
        for a in open_rows:
            slot = slot_of_child.get(a.child_id, -1)
            alerts[a.id] = db_alerts.view_of(a, slot, tokens[slot] if slot >= 0 else "?",
                                             device_kinds.get(a.device_id, ""))
    tracker = Tracker(tokens, device_slots, home)
    return EngineState(tracker, alerts, zones, {z.id: z.name for z in zones}, readers,
                       cameras, child_ids, slot_of_child, device_kinds)


def camera_views(session: Session) -> list[CameraView]:
    return [CameraView(id=c.id, name=c.name, lat=c.lat, lon=c.lon,
                       direction_deg=c.direction_deg, fov_deg=c.fov_deg, range_m=c.range_m,
                       ptz=c.ptz, status=c.status, has_stream=bool((c.stream_url or "").strip()))
            for c in repo.cameras(session)]


@dataclass(frozen=True, slots=True)
class RosterChange:
    """What a reload of the roster changed in the engine's slots."""

    added: list[int]  # new slots (children enrolled, or given their first device)
    untracked: list[int]  # slots whose child has no device any more (removed)

    def __bool__(self) -> bool:
        return bool(self.added or self.untracked)


def reload_roster(state: EngineState, sessions: sessionmaker[Session]) -> RosterChange:
    """Bring the engine's roster in step with the store while it runs.

    Why in place: the alert desk, the consent gate and the privacy handlers
    hold the same slot lists and device maps; mutating them keeps every one
    of them right without a restart (a device registered now must have its
    SOS raise an alert now). Slots are appended and never reused, so every
    open alert and every console keeps meaning the same child.
    """
    with sessions() as s:
        roster = repo.roster(s)
    tr = state.tracker
    new_tokens: list[str] = []
    new_home: list[int] = []
    new_ids: list[int] = []
    devices: dict[str, int] = {}
    homes: dict[int, int] = {}
    for r in roster:
        slot = state.slot_of_child.get(r.child_id)
        if slot is None:
            slot = len(state.child_ids) + len(new_ids)
            state.slot_of_child[r.child_id] = slot
            new_ids.append(r.child_id)
            new_tokens.append(r.token)
            new_home.append(r.zone_id if r.zone_id is not None else -1)
        devices[r.device_id] = slot
        homes[slot] = r.zone_id if r.zone_id is not None else -1
    before = set(tr.device_slots.values())
    added = list(tr.grow(new_tokens, new_home)) if new_ids else []
    state.child_ids.extend(new_ids)
    tr.device_slots.clear()
    tr.device_slots.update(devices)
    state.device_kinds.clear()
    state.device_kinds.update({r.device_id: r.kind for r in roster})
    for slot, zone in homes.items():
        tr.home[slot] = zone
    untracked = sorted(before - set(devices.values()))
    return RosterChange(added, untracked)
