"""The gateway's intake: one place that validates, dedupes, counts, batches."""

from __future__ import annotations

import math

import pytest

from console.gateway import intake as intake_mod
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
    assert i.stats() == {"accepted.osmand": 1, "accepted.watch": 1, "unregistered_devices": 0}


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
