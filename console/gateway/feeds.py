"""HTTP device feeds: electronic-tag readers, carrier LBS, and OsmAnd phones.

Tag readers in the safety zones and the carrier's location service post
JSON batches::

    POST /v1/tag-reads      {"reads": [{"reader_id": "R001-1", "tag_id": "…",
                                        "rssi": -61, "t": 1790000000}, …]}
    POST /v1/carrier-fixes  {"fixes": [{"device_id": "…", "lat": 37.5,
                                        "lon": 127.0, "accuracy_m": 350,
                                        "t": "2026-09-21T14:13:20Z",
                                        "method": "gps|cell|wifi"}, …]}

(a bare JSON list is accepted too, and a tag batch may name its
``reader_id`` once at the top). ``t`` is epoch seconds, epoch milliseconds
or ISO-8601. A batch is never all-or-nothing: good items are accepted, and
the reply names every refused item by its index and reason::

    {"accepted": 998, "rejected": [{"index": 3, "reason": "unknown_reader",
                                    "detail": "'R9'"}, …]}

A tag read has no position of its own: it becomes a fix at the reader's
position with the reader's range as its accuracy, and the reader that last
saw each tag is kept as the child's breadcrumb (and travels with the fix, in
``FixBatch.readers``, to the engine and the store). When two overlapping
readers report the same tag at the same second, the stronger read wins
(the child is nearer to it).

``handle_osmand`` serves the phones' OsmAnd port with the same intake.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from console.gateway.fields import as_object, epoch, number, parse_json, text_id
from console.gateway.http import Answer, Durable, Request
from console.gateway.intake import DUPLICATE, NO_CONSENT, Intake
from console.gateway.osmand import decode_json, decode_query
from models.fixes import Rejected, Report

log = logging.getLogger(__name__)

TAG = "tag"
CARRIER = "carrier"
OSMAND = "osmand"
FEEDS = "feeds"  # requests that never reached a protocol (wrong path)
TAG_PATH = "/v1/tag-reads"
CARRIER_PATH = "/v1/carrier-fixes"
MAX_ITEMS = 10_000
METHODS = frozenset({"gps", "cell", "wifi"})
YIELD_EVERY = 1_000  # let the other protocols' connections run during a big batch
MAX_DETAIL = 120
DECODER_ERROR = "decoder_error"  # counted; the fuzz tests prove it never happens


@dataclass(frozen=True, slots=True)
class ReaderPos:
    """Where a reader stands and how far it reads: all a tag read needs."""

    lat: float
    lon: float
    range_m: float
    zone_id: int | None = None


class ReaderRow(Protocol):
    id: str
    lat: float
    lon: float
    range_m: float
    zone_id: int | None


def reader_positions(rows: Iterable[ReaderRow]) -> dict[str, ReaderPos]:
    """The registry map ``FeedsHandler`` reads, from store rows."""
    return {r.id: ReaderPos(r.lat, r.lon, r.range_m, r.zone_id) for r in rows}


class Item(NamedTuple):
    """A decoded batch item: its index in the batch, the report, and what it
    came through (the reader id for a tag read, the method for carrier)."""

    index: int
    report: Report
    via: str


class ItemRejection(NamedTuple):
    index: int
    reason: str
    detail: str = ""


class Breadcrumb(NamedTuple):
    reader_id: str
    t: float


Decoded = tuple[list[Item], list[ItemRejection]]


# ------------------------------------------------------------------ decoders


def _batch(body: bytes, key: str) -> tuple[list[Any], Mapping[str, Any]]:
    """The item list of a batch body, and the top-level object (if any)."""
    doc = parse_json(body)
    top: Mapping[str, Any] = {}
    if isinstance(doc, dict):
        top, doc = doc, doc.get(key)
        if doc is None:
            raise Rejected(f"missing_{key}", f"no {key!r} list")
    if not isinstance(doc, list):
        raise Rejected("bad_field", f"{key} must be a list, got {type(doc).__name__}")
    if len(doc) > MAX_ITEMS:
        raise Rejected("too_many_items", f"{len(doc)} items, at most {MAX_ITEMS} a batch")
    return doc, top


def decode_tag_reads(body: bytes, readers: Mapping[str, ReaderPos]) -> Decoded:
    """Reports from a reader batch; raises ``Rejected`` only for a body that
    is not a batch at all. Items come back in time order, so the engine does
    not drop a later read that happened to be listed first."""
    reads, top = _batch(body, "reads")
    default_reader = top.get("reader_id")
    items: list[Item] = []
    rssis: list[float] = []
    rejects: list[ItemRejection] = []
    strongest: dict[tuple[str, float], int] = {}  # (tag, t) -> position in items
    for i, raw in enumerate(reads):
        try:
            read = as_object(raw, "read")
            reader_id = text_id(read.get("reader_id", default_reader), "reader_id")
            tag_id = text_id(read.get("tag_id"), "tag_id")
            t = epoch(read.get("t"))
            rssi = number(read, "rssi", -math.inf)
            pos = readers.get(reader_id)
            if pos is None:
                raise Rejected("unknown_reader", repr(reader_id))
        except Rejected as exc:
            rejects.append(ItemRejection(i, exc.reason, exc.detail[:MAX_DETAIL]))
            continue
        item = Item(i, Report(device_id=tag_id, t=t, lat=pos.lat, lon=pos.lon,
                              accuracy=pos.range_m), reader_id)
        j = strongest.get((tag_id, t))
        if j is None:
            strongest[tag_id, t] = len(items)
            items.append(item)
            rssis.append(rssi)
            continue
        loser = item
        if rssi > rssis[j]:
            loser, items[j], rssis[j] = items[j], item, rssi
        same_reader = loser.via == items[j].via
        rejects.append(ItemRejection(
            loser.index, DUPLICATE if same_reader else "weaker_read",
            f"{tag_id!r} at {t:.0f} also read by {items[j].via!r}"))
    items.sort(key=lambda it: it.report.t)
    rejects.sort()
    return items, rejects


def decode_carrier(body: bytes) -> Decoded:
    """Reports from a carrier LBS batch; ``accuracy_m`` is required, since a
    cell fix can be kilometres off and zone checks must know it."""
    fixes, _ = _batch(body, "fixes")
    items: list[Item] = []
    rejects: list[ItemRejection] = []
    for i, raw in enumerate(fixes):
        try:
            fix = as_object(raw, "fix")
            device_id = text_id(fix.get("device_id"), "device_id")
            lat, lon = number(fix, "lat"), number(fix, "lon")
            accuracy = number(fix, "accuracy_m")
            if not accuracy >= 0:
                raise Rejected("bad_accuracy", f"accuracy_m={accuracy!r}")
            t = epoch(fix.get("t"))
            method = fix.get("method")
            if not isinstance(method, str) or method not in METHODS:
                raise Rejected("missing_method" if method is None else "unknown_method",
                               f"method={str(method)[:20]!r}, not gps|cell|wifi")
        except Rejected as exc:
            rejects.append(ItemRejection(i, exc.reason, exc.detail[:MAX_DETAIL]))
            continue
        report = Report(device_id=device_id, t=t, lat=lat, lon=lon, accuracy=accuracy)
        items.append(Item(i, report, str(method)))
    items.sort(key=lambda it: it.report.t)
    return items, rejects


# ------------------------------------------------------------------ handlers


def _reply(status: int, doc: dict[str, Any]) -> tuple[int, str]:
    # ensure_ascii: a detail may quote a lone surrogate a client sent
    return status, json.dumps(doc, ensure_ascii=True, separators=(",", ":"))


class FeedsHandler:
    """Serves the feeds port. ``readers`` may be replaced at any time (the
    gateway reloads the registry on a timer). ``handle`` is a coroutine: a
    batch of thousands of items yields to the event loop as it goes, so the
    other ports stay responsive."""

    def __init__(self, intake: Intake, readers: Mapping[str, ReaderPos]) -> None:
        self.intake = intake
        self.readers = readers
        self._breadcrumbs: dict[str, Breadcrumb] = {}

    def last_reader(self, tag_id: str) -> Breadcrumb | None:
        """The reader that most recently (by read time) saw this tag, with
        that time: where to start looking for a child who wears only a tag."""
        return self._breadcrumbs.get(tag_id)

    async def handle(self, req: Request) -> tuple[int, str]:
        path = req.target.partition("?")[0]
        if path not in (TAG_PATH, CARRIER_PATH):
            self.intake.reject(FEEDS, "unknown_path", repr(path[:80]))
            return _reply(404, {"error": "unknown_path", "paths": [TAG_PATH, CARRIER_PATH]})
        protocol = TAG if path == TAG_PATH else CARRIER
        if req.method != "POST":
            self.intake.reject(protocol, "bad_method", req.method[:10])
            return _reply(405, {"error": "bad_method", "detail": "POST a JSON batch"})
        try:
            if protocol == TAG:
                items, rejects = decode_tag_reads(req.body, self.readers)
            else:
                items, rejects = decode_carrier(req.body)
        except Rejected as exc:
            self.intake.reject(protocol, exc.reason, exc.detail)
            return _reply(400, {"accepted": 0, "error": exc.reason, "detail": exc.detail})
        for rej in rejects:
            self.intake.reject(protocol, rej.reason, rej.detail)
        accepted = await self._accept(items, protocol, rejects)
        rejects.sort()
        status, text = _reply(200, {"accepted": accepted,
                                    "rejected": [r._asdict() for r in rejects]})
        if not accepted:
            return status, text
        if not await self.intake.durable():
            return _reply(503, {"accepted": 0, "error": "not_stored",
                                "detail": "the gateway could not store the batch; send it again"})
        return status, text

    async def _accept(self, items: list[Item], protocol: str,
                      rejects: list[ItemRejection]) -> int:
        accepted = 0
        now = time.time()
        for n, item in enumerate(items, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
                now = time.time()
            reader = item.via if protocol == TAG else ""
            verdict = self.intake.accept(item.report, protocol, now, reader)
            if not verdict.accepted:
                rejects.append(ItemRejection(item.index, verdict.reason))
            elif protocol == TAG:
                self._drop_breadcrumb(item)
            accepted += verdict.accepted
        return accepted

    def _drop_breadcrumb(self, item: Item) -> None:
        tag, t = item.report.device_id, item.report.t
        previous = self._breadcrumbs.get(tag)
        if previous is None or t >= previous.t:
            self._breadcrumbs[tag] = Breadcrumb(item.via, t)


def decode_osmand(req: Request, now: float) -> Report:
    """One report from any form a phone sends: GET query, form POST, or JSON
    POST. JSON is chosen by Content-Type, or by a body that is plainly a JSON
    object (a proxy may strip the header); raises ``Rejected``."""
    if req.method == "GET":
        return decode_query(req.target.partition("?")[2], now)
    if req.method != "POST":
        raise Rejected("bad_method", req.method[:10])
    content_type = req.headers.get("content-type", "").lower()
    if content_type.startswith("application/json") or (
        "form" not in content_type and req.body.lstrip()[:1] == b"{"
    ):
        return decode_json(req.body, now)
    query = req.body.decode("utf-8", "replace")
    if "?" in req.target:
        query = req.target.partition("?")[2] + "&" + query
    return decode_query(query, now)


def handle_osmand(intake: Intake, req: Request) -> Answer:
    """The OsmAnd port's handler: 200 once the fix is durable (or refused for
    its content, with the reason), 503 with Retry-After when it cannot be
    made durable or is an alarm while the engine is down, 403 for an
    unregistered phone, 405 for other methods, 400 for a request that
    cannot be decoded.
    A plain function, so ``HttpServer`` answers pipelined requests inline.

    A duplicate answers 200: phones keep a position and resend it until they
    see a 200, so a duplicate is a resend whose first reply was lost, and
    refusing it would make the phone retry it forever.
    """
    now = time.time()
    try:
        report = decode_osmand(req, now)
    except Rejected as exc:
        intake.reject(OSMAND, exc.reason, exc.detail)
        return (405, "GET or POST") if exc.reason == "bad_method" else (400, exc.reason)
    except Exception:  # a decoder bug: answer and count it, never drop the connection
        log.exception("OsmAnd decoder failed on %s %s", req.method, req.target[:120])
        intake.reject(OSMAND, DECODER_ERROR, req.target[:120])
        return 400, DECODER_ERROR
    verdict = intake.accept(report, OSMAND, now)
    if verdict.accepted and not verdict.acknowledge:
        return 503, "alarm not acknowledged: the engine is down; send again"
    if verdict.accepted:
        return Durable("OK")
    if verdict.reason == DUPLICATE:
        return Durable("OK (duplicate)")
    if verdict.unregistered:
        return 403, "unregistered device"
    if verdict.reason == NO_CONSENT:
        return 403, "no consent in force for this device's child"
    # A well-formed report whose content we refuse (0,0 before a GPS fix, a
    # wrong phone clock) is answered 200 with the reason: the phone would
    # otherwise resend it forever and never send the positions behind it.
    return 200, f"refused: {verdict.reason}"
