"""The "3G watch" text protocol that child GPS watches speak over TCP.

A frame is ``[MF*DEVICEID*LLLL*TYPE,payload]``: a manufacturer tag (3G, SG,
ZJ, CS…), the device id, the content length in 4 hex digits, then the
content. Some firmwares put a 4-hex index between id and length
(``[ZJ*id*IIII*LLLL*…]``); replies must mirror it. Binary payloads (voice
``TK``/``JXTK``, photos ``img``) escape ``} [ ] , *`` as ``}`` + 0x01..0x05,
so a raw bracket never occurs inside them.

Real devices are sloppy, so framing trusts several signals in order: the
declared length when it lands on a ``]``, else bracket depth (SSIDs may
contain brackets), and a new valid header always starts a new frame (a
watch that reset mid-frame must not swallow the SOS it sends next). Lengths
are often wrong (characters vs UTF-8 bytes of Hangul SSIDs, off-by-one
firmwares), so a wrong length alone never rejects a frame.

This module is pure (no I/O): ``FrameSplitter`` cuts a byte stream into
frames with bounded memory, ``decode`` turns one frame into reports and the
reply the device expects. An alarm frame raises an SOS when its status says
SOS or cannot be read; nothing about the position can suppress it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from models.fixes import Rejected, Report
from models.messages import FLAG_FALL, FLAG_LOW_BATTERY, FLAG_REMOVED

MAX_FRAME = 16 * 1024  # text frames; a UD with 30 access points is ~2 KiB
MAX_BINARY = 512 * 1024  # voice/photo payloads are skipped, never buffered
KMH_MS = 1 / 3.6

_HEADER = re.compile(
    rb"\[([0-9A-Za-z]{1,8})\*([0-9A-Za-z]{1,32})\*(?:([0-9A-Fa-f]{4})\*)?([0-9A-Fa-f]{4})\*")
_MAX_HEADER = 1 + 8 + 1 + 32 + 1 + 5 + 5
_HEADER_CHARS = re.compile(rb"[0-9A-Za-z*]*")
_HEX4_PREFIX = re.compile(rb"[0-9A-Fa-f]{0,4}")
_BRACKET = re.compile(rb"[\[\]]")
_BINARY_MARKS = (b"TK,", b"JXTK,", b"img,")
_BINARY_HEAD = re.compile(rb"TK,|JXTK,|img,")
_PLAIN = re.compile(rb"[^\[\]}]*")  # no bracket, no escape: the length can be trusted
_CLOSE = 0x5D  # ']'
_OK, _MORE, _BAD = 0, 1, 2


def _header_at(buf: bytes | bytearray, i: int) -> tuple[int, re.Match[bytes] | None]:
    """Is there a frame header at ``buf[i]`` (a ``[``)? ``_MORE`` when the
    bytes so far could still become one."""
    n = len(buf)
    m = _HEADER.match(buf, i)
    if m is None:
        if n - i < _MAX_HEADER and _HEADER_CHARS.fullmatch(buf, i + 1, n):
            return _MORE, None
        return _BAD, None
    end = m.end()
    # "[ZJ*id*0075*" may be an index with the length still to come.
    if m.group(3) is None and n - end < 5 and _HEX4_PREFIX.fullmatch(buf, end, n):
        return _MORE, None
    return _OK, m


class FrameSplitter:
    """Cuts one connection's byte stream into frames.

    Garbage between frames is skipped (and counted) up to the next valid
    header; a text frame that outgrows ``max_frame`` is dropped and the
    stream resynchronised; binary payloads are discarded as they arrive,
    so a voice message costs no memory. A frame cut short by the next
    header is returned without its ``]`` so ``decode`` can refuse it.
    """

    def __init__(self, max_frame: int = MAX_FRAME, max_binary: int = MAX_BINARY) -> None:
        self.max_frame = max_frame
        self.max_binary = max_binary
        self.frames = 0
        self.garbage = 0  # bytes skipped that belonged to no frame
        self.oversized = 0  # frames dropped for size
        self.skipped_binary = 0  # payload bytes of voice/photo frames discarded
        self._buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        # Positions are relative to the pending frame's '[' (always buf[0]
        # between feeds), so compaction never has to shift them.
        self._c0 = -1  # content start; -1: no header yet
        self._adv_p = 0  # declared-length walk: position reached, units left
        self._adv_units = 0
        self._scan = 0  # bracket scan resumes here
        self._depth = 1
        self._binary: bool | None = None
        self._keep = 0  # binary: header + type, the part that is kept
        self._skipped = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        s = 0
        while True:
            if self._c0 < 0:
                i = buf.find(b"[", s)
                if i < 0:
                    self.garbage += len(buf) - s
                    s = len(buf)
                    break
                self.garbage += i - s
                s = i
                status, m = _header_at(buf, s)
                if status == _MORE:
                    break
                if status == _BAD or m is None:
                    self.garbage += 1
                    s += 1
                    continue
                c0, e = m.end(), m.end() + int(m.group(4), 16)
                if (e < len(buf) and buf[e] == _CLOSE and _PLAIN.fullmatch(buf, c0, e)
                        and not _BINARY_HEAD.match(buf, c0)):
                    out.append(bytes(buf[s:e + 1]))  # the common case, in one step
                    self.frames += 1
                    s = e + 1
                    continue
                self._c0 = self._adv_p = self._scan = c0 - s
                self._adv_units = int(m.group(4), 16)
            if self._binary is None:
                self._binary = self._is_binary(buf, s)
                if self._binary is None:
                    break
            end, frame = (self._binary_end if self._binary else self._text_end)(buf, s)
            if frame is None:
                if len(buf) - s > self.max_frame or self._skipped > self.max_binary:
                    self.oversized += 1
                    self.garbage += 1
                    s += 1
                    self._reset()
                    continue
                break
            out.append(frame)
            self.frames += 1
            s = end
            self._reset()
        if s:
            del buf[:s]
        return out

    def _is_binary(self, buf: bytearray, s: int) -> bool | None:
        c0 = s + self._c0
        head = bytes(buf[c0:c0 + 5])
        undecided = False
        for mark in _BINARY_MARKS:
            if head.startswith(mark):
                self._keep = self._scan = self._c0 + len(mark) - 1
                return True
            undecided = undecided or mark.startswith(head)
        return None if undecided else False

    def _advance(self, buf: bytearray, s: int) -> int | None:
        """Where the declared length ends (escapes count as one byte), or
        None while the bytes are not all here; resumable across feeds."""
        n = len(buf)
        p, units = s + self._adv_p, self._adv_units
        while units > 0:
            lim = min(p + units, n)
            q = buf.find(b"}", p, lim)
            if q < 0:
                units -= lim - p
                p = lim
                if units:
                    break
            elif q + 1 < n:
                units -= q - p + 1
                p = q + 2
            else:
                units -= q - p
                p = q
                break
        self._adv_p, self._adv_units = p - s, units
        return p if units == 0 else None

    def _text_end(self, buf: bytearray, s: int) -> tuple[int, bytes | None]:
        e = self._advance(buf, s)
        by_length = e if e is not None and e < len(buf) and buf[e] == _CLOSE else -1
        candidate = -1  # a depth-0 ']' before a length-consistent one
        for m in _BRACKET.finditer(buf, s + self._scan):
            k = m.start()
            if k == by_length:
                return k + 1, bytes(buf[s:k + 1])
            if buf[k] == _CLOSE:
                self._depth -= 1
                if self._depth == 0 and candidate < 0:
                    if by_length < k:
                        return k + 1, bytes(buf[s:k + 1])
                    candidate = k
                continue
            status, _ = _header_at(buf, k)
            if status == _OK:
                if candidate >= 0:
                    return candidate + 1, bytes(buf[s:candidate + 1])
                return k, bytes(buf[s:k])  # cut short by the next frame
            if status == _MORE:
                self._scan = k - s
                return 0, None
            self._depth += 1
        self._scan = len(buf) - s
        return 0, None

    def _binary_end(self, buf: bytearray, s: int) -> tuple[int, bytes | None]:
        keep = s + self._keep
        m = _BRACKET.search(buf, keep)
        if m is None:
            self._skipped += len(buf) - keep
            self.skipped_binary += len(buf) - keep
            del buf[keep:]
            return 0, None
        k = m.start()
        self.skipped_binary += k - keep
        if buf[k] == _CLOSE:
            return k + 1, bytes(buf[s:keep]) + b"]"
        return k, bytes(buf[s:keep])  # a raw '[' cannot be payload: cut short


# --------------------------------------------------------------------------- decoding

_TYPE = re.compile(rb"[A-Za-z0-9_]{1,24}")
_DATE = re.compile(r"\d{6}", re.ASCII)
_COORD_BARE = r"-?\d{1,3}(?:\.\d{0,12})?"
_UNSIGNED_BARE = r"\d{1,6}(?:\.\d{0,9})?"
_INT_BARE = r"\d{1,10}"
_COORD_P = rf"\s*{_COORD_BARE}\s*"  # what float() reads, blanks around it included
_UNSIGNED_P = rf"\s*{_UNSIGNED_BARE}\s*"
_INT_P = rf"\s*{_INT_BARE}\s*"
_STATUS_P = r"[0-9A-Fa-f]{1,8}"
_COORD = re.compile(_COORD_P, re.ASCII)
_UNSIGNED = re.compile(_UNSIGNED_P, re.ASCII)
_INT = re.compile(_INT_P, re.ASCII)
_STATUS = re.compile(_STATUS_P, re.ASCII)


def _fixed_part(other: str, coord: str = _COORD_P, unsigned: str = _UNSIGNED_P,
                integer: str = _INT_P) -> str:
    """date … status, the 11 groups ``_report`` reads; ``other`` matches a
    field nobody reads (altitude, satellites, GSM signal…)."""
    return (rf"(\d{{6}}),(\d{{6}}),([AV]),({coord}),([NS]?),({coord}),([EW]?),"
            rf"({unsigned}),({unsigned}),{other},{other},{other},({integer}),{other},{other},"
            rf"({_STATUS_P})")


# The whole fixed part in one match (the common case); field-by-field
# checks run only when it fails, to name the reason or rescue an SOS.
_FAST = re.compile(_fixed_part("[^,]*") + r"(?:,|\Z)", re.ASCII)
# One plain UD frame, header to ']' (what a watch sends every few seconds):
# no bracket, escape or binary mark inside, so the splitter cuts exactly
# this frame when its declared length is right; numbers without blanks
# around them (a quarter less matching; blanks go the long way).
_PLAIN_UD = re.compile(
    r"\[[0-9A-Za-z]{1,8}\*([0-9A-Za-z]{1,32})\*(?:[0-9A-Fa-f]{4}\*)?([0-9A-Fa-f]{4})\*"
    r"(UD[A-Za-z0-9_]{0,22}),"
    + _fixed_part(r"[^,\[\]}]*", _COORD_BARE, _UNSIGNED_BARE, _INT_BARE)
    + r"(?:,[^\[\]}]*)?\]", re.ASCII)
_ALARM_BITS = ((16, "sos"), (0, "low_battery"), (17, "low_battery"), (20, "removed"),
               (21, "fall"), (22, "fall"))
_FIXED_FIELDS = 16  # date … status; cell towers and access points follow
_REPLY_SAME = frozenset({"TKQ", "TKQ2"})


class FrameRejected(Rejected):
    """A frame that carries nothing usable, but may still deserve a reply
    (a garbled heartbeat keeps the watch online)."""

    def __init__(self, reason: str, detail: str, reply: bytes | None = None) -> None:
        super().__init__(reason, detail)
        self.reply = reply


@dataclass(slots=True)
class WatchMessage:
    manufacturer: str
    device_id: str
    index: str | None
    type: str
    reports: list[Report]
    reply: bytes | None
    alarms: frozenset[str] = frozenset()
    battery: int | None = None  # heartbeats report it without a position
    steps: int | None = None
    length_ok: bool = True  # the declared length matched (informational)
    network: str = ""  # the raw cell-tower/access-point tail; see parse_network


def encode(manufacturer: str, device_id: str, content: str, index: str | None = None) -> bytes:
    """A text frame as a watch or the server writes it (length in hex)."""
    body = content.encode("utf-8")
    idx = f"{index}*" if index else ""
    return b"[%s*%s*%s%04X*%s]" % (manufacturer.encode("ascii"), device_id.encode("ascii"),
                                   idx.encode("ascii"), len(body), body)


def frame_device_id(frame: bytes) -> str | None:
    """The device id in a frame's header, if it has a valid one (a frame that
    fails to decode still says who sent it)."""
    m = _HEADER.match(frame)
    return m.group(2).decode("ascii") if m else None


def decode(frame: bytes, now: float, utc_offset_s: float = 0.0) -> WatchMessage:
    """One frame from ``FrameSplitter``; raises ``Rejected`` with a reason.

    ``utc_offset_s`` is the watches' clock offset (many send local time);
    ``now`` stamps an SOS whose own time cannot be read.
    """
    m = _HEADER.match(frame)
    if m is None:
        raise Rejected("bad_header", repr(frame[:48]))
    mf, dev = m.group(1).decode("ascii"), m.group(2).decode("ascii")
    index = m.group(3).decode("ascii") if m.group(3) else None
    complete = frame.endswith(b"]")
    content = frame[m.end():len(frame) - 1 if complete else len(frame)]
    comma = content.find(b",")
    type_b = content if comma < 0 else content[:comma]
    if not _TYPE.fullmatch(type_b):
        raise Rejected("bad_type" if content else "empty_frame", f"{dev}: {content[:24]!r}")
    typ = type_b.decode("ascii")

    def reply(text: str) -> bytes:
        return encode(mf, dev, text, index)

    msg = WatchMessage(mf, dev, index, typ, [], None)
    if typ in ("TK", "JXTK", "img"):
        if not complete:
            raise Rejected("truncated", f"{dev}: {typ} frame cut short")
        payload = content[comma + 1:] if comma >= 0 else b""
        if typ == "TK" and payload not in (b"0", b"1"):  # 0/1 acknowledge *our* voice
            msg.reply = reply("TK,1")
        elif typ == "JXTK":
            msg.reply = reply("JXTKR,1")
        return msg
    msg.length_ok = _length_ok(content, int(m.group(4), 16))
    payload_s = content[comma + 1:].decode("latin-1") if comma >= 0 else ""
    if typ.startswith(("UD", "AL", "WT")):
        _location(msg, payload_s, complete, now, utc_offset_s, reply)
        return msg
    if not complete:
        raise Rejected("truncated", f"{dev}: {typ} frame cut short")
    if typ == "LK":
        msg.reply = reply("LK")
        values = payload_s.split(",") if payload_s else []
        if len(values) >= 3:
            try:
                msg.steps = _int(values[0], "steps")
                _int(values[1], "rolls")
                msg.battery = _int(values[2], "battery")
            except Rejected as exc:
                raise FrameRejected(exc.reason, f"{dev}: LK {exc.detail}", msg.reply) from None
    elif typ == "INIT":
        msg.reply = reply("INIT,1")
    elif typ in _REPLY_SAME:
        msg.reply = reply(typ)
    return msg


def _length_ok(content: bytes, declared: int) -> bool:
    if len(content) - content.count(b"}") == declared:
        return True
    return len(content.decode("utf-8", "replace")) == declared  # characters, not bytes


def _location(msg: WatchMessage, payload: str, complete: bool, now: float,
              utc_offset_s: float, reply: Callable[[str], bytes]) -> None:
    """UD*/WT*/AL*: a position, and for an SOS a report even without one.

    In a frame cut short only fields followed by a comma are trusted (a cut
    status "0001" of "00010000" would misread the alarm).
    """
    alarm = msg.type.startswith("AL")
    if alarm and complete:
        msg.reply = reply("AL")
    if complete and _fast_location(msg, payload, utc_offset_s):
        return
    fields = payload.split(",")
    whole = len(fields) >= _FIXED_FIELDS if complete else len(fields) > _FIXED_FIELDS
    status = int(fields[15], 16) if whole and _STATUS.fullmatch(fields[15]) else None
    if status is not None:
        msg.alarms = _alarms(status)
    elif alarm:
        msg.alarms = frozenset({"unknown"})  # could be an SOS: fail safe
    sos = "sos" in msg.alarms or (alarm and status is None)
    report: Report | None = None
    problem: Rejected | None = None
    try:
        report = _position(fields if whole else fields[:-1], msg.device_id, utc_offset_s)
    except Rejected as exc:
        problem = exc
    if problem is None and not complete:
        problem = Rejected("truncated", f"{msg.type} frame cut short")
    if problem is None and status is None:
        problem = Rejected("bad_status", f"status {fields[15][:16]!r}")
    if problem is not None and not sos:
        raise FrameRejected(problem.reason, f"{msg.device_id}: {problem.detail}", msg.reply)
    if report is None:
        report = Report(msg.device_id, _time_or(fields, now, utc_offset_s), math.nan, math.nan,
                        valid=False, battery=_battery_or(fields, -1))
    report.sos = sos
    report.alarms = alarm_flags(msg.alarms)
    msg.reports.append(report)
    msg.battery = report.battery if report.battery >= 0 else None
    if status is not None:
        msg.network = ",".join(fields[_FIXED_FIELDS:])


def _fast_location(msg: WatchMessage, payload: str, utc_offset_s: float) -> bool:
    m = _FAST.match(payload)
    if m is None:
        return False
    g = m.groups()
    found = _report(msg.device_id, g, utc_offset_s)
    if found is None:
        return False
    report, msg.alarms = found
    msg.battery = report.battery
    msg.reports.append(report)
    msg.network = payload[m.end():]
    return True


def _report(device_id: str, g: tuple[str, ...] | list[str],
            utc_offset_s: float) -> tuple[Report, frozenset[str]] | None:
    """The report and alarms of ``_fixed_part``'s 11 groups; None for a
    date or clock that is no time (the slow path names it)."""
    t = _instant(g[0], g[1])
    if t is None:
        return None
    lat, lon = float(g[3]), float(g[5])
    status = int(g[10], 16)
    alarms = _alarms(status) if status else frozenset()
    return Report(
        device_id, t - utc_offset_s,
        -abs(lat) if g[4] == "S" else lat, -abs(lon) if g[6] == "W" else lon,
        float(g[7]) * KMH_MS, float(g[8]), math.nan, min(int(g[9]), 100), "sos" in alarms,
        g[2] == "A", alarm_flags(alarms) if alarms else 0), alarms


def decode_plain_uds(data: bytes, utc_offset_s: float = 0.0) -> tuple[list[Report], int]:
    """The reports of the plain, complete ``UD`` frames with a right length
    that open a read, each read in one match, and how many bytes they take:
    what ``FrameSplitter.feed`` then ``decode`` make of those bytes (a UD
    needs no reply). The rest of the read, from the first frame that is
    anything else, goes the long way, which names what is wrong.

    Why: a watch sends one such frame every few seconds, and splitting then
    decoding it field by field was most of the gateway's time at 10,000
    connections (a read that waited its turn holds several)."""
    text = data.decode("latin-1")  # one character per byte: positions are byte offsets
    match = _PLAIN_UD.match
    reports: list[Report] = []
    pos, end = 0, len(text)
    while pos < end:
        m = match(text, pos)
        if m is None or int(m.group(2), 16) != m.end() - 1 - m.start(3):
            break
        groups = m.groups()
        found = _report(groups[0], groups[3:], utc_offset_s)
        if found is None:
            break
        reports.append(found[0])
        pos = m.end()
    return reports, pos


def _alarms(status: int) -> frozenset[str]:
    return frozenset(name for bit, name in _ALARM_BITS if status >> bit & 1)


_ALARM_FLAGS = {"fall": FLAG_FALL, "removed": FLAG_REMOVED, "low_battery": FLAG_LOW_BATTERY}


def alarm_flags(alarms: frozenset[str]) -> int:
    """The fix flags for a watch's alarms other than SOS (which is ``Report.sos``)."""
    flags = 0
    for name in alarms:
        flags |= _ALARM_FLAGS.get(name, 0)
    return flags


