"""The OsmAnd HTTP protocol, as phone apps such as Traccar Client send it.

``GET /?id=…&lat=…&lon=…&timestamp=…&speed=…&bearing=…&accuracy=…&batt=…``
(the same fields may come as a form-encoded POST body). ``speed`` is in
knots, as the apps send it; ``timestamp`` is epoch seconds, epoch
milliseconds or an ISO-8601 time; ``alarm=sos`` is the panic button.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from models.fixes import Rejected, Report

KNOT_MS = 0.514444
MAX_ID_LEN = 64


def _float(params: dict[str, str], *names: str, default: float = math.nan) -> float:
    for name in names:
        raw = params.get(name)
        if raw is None or raw == "":
            continue
        try:
            return float(raw)
        except ValueError:
            raise Rejected("bad_number", f"{name}={raw[:32]!r}") from None
    return default


def parse_time(raw: str) -> float:
    """Epoch seconds from the forms the apps send."""
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        return value / 1000.0 if value > 1e11 else value
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise Rejected("bad_timestamp", f"timestamp={raw[:40]!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def decode_query(query: str, now: float) -> Report:
    """One report from a query string or form body; raises ``Rejected``."""
    params = dict(parse_qsl(query, keep_blank_values=True, max_num_fields=64))
    device_id = (params.get("id") or params.get("deviceid") or "").strip()
    if not device_id:
        raise Rejected("missing_device_id", "no id or deviceid parameter")
    if len(device_id) > MAX_ID_LEN or not device_id.isprintable():
        raise Rejected("bad_device_id", f"id of {len(device_id)} characters")
    if "location" in params and "lat" not in params:
        lat_s, _, lon_s = params["location"].partition(",")
        params["lat"], params["lon"] = lat_s, lon_s
    sos = params.get("alarm", "").lower() in ("sos", "panic", "general")
    if ("lat" not in params or "lon" not in params) and not sos:
        raise Rejected("missing_position", "no lat/lon")
    t = parse_time(params["timestamp"]) if params.get("timestamp") else now
    speed_kn = _float(params, "speed", default=0.0)
    return Report(
        device_id=device_id,
        t=t,
        lat=_float(params, "lat"),
        lon=_float(params, "lon"),
        speed=speed_kn * KNOT_MS,
        bearing=_float(params, "bearing", "heading", default=0.0),
        accuracy=_float(params, "accuracy", "hdop"),
        battery=int(_float(params, "batt", "battery", default=-1.0)),
        sos=sos,
        valid=params.get("valid", "true").lower() not in ("false", "0"),
    )
