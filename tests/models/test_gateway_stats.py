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
    assert text.endswith("unregistered devices seen: 1")