def _position(fields: list[str], device_id: str, utc_offset_s: float) -> Report:
    if len(fields) < _FIXED_FIELDS:
        raise Rejected("missing_fields", f"{len(fields)} of {_FIXED_FIELDS} fields")
    validity = fields[2]
    if validity not in ("A", "V"):
        raise Rejected("bad_validity", repr(validity[:8]))
    return Report(
        device_id=device_id,
        t=_time(fields[0], fields[1], utc_offset_s),
        lat=_coord(fields[3], fields[4], "NS"),
        lon=_coord(fields[5], fields[6], "EW"),
        speed=_unsigned(fields[7], "speed") * KMH_MS,
        bearing=_unsigned(fields[8], "course"),
        battery=min(_int(fields[12], "battery"), 100),
        valid=validity == "A",
    )


_DAYS: dict[str, float | None] = {}  # ddmmyy -> epoch of its midnight (None: no such day)


def _day(date: str) -> float | None:
    try:
        return _DAYS[date]
    except KeyError:
        pass
    try:
        day: float | None = datetime(2000 + int(date[4:]), int(date[2:4]), int(date[:2]),
                                     tzinfo=UTC).timestamp()
    except ValueError:
        day = None
    if len(_DAYS) >= 4096:
        _DAYS.clear()
    _DAYS[date] = day
    return day


