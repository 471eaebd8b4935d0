"""The pipeline bench's load generator counts every reply exactly once,
whether a read holds whole replies like the last (counted at once), a cut
one, or a refusal among them."""

from __future__ import annotations

from collections import Counter

from console.gateway.http import response
from tests.bench.bench_pipeline import _Conn


def test_replies_are_counted_once_however_the_reads_cut_them() -> None:
    ok = response(200, "OK", True)
    refused = response(503, "busy", True)
    counts: Counter[str] = Counter()
    c = _Conn(counts)
    c.outstanding = 10
    stream = ok * 3 + refused + ok * 2
    c.data_received(stream[:len(ok) + 5])  # one whole, one cut
    c.data_received(stream[len(ok) + 5:])
    assert c.ok_reply == ok
    c.data_received(ok * 3)  # the fast path: whole replies like the last
    c.data_received(ok[:7])
    c.data_received(ok[7:])
    assert counts == Counter(ok=9, refused=1)
    assert c.outstanding == 0 and not c.buf
