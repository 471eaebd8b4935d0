"""The gateway's intake: one place that validates, dedupes, counts, batches."""

from __future__ import annotations

import gc
import math

import pytest

from console.gateway import intake as intake_mod
from console.gateway.dedup import RecentFixes
from console.gateway.intake import Intake
from models.fixes import Report
from models.messages import FixBatch, fix_columns

NOW = 1_790_000_000.0


def make() -> tuple[Intake, list[FixBatch]]:
    sent: list[FixBatch] = []
    i = Intake(sent.append)
    i.registered = {"a", "b"}
    return i, sent


def test_accepts_counts_and_batches_per_protocol() -> None:
    i, sent = make()
    assert i.accept(Report("a", NOW, 37.5, 127.0), "osmand", NOW).accepted
    assert i.accept(Report("b", NOW, 37.6, 127.1), "watch", NOW).accepted
    assert sent == []  # waits for the timer
    i.flush()
    assert sorted(b.protocol for b in sent) == ["osmand", "watch"]
    assert i.stats() == {"accepted.osmand": 1, "accepted.watch": 1, "unregistered_devices": 0,
                         "engine_up": 1.0, "alarms_unacknowledged": 0, "journal_failures": 0}


def test_sos_flushes_at_once_even_without_a_position() -> None:
    i, sent = make()
    i.accept(Report("a", NOW, 37.5, 127.0), "osmand", NOW)
    assert i.accept(Report("a", NOW + 1, math.nan, math.nan, sos=True), "osmand", NOW).accepted
    assert len(sent) == 1 and len(sent[0].device_ids) == 2
    assert fix_columns(sent[0])["flags"].tolist() == [0, 3]  # SOS | BAD_POSITION


def test_refusals_have_reasons() -> None:
    i, _ = make()
    assert i.accept(Report("zzz", NOW, 37.5, 127.0), "osmand", NOW).unregistered
    assert i.accept(Report("a", NOW, 0.0, 0.0), "osmand", NOW).reason == "coordinate_null_island"
    assert i.accept(Report("a", NOW, 37.5, 127.0), "osmand", NOW).accepted
    assert i.accept(Report("a", NOW, 37.5, 127.0), "osmand", NOW).reason == "duplicate"
    assert i.rejected == {"osmand:unregistered_device": 1, "osmand:coordinate_null_island": 1,
                          "osmand:duplicate": 1}
    assert i.take_unregistered() == {"zzz": ("osmand", NOW, NOW, 1)}
    assert i.take_unregistered() == {}


def test_invented_ids_do_not_grow_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake_mod, "MAX_UNREGISTERED_KEPT", 100)
    i, _ = make()
    for n in range(1000):
        i.accept(Report(f"x{n}", NOW, 37.5, 127.0), "watch", NOW)
    assert len(i.unregistered_seen) == 100
    assert i.rejected["watch:unregistered_not_kept"] == 900


# ------------------------------------------------------- duplicates (audit)

def test_a_resend_of_an_older_fix_is_a_duplicate() -> None:
    """A, B, A: the second A is not the device's last report, and still a copy."""
    i, sent = make()
    a, b = Report("a", NOW, 37.5, 127.0), Report("a", NOW + 10, 37.51, 127.01)
    assert i.accept(a, "osmand", NOW).accepted
    assert i.accept(b, "osmand", NOW).accepted
    again = Report("a", NOW, 37.5, 127.0)
    assert i.accept(again, "osmand", NOW).reason == "duplicate"
    # Same time elsewhere, or the same place at another time, is no copy.
    assert i.accept(Report("a", NOW, 37.52, 127.0), "osmand", NOW).accepted
    assert i.accept(Report("a", NOW - 10, 37.5, 127.0), "osmand", NOW).accepted
    # Another device's identical fix is its own.
    assert i.accept(Report("b", NOW, 37.5, 127.0), "osmand", NOW).accepted
    i.flush()
    assert sum(len(batch.device_ids) for batch in sent) == 5
    assert i.rejected == {"osmand:duplicate": 1}


