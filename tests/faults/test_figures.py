"""The counting rules themselves, on made-up ledgers: a fault test that
passes must pass because nothing was lost, not because nothing was counted."""

from __future__ import annotations

from types import SimpleNamespace

from console.chaos.devices import FixLoad, Press, SentFix, SosStorm
from console.chaos.harness import DeviceInfo
from console.chaos.measure import Run, fill
from console.chaos.observe import StoreCounts, fix_key
from console.chaos.report import Figures, table


def ledgers() -> tuple[SosStorm, FixLoad]:
    a = DeviceInfo("8800000001", "watch", "C-AAAAAAA", 37.5, 127.0, 300.0)
    b = DeviceInfo("8600000002", "phone", "C-BBBBBBB", 37.5, 127.0, 300.0)
    phone = DeviceInfo("8600000003", "phone", "C-CCCCCCC", 37.5, 127.0, 300.0)
    storm = SosStorm([a, b], presses=2, window_s=2.0, watch_port=1, osmand_port=1)
    storm.presses = [Press(a, 0.0, t=1.0, attempts=1, acked=True),
                     Press(a, 1.0, t=2.0, attempts=3, acked=True),
                     Press(b, 0.5, t=1.5, attempts=2, acked=True)]
    load = FixLoad([phone], rate=1.0, window_s=1.0, osmand_port=1)
    load.fixes = [SentFix(phone.device_id, 10.0, 37.5, 127.0, 1, True, "200"),
                  SentFix(phone.device_id, 11.0, 37.5, 127.0, 1, True, "200"),
                  SentFix(phone.device_id, 12.0, 37.5, 127.0, 4, False)]
    return storm, load


def figures(counts: StoreCounts) -> Figures:
    storm, load = ledgers()
    fig = Figures(fault="made-up")
    run = Run(SimpleNamespace(health=None), None, fig, 1.0)  # type: ignore[arg-type]
    fill(fig, run, storm, load, counts)
    return fig


def test_everything_where_it_belongs_is_ok() -> None:
    fig = figures(StoreCounts(sos_alerts={"C-AAAAAAA": [1], "C-BBBBBBB": [2]},
                              trigger_counts={1: 2, 2: 1},
                              fixes={fix_key("8600000003", 10.0), fix_key("8600000003", 11.0)},
                              alert_ids={1, 2}, opened_events={1, 2}))
    assert fig.ok and fig.verdict() == "ok", fig.summary()
    assert (fig.sos_presses, fig.sos_acked, fig.sos_sends) == (3, 3, 6)
    assert (fig.fixes_sent, fig.fixes_acked, fig.fixes_stored) == (3, 2, 2)


def test_an_acked_sos_without_alert_a_second_alert_and_a_lost_fix_all_fail() -> None:
    fig = figures(StoreCounts(sos_alerts={"C-AAAAAAA": [1, 3]}, trigger_counts={1: 1, 3: 1},
                              fixes={fix_key("8600000003", 10.0)},
                              alert_ids={1, 3}, opened_events={1}))
    assert not fig.ok
    assert fig.acked_sos_without_alert == 1  # child B's acknowledged press
    assert (fig.episodes_one_alert, fig.episodes_many_alerts, fig.episodes_no_alert) == (0, 1, 1)
    assert fig.fixes_lost == 1 and fig.events_missing == 1
    assert fig.verdict().startswith("FAIL") and "made-up" in table([fig])
