"""The OsmAnd HTTP protocol, as phone apps such as Traccar Client send it.

Two body forms exist in the field, and both must keep working unchanged:

- the classic form, ``GET /?id=…&lat=…&lon=…&timestamp=…&speed=…&bearing=…
  &accuracy=…&batt=…`` (the same fields may come as a form-encoded POST
  body): ``speed`` in knots, ``timestamp`` epoch seconds, epoch
  milliseconds or ISO-8601, ``alarm=sos`` the panic button;
- the JSON body of newer apps (Traccar Client 9+, built on a background
  geolocation plugin), ``Content-Type: application/json``::

    {"device_id": "…", "location": {"timestamp": "<ISO-8601>",
      "coords": {"latitude", "longitude", "accuracy", "speed", "heading",
                 "altitude"},
      "is_moving": bool, "event": "…", "battery": {"level": 0..1},
      "extras": {"alarm": "sos"}}}

  Here ``speed`` is already m/s, and -1 means "unknown" for speed, heading,
  accuracy and battery level. The SOS button sends an ordinary location with
  ``extras.alarm = "sos"`` (some builds put ``alarm`` on the location).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from console.gateway.fields import (
    MAX_ID_LEN,
    as_object,
    epoch,
    number,
    parse_json,
    parse_time,
    text_id,
)
from models.fixes import Rejected, Report

__all__ = ["KNOT_MS", "MAX_ID_LEN", "decode_json", "decode_query", "parse_time"]

KNOT_MS = 0.514444
SOS_ALARMS = frozenset({"sos", "panic", "general"})
MAX_FIELDS = 64


def may_hold_alarm(data: bytes) -> bool:
    """The gateway's test for a read to be worked at once (``HttpServer``'s
    ``urgent``): the query field and the JSON key are both ``alarm``. A
    plain mention elsewhere costs nothing but that read's place in line."""
    return b"alarm" in data


def _float(params: dict[str, str], *names: str, default: float = math.nan,
           finite: bool = True) -> float:
    """The first of ``names`` present, as a float, or ``default``.

    Text that is no number is refused, and so (unless ``finite`` is False)
    are NaN and the infinities (``batt=nan``, ``speed=1e400``): a phone that
    sends them is broken, and saying so beats storing a made-up value.
    Coordinates pass ``finite=False`` so the intake's validation names them
    (``coordinate_not_finite``) like every other protocol's.
    """
    for name in names:
        raw = params.get(name)
        if raw is None or raw == "":
            continue
        try:
            value = float(raw)
        except ValueError:
            raise Rejected("bad_number", f"{name}={raw[:32]!r}") from None
        if finite and not math.isfinite(value):
            raise Rejected("bad_number", f"{name}={raw[:32]!r} is not finite")
        return value
    return default


def _params(query: str) -> dict[str, str]:
    """The query's fields, as ``dict(parse_qsl(query, keep_blank_values=True))``
    gives them. More than ``MAX_FIELDS`` is refused: no app sends that many.

    Apps send plain numbers and ids, so a query with nothing escaped is
    split directly; ``parse_qsl`` (a fifth of the gateway's time under load)
    is kept for one that has ``%`` or ``+`` to decode."""
    if query.count("&") >= MAX_FIELDS:
        raise Rejected("too_many_fields", f"more than {MAX_FIELDS} fields")
    if "%" in query or "+" in query:
        return dict(parse_qsl(query, keep_blank_values=True))
    out: dict[str, str] = {}
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            out[name] = value
    return out


def _battery(params: dict[str, str]) -> int:
    """Battery percent, -1 when not sent; a number outside 0..100 means unknown."""
    pct = round(_float(params, "batt", "battery", default=-1.0))
    return pct if 0 <= pct <= 100 else -1


_NOW = object()  # the default that means "the gateway's clock"

# Each report field: how it is read, and what an SOS gets when it cannot be
# (an SOS is never lost to a broken timestamp or speed: the engine raises it
# at the last known position). Any other report with a bad field is refused.
_FIELDS: tuple[tuple[str, Callable[[dict[str, str], float], object], object], ...] = (
    ("t", lambda p, now: parse_time(p["timestamp"]) if p.get("timestamp") else now, _NOW),
    ("lat", lambda p, _now: _float(p, "lat", finite=False), math.nan),
    ("lon", lambda p, _now: _float(p, "lon", finite=False), math.nan),
    ("speed", lambda p, _now: _float(p, "speed", default=0.0) * KNOT_MS, 0.0),
    ("bearing", lambda p, _now: _float(p, "bearing", "heading", default=0.0), 0.0),
    ("accuracy", lambda p, _now: _float(p, "accuracy", "hdop"), math.nan),
    ("battery", lambda p, _now: _battery(p), -1),
)


