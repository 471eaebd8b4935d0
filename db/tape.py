"""The tape: every bus frame the recorder heard, by receive time, for replay
and training (issue 12). Qt-free and store-free: plain files under
``tape_dir(data_dir)``.

Why files and not the store: an hour of city-scale traffic is gigabytes of
position batches that nobody queries by content, only by period, and it
must never compete with the fixes and events for the store's write lock.
An append-only segment per UTC hour is written sequentially, read by
seeking, and retired by deleting a file.

Layout::

    tape/2026-12-06/05.tape   blocks, appended
    tape/2026-12-06/05.idx    one 44-byte entry per block (an accelerator)

Every record of a segment was received in its UTC hour (a block is cut at
the hour), so which segments a period touches is known from their names.

**Blocks.** Records are grouped into blocks (cut at ``block_bytes`` of raw
records or when the oldest is ``max_age_s`` old, so a reader sees recent
traffic within about a second). Inside a block, records are kept in one
*section per topic family* (``fix``, ``pos``, ``alert`` ...), each stored
(and compressed, if at all) on its own, with a table saying which families
are there and how many records each has. Reading only alerts therefore
reads (and inflates) only the small alert sections of the blocks that have
any, never the position batches beside them; counting alerts over whole
blocks reads only the tables. Each record carries its ordinal in the block, so the sections merge
back into receive order. A block::

    header   magic "TPB1", version, nsections, count, first ts, last ts,
             length of the whole block; CRC-32 of header and table
    table    per section: family, codec, count, stored len, raw len, CRC-32
    sections per record: ordinal u32, recv_ts f64, topic len u32,
             body len u32, topic, body

The index entry repeats first/last ts, offset, length, count and a bitmask
of the families present, with its own CRC: binary search over an hour's
blocks without touching the segment. The segment is the truth: a missing
or damaged index is rebuilt by walking the block headers.

**Compression: none by default** (``COMPRESS``), measured by
``childsafe bench tape`` (``tests/bench/bench_tape.py``) on realistic
traffic, zlib level 1 against none. zlib-1 shrinks an hour to 0.74× at
100,000 children (2.7 GB instead of 3.7 GB) and 0.65× at the demo's load
(68 MB instead of 105 MB), because the bodies are mostly float64 columns
whose low bytes are noise (levels 3 and 6 gain under 1% more at half the
speed or less). For that quarter of the disk it costs 25 to 40 times the
CPU of writing plainly (2.3-3.3% of a core at 12,500 fixes/s against about
0.1%, so a quarter of a core at the 100,000 fixes/s the pipeline is
budgeted for on two cores), and reading back is 10 to 18 times slower
(25-31 s per hour of 100k traffic against 2-3 s). Disk is the cheap
resource here and ``tape_keep_days`` bounds it; CPU on the recorder's host
is not. The codec is per section, so a writer with ``compress=True``
(zlib-1; a section that does not shrink is stored as is) writes tapes
every reader reads.

**Crashes and damage.** A process crash loses at most the block not yet
flushed: a block is one ``write``, then its index entry. A torn last block
(or one whose content does not match its checksums) is skipped by readers,
and a writer that starts again truncates its segment after the last good
block and rewrites the index from the blocks. A damaged block (or section)
in the middle is skipped, counted in ``TapeReader.skipped`` and logged with
the reason; readers resynchronise on the next block's magic. Nothing here
raises on bad data.

**Withdrawals.** A guardian's withdrawal takes the child's fixes off the
tape too: ``db.tape_redaction`` rewrites each segment that holds them
(beside it, then renamed over it), so a reader sees the old file or the
new one; the recorder redacts only segments its writer is done with
(``TapeWriter.frontier``) and closes the writer for the open one.

**Order.** Records are stored in the order they were appended, and their
times never go back: a wall clock that steps backwards is clamped to the
last time written (also across restarts: the writer starts from the
newest record on the tape), so every segment is sorted and readers can
binary-search it. A replay sees the stepped-back period as a burst at the
clamped time instead of out-of-order data.
"""

from __future__ import annotations

import bisect
import calendar
import contextlib
import logging
import math
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

