"""The relay's camera registry: who watches or holds which camera, and when
its puller runs.

A camera is pulled while anyone needs it: a viewer (``watch``), a
pre-alarm hold for an open alert (``hold``), or a clip being recorded
(``clip``). When the last need goes, the puller keeps running for
``idle_s`` (an operator flipping between tiles should not reconnect the
camera each time), then stops.

Threads: pullers call ``_Feed.on_chunk``/``on_state``; HTTP handler
threads call ``watch``/``hold``/``clip``; one owner thread calls ``tick``
(which returns the status events to publish) and ``close``.

Every value a caller passes is checked against ``console.media.limits``
here too (not only by the HTTP layer), and a clip is refused, not
started, when the evidence folder is at its disk budget.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.media import limits
from console.media.budget import RESCAN_S, EvidenceBudget
from console.media.evidence import UnsafePath, clip_path
from console.media.fanout import DEFAULT_VIEWER_BUDGET, Channel, Viewer
from console.media.limits import Refusals, Refused
from console.media.prealarm import ClipInfo, ClipWriter, Ring
from console.media.pull import Puller, PullSettings
from console.media.remux import Chunk
from console.media.status import Debouncer

log = logging.getLogger(__name__)

UrlLookup = Callable[[int], str | None]
SaveEvidence = Callable[..., int]  # keyword args as console.media.evidence.save_evidence
MAX_CLIPS_KEPT = 1000  # clip states GET /clip/<id> still answers
EVIDENCE_BUDGET_BYTES = 2048 * 2**20  # console.config's evidence_budget_mb default
CLIP_REFUSALS = ("evidence_full", "evidence_io", "clip_path")  # a valid request, no clip


@dataclass(frozen=True)
class RelaySettings:
    prealarm_s: float = 30.0  # N: seconds kept before, and recorded after, an SOS
    debounce_s: float = 2.0
    idle_s: float = 15.0
    hold_ttl_s: float = 3600.0  # a hold not renewed or released lapses after this
    viewer_budget: int = DEFAULT_VIEWER_BUDGET
    evidence_budget_bytes: int = EVIDENCE_BUDGET_BYTES  # new clips refused at this total
    evidence_rescan_s: float = RESCAN_S  # re-walk the evidence folder this often
    request_deadline_s: float = limits.REQUEST_DEADLINE_S  # slow HTTP peers are cut off
    pull: PullSettings = field(default_factory=PullSettings)


class UnknownCamera(LookupError):
    """No such camera, or it has no stream URL."""


class _Feed:
    """One camera: its puller, viewers, pre-alarm ring and clips."""

    def __init__(self, camera_id: int, url: str, budget: int) -> None:
        self.camera_id = camera_id
        self.url = url
        self.channel = Channel(budget)
        self.puller: Puller | None = None
        self.ring: Ring | None = None
        self.holds: dict[int, float] = {}  # alert id -> monotonic expiry
        self.clips: list[ClipWriter] = []
        self.idle_since: float | None = None
        self.lock = threading.Lock()

    def on_chunk(self, chunk: Chunk) -> None:
        with self.lock:
            self.channel.publish(chunk)
            if self.ring is not None:
                self.ring.add(chunk)
            for clip in self.clips:
                clip.write(chunk)

    def needed(self) -> bool:
        return bool(self.channel.viewers or self.holds or self.clips)


class Relay:
    def __init__(self, settings: RelaySettings, lookup: UrlLookup, evidence_dir: Path,
                 save: SaveEvidence | None = None) -> None:
        self.settings = settings
        self.lookup = lookup
        self.evidence_dir = evidence_dir
        self.save = save
        self.status = Debouncer(settings.debounce_s)
        self._feeds: dict[int, _Feed] = {}
        self._clips: dict[str, ClipInfo] = {}
        self._lock = threading.Lock()
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence")
        self.refusals = Refusals()
        self.budget = EvidenceBudget(evidence_dir, settings.evidence_budget_bytes,
                                     settings.evidence_rescan_s)

    @contextmanager
    def _counting(self) -> Iterator[None]:
        """Count and log a refusal raised inside, then let it go on up."""
        try:
            yield
        except Refused as exc:
            self.refusals.note(exc)
            raise

    def _refuse(self, reason: str, message: str, status: int = 400) -> Refused:
        """A refusal, already counted and logged, for the caller to raise."""
        exc = Refused(reason, message, status)
        self.refusals.note(exc)
        return exc

    # ------------------------------------------------------------ feeds
    def _feed(self, camera_id: int) -> _Feed:
        """The camera's feed, created (not yet pulling) on first use."""
        with self._lock:
            feed = self._feeds.get(camera_id)
        if feed is not None:
            return feed
        url = self.lookup(camera_id)
        if not url:
            raise UnknownCamera(f"camera {camera_id} is unknown or has no stream")
        with self._lock:
            return self._feeds.setdefault(
                camera_id, _Feed(camera_id, url, self.settings.viewer_budget))

    def _ensure_pulling(self, feed: _Feed) -> None:
        with feed.lock:
            feed.idle_since = None
            if feed.puller is not None and not feed.puller.stopping:
                return
        # Re-read the URL before each (re)start: an admin may have changed it.
        url = self.lookup(feed.camera_id) or feed.url
        with feed.lock:
            if feed.puller is not None and not feed.puller.stopping:
                return  # another thread started it meanwhile
            feed.url = url
            cid = feed.camera_id

            def on_state(state: str, detail: str) -> None:
                if state != "live":
                    feed.channel.reset()  # a new viewer must not start on stale frames
                self.status.report(cid, state, detail)

            feed.puller = Puller(cid, feed.url, feed.on_chunk, on_state, self.settings.pull)
            feed.puller.start()
            log.info("cam %d: pulling %s", cid, feed.url)

    # ---------------------------------------------------------- viewers
    def watch(self, camera_id: int) -> Viewer:
        """A new viewer of the camera (starts pulling it if needed)."""
        feed = self._feed(camera_id)
        viewer = feed.channel.join()
        self._ensure_pulling(feed)
        return viewer

    def unwatch(self, camera_id: int, viewer: Viewer) -> None:
        with self._lock:
            feed = self._feeds.get(camera_id)
        if feed is not None:
            feed.channel.leave(viewer)

    # ------------------------------------------------------------ holds
    def hold(self, camera_ids: list[int], alert_id: int,
             ttl_s: float | None = None) -> tuple[list[int], list[int]]:
        """Keep a pre-alarm ring for these cameras while the alert is open.
        Returns (held, unknown) camera ids. Repeating a hold renews it."""
        with self._counting():
            camera_ids = limits.check_ids(camera_ids, "camera_ids")
            alert_id = limits.check_id(alert_id, "alert_id")
            ttl_s = limits.check_seconds(ttl_s, "ttl_s", limits.MAX_HOLD_TTL_S)
        expires = time.monotonic() + (ttl_s or self.settings.hold_ttl_s)
        held: list[int] = []
        unknown: list[int] = []
        for cid in camera_ids:
            try:
                feed = self._feed(cid)
            except UnknownCamera:
                unknown.append(cid)
                continue
            with feed.lock:
                feed.holds[alert_id] = expires
                if feed.ring is None:
                    feed.ring = Ring(self.settings.prealarm_s)
            self._ensure_pulling(feed)
            held.append(cid)
        return held, unknown

    def release(self, alert_id: int) -> list[int]:
        """The alert is resolved: its holds end (rings go once unheld)."""
        with self._counting():
            alert_id = limits.check_id(alert_id, "alert_id")
        released: list[int] = []
        for feed in self._all_feeds():
            with feed.lock:
                if feed.holds.pop(alert_id, None) is not None:
                    released.append(feed.camera_id)
                    if not feed.holds:
                        feed.ring = None
        return released

    # ------------------------------------------------------------ clips
    def clip(self, camera_id: int, alert_id: int | None, actor: str,
             post_s: float | None = None) -> ClipInfo:
        """Save the buffered pre-alarm seconds plus the next ``post_s``
        (default N); the Evidence row is written when the clip ends.
        Refused (``Refused``, counted) when a value is out of bounds, the
        evidence folder is at its budget or the clip cannot be created."""
        with self._counting():
            camera_id = limits.check_id(camera_id, "camera_id")
            if alert_id is not None:
                alert_id = limits.check_id(alert_id, "alert_id")
            actor = limits.check_actor(actor)
            post_s = limits.check_seconds(post_s, "post_s", limits.MAX_POST_S)
        feed = self._feed(camera_id)
        now = time.time()
        post = self.settings.prealarm_s if post_s is None else post_s
        info = ClipInfo(id=uuid.uuid4().hex[:12], camera_id=camera_id, alert_id=alert_id,
                        actor=actor, path=self._clip_path(camera_id, alert_id, now),
                        t_start=now, t_end=now, ends_at=now + post, pre_s=0.0)
        with feed.lock:
            pre = feed.ring.snapshot() if feed.ring is not None else []
            try:
                writer = ClipWriter(info, pre, self.budget.add)
            except OSError as exc:
                raise self._refuse("evidence_io", f"cannot write the clip: {exc}"[:200],
                                   507) from None
            feed.clips.append(writer)
        info.pre_s = max(0.0, now - info.t_start) if writer.bytes else 0.0
        with self._lock:
            self._clips[info.id] = info
            while len(self._clips) > MAX_CLIPS_KEPT:  # the oldest answers go first
                del self._clips[next(iter(self._clips))]
        self._ensure_pulling(feed)
        log.info("clip %s: cam %d alert %s, %.1f s buffered + %.1f s", info.id, camera_id,
                 alert_id, info.pre_s, post)
        return info

    def _clip_path(self, camera_id: int, alert_id: int | None, now: float) -> Path:
        """Where a new clip goes, once it is known to fit the budget and to
        stay inside the evidence folder."""
        budget = self.budget
        if budget.full:
            raise self._refuse(
                "evidence_full", f"evidence storage full ({budget.used} of "
                f"{budget.budget_bytes} bytes): new clips refused", 507)
        try:
            return clip_path(self.evidence_dir, camera_id, alert_id, now)
        except UnsafePath as exc:
            raise self._refuse("clip_path", str(exc)) from None

    def clip_info(self, clip_id: str) -> ClipInfo | None:
        with self._lock:
            return self._clips.get(clip_id)

    def _store(self, writer: ClipWriter) -> None:
        info = writer.info
        if not writer.finish():
            info.state, info.error = "failed", info.error or "no video was received"
            return
        if self.save is None:
            info.state = "saved"
            return
        try:
            info.evidence_id = self.save(camera_id=info.camera_id, alert_id=info.alert_id,
                                         path=info.path, t_start=info.t_start,
                                         t_end=info.t_end, actor=info.actor)
            info.state = "saved"
        except Exception as exc:  # the file stays; the failure is visible via GET /clip
            log.exception("clip %s: evidence row not saved", info.id)
            info.state, info.error = "failed", str(exc)[:200]

    # ------------------------------------------------------ maintenance
    def _all_feeds(self) -> list[_Feed]:
        with self._lock:
            return list(self._feeds.values())

    def tick(self) -> list[tuple[int, str, str]]:
        """Expire holds, finish clips, stop idle pullers; return the status
        events now due (camera_id, state, detail)."""
        mono, wall = time.monotonic(), time.time()
        self.budget.maybe_rescan(mono)
        for feed in self._all_feeds():
            done: list[ClipWriter] = []
            with feed.lock:
                for aid in [a for a, exp in feed.holds.items() if exp <= mono]:
                    del feed.holds[aid]
                if not feed.holds:
                    feed.ring = None
                done = [c for c in feed.clips if wall >= c.info.ends_at]
                feed.clips = [c for c in feed.clips if c not in done]
                puller = feed.puller
                if puller is not None and not feed.needed():
                    feed.idle_since = feed.idle_since or mono
                    if mono - feed.idle_since >= self.settings.idle_s:
                        puller.stop()
                        feed.puller = None
                        feed.channel.reset()
                        log.info("cam %d: nobody needs it; stopped pulling", feed.camera_id)
            for writer in done:
                self._saver.submit(self._store, writer)
        return self.status.due()

    def snapshot(self) -> dict[str, Any]:
        """For ``GET /status``: per camera state, viewers, holds, buffer."""
        published = self.status.current()
        cams = []
        for feed in self._all_feeds():
            with feed.lock:
                p = feed.puller
                cams.append({
                    "camera_id": feed.camera_id,
                    "state": published.get(feed.camera_id, "connecting" if p else "idle"),
                    "pulling": p is not None,
                    "viewers": feed.channel.viewers,
                    "viewers_dropped": feed.channel.dropped,
                    "held_for": sorted(feed.holds),
                    "buffer_s": round(feed.ring.span_s, 2) if feed.ring else 0.0,
                    "buffer_bytes": feed.ring.size if feed.ring else 0,
                    "recording_clips": len(feed.clips),
                    "sessions": p.sessions if p else 0,
                    "bytes_out": p.bytes_out if p else 0,
                })
        return {"cameras": cams}

    def stats(self) -> dict[str, float]:
        """Heartbeat numbers: feeds, the evidence budget (``evidence_bytes``,
        ``evidence_budget_bytes``, ``evidence_full``), ``clips_refused``
        (valid clip requests that got no clip: storage full or unusable),
        ``refused_token`` (requests without a valid token, each also under
        its ``refused.token_<reason>``) and the refusal counts by reason."""
        feeds = self._all_feeds()
        refused = self.refusals.stats()
        return {
            "cameras_pulled": float(sum(1 for f in feeds if f.puller is not None)),
            "viewers": float(sum(f.channel.viewers for f in feeds)),
            "held": float(sum(1 for f in feeds if f.holds)),
            "clips_recording": float(sum(len(f.clips) for f in feeds)),
            **self.budget.stats(),
            "clips_refused": sum(refused[f"refused.{r}"] for r in CLIP_REFUSALS),
            "refused_token": sum(refused[f"refused.{r}"] for r in limits.TOKEN_REASONS),
            **refused,
        }

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop pulling, end viewers, save clips in progress with what they have."""
        feeds = self._all_feeds()
        pullers: list[Puller] = []
        for feed in feeds:
            with feed.lock:
                if feed.puller is not None:
                    feed.puller.stop()
                    pullers.append(feed.puller)
                    feed.puller = None
                writers, feed.clips = feed.clips, []
            feed.channel.close_all()
            for writer in writers:
                writer.info.ends_at = min(writer.info.ends_at, time.time())
                self._saver.submit(self._store, writer)
        self._saver.shutdown(wait=True)
        deadline = time.monotonic() + timeout_s
        for p in pullers:
            p.join(max(0.0, deadline - time.monotonic()))