def _plain(p: dict[str, str], device_id: str, now: float) -> Report | None:
    """The report ``_FIELDS`` would read from a routine query whose fields
    are all plain numbers, or None for anything else (a missing or ISO
    timestamp, a bad or non-finite number): ``_FIELDS`` then reads it, with
    its reason for a refusal. Nearly every request a phone sends is plain,
    and reading it straight costs a third of going field by field."""
    try:
        raw = p.get("timestamp")
        t = float(raw) if raw else now
        lat_s, lon_s = p["lat"], p["lon"]
        lat = float(lat_s) if lat_s else math.nan
        lon = float(lon_s) if lon_s else math.nan
        raw = p.get("speed")
        speed = float(raw) if raw else 0.0
        raw = p.get("bearing") or p.get("heading")
        bearing = float(raw) if raw else 0.0
        given = p.get("accuracy") or p.get("hdop")
        accuracy = float(given) if given else 0.0
        raw = p.get("batt") or p.get("battery")
        battery = float(raw) if raw else -1.0
    except ValueError:
        return None
    if (t - t) or (speed - speed) or (bearing - bearing) or (accuracy - accuracy) or (
            battery - battery):  # NaN or an infinity in one of them
        return None
    pct = round(battery)
    return Report(
        device_id=device_id, t=t / 1000.0 if t > 1e11 else t, lat=lat, lon=lon,
        speed=speed * KNOT_MS, bearing=bearing, accuracy=accuracy if given else math.nan,
        battery=pct if 0 <= pct <= 100 else -1,
        valid=p.get("valid", "true").lower() not in ("false", "0"))


def decode_query(query: str, now: float) -> Report:
    """One report from a query string or form body; raises ``Rejected``
    (and nothing else, whatever the text)."""
    params = _params(query)
    device_id = (params.get("id") or params.get("deviceid") or "").strip()
    if not device_id:
        raise Rejected("missing_device_id", "no id or deviceid parameter")
    if len(device_id) > MAX_ID_LEN or not device_id.isprintable():
        raise Rejected("bad_device_id", f"id of {len(device_id)} characters")
    if "location" in params and "lat" not in params:
        lat_s, _, lon_s = params["location"].partition(",")
        params["lat"], params["lon"] = lat_s, lon_s
    sos = params.get("alarm", "").lower() in SOS_ALARMS
    if ("lat" not in params or "lon" not in params) and not sos:
        raise Rejected("missing_position", "no lat/lon")
    if not sos and (report := _plain(params, device_id, now)) is not None:
        return report
    values: dict[str, Any] = {}
    for name, read, default in _FIELDS:
        try:
            values[name] = read(params, now)
        except Rejected:
            if not sos:
                raise
            values[name] = now if default is _NOW else default
    return Report(device_id=device_id, sos=sos,
                  valid=params.get("valid", "true").lower() not in ("false", "0"), **values)


def decode_json(body: bytes, now: float) -> Report:
    """One report from the JSON body newer phone apps POST; raises ``Rejected``.

    Only what locates the child is strict (device id, location, coordinates,
    timestamp); a malformed extra such as ``battery`` or ``activity`` is
    ignored rather than costing the fix.
    """
    root = as_object(parse_json(body), "body")
    device_id = text_id(root.get("device_id"), "device_id")
    raw_location = root.get("location")
    if isinstance(raw_location, list):
        # The plugin's optional batch mode; Traccar Client never enables it.
        raise Rejected("location_list_unsupported", "send one location per request")
    if raw_location is None:
        raise Rejected("missing_location", "no location object")
    location = as_object(raw_location, "location")
    sos = _alarm(location) or _alarm(root)
    raw_coords = location.get("coords")
    if raw_coords is None:
        if not sos:
            raise Rejected("missing_position", "no location.coords")
        coords: Mapping[str, Any] = {}
    else:
        coords = as_object(raw_coords, "location.coords")
    ts = location.get("timestamp")
    return Report(
        device_id=device_id,
        t=now if ts is None else epoch(ts, "location.timestamp"),
        lat=number(coords, "latitude", math.nan if sos else None),
        lon=number(coords, "longitude", math.nan if sos else None),
        speed=_known(number(coords, "speed", -1.0), 0.0),
        bearing=_known(number(coords, "heading", -1.0), 0.0),
        accuracy=_known(number(coords, "accuracy", -1.0), math.nan),
        battery=_battery_pct(location.get("battery")),
        sos=sos,
    )


def _known(value: float, unknown: float) -> float:
    """The apps send -1 for "not measured"; keep that out of the data."""
    return value if value >= 0 else unknown


def _battery_pct(battery: object) -> int:
    level = battery.get("level") if isinstance(battery, dict) else None
    if isinstance(level, bool) or not isinstance(level, int | float):
        return -1
    if 0 <= level <= 1:
        return round(level * 100)
    if 1 < level <= 100:  # a few apps send percent here
        return round(level)
    return -1


def _alarm(obj: Mapping[str, Any]) -> bool:
    extras = obj.get("extras")
    for value in (obj.get("alarm"), extras.get("alarm") if isinstance(extras, dict) else None):
        if isinstance(value, str) and value.lower() in SOS_ALARMS:
            return True
    return False