BLOCK_BYTES = 512 * 1024  # raw record bytes per block (before compression)
MAX_AGE_S = 1.0  # a block is written once its oldest record is this old
ZLIB_LEVEL = 1
COMPRESS = False  # see "Compression" above
HOUR_S = 3600
MAX_TS = 2.0**33  # year 2242: a receive time beyond it is not a time
MAX_RECORD = 1 << 30  # bytes; the bus refuses frames far smaller (MAXMSGSIZE)

MAGIC = b"TPB1"
VERSION = 1
CODEC_NONE, CODEC_ZLIB = 0, 1
HEAD = struct.Struct("<4sBBHIddI")  # magic, version, 0, nsections, count, first, last, length
CRC = struct.Struct("<I")
SECTION = struct.Struct("<BBxxIIII")  # family, codec, count, stored len, raw len, crc
RECORD = struct.Struct("<IdII")  # ordinal, recv_ts, topic len, body len
ENTRY = struct.Struct("<ddQIIQ")  # first, last, offset, length, count, family mask
HEADER_SIZE = HEAD.size + CRC.size
ENTRY_SIZE = ENTRY.size + CRC.size
SCAN_CHUNK = 1 << 20

# Topic families, by the topic's first dot-separated word. Their numbers are
# on disk (section family, index mask bit): append, never reorder. A topic
# of any other family (or with no dot) goes to OTHER.
FAMILIES: tuple[bytes, ...] = (b"fix", b"pos", b"alert", b"zone", b"roster", b"cam", b"gw",
                               b"notice", b"sys", b"replay", b"req", b"rep", b"cmd")
OTHER = 63
FAMILY_IDS = {name: i for i, name in enumerate(FAMILIES)}
ALL_FAMILIES = (1 << 64) - 1

TORN = "torn block at the end"
Note = Callable[[int, str], None]  # (offset, why) of data skipped in one segment


def tape_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "tape"


class TapeRecord(NamedTuple):
    """One bus frame as received. ``topic`` is its ASCII text (any other byte
    is kept as a surrogate escape, so ``raw_topic`` gives back the exact
    bytes)."""

    recv_ts: float
    topic: str
    body: bytes

    @property
    def raw_topic(self) -> bytes:
        return self.topic.encode("ascii", "surrogateescape")


@dataclass(frozen=True, slots=True)
class BlockInfo:
    offset: int
    length: int
    first: float
    last: float
    count: int
    mask: int


# ------------------------------------------------------------------ families


def family_of(topic: bytes) -> int:
    head, dot, _ = topic.partition(b".")
    return FAMILY_IDS.get(head, OTHER) if dot else OTHER


def families_of(prefixes: tuple[bytes, ...] | None) -> int:
    """The mask of families a topic matching any of ``prefixes`` can be in."""
    if prefixes is None:
        return ALL_FAMILIES
    mask = 0
    for p in prefixes:
        head, dot, _ = p.partition(b".")
        if dot:
            mask |= 1 << FAMILY_IDS.get(head, OTHER)
        else:  # "al" may be "alert." or an unknown "algae."
            mask |= 1 << OTHER
            for name, i in FAMILY_IDS.items():
                if name.startswith(p):
                    mask |= 1 << i
    return mask


def _whole_families(prefixes: tuple[bytes, ...] | None) -> bool:
    """True when matching ``prefixes`` is the same as being in their
    families, so a block table's counts answer ``count`` exactly."""
    if prefixes is None:
        return True
    return all(p == b"" or (p.endswith(b".") and p[:-1] in FAMILY_IDS) for p in prefixes)


# ------------------------------------------------------------------- segments


def segment_path(directory: Path, hour: int) -> Path:
    """The segment of UTC hour number ``hour`` (hours since the epoch)."""
    tm = time.gmtime(hour * HOUR_S)
    return Path(directory) / time.strftime("%Y-%m-%d", tm) / f"{tm.tm_hour:02d}.tape"


def index_path(segment: Path) -> Path:
    return segment.with_suffix(".idx")


def segments(directory: Path) -> list[tuple[int, Path]]:
    """(hour number, path) of every segment, oldest first; names that are
    not ours are left alone."""
    out = []
    for day, midnight in _days(directory):
        base = calendar.timegm(midnight) // HOUR_S
        for seg in day.glob("*.tape"):
            if len(seg.stem) == 2 and seg.stem.isdigit() and int(seg.stem) < 24:
                out.append((base + int(seg.stem), seg))
    out.sort()
    return out


