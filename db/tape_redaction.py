"""Redaction of the tape (``db.tape``): a withdrawn child's fixes leave the
tape as they leave the store.

Why: a guardian's withdrawal obliges us to delete the child's location
history at once (Location Information Act §24; DESIGN.md, Privacy:
"withdrawal purges"). ``db.consent.withdraw`` deletes it from the store,
but the tape keeps every ``fix.batch`` frame the recorder heard until
``tape_keep_days``. ``redact`` takes the fixes of given devices out of
every batch on the tape, except those an open alert's case needs (the
``keep`` windows of device time, the same ``db.consent.withdrawal_scope``
gives the store's deletion).

**What changes.** In each ``fix.batch`` record that names one of the
devices, their fixes go; the batch is encoded again with every other
device's fixes exactly as they were (the same column bytes, readers,
envelope), and a batch left without fixes goes altogether. A ``fix.batch``
record naming a device that does not decode is dropped whole (nobody can
replay it, and it holds the child's data). Everything else stays byte for
byte: other families' sections, other records of the section (their
ordinals too: a gap in the ordinals is harmless, readers only sort by
them), blocks without a fix of those devices. A block keeps its time
bounds, which stay true bounds (perhaps wider than its records now). Data
readers already skip as damaged (bytes between blocks, a block whose header
does not hold, a fix section that fails its checksum) is not carried into a
rewritten segment (counted in ``damage_dropped``); a segment is rewritten
for that alone only when the damaged bytes name one of the devices.

**Atomic per segment.** A segment that changes is written beside itself
(``05.tape.redact`` and ``05.idx.redact``), both fsynced; then its index
is removed, the new segment renamed over the old and the new index put in
place, the folder fsynced between. A crash leaves each segment old or new,
never torn (at worst without an index, which readers rebuild by walking
the blocks), plus a temporary file the next ``redact`` removes.

**Bounded memory and cheap skips.** A segment is read block by block (a
block is about ``db.tape.BLOCK_BYTES``); blocks whose index mask has no
fix family are never read, only copied when their segment is rewritten;
a fix section whose bytes do not contain any of the device ids (msgpack
keeps strings as they are) is not decoded; a segment in which nothing
changes is not written at all, so a second ``redact`` of the same devices
only reads (and puts back an index a crash took). The caller must make
sure no writer appends to the segments it redacts
(``TapeWriter.frontier`` says which it may): the recorder redacts closed
hours while it records and pauses its writer for the rest.
"""

from __future__ import annotations

import contextlib
import math
import os
import zlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import msgspec
import numpy as np

from db.tape import (
    CODEC_NONE,
    CODEC_ZLIB,
    CRC,
    FAMILY_IDS,
    HEAD,
    HEADER_SIZE,
    HOUR_S,
    MAGIC,
    RECORD,
    SECTION,
    VERSION,
    ZLIB_LEVEL,
    BlockInfo,
    _days,
    _decode_section,
    _entry_bytes,
    _parse_header,
    _write_all,
    index_path,
    load_segment,
    segments,
)
from models.messages import BadMessage, FixBatch, decode, encode, fix_columns

FIX_TOPIC = b"fix.batch"
FIX_FAMILY = FAMILY_IDS[b"fix"]
TEMP_SUFFIX = ".redact"
COPY_CHUNK = 1 << 20
# More device ids than this are not searched for in a section's bytes one
# by one (the searches would cost more than decoding the batches).
MAX_NEEDLES = 16
_COLUMNS = ("t", "lat", "lon", "speed", "bearing", "accuracy", "battery", "flags")

Stop = Callable[[], bool]


class RedactionInterrupted(Exception):
    """``stop`` said so: the segment being rewritten was left as it was
    (those done before stay done); run ``redact`` again to finish."""


