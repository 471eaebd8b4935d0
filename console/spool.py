"""A spool file: bus messages a process was given but could not store yet.

Why: the recorder must never discard an event because the store refused
it, and memory is not a place to keep an hour of them. Records are
appended as length-prefixed (topic, body) frames and flushed to the OS at
once (they survive the recorder's death); the whole file is read back, in
order, when the store takes them, and then removed. A torn last record (the
process died mid-write) is dropped with a warning, not misread.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from models.messages import AnyMessage, BadMessage, decode, encode, topic_of

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<I")


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._count = self._scan() if path.exists() else 0

    def __len__(self) -> int:
        return self._count

    def push(self, items: list[tuple[str, AnyMessage]]) -> None:
        """Append ``items`` (raises OSError when the disk refuses: the caller
        keeps them in memory)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            for _topic, msg in items:
                body = encode(msg)
                f.write(_HEAD.pack(len(body)) + body)
        self._count += len(items)

    def peek(self) -> list[tuple[str, AnyMessage]]:
        """Every record, oldest first (the file stays until ``clear``)."""
        if not self._count:
            return []
        out: list[tuple[str, AnyMessage]] = []
        data = self.path.read_bytes()
        at = 0
        while at + _HEAD.size <= len(data):
            (n,) = _HEAD.unpack_from(data, at)
            body = data[at + _HEAD.size: at + _HEAD.size + n]
            if len(body) < n:
                log.warning("spool %s ends in a torn record; dropped", self.path)
                break
            at += _HEAD.size + n
            try:
                msg = decode(body)
            except BadMessage as exc:
                log.error("spool record does not decode (%s); dropped", exc)
                continue
            out.append((topic_of(msg).decode("ascii"), msg))
        return out

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self._count = 0

    def _scan(self) -> int:
        """Count the whole records, and cut a torn tail off the file so that
        what is appended next starts on a record boundary."""
        data = self.path.read_bytes()
        at = n = 0
        while at + _HEAD.size <= len(data):
            (size,) = _HEAD.unpack_from(data, at)
            if at + _HEAD.size + size > len(data):
                break
            at += _HEAD.size + size
            n += 1
        if at < len(data):
            log.warning("spool %s ends in a torn record (%d bytes); cut off", self.path,
                        len(data) - at)
            with self.path.open("r+b") as f:
                f.truncate(at)
        return n
