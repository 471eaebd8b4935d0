"""models.kpi: exact numbers on small hand-made shifts with a pinned clock."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from models.alerts import BREACH_ACK, BREACH_CLOSE
from models.kpi import (
    HANDOVER_COLUMNS,
    ack_times,
    assignable,
    clock,
    duration_label,
    escalations,
    handover_csv,
    handover_html,
    handover_rows,
    histogram,
    hour_starts,
    operator_load,
    per_hour_by_district,
    per_hour_by_kind,
    resolve_times,
    sla_by_priority,
    sla_compliance,
)
from models.messages import AlertView, StaffLoad

T0 = 1_700_000_000.0  # shift start
NOW = T0 + 10_000.0


def alert(id: int, **kw: Any) -> AlertView:
    base: dict[str, Any] = dict(kind="sos", priority=1, state="new", child_token=f"C-{id:04d}",
                                child_slot=id, device_id=f"d{id}", lat=37.54, lon=127.03,
                                place="성동구 성수동1가", opened_at=T0 + 60)
    base.update(kw)
    return AlertView(id=id, **base)


# ------------------------------------------------------------------ durations


def test_ack_and_resolve_samples() -> None:
    alerts = [
        alert(1, opened_at=T0, acked_at=T0 + 12, state="resolved", resolved_at=T0 + 300),
        alert(2, opened_at=T0, acked_at=T0 + 40, state="dispatched", updated_at=T0 + 500),
        alert(3, opened_at=T0, state="new"),
        alert(4, opened_at=T0, acked_at=T0 + 7, state="in_progress", updated_at=T0 + 900),
        # Reopened: resolved_at was cleared, so it has no time to resolve yet.
        alert(5, opened_at=T0, acked_at=T0 + 3, state="acknowledged", resolved_at=0.0),
    ]
    assert ack_times(alerts) == [12.0, 40.0, 7.0, 3.0]
    assert resolve_times(alerts) == [300.0, 500.0]


def test_histogram_bins_are_round_and_keep_every_sample() -> None:
    h = histogram([5, 12, 14, 29, 61])
    assert h.step == 10.0
    assert h.edges == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    assert h.counts == [1, 2, 1, 0, 0, 0, 1]
    assert h.overflow == 0 and h.total == 5
    assert histogram([]).counts == [] and histogram([]).total == 0


def test_histogram_puts_a_far_outlier_in_overflow() -> None:
    h = histogram([10.0] * 19 + [10_000.0])
    assert h.step == 1.0 and len(h.counts) == 11
    assert h.counts[10] == 19 and h.overflow == 1 and h.total == 20


def test_clock_and_duration_labels() -> None:
    assert clock(5) == "0:05" and clock(-70) == "1:10" and clock(3723) == "1:02:03"
    assert duration_label(30) == "30s" and duration_label(120) == "2m"
    assert duration_label(270) == "4m30s" and duration_label(9900) == "2h45m"


# ------------------------------------------------------------------ per hour


def test_per_hour_by_kind_and_district() -> None:
    now = T0 + 2.5 * 3600
    alerts = [
        alert(1, kind="sos", opened_at=T0 + 600, place="성동구 성수동1가"),
        alert(2, kind="zone_exit", opened_at=T0 + 3000, place="구로구 신도림동"),
        alert(3, kind="sos", opened_at=T0 + 3900, place="성동구 행당동"),
        alert(4, kind="sos", opened_at=T0 + 8400, place="도봉구 방학동"),
        alert(5, kind="fall", opened_at=T0 - 10, place="도봉구 방학동"),  # before the shift
        alert(6, kind="fall", opened_at=now, place="somewhere"),  # at now: last bin
    ]
    assert hour_starts(T0, now) == [T0, T0 + 3600, T0 + 7200]
    by_kind = per_hour_by_kind(alerts, T0, now)
    assert by_kind.starts == [T0, T0 + 3600, T0 + 7200]
    assert list(by_kind.counts) == ["sos", "fall", "zone_exit"]  # the KINDS order
    assert by_kind.counts == {"sos": [1, 1, 1], "fall": [0, 0, 1], "zone_exit": [1, 0, 0]}
    by_district = per_hour_by_district(alerts, T0, now)
    assert by_district.counts == {"?": [0, 0, 1], "구로구": [1, 0, 0], "도봉구": [0, 0, 1],
                                  "성동구": [1, 1, 0]}
    assert by_district.totals() == [("성동구", 2), ("?", 1), ("구로구", 1), ("도봉구", 1)]
    assert hour_starts(T0, T0) == [T0]


# ------------------------------------------------------------------ SLA


def test_sla_compliance_counts_only_decided_alerts() -> None:
    alerts = [
        alert(1, priority=1, opened_at=T0, ack_due=T0 + 30, acked_at=T0 + 20),  # met
        alert(2, priority=1, opened_at=T0, ack_due=T0 + 30, acked_at=T0 + 31),  # late
        alert(3, priority=1, opened_at=T0, ack_due=T0 + 30, breaches=BREACH_ACK),  # late
        alert(4, priority=2, opened_at=T0, ack_due=T0 + 120),  # pending
        alert(5, priority=2, opened_at=T0, ack_due=T0 + 120, acked_at=T0 + 120),  # met
        alert(6, priority=3, opened_at=T0, acked_at=T0 + 500),  # no deadline: met
    ]
    overall = sla_compliance(alerts)
    assert (overall.met, overall.decided, overall.pending) == (3, 5, 1)
    assert overall.rate == 0.6 and overall.level == "bad"
    per = sla_by_priority(alerts)
    assert list(per) == [1, 2, 3, 4]
    assert (per[1].met, per[1].decided) == (1, 3)
    assert (per[2].met, per[2].decided, per[2].pending) == (1, 1, 1)
    assert per[2].rate == 1.0 and per[2].level == "good"
    assert per[4].rate is None and per[4].level == "none"


# ------------------------------------------------------------------ escalation


def escalation_shift() -> list[AlertView]:
    """Hand-made cases around NOW; the comments give the expected reason."""
    def opened(age: float) -> float:
        return NOW - age

    return [
        # A: P2 not acknowledged, 70 s past ack_due, escalated by the engine.
        alert(1, priority=2, kind="removed", state="new", opened_at=opened(190),
              ack_due=opened(190) + 120, close_due=opened(190) + 1800, breaches=BREACH_ACK),
        # B: P1 in progress, 120 s of its 600 s close budget left (< 25 %).
        alert(2, priority=1, state="in_progress", owner="lee", opened_at=opened(480),
              acked_at=opened(470), ack_due=opened(480) + 30, close_due=opened(480) + 600),
        # C: P1 new, 5 s left to acknowledge (budget 30 s).
        alert(3, priority=1, state="new", opened_at=opened(25), ack_due=opened(25) + 30,
              close_due=opened(25) + 600),
        # D: P2 past close_due by 200 s, engine has not escalated it yet.
        alert(4, priority=2, kind="zone_exit", state="in_progress", owner="kim",
              opened_at=opened(2000), acked_at=opened(1990), ack_due=opened(2000) + 120,
              close_due=opened(2000) + 1800),
        # E: P1 dispatched after missing its ack SLA: listed, no clock runs.
        alert(5, priority=1, state="dispatched", owner="lee", opened_at=opened(900),
              acked_at=opened(800), ack_due=opened(900) + 30, close_due=opened(900) + 600,
              breaches=BREACH_ACK, dispatched_to="police", updated_at=opened(700)),
        # F: comfortably in time: not listed.
        alert(6, priority=3, state="in_progress", owner="kim", opened_at=opened(100),
              acked_at=opened(90), ack_due=opened(100) + 300, close_due=opened(100) + 7200),
        # G: resolved, even with breaches: not listed.
        alert(7, priority=1, state="resolved", owner="kim", opened_at=opened(5000),
              resolved_at=opened(100), breaches=BREACH_ACK | BREACH_CLOSE),
        # H: P4 acknowledged with exactly 25 % of 8 h left: at risk.
        alert(8, priority=4, kind="low_battery", state="acknowledged", owner="old",
              opened_at=opened(21600), acked_at=opened(21000), ack_due=opened(21600) + 900,
              close_due=opened(21600) + 28800),
    ]


def test_escalations_in_urgency_order_with_seconds_left() -> None:
    rows = escalations(escalation_shift(), NOW)
    assert [e.id for e in rows] == [4, 1, 5, 3, 2, 8]
    by_id = {e.id: e for e in rows}
    assert by_id[4].reasons == ("close_overdue",) and by_id[4].seconds_left == -200
    assert by_id[1].reasons == ("ack_missed",) and by_id[1].due == "ack"
    assert by_id[1].seconds_left == -70
    assert by_id[5].reasons == ("ack_missed",) and by_id[5].seconds_left is None
    assert by_id[5].due == "" and by_id[5].overdue
    assert by_id[3].reasons == ("ack_at_risk",) and by_id[3].seconds_left == 5
    assert by_id[2].reasons == ("close_at_risk",) and by_id[2].seconds_left == 120
    assert by_id[8].reasons == ("close_at_risk",) and by_id[8].seconds_left == 7200
    assert not by_id[3].overdue and by_id[3].left_at(NOW + 10) == -5


def test_escalations_recounted_later_reorder() -> None:
    rows = escalations(escalation_shift(), NOW + 10)
    # C is now overdue and, as a P1, leads the overdue alerts whose clock runs.
    assert [e.id for e in rows] == [3, 4, 1, 5, 2, 8]
    assert rows[0].reasons == ("ack_overdue",) and rows[0].seconds_left == -5


def test_operator_load_and_who_can_take_work() -> None:
    staff = [StaffLoad(user="kim", roles=["operator"], signed_in_at=T0, open_alerts=2),
             StaffLoad(user="lee", roles=["operator"], signed_in_at=T0 + 60, open_alerts=2),
             StaffLoad(user="han", roles=["supervisor"], signed_in_at=T0, open_alerts=0),
             StaffLoad(user="audit", roles=["auditor"], signed_in_at=T0, open_alerts=0)]
    loads = operator_load(staff, escalation_shift(), NOW)
    assert [(r.user, r.open_alerts, r.escalated, r.signed_in) for r in loads] == [
        ("lee", 2, 2, True), ("kim", 2, 1, True), ("old", 1, 1, False),
        ("audit", 0, 0, True), ("han", 0, 0, True)]
    assert assignable(staff) == ["han", "kim", "lee"]


# ------------------------------------------------------------------ hand-over


def test_handover_rows_are_the_unresolved_alerts_in_queue_order() -> None:
    rows = handover_rows(escalation_shift())
    assert [r.id for r in rows] == [3, 5, 2, 1, 4, 6, 8]  # P, then new first, then oldest
    assert {r.id: r.sla for r in rows}[1] == "ack SLA missed"


def test_handover_csv_round_trips() -> None:
    shift = [*escalation_shift(),
             alert(9, state="on_hold", owner="kim", hold_reason="guardian, on the way",
                   hold_until=NOW + 600, last_note='said "5 min"\nthen hung up',
                   place="도봉구 방학동"),
             alert(10, state="in_progress", owner="lee", last_note="=HYPERLINK(\"x\")")]
    rows = handover_rows(shift)
    parsed = list(csv.reader(io.StringIO(handover_csv(rows))))
    assert tuple(parsed[0]) == HANDOVER_COLUMNS
    assert len(parsed) == len(rows) + 1
    got = {int(r[0]): dict(zip(HANDOVER_COLUMNS, r, strict=True)) for r in parsed[1:]}
    assert sorted(got) == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    held = got[9]
    assert held["state"] == "on_hold" and held["owner"] == "kim"
    assert held["hold_reason"] == "guardian, on the way"
    assert held["hold_until"] == datetime.fromtimestamp(NOW + 600).strftime("%Y-%m-%d %H:%M")
    assert held["last_note"] == 'said "5 min"\nthen hung up'
    assert held["place"] == "도봉구 방학동" and held["child"] == "C-0009"
    assert held["priority"] == "P1" and held["kind"] == "sos"
    assert got[10]["last_note"] == "'=HYPERLINK(\"x\")"  # a formula stays text


def test_handover_html_escapes_every_value() -> None:
    hostile = alert(1, state="in_progress", owner="<b>kim</b>",
                    last_note="<script>alert('x')</script> & more", place="성동구 \"A\"")
    page = handover_html(handover_rows([hostile]), T0, NOW, who="han & <co>")
    assert "<script>" not in page and "<b>kim" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "&lt;b&gt;kim&lt;/b&gt;" in page and "성동구 &quot;A&quot;" in page
    assert "han &amp; &lt;co&gt;" in page
    assert page.startswith("<!DOCTYPE html>") and "<meta charset=\"utf-8\">" in page
    assert datetime.fromtimestamp(T0).strftime("%Y-%m-%d %H:%M") in page
    assert page.count("<tr") == 2  # header and the one alert
    empty = handover_html([], T0, NOW, who="han")
    assert "No open alerts." in empty and "<table" not in empty