@dataclass(slots=True)
class RedactionReport:
    """What a redaction did, in counts (never which positions)."""

    segments_scanned: int = 0
    segments_rewritten: int = 0  # a segment left with no block is removed (counted here)
    fixes_removed: int = 0
    fixes_kept: int = 0  # of the devices, in a keep (case) window
    batches_dropped: int = 0  # left without any fix
    records_dropped: int = 0  # fix.batch frames naming a device that do not decode
    damage_dropped: int = 0  # bytes readers skipped anyway, not carried over
    bytes_before: int = 0  # of the segments rewritten, index included
    bytes_after: int = 0

    def add(self, other: RedactionReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def summary(self) -> str:
        """E.g. "812 fixes removed, 40 kept for open cases; 3 of 168
        segments rewritten (310.2 MB -> 309.9 MB)"."""
        text = (f"{self.fixes_removed} fixes removed, {self.fixes_kept} kept for open cases; "
                f"{self.segments_rewritten} of {self.segments_scanned} segments rewritten")
        if self.segments_rewritten:
            text += f" ({self.bytes_before / 1e6:.1f} MB -> {self.bytes_after / 1e6:.1f} MB)"
        if self.records_dropped:
            text += f"; {self.records_dropped} undecodable batches dropped"
        if self.damage_dropped:
            text += f"; {self.damage_dropped} damaged bytes not carried over"
        return text


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to take out: the devices' fixes in records received in
    [since, before), except in the windows."""

    ids: frozenset[str]
    needles: tuple[bytes, ...]  # empty: too many to search for, decode every batch
    windows: tuple[tuple[float, float], ...]
    since: float
    before: float

    def mentions(self, data: bytes) -> bool:
        """False only when ``data`` cannot hold any of the devices' ids."""
        return not self.needles or any(n in data for n in self.needles)


def redact(directory: Path, device_ids: Collection[str],
           keep: Sequence[tuple[float, float]] = (), before: float = math.inf, *,
           since: float = -math.inf, stop: Stop | None = None) -> RedactionReport:
    """Take the fixes of ``device_ids`` off the tape under ``directory``.

    Fixes whose device time lies in one of the ``keep`` windows ((from, to),
    both included) stay. Only records received in [``since``, ``before``)
    are looked at: ``before`` spares what came after a new consent,
    ``since`` lets the recorder do the closed hours while it records and the
    open one apart. ``stop`` is asked between blocks
    (``RedactionInterrupted``). OSError when a segment cannot be read or
    written: that segment stays as it was, those before it stay done.
    """
    report = RedactionReport()
    remove_stale_temps(directory)
    ids = frozenset(device_ids)
    if not ids or not since < before:
        return report
    needles = tuple(sorted(d.encode() for d in ids)) if len(ids) <= MAX_NEEDLES else ()
    windows = tuple((float(lo), float(hi)) for lo, hi in keep)
    plan = _Plan(ids, needles, windows, since, before)
    for hour, seg in segments(directory):
        if (hour + 1) * HOUR_S <= since or hour * HOUR_S >= before:
            continue
        report.add(_redact_segment(seg, plan, stop))
    return report


def remove_stale_temps(directory: Path) -> int:
    """Remove what a redaction that crashed left beside the segments (a
    partial copy that nothing would ever purge); how many files."""
    removed = 0
    for day, _ in _days(directory):
        for temp in day.glob(f"*{TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed += 1
    return removed


# ------------------------------------------------------------------ segments


class _Out:
    """The rewritten segment, written beside the old one."""

    def __init__(self, segment: Path) -> None:
        self.path = segment.with_name(segment.name + TEMP_SUFFIX)
        self.idx_path = index_path(segment).with_name(index_path(segment).name + TEMP_SUFFIX)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        self.end = 0
        self.entries: list[bytes] = []

    def copy(self, src: int, b: BlockInfo) -> None:
        """A block as it is, from the old segment."""
        done = 0
        while done < b.length:
            chunk = os.pread(src, min(COPY_CHUNK, b.length - done), b.offset + done)
            if not chunk:
                raise OSError(f"the segment ended inside the block at {b.offset}")
            _write_all(self.fd, chunk)
            done += len(chunk)
        self._entry(b)

    def write(self, block: bytes, b: BlockInfo) -> None:
        _write_all(self.fd, block)
        self._entry(b)

    def _entry(self, b: BlockInfo) -> None:
        self.entries.append(_entry_bytes(BlockInfo(self.end, b.length, b.first, b.last,
                                                   b.count, b.mask)))
        self.end += b.length

    def finish(self) -> int:
        """Both files on disk; the bytes they take."""
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        idx = b"".join(self.entries)
        fd = os.open(self.idx_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            _write_all(fd, idx)
            os.fsync(fd)
        finally:
            os.close(fd)
        return self.end + len(idx)

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        for path in (self.path, self.idx_path):
            with contextlib.suppress(OSError):
                path.unlink()


def _redact_segment(segment: Path, plan: _Plan, stop: Stop | None) -> RedactionReport:
    """Rewrite one segment if anything in it changes (see the module notes)."""
    rep = RedactionReport(segments_scanned=1)
    blocks, size = load_segment(segment, lambda _at, _why: None)
    try:
        fd = os.open(segment, os.O_RDONLY)
    except FileNotFoundError:
        return rep  # purged since it was listed
    out: _Out | None = None
    bad: set[int] = set()  # offsets of blocks whose header does not hold
    dropped = 0  # bytes no reader takes, left behind if the segment is rewritten
    try:
        pos = 0
        for i, b in enumerate(blocks):
            _check(stop)
            needed = False
            if b.offset > pos:  # damage between blocks
                dropped += b.offset - pos
                needed = _range_mentions(fd, pos, b.offset, plan)
            pos = b.offset + b.length
            outcome: _Outcome = _SAME
            if b.mask >> FIX_FAMILY & 1 and b.last >= plan.since and b.first < plan.before:
                outcome = _redact_block(fd, b, plan, rep)
            if isinstance(outcome, _Damaged):
                bad.add(b.offset)
                dropped += b.length
                needed = needed or outcome.mentions
            elif outcome is not _SAME:
                needed = True
            if needed and out is None:
                out = _start(segment, fd, blocks[:i], bad, stop)
            if out is None or b.offset in bad:
                continue
            if outcome is _SAME:
                out.copy(fd, b)
            elif isinstance(outcome, tuple) and outcome[0]:  # else: the block went whole
                out.write(*outcome)
        if size > pos:  # a torn tail, or garbage after the last block
            dropped += size - pos
            if out is None and _range_mentions(fd, pos, size, plan):
                out = _start(segment, fd, blocks, bad, stop)
        if out is None:
            if blocks and not index_path(segment).exists():
                _restore_index(segment, blocks)  # a crash between the renames took it
            return rep
        before = size + _size(index_path(segment))
        after = out.finish()
        _check(stop)  # the last moment the old segment can still stay
        _swap(segment, out)
        out = None
        rep.segments_rewritten = 1
        rep.damage_dropped += dropped
        rep.bytes_before, rep.bytes_after = before, after
        return rep
    finally:
        os.close(fd)
        if out is not None:
            out.discard()


def _check(stop: Stop | None) -> None:
    if stop is not None and stop():
        raise RedactionInterrupted


def _start(segment: Path, fd: int, done: list[BlockInfo], bad: set[int],
           stop: Stop | None) -> _Out:
    """Begin the new segment with the blocks before the first change."""
    out = _Out(segment)
    try:
        for b in done:
            _check(stop)
            if b.offset not in bad:
                out.copy(fd, b)
    except BaseException:
        out.discard()
        raise
    return out


def _swap(segment: Path, out: _Out) -> None:
    """Put the new segment in place of the old (see "Atomic per segment");
    a segment left with no block is removed."""
    idx = index_path(segment)
    idx.unlink(missing_ok=True)  # never a new segment with the old index
    _fsync_dir(segment.parent)
    if out.entries:
        os.replace(out.path, segment)
        os.replace(out.idx_path, idx)
    else:
        segment.unlink()
        out.discard()
    _fsync_dir(segment.parent)


def _restore_index(segment: Path, blocks: list[BlockInfo]) -> None:
    """Write the index of a segment that has none (readers walk the
    blocks meanwhile, which costs a read of every header)."""
    idx = index_path(segment)
    temp = idx.with_name(idx.name + TEMP_SUFFIX)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        _write_all(fd, b"".join(_entry_bytes(b) for b in blocks))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, idx)
    _fsync_dir(segment.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _range_mentions(fd: int, start: int, end: int, plan: _Plan) -> bool:
    """Whether bytes [start, end) of the segment may name one of the
    devices, read a chunk at a time."""
    if not plan.needles:
        return True
    overlap = max(len(n) for n in plan.needles) - 1
    at = start
    while at < end:
        chunk = os.pread(fd, min(COPY_CHUNK + overlap, end - at), at)
        if not chunk:
            return False
        if plan.mentions(chunk):
            return True
        at += COPY_CHUNK
    return False


# -------------------------------------------------------------------- blocks


class _Same:
    """Nothing to change."""


_SAME = _Same()


@dataclass(frozen=True, slots=True)
class _Damaged:
    """A block readers skip already (its header does not hold)."""

    mentions: bool


# _SAME, damaged, or the new block and its info (b"" when it goes whole)
_Outcome = _Same | _Damaged | tuple[bytes, BlockInfo]
Row = tuple[int, ...]  # a section table row: family, codec, count, stored, raw, crc


def _redact_block(fd: int, b: BlockInfo, plan: _Plan, rep: RedactionReport) -> _Outcome:
    raw = os.pread(fd, b.length, b.offset)
    parsed = _parse_header(raw, b.offset)
    if (parsed is None or len(raw) != b.length
            or (parsed[0].length, parsed[0].first, parsed[0].last, parsed[0].count)
            != (b.length, b.first, b.last, b.count)):
        return _Damaged(plan.mentions(raw))
    table = parsed[1]
    pos = HEADER_SIZE + len(table) * SECTION.size
    kept: list[tuple[Row, bytes]] = []
    changed = False
    for row in table:
        stored = raw[pos:pos + row[3]]
        pos += row[3]
        if row[0] == FIX_FAMILY:
            new = _redact_section(row, stored, plan, rep)
            if new is not _SAME:
                changed = True
                if new is None:
                    continue
                assert isinstance(new, tuple)
                row, stored = new
        kept.append((row, stored))
    if not changed:
        return _SAME
    if not kept:
        return b"", b
    count = sum(row[2] for row, _ in kept)
    length = HEADER_SIZE + len(kept) * SECTION.size + sum(len(s) for _, s in kept)
    head = HEAD.pack(MAGIC, VERSION, 0, len(kept), count, b.first, b.last, length)
    tbl = b"".join(SECTION.pack(*row) for row, _ in kept)
    crc = CRC.pack(zlib.crc32(tbl, zlib.crc32(head)))
    mask = 0
    for row, _ in kept:
        mask |= 1 << row[0]
    block = b"".join((head, crc, tbl, *(s for _, s in kept)))
    return block, BlockInfo(0, length, b.first, b.last, count, mask)


def _redact_section(row: Row, stored: bytes, plan: _Plan,
                    rep: RedactionReport) -> _Same | tuple[Row, bytes] | None:
    """The fix section without the devices' fixes; None when nothing is left."""
    fam, codec, count, _stored_len, raw_len, crc = row
    data: bytes | None = None
    if codec == CODEC_NONE:
        data = stored
    elif codec == CODEC_ZLIB:
        with contextlib.suppress(zlib.error):
            data = zlib.decompress(stored, bufsize=max(raw_len, 1))
    rows = None
    if data is not None and zlib.crc32(stored) == crc and len(data) == raw_len:
        if not plan.mentions(data):
            return _SAME
        rows = _decode_section(data)
    if rows is None or len(rows) != count:  # readers skip this section already
        if data is not None and not plan.mentions(data):
            return _SAME
        rep.damage_dropped += len(stored)  # it may hold the devices' fixes: it goes
        return None
    out: list[bytes] = []
    changed = False
    for ordinal, ts, topic, body in rows:
        if topic == FIX_TOPIC and plan.since <= ts < plan.before and plan.mentions(body):
            new = _redact_batch(body, plan, rep)
            if new is not _SAME:
                changed = True
                if new is None:
                    continue
                assert isinstance(new, bytes)
                body = new
        out += (RECORD.pack(ordinal, ts, len(topic), len(body)), topic, body)
    if not changed:
        return _SAME
    if not out:
        return None
    raw = b"".join(out)
    data, codec = raw, CODEC_NONE
    if row[1] == CODEC_ZLIB:  # compressed it was, compressed it stays where it shrinks
        packed = zlib.compress(raw, ZLIB_LEVEL)
        if len(packed) < len(raw):
            data, codec = packed, CODEC_ZLIB
    return (fam, codec, len(out) // 3, len(data), len(raw), zlib.crc32(data)), data


def _redact_batch(body: bytes, plan: _Plan, rep: RedactionReport) -> _Same | bytes | None:
    """The batch without the devices' fixes (outside the windows); None
    when nothing is left, or when it names a device but does not decode."""
    try:
        msg = decode(body)
        if not isinstance(msg, FixBatch):
            raise BadMessage(f"a {type(msg).__name__} under the fix.batch topic")
        cols = fix_columns(msg)
    except BadMessage:
        rep.records_dropped += 1
        return None
    ids = msg.device_ids
    if plan.ids.isdisjoint(ids):
        return _SAME  # the bytes matched elsewhere (a longer id, a reader, a column)
    mine = np.fromiter((d in plan.ids for d in ids), dtype=bool, count=len(ids))
    case = np.zeros(len(ids), dtype=bool)
    t = cols["t"]
    for lo, hi in plan.windows:
        case |= (t >= lo) & (t <= hi)
    rep.fixes_kept += int((mine & case).sum())
    gone = mine & ~case
    removed = int(gone.sum())
    if not removed:
        return _SAME
    rep.fixes_removed += removed
    stay = ~gone
    if not stay.any():
        rep.batches_dropped += 1
        return None
    flags = stay.tolist()
    columns = {name: cols[name][stay].tobytes() for name in _COLUMNS}
    return encode(msgspec.structs.replace(
        msg, device_ids=[d for d, s in zip(ids, flags, strict=True) if s],
        readers=[r for r, s in zip(msg.readers, flags, strict=True) if s] if msg.readers else [],
        **columns))