_INSTANTS: dict[tuple[str, str], float | None] = {}  # (ddmmyy, hhmmss) -> epoch, or None


def _instant(date: str, clock: str) -> float | None:
    """The epoch of six-digit ``date`` and ``clock`` read as UTC, None when
    they name no instant. Remembered: the watches that report within the
    same second all send the same two fields."""
    try:
        return _INSTANTS[date, clock]
    except KeyError:
        pass
    hh, mi, ss = int(clock[:2]), int(clock[2:4]), int(clock[4:])
    day = _day(date)
    t = None if day is None or hh > 23 or mi > 59 or ss > 59 else day + hh * 3600 + mi * 60 + ss
    if len(_INSTANTS) >= 4096:
        _INSTANTS.clear()
    _INSTANTS[date, clock] = t
    return t


def _time(date: str, clock: str, utc_offset_s: float) -> float:
    if not (_DATE.fullmatch(date) and _DATE.fullmatch(clock)):
        raise Rejected("bad_time", f"{date[:8]!r} {clock[:8]!r}")
    t = _instant(date, clock)
    if t is None:
        raise Rejected("bad_time", f"{date} {clock}")
    return t - utc_offset_s


def _time_or(fields: list[str], now: float, utc_offset_s: float) -> float:
    try:
        return _time(fields[0], fields[1], utc_offset_s)
    except (Rejected, IndexError):
        return now