def _days(directory: Path) -> list[tuple[Path, time.struct_time]]:
    """The day folders under ``directory`` (others are not ours)."""
    out = []
    try:
        entries = list(Path(directory).iterdir())
    except FileNotFoundError:
        return []
    for d in entries:
        try:
            midnight = time.strptime(d.name, "%Y-%m-%d")
        except ValueError:
            continue
        if d.is_dir():
            out.append((d, midnight))
    return out


def _read_index(idx: Path, size: int) -> list[BlockInfo]:
    """The index entries whose checksum holds and that lie inside a segment
    of ``size`` bytes; whatever else is there is left to the scan."""
    try:
        raw = idx.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for at in range(0, len(raw) - ENTRY_SIZE + 1, ENTRY_SIZE):
        entry = raw[at:at + ENTRY.size]
        (crc,) = CRC.unpack_from(raw, at + ENTRY.size)
        if zlib.crc32(entry) != crc:
            continue
        first, last, offset, length, count, mask = ENTRY.unpack(entry)
        if offset + length > size:
            break  # written before a truncation: the scan decides
        out.append(BlockInfo(offset, length, first, last, count, mask))
    return out


def _parse_header(raw: bytes, offset: int) -> tuple[BlockInfo, list[tuple[int, ...]]] | None:
    """A block's info and section table from the bytes at its start, or
    None when they are not a block header (bad magic or checksum)."""
    if len(raw) < HEADER_SIZE or raw[:4] != MAGIC:
        return None
    _, version, _, nsec, count, first, last, length = HEAD.unpack_from(raw)
    end = HEADER_SIZE + nsec * SECTION.size
    if version != VERSION or len(raw) < end:
        return None
    (crc,) = CRC.unpack_from(raw, HEAD.size)
    if zlib.crc32(raw[HEADER_SIZE:end], zlib.crc32(raw[:HEAD.size])) != crc:
        return None
    table = [SECTION.unpack_from(raw, HEADER_SIZE + i * SECTION.size) for i in range(nsec)]
    if length < end + sum(s[3] for s in table) or any(s[0] > OTHER for s in table):
        return None
    mask = 0
    for s in table:
        mask |= 1 << s[0]
    return BlockInfo(offset, length, first, last, count, mask), table


def _read_header(fd: int, offset: int) -> tuple[BlockInfo, list[tuple[int, ...]]] | None:
    return _parse_header(os.pread(fd, HEADER_SIZE + 64 * SECTION.size, offset), offset)


def _find_magic(fd: int, start: int, end: int) -> int | None:
    """The next offset in [start, end) where a block magic begins."""
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(SCAN_CHUNK, end - pos) + len(MAGIC) - 1, pos)
        at = chunk.find(MAGIC)
        if at >= 0 and pos + at < end:
            return pos + at
        pos += SCAN_CHUNK
    return None


def _scan(fd: int, start: int, end: int, size: int, note: Note) -> list[BlockInfo]:
    """Walk block headers in [start, end) of a segment of ``size`` bytes;
    anything that is not a whole, valid block is noted and skipped."""
    blocks: list[BlockInfo] = []
    pos = start
    while pos < end:
        parsed = _read_header(fd, pos) if end - pos >= HEADER_SIZE else None
        if parsed is not None and pos + parsed[0].length <= end:
            blocks.append(parsed[0])
            pos += parsed[0].length
            continue
        if end == size and (parsed is not None or end - pos < HEADER_SIZE):
            note(pos, f"{TORN} ({end - pos} bytes)")
            break
        if parsed is not None:
            note(pos, "a block overruns the next indexed one")
        elif end - pos < HEADER_SIZE:
            note(pos, f"{end - pos} stray bytes before the next block")
            break
        else:
            note(pos, "not a block header (bad magic or checksum)")
        nxt = _find_magic(fd, pos + 1, end)
        if nxt is None:
            break
        pos = nxt
    return blocks


