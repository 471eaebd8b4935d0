from __future__ import annotations

from models.gateway_stats import GatewayCounters

STATS = {"accepted.osmand": 10.0, "accepted.watch": 4.0, "rejected.osmand:duplicate": 2.0,
         "rejected.watch:bad_length": 1.0, "rejected.tag:unknown_reader": 3.0,
         "connections.watch": 7.0, "unregistered_devices": 1.0}


def test_counters_are_grouped_by_protocol_and_reason() -> None:
    c = GatewayCounters.from_stats(STATS)
    assert c.protocols() == ["watch", "osmand", "tag", "carrier"]  # carrier: none yet, shown
    assert c.accepted == {"osmand": 10, "watch": 4}
    assert c.rejected_total("watch") == 1 and c.rejected_total("tag") == 3
    assert c.connections == {"watch": 7} and c.unregistered_devices == 1


def test_table_lists_every_reason() -> None:
    text = GatewayCounters.from_stats(STATS).table()
    assert "osmand: duplicate" in text and "watch: bad_length" in text
    assert text.splitlines()[1].split() == ["watch", "4", "1"]
    assert text.splitlines()[2].split() == ["osmand", "10", "2"]
    assert text.splitlines()[4].split() == ["carrier", "0", "0"]
    assert "unregistered devices seen: 1" in text
    assert "alarms: acknowledged (engine heard)" in text


def test_stats_say_when_devices_are_not_acknowledged() -> None:
    """An engine not heard and a journal refusing writes are what an admin
    must read first: devices are being told to send again."""
    c = GatewayCounters.from_stats({**STATS, "engine_up": 0.0, "journal_ok": 0.0,
                                    "journal_failures": 3.0, "alarms_unacknowledged": 2.0,
                                    "unacknowledged.watch": 5.0, "journal_seq": 1200.0})
    assert not c.engine_up and not c.journal_ok
    assert c.delivery() == [
        "alarms: NOT acknowledged: the engine is not heard; devices resend",
        "journal: REFUSING writes: devices are told to resend",
        "journal refusals: 3; alarms not acknowledged: 2; watch frames not acknowledged: 5"]
    ok = GatewayCounters.from_stats({**STATS, "engine_up": 1.0, "journal_ok": 1.0,
                                     "journal_seq": 1200.0})
    assert ok.delivery()[:2] == ["alarms: acknowledged (engine heard)",
                                 "journal: taking reports (batch 1,200)"]