def _coord(value: str, hemisphere: str, allowed: str) -> float:
    if not _COORD.fullmatch(value):
        raise Rejected("bad_coordinate", repr(value[:16]))
    if hemisphere and (len(hemisphere) != 1 or hemisphere not in allowed):
        raise Rejected("bad_hemisphere", repr(hemisphere[:8]))
    x = float(value)
    return -abs(x) if hemisphere in ("S", "W") else x


def _unsigned(value: str, name: str) -> float:
    if not _UNSIGNED.fullmatch(value):
        raise Rejected("bad_number", f"{name}={value[:16]!r}")
    return float(value)


def _int(value: str, name: str) -> int:
    if not _INT.fullmatch(value):
        raise Rejected("bad_number", f"{name}={value[:16]!r}")
    return int(value)


def _battery_or(fields: list[str], default: int) -> int:
    if len(fields) > 13 and _INT.fullmatch(fields[12]):
        return min(int(fields[12]), 100)
    return default


def parse_network(tail: str) -> tuple[list[tuple[int, int, int, int, int]], list[tuple[str, int]]]:
    """Cell towers ``(mcc, mnc, lac, cid, rssi)`` and access points
    ``(mac, rssi)`` from a location frame's tail, best effort: kept apart
    from ``decode`` because nothing downstream needs them yet (carrier LBS
    may), and a malformed tail must never cost a position."""
    f = tail.split(",")
    cells: list[tuple[int, int, int, int, int]] = []
    wifi: list[tuple[str, int]] = []

    def num(s: str) -> int:
        try:
            return int(s) if s else 0
        except ValueError:
            return int(s, 16)

    try:
        n_cells, i = min(num(f[0]), 32), 2  # count, timing advance
        if n_cells:
            mcc, mnc, i = num(f[2]), num(f[3]), 4
            for _ in range(n_cells):
                cells.append((mcc, mnc, num(f[i]), num(f[i + 1]), num(f[i + 2] or "0")))
                i += 3
        n_wifi = min(num(f[i]), 64) if i < len(f) and f[i] else 0
        i += 1
        for _ in range(n_wifi):
            wifi.append((f[i + 1], int(f[i + 2])))  # (name,) mac, rssi
            i += 3
    except (ValueError, IndexError):
        pass
    return cells, wifi