def load_segment(segment: Path, note: Note) -> tuple[list[BlockInfo], int]:
    """The good blocks of ``segment`` in file order (by its index, then by
    walking whatever the index does not cover) and its size in bytes."""
    try:
        fd = os.open(segment, os.O_RDONLY)
    except FileNotFoundError:
        return [], 0
    try:
        size = os.fstat(fd).st_size
        blocks: list[BlockInfo] = []
        pos = 0
        for b in _read_index(index_path(segment), size):
            if b.offset < pos:
                continue  # overlaps one already taken: a stale or damaged entry
            if b.offset > pos:  # a gap: an entry lost, or damage the writer skipped
                blocks += _scan(fd, pos, b.offset, size, note)
            blocks.append(b)
            pos = b.offset + b.length
        blocks += _scan(fd, pos, size, size, note)
        return blocks, size
    finally:
        os.close(fd)


def _decode_section(raw: bytes) -> list[tuple[int, float, bytes, bytes]] | None:
    """(ordinal, recv_ts, topic, body) of one section; None when it does not
    parse (only a bug or forged data with a valid checksum gets here)."""
    out = []
    pos, n = 0, len(raw)
    unpack = RECORD.unpack_from
    while pos < n:
        if pos + RECORD.size > n:
            return None
        ordinal, ts, tl, bl = unpack(raw, pos)
        pos += RECORD.size
        topic = raw[pos:pos + tl]
        body = raw[pos + tl:pos + tl + bl]
        pos += tl + bl
        if pos > n:
            return None
        out.append((ordinal, ts, topic, body))
    return out


# --------------------------------------------------------------------- writer


@dataclass(slots=True)
class _Open:
    """The segment a writer appends to."""

    hour: int
    fd: int
    idx_fd: int
    end: int
    idx_end: int


