"""The relay's pure parts, without streams: slow-viewer dropping, the GOP
cache, the pre-alarm ring, status debouncing and the reconnect backoff."""

from __future__ import annotations

from console.media.fanout import Channel
from console.media.prealarm import Ring
from console.media.pull import Backoff
from console.media.remux import Chunk
from console.media.status import Debouncer


def chunk(t: float, key: bool = False, size: int = 1000) -> Chunk:
    return Chunk(t, bytes([0x47]) * size, key)


def test_slow_viewer_is_dropped_and_others_keep_getting_video() -> None:
    channel = Channel(budget=10_000)
    slow, fast = channel.join(), channel.join()
    for i in range(30):
        channel.publish(chunk(i * 0.1, key=i % 10 == 0))
        assert fast.take(timeout=0) is not None
    assert slow.dropped and not fast.dropped
    assert slow.take(timeout=0) is None  # its HTTP response ends
    assert channel.dropped == 1


def test_viewer_starts_at_a_keyframe_from_the_gop_cache() -> None:
    channel = Channel()
    early = channel.join()
    channel.publish(chunk(0.0))  # before any keyframe: useless to a decoder
    assert early.take(timeout=0) is None
    channel.publish(chunk(0.1, key=True, size=500))
    channel.publish(chunk(0.2, size=300))
    late = channel.join()
    assert late.take(timeout=0) == bytes([0x47]) * 800  # keyframe + what followed
    channel.reset()
    assert channel.join().take(timeout=0) is None


def test_ring_keeps_at_least_n_seconds_from_a_keyframe() -> None:
    ring = Ring(seconds=3.0)
    for i in range(100):  # 10 s at 10 fps, a keyframe every second
        ring.add(chunk(i * 0.1, key=i % 10 == 0))
    got = ring.snapshot()
    assert got[0].key
    assert got[-1].t - got[0].t >= 3.0
    assert got[-1].t - got[0].t < 4.0  # whole GOPs beyond N are dropped
    assert ring.size == len(got) * 1000
    ring.clear()
    assert ring.snapshot() == [] and ring.span_s == 0.0


def test_debouncer_hides_blips_and_reports_lasting_changes() -> None:
    d = Debouncer(delay_s=2.0)
    d.report(7, "live", now=0.0)
    assert d.due(now=1.0) == []
    assert d.due(now=2.0) == [(7, "live", "")]
    d.report(7, "offline", "refused", now=3.0)
    d.report(7, "live", now=3.5)  # back within the delay: never seen
    assert d.due(now=10.0) == []
    d.report(7, "offline", "refused", now=11.0)
    d.report(7, "offline", "timeout", now=12.0)  # same state: clock keeps running
    assert d.due(now=13.0) == [(7, "offline", "timeout")]
    assert d.current() == {7: "offline"}


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    b = Backoff(initial_s=0.5, max_s=4.0)
    delays = [b.delay() for _ in range(6)]
    assert 0.4 <= delays[0] <= 0.6
    assert all(d <= 4.0 for d in delays) and delays[-1] >= 3.2
    b.reset()
    assert b.delay() <= 0.6
