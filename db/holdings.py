"""Which child held a device when: the spans of fix time that are a child's.

A device's fixes are the child's who held it then (``DeviceHolding``). A
withdrawal (``db.consent``), the retention run and the tape's redaction
(``console.tape_keeper``) take a withdrawn child's fixes by these spans:
the device's whole history, unless another child held it before (then
from the child's registration) or after (then until its removal), so
what another child's device sent is never taken for this child's.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    cast,
    false,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from db.tables import Device, DeviceHolding, Fix

Span = tuple[float, float]  # (from, to), both included; an infinite end is unbounded
WHOLE: Span = (-math.inf, math.inf)
Spans = dict[str, list[Span]]  # device id -> merged spans, in time order


def _holdings() -> Select[tuple[str, int, float, float | None]]:
    """Every holding, and every registration as one (a row written before
    holdings were kept, or by hand, still counts)."""
    return union_all(
        select(DeviceHolding.device_id, DeviceHolding.child_id, DeviceHolding.since,
               DeviceHolding.until),
        select(Device.id, Device.child_id, Device.registered_at, cast(null(), Float))
        .where(Device.child_id.is_not(None)))  # type: ignore[return-value]


def spans_of(session: Session, children: Collection[int] | Select[tuple[int]]) -> Spans:
    """The spans of each device these children held that are theirs (a
    device passed between two of them is theirs all along)."""
    held = _holdings().subquery()
    mine = session.execute(select(held).where(held.c.child_id.in_(children))).all()
    if not mine:
        return {}
    # their devices by a subquery, not a list: all withdrawn children's
    # devices would pass the drivers' limit on bound parameters
    theirs = _holdings().subquery()
    devices = select(theirs.c.device_id).where(theirs.c.child_id.in_(children))
    others: dict[str, list[tuple[float, float | None]]] = {}
    for device_id, _, since, until in session.execute(
            select(held).where(held.c.device_id.in_(devices),
                               held.c.child_id.not_in(children))):
        others.setdefault(device_id, []).append((float(since), until))
    spans: dict[str, list[Span]] = {}
    for device_id, _, since, until in mine:
        theirs = others.get(device_id, [])
        lo = float(since) if any(s < since for s, _ in theirs) else -math.inf
        hi = (float(until) if until is not None and any(s >= until for s, _ in theirs)
              else math.inf)
        spans.setdefault(device_id, []).append((lo, hi))
    return {d: merged(s) for d, s in sorted(spans.items())}


def merged(spans: list[Span]) -> list[Span]:
    """The spans, overlapping ones joined, in time order."""
    out: list[Span] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def fixes_within(spans: Spans) -> ColumnElement[bool]:
    """The fixes the spans cover, as a condition (devices held all along in
    one ``IN``: the common case)."""
    whole = [d for d, s in spans.items() if s == [WHOLE]]
    parts: list[ColumnElement[bool]] = [Fix.device_id.in_(whole)] if whole else []
    for device_id, device_spans in spans.items():
        if device_spans == [WHOLE]:
            continue
        for lo, hi in device_spans:
            bounds = [Fix.device_id == device_id]
            if lo > -math.inf:
                bounds.append(Fix.t >= lo)
            if hi < math.inf:
                bounds.append(Fix.t <= hi)
            parts.append(and_(*bounds))
    return or_(*parts) if parts else false()