class TapeWriter:
    """Appends records to hourly segments under ``directory``; one writer
    per tape (the recorder's).

    ``append`` only queues (it writes only when the block is full; its
    first call reads the newest time on the tape); ``maybe_flush`` writes
    the block once its oldest record is ``max_age_s`` old by ``clock``;
    ``flush`` writes it now. Before its first write, the writer repairs
    the segment it appends to and the newest one on the tape (a torn tail
    cut, the index rebuilt). A write that fails raises OSError after the
    segment is put back as it was: the block's records are lost (counted in
    ``lost``), the tape stays readable, and the next block is tried afresh
    (the caller decides how loud to be).
    """

    def __init__(self, directory: Path, block_bytes: int = BLOCK_BYTES,
                 clock: Callable[[], float] = time.time, compress: bool = COMPRESS,
                 max_age_s: float = MAX_AGE_S) -> None:
        self.dir = Path(directory)
        self.block_bytes = block_bytes
        self.clock = clock
        self.compress = compress
        self.max_age_s = max_age_s
        self._pending: list[tuple[float, int, bytes, bytes]] = []
        self._pending_bytes = 0
        self._hour = 0  # of the pending block
        self._started = 0.0  # clock() at the pending block's first record
        self._floor: float | None = None  # times never go below it (None: not read yet)
        self._open: _Open | None = None
        self._repaired = False  # the newest segment found at start, when it is not ours
        self._families: dict[bytes, int] = {}
        self.records = 0  # written to disk
        self.bytes = 0  # written to disk, index included
        self.raw_bytes = 0  # of the records written, before compression
        self.blocks = 0
        self.lost = 0  # records whose block could not be written

    # ------------------------------------------------------------- records
    def append(self, recv_ts: float, topic: bytes, body: bytes) -> None:
        """Queue one frame; writes the pending block first when this frame
        is of another hour, and after it when the block is full. OSError
        only from those writes (the block's records are then lost)."""
        if not 0.0 <= recv_ts < MAX_TS:
            raise ValueError(f"receive time {recv_ts!r} is not a time")
        if len(topic) + len(body) > MAX_RECORD:
            raise ValueError(f"a frame of {len(topic) + len(body)} bytes is not a bus frame")
        if self._floor is None:
            self._floor = self._newest_on_tape()
        if recv_ts < self._floor:
            recv_ts = self._floor  # the clock stepped back: see the module notes
        self._floor = recv_ts
        hour = int(recv_ts // HOUR_S)
        if self._pending and hour != self._hour:
            self.flush()  # a segment holds its hour only
        if not self._pending:
            self._hour = hour
            self._started = self.clock()
        fam = self._families.get(topic)
        if fam is None:
            if len(self._families) > 1000:  # the bus has a few dozen topics, not this
                self._families.clear()
            fam = self._families[topic] = family_of(topic)
        self._pending.append((recv_ts, fam, topic, body))
        self._pending_bytes += RECORD.size + len(topic) + len(body)
        if self._pending_bytes >= self.block_bytes:
            self.flush()

    def maybe_flush(self, now: float | None = None) -> bool:
        """Write the block if its oldest record is ``max_age_s`` old (or it is
        full); True when it did."""
        if not self._pending:
            return False
        now = self.clock() if now is None else now
        if now - self._started < self.max_age_s and self._pending_bytes < self.block_bytes:
            return False
        self.flush()
        return True

    def flush(self) -> int:
        """Write the pending block; the bytes it took on disk (0: none)."""
        if not self._pending:
            return 0
        records, self._pending = self._pending, []
        self._pending_bytes = 0
        try:
            block, info = self._build(records)
            seg = self._segment(self._hour)
            self._write_block(seg, block, info)
        except OSError:
            self.lost += len(records)
            raise
        self.records += len(records)
        self.blocks += 1
        self.bytes += len(block) + ENTRY_SIZE
        return len(block) + ENTRY_SIZE

    def close(self) -> None:
        """Flush and close; a failing last flush still closes the files."""
        try:
            self.flush()
        finally:
            self._close_segment()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def frontier(self) -> float:
        """The start of the earliest hour this writer may still write to
        (that of the newest record it appended or found on the tape; -inf
        for an empty tape). Its times never go back, so every segment
        before this hour is closed for good: ``db.tape_redaction`` rewrites
        those while the writer goes on. The repair the writer owes the
        newest segment at start is done here first, so that it never runs
        over a segment being rewritten."""
        if self._floor is None:
            self._floor = self._newest_on_tape()
        self._repair_newest(None)
        if self._floor == -math.inf:
            return -math.inf
        return float(int(self._floor // HOUR_S) * HOUR_S)

    # -------------------------------------------------------------- blocks
    def _build(self, records: list[tuple[float, int, bytes, bytes]]) -> tuple[bytes, BlockInfo]:
        parts: dict[int, list[bytes]] = {}
        counts: dict[int, int] = {}
        pack = RECORD.pack
        raw_total = 0
        for i, (ts, fam, topic, body) in enumerate(records):
            out = parts.get(fam)
            if out is None:
                out = parts[fam] = []
                counts[fam] = 0
            out += (pack(i, ts, len(topic), len(body)), topic, body)
            counts[fam] += 1
            raw_total += RECORD.size + len(topic) + len(body)
        table, stored = [], []
        for fam in sorted(parts):
            raw = b"".join(parts[fam])
            data, codec = raw, CODEC_NONE
            if self.compress:
                packed = zlib.compress(raw, ZLIB_LEVEL)
                if len(packed) < len(raw):
                    data, codec = packed, CODEC_ZLIB
            table.append(SECTION.pack(fam, codec, counts[fam], len(data), len(raw),
                                      zlib.crc32(data)))
            stored.append(data)
        first, last = records[0][0], records[-1][0]
        length = HEADER_SIZE + len(table) * SECTION.size + sum(len(d) for d in stored)
        head = HEAD.pack(MAGIC, VERSION, 0, len(table), len(records), first, last, length)
        tbl = b"".join(table)
        crc = CRC.pack(zlib.crc32(tbl, zlib.crc32(head)))
        mask = 0
        for fam in parts:
            mask |= 1 << fam
        self.raw_bytes += raw_total
        return b"".join((head, crc, tbl, *stored)), BlockInfo(0, length, first, last,
                                                               len(records), mask)

    def _write_block(self, seg: _Open, block: bytes, info: BlockInfo) -> None:
        """The block, then its index entry; a failure puts each file back."""
        try:
            _write_all(seg.fd, block)
        except OSError:
            _truncate_quietly(seg.fd, seg.end)
            raise
        offset, seg.end = seg.end, seg.end + len(block)
        entry = ENTRY.pack(info.first, info.last, offset, info.length, info.count, info.mask)
        try:
            _write_all(seg.idx_fd, entry + CRC.pack(zlib.crc32(entry)))
            seg.idx_end += ENTRY_SIZE
        except OSError as exc:  # the block is safe: readers find it by its header
            _truncate_quietly(seg.idx_fd, seg.idx_end)
            log.warning("tape index entry not written (%s); readers will walk the segment",
                        exc)

    # ------------------------------------------------------------ segments
    def _newest_on_tape(self) -> float:
        """The newest receive time already on the tape (-inf for none)."""
        try:
            for _, seg in reversed(segments(self.dir)):
                blocks, _ = load_segment(seg, lambda _at, _why: None)
                if blocks:
                    return max(b.last for b in blocks)
        except OSError as exc:
            log.warning("cannot read the tape's newest time (%s); not clamping to it", exc)
        return -math.inf

    def _segment(self, hour: int) -> _Open:
        if self._open is not None and self._open.hour == hour:
            return self._open
        self._close_segment()
        path = segment_path(self.dir, hour)
        self._repair_newest(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        end = _recover(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            idx_fd = os.open(index_path(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError:
            os.close(fd)
            raise
        self._open = _Open(hour, fd, idx_fd, end, os.fstat(idx_fd).st_size)
        return self._open

    def _repair_newest(self, path: Path | None) -> None:
        """Once: repair the newest segment on the tape unless it is ``path``
        (which its opening repairs): a crash in an earlier hour left its
        tail there."""
        if not self._repaired:
            newest = segments(self.dir)[-1:]
            if newest and newest[0][1] != path:
                _recover(newest[0][1])
            self._repaired = True

    def _close_segment(self) -> None:
        if self._open is not None:
            os.close(self._open.fd)
            os.close(self._open.idx_fd)
            self._open = None


def _recover(path: Path) -> int:
    """Before appending to an existing segment: cut it after its last good
    block (a torn or damaged tail goes) and make its index list exactly its
    good blocks. Returns the segment's length."""
    if not path.exists():
        index_path(path).unlink(missing_ok=True)  # a sidecar without its segment
        return 0

    def note(at: int, why: str) -> None:
        log.warning("tape %s at byte %d: %s", path, at, why)

    blocks, size = load_segment(path, note)
    fd = os.open(path, os.O_RDWR)
    try:
        while blocks and not _block_sound(fd, blocks[-1]):
            note(blocks[-1].offset, "the last block does not match its checksums")
            blocks.pop()
        end = blocks[-1].offset + blocks[-1].length if blocks else 0
        if size > end:
            log.warning("tape %s: cutting %d bytes after its last good block", path, size - end)
            os.ftruncate(fd, end)
    finally:
        os.close(fd)
    want = b"".join(_entry_bytes(b) for b in blocks)
    idx = index_path(path)
    try:
        have = idx.read_bytes()
    except FileNotFoundError:
        have = None
    if have != want:
        tmp = idx.with_suffix(".idx.tmp")
        tmp.write_bytes(want)
        os.replace(tmp, idx)
    return end


def _block_sound(fd: int, b: BlockInfo) -> bool:
    """The whole block matches its header and section checksums."""
    raw = os.pread(fd, b.length, b.offset)
    parsed = _parse_header(raw, b.offset)
    if parsed is None or len(raw) != b.length or parsed[0].length != b.length:
        return False
    pos = HEADER_SIZE + len(parsed[1]) * SECTION.size
    for _fam, _codec, _count, stored, _raw, crc in parsed[1]:
        if zlib.crc32(raw[pos:pos + stored]) != crc:
            return False
        pos += stored
    return True


def _entry_bytes(b: BlockInfo) -> bytes:
    entry = ENTRY.pack(b.first, b.last, b.offset, b.length, b.count, b.mask)
    return entry + CRC.pack(zlib.crc32(entry))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _truncate_quietly(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        log.error("tape: cannot cut a failed write back (%s); readers will skip it", exc)


# --------------------------------------------------------------------- reader


@dataclass(slots=True)
class _Segment:
    key: tuple[int, int, int]  # inode, segment size, index size
    blocks: list[BlockInfo]
    lasts: list[float]  # running maximum of the blocks' last times (for bisect)


class TapeReader:
    """Reads the tape under ``directory``; safe while a writer appends.

    Damaged data is skipped, never raised: each place skipped is logged once
    with why and counted in ``skipped`` (``damage`` maps "segment@offset" to
    the reason). A torn tail that later reads as a whole block (a write in
    progress when the reader looked, or a restarted writer's block where
    the torn one was cut) is no longer counted: ``skipped`` is the damage
    still in the way.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.damage: dict[str, str] = {}
        self._cache: dict[Path, _Segment] = {}

    @property
    def skipped(self) -> int:
        return len(self.damage)

    def read(self, t0: float, t1: float,
             prefixes: tuple[bytes, ...] | None = None) -> Iterator[TapeRecord]:
        """Records received in [t0, t1) whose topic starts with one of
        ``prefixes`` (None: all), in receive order."""
        prefixes = None if prefixes is None else tuple(prefixes)
        mask = families_of(prefixes)
        for seg, blocks in self._overlapping(t0, t1):
            fd = _open_quietly(seg)
            if fd is None:
                continue
            try:
                for b in blocks:
                    if b.mask & mask:
                        yield from self._records(fd, seg, b, mask, t0, t1, prefixes)
            finally:
                os.close(fd)

    def count(self, t0: float, t1: float, prefixes: tuple[bytes, ...] | None = None) -> int:
        """How many records ``read`` would give; blocks wholly inside the
        period are counted from their tables when the prefixes are whole
        families (``b"alert."``), without decompressing anything."""
        prefixes = None if prefixes is None else tuple(prefixes)
        mask = families_of(prefixes)
        whole = _whole_families(prefixes)
        n = 0
        for seg, blocks in self._overlapping(t0, t1):
            fd = _open_quietly(seg)
            if fd is None:
                continue
            try:
                for b in blocks:
                    if not b.mask & mask:
                        continue
                    if whole and t0 <= b.first and b.last < t1:
                        parsed = self._header(fd, seg, b)
                        n += sum(s[2] for s in parsed[1] if (1 << s[0]) & mask) if parsed else 0
                    else:
                        n += sum(1 for _ in self._records(fd, seg, b, mask, t0, t1, prefixes))
            finally:
                os.close(fd)
        return n

    def span(self) -> tuple[float, float] | None:
        """(first, last) receive time on the tape; None when it is empty."""
        segs = segments(self.dir)
        first = next((s.blocks[0].first for _, p in segs if (s := self._load(p)).blocks), None)
        last = next((s.blocks[-1].last for _, p in reversed(segs)
                     if (s := self._load(p)).blocks), None)
        return None if first is None or last is None else (first, last)

    # ------------------------------------------------------------- internals
    def _overlapping(self, t0: float, t1: float) -> Iterator[tuple[Path, list[BlockInfo]]]:
        """Per segment whose hour meets [t0, t1): the blocks that may hold
        records of it (binary search on their times)."""
        if not t0 < t1:
            return
        for hour, path in segments(self.dir):
            if (hour + 1) * HOUR_S <= t0 or hour * HOUR_S >= t1:
                continue
            seg = self._load(path)
            i = bisect.bisect_left(seg.lasts, t0)
            picked = []
            for b in seg.blocks[i:]:
                if b.first >= t1:
                    break
                picked.append(b)
            if picked:
                yield path, picked

    def _load(self, path: Path) -> _Segment:
        """The segment's blocks, cached until it or its index changes."""
        try:
            st = path.stat()
            idx_size = index_path(path).stat().st_size if index_path(path).exists() else -1
        except OSError:
            return _Segment((0, 0, 0), [], [])
        key = (st.st_ino, st.st_size, idx_size)
        cached = self._cache.get(path)
        if cached is not None and cached.key == key:
            return cached
        try:
            blocks, _ = load_segment(path, lambda at, why: self._note(path, at, why))
        except OSError as exc:
            self._note(path, 0, f"unreadable ({exc})")
            blocks = []
        self._forget_writes_in_progress(path, blocks)
        lasts, top = [], -math.inf
        for b in blocks:
            top = max(top, b.last)
            lasts.append(top)
        seg = self._cache[path] = _Segment(key, blocks, lasts)
        return seg

    def _forget_writes_in_progress(self, path: Path, blocks: list[BlockInfo]) -> None:
        """A "torn" tail that is now a whole block was a write in progress
        when this reader looked (a live reader races the writer): not damage."""
        offsets = {f"{path}@{b.offset}" for b in blocks}
        for where in [w for w, why in self.damage.items()
                      if why.startswith(TORN) and w in offsets]:
            del self.damage[where]

    def _note(self, path: Path, at: int, why: str) -> None:
        where = f"{path}@{at}"
        if where not in self.damage:
            self.damage[where] = why
            log.warning("tape: skipped %s: %s", where, why)

    def _header(self, fd: int, path: Path,
                b: BlockInfo) -> tuple[BlockInfo, list[tuple[int, ...]]] | None:
        try:
            parsed = _read_header(fd, b.offset)
        except OSError as exc:
            self._note(path, b.offset, f"unreadable ({exc})")
            return None
        if parsed is None or (parsed[0].length, parsed[0].first, parsed[0].last,
                              parsed[0].count) != (b.length, b.first, b.last, b.count):
            self._note(path, b.offset, "block header does not match the index or its checksum")
            return None
        return parsed

    def _records(self, fd: int, path: Path, b: BlockInfo, mask: int, t0: float, t1: float,
                 prefixes: tuple[bytes, ...] | None) -> Iterator[TapeRecord]:
        parsed = self._header(fd, path, b)
        if parsed is None:
            return
        rows: list[tuple[int, float, bytes, bytes]] = []
        pos = b.offset + HEADER_SIZE + len(parsed[1]) * SECTION.size
        for fam, codec, count, stored, raw_len, crc in parsed[1]:
            if (1 << fam) & mask:
                got = self._section(fd, path, pos, codec, count, stored, raw_len, crc)
                if got is not None:
                    rows += got
            pos += stored
        if len(parsed[1]) > 1:
            rows.sort(key=lambda r: r[0])
        for _, ts, topic, body in rows:
            if t0 <= ts < t1 and (prefixes is None or topic.startswith(prefixes)):
                yield TapeRecord(ts, topic.decode("ascii", "surrogateescape"), body)

    def _section(self, fd: int, path: Path, at: int, codec: int, count: int, stored: int,
                 raw_len: int, crc: int) -> list[tuple[int, float, bytes, bytes]] | None:
        try:
            data = os.pread(fd, stored, at)
        except OSError as exc:
            self._note(path, at, f"unreadable ({exc})")
            return None
        if len(data) != stored or zlib.crc32(data) != crc:
            self._note(path, at, "section does not match its checksum")
            return None
        if codec == CODEC_ZLIB:
            try:
                data = zlib.decompress(data, bufsize=max(raw_len, 1))
            except zlib.error as exc:
                self._note(path, at, f"section does not inflate ({exc})")
                return None
        elif codec != CODEC_NONE:
            self._note(path, at, f"unknown codec {codec}")
            return None
        rows = _decode_section(data) if len(data) == raw_len else None
        if rows is None or len(rows) != count:
            self._note(path, at, "section records do not parse")
            return None
        return rows


def _open_quietly(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None  # purged since it was listed


# ---------------------------------------------------------------------- purge


def purge(directory: Path, before: float) -> int:
    """Remove whole segments (with their index) whose last record is older
    than ``before``, then empty day folders; the bytes freed. A file that
    cannot be removed is logged and left for the next run."""
    freed = 0
    for hour, seg in segments(directory):
        if hour * HOUR_S >= before:
            break
        if (hour + 1) * HOUR_S > before:  # the hour of ``before``: look inside
            blocks, _ = load_segment(seg, lambda _at, _why: None)
            if blocks and max(b.last for b in blocks) >= before:
                continue
        for path in (seg, index_path(seg)):
            try:
                size = path.stat().st_size
                path.unlink()
                freed += size
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("tape purge: cannot remove %s (%s)", path, exc)
    for day, _ in _days(directory):
        with contextlib.suppress(OSError):  # only when empty
            day.rmdir()
    return freed