def test_duplicates_are_caught_across_protocols_and_for_position_less_sos() -> None:
    i, _ = make()
    assert i.accept(Report("a", NOW, 37.5, 127.0), "watch", NOW).accepted
    assert i.accept(Report("a", NOW, 37.5, 127.0), "carrier", NOW).reason == "duplicate"
    sos = Report("a", NOW + 5, math.nan, math.nan, sos=True)
    assert i.accept(sos, "osmand", NOW).accepted
    assert i.accept(Report("a", NOW + 5, 0.0, 0.0, sos=True), "osmand", NOW).reason == (
        "duplicate")  # the same press, with no position both times
    # The SOS press at a fix's time and place is not that fix's copy.
    assert i.accept(Report("a", NOW, 37.5, 127.0, sos=True), "osmand", NOW).accepted


def test_the_window_is_the_last_32_fixes_of_each_device() -> None:
    i, _ = make()
    fixes = [Report("a", NOW + n, 37.5 + n * 1e-4, 127.0) for n in range(40)]
    for r in fixes:
        assert i.accept(Report(r.device_id, r.t, r.lat, r.lon), "watch", NOW).accepted
    recent, forgotten = fixes[-32], fixes[-33]
    assert i.accept(recent, "watch", NOW).reason == "duplicate"
    assert i.accept(forgotten, "watch", NOW).accepted  # older than the window: stored again


def test_the_windows_memory_is_bounded_overall() -> None:
    i, _ = make()
    i.recent = RecentFixes(window=4, max_devices=100)
    i.registered = {f"d{n}" for n in range(1000)}
    for n in range(1000):
        for k in range(10):
            i.accept(Report(f"d{n}", NOW + k, 37.5, 127.0), "watch", NOW)
    assert len(i.recent) <= 100 and i.recent.evicted >= 900
    assert all(i.recent.window_of(f"d{n}") <= 4 for n in range(1000))
    # A device still tracked keeps catching its copies.
    assert i.accept(Report("d999", NOW + 9, 37.5, 127.0), "watch", NOW).reason == "duplicate"
    i.recent.forget({"d999"})
    assert len(i.recent) <= 99


def test_check_device_counts_and_notes_ids_that_sent_no_report() -> None:
    i, _ = make()
    assert i.check_device("a", "watch", NOW).accepted
    assert i.check_device("w1", "watch", NOW).unregistered
    assert i.check_device("w1", "watch", NOW + 300).unregistered
    i.note_if_unregistered("w2", "watch", NOW)  # already counted for its own reason
    i.note_if_unregistered("a", "watch", NOW)
    assert i.rejected == {"watch:unregistered_device": 2}
    assert i.take_unregistered() == {"w1": ("watch", NOW, NOW + 300, 2),
                                     "w2": ("watch", NOW, NOW, 1)}


def test_the_reader_behind_a_tag_read_travels_with_its_fix() -> None:
    i, sent = make()
    assert i.accept(Report("a", NOW, 37.5, 127.0), "tag", NOW, reader="R001-1").accepted
    assert i.accept(Report("b", NOW, 37.6, 127.1), "tag", NOW, reader="R001-2").accepted
    assert i.accept(Report("a", NOW + 1, 37.5, 127.0), "osmand", NOW).accepted
    i.flush()
    by_protocol = {b.protocol: b for b in sent}
    assert by_protocol["tag"].readers == ["R001-1", "R001-2"]
    assert by_protocol["osmand"].readers == []  # no tag read in it: nothing to carry
    for b in sent:
        fix_columns(b)  # lengths agree
    i.accept(Report("b", NOW + 2, 37.6, 127.1), "tag", NOW)  # a read without its reader
    i.accept(Report("a", NOW + 2, 37.6, 127.1), "tag", NOW, reader="R001-3")
    i.flush()
    assert sent[-1].readers == ["", "R001-3"]


def test_the_windows_are_nothing_a_full_collection_walks() -> None:
    """One tracked object per device made every full collection walk a
    city's worth of them, stopping the gateway's loop under load."""
    recent = RecentFixes()
    for n in range(100):
        recent.seen(f"d{n}", NOW + n, 37.5, 127.0, False)
    gc.collect()
    internals = [recent._keys, recent._newest, *recent._keys.values()]
    assert not any(gc.is_tracked(o) for o in internals)
