"""Scoring trainees (``models.scoring``) on alerts and histories built by hand."""

from __future__ import annotations

import pytest

from models.messages import AlertView, HistoryEntry
from models.scenario import Scenario, load_scenario
from models.scoring import (
    Injected,
    Row,
    TraineeScore,
    match,
    people,
    score,
    score_all,
)

T0 = 1_222_815_600.0  # 2008-10-01 08:00 KST: the session's clock at its start
SOS_DEV, EXIT_DEV, PLAY_DEV, OTHER_DEV = "8800000121", "8600000013", "8800001504", "8800000999"
MANDATORY = ["cctv", "call_device", "call_guardian", "decide_dispatch"]

SCENARIO = """
title = "Scoring test"
site = "Sindorim Elementary"
duration_s = 1200

[population]
children = 400
seed = 1
zones = ["Sindorim Elementary"]

[[incident]]
id = "sos1"
at_s = 100
kind = "sos"
child = 120

[[incident]]
id = "cam"
at_s = 110
kind = "camera_offline"
camera = 10

[[incident]]
id = "again"
at_s = 140
kind = "second_sos"
of = "sos1"

[[incident]]
id = "exit"
at_s = 200
kind = "leave_zone"
child = 12

[[incident]]
id = "play"
at_s = 500
kind = "sos"
child = 303

[[expect]]
incident = "sos1"
ack_within_s = 30
cameras_within_s = 60
steps = ["cctv", "call_device", "call_guardian", "decide_dispatch"]
outcome = "dispatched"
dispatch_to = "police"
outcome_within_s = 300

[[expect]]
incident = "again"
noted_within_s = 90

[[expect]]
incident = "exit"
ack_within_s = 150
steps = ["check_trail", "call_guardian"]
outcome = "child_safe"
outcome_within_s = 600

[[expect]]
incident = "play"
ack_within_s = 30
outcome = "false_alarm"
outcome_within_s = 420
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    path = tmp_path_factory.mktemp("scenarios") / "scoring.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    return load_scenario(path)


def at(offset: float) -> float:
    return T0 + offset


INJECTED = [
    Injected("sos1", "sos", at(100), SOS_DEV),
    Injected("cam", "camera_offline", at(110), "", camera=10),
    Injected("again", "second_sos", at(140), SOS_DEV),
    Injected("exit", "leave_zone", at(200), EXIT_DEV),
    Injected("play", "sos", at(500), PLAY_DEV),
]


def alert(alert_id: int, kind: str, device: str, opened: float, **kw: object) -> AlertView:
    return AlertView(id=alert_id, kind=kind, priority=1 if kind == "sos" else 2,  # type: ignore[arg-type]
                     state="new", child_token=f"C-{alert_id}", child_slot=alert_id,
                     device_id=device, lat=37.5085, lon=126.8875, place="구로구 신도림동",
                     opened_at=opened, **kw)  # type: ignore[arg-type]


ALERTS = [alert(1, "sos", SOS_DEV, at(100.4)), alert(2, "zone_exit", EXIT_DEV, at(236)),
          alert(3, "sos", PLAY_DEV, at(500.3))]


def line(action: str, actor: str, offset: float, note: str = "", detail: str = ""
         ) -> HistoryEntry:
    return HistoryEntry(action, actor, at(offset), note, detail)


def steps(actor: str, start: float, ids: list[str]) -> list[HistoryEntry]:
    return [line("step", actor, start + n, detail=f"{s} done") for n, s in enumerate(ids)]


def sos1_done_by(who: str) -> list[HistoryEntry]:
    return [line("ack", who, 112), line("cameras", who, 130, detail="9,11"),
            *steps(who, 150, MANDATORY),
            line("repeat", "device", 140.5, detail="trigger 2"),
            line("note", who, 170, note="pressed again: the stranger is still with her"),
            line("dispatch", who, 260, note="stranger", detail="police 112 ref 2008-1001")]


def exit_done_by(who: str) -> list[HistoryEntry]:
    return [line("ack", who, 250), *steps(who, 270, ["check_trail", "call_guardian"]),
            line("resolve", who, 400, note="at her aunt's", detail="child_safe")]


def play_done_by(who: str, close: HistoryEntry | None = None) -> list[HistoryEntry]:
    return [line("ack", who, 515), *steps(who, 530, MANDATORY),
            close or line("resolve", who, 700, note="playing with the button",
                          detail="false_alarm")]


def everything_by(who: str) -> dict[int, list[HistoryEntry]]:
    return {1: sos1_done_by(who), 2: exit_done_by(who), 3: play_done_by(who)}


def rows(s: TraineeScore, incident: str) -> dict[str, Row]:
    return {r.measure: r for r in s.rows if r.incident == incident}


# ------------------------------------------------------------------ matching


def test_each_incident_matches_the_alert_it_raised(scenario: Scenario) -> None:
    assert match(INJECTED, ALERTS, scenario) == {
        "sos1": 1, "cam": None, "again": 1, "exit": 2, "play": 3}


def test_matching_ignores_another_device_and_an_alert_opened_before_the_incident() -> None:
    injected = [Injected("sos1", "sos", at(100), SOS_DEV)]
    decoys = [alert(10, "sos", OTHER_DEV, at(101)),  # another child's SOS, same moment
              alert(11, "sos", SOS_DEV, at(60)),  # this child's, but before the press
              alert(12, "zone_exit", SOS_DEV, at(101))]  # this child, another kind
    assert match(injected, decoys) == {"sos1": None}
    assert match(injected, [*decoys, alert(13, "sos", SOS_DEV, at(103)),
                            alert(14, "sos", SOS_DEV, at(130))]) == {"sos1": 13}
    # a frame stamped a moment early still counts; one from two minutes later does not
    assert match(injected, [alert(15, "sos", SOS_DEV, at(98.5))]) == {"sos1": 15}
    assert match(injected, [alert(16, "sos", SOS_DEV, at(260))]) == {"sos1": None}


def test_a_zone_exit_waits_for_its_dwell_and_an_alert_answers_one_incident() -> None:
    exit_ = Injected("exit", "leave_zone", at(200), EXIT_DEV)
    assert match([exit_], [alert(2, "zone_exit", EXIT_DEV, at(390))]) == {"exit": 2}
    twice = [Injected("a", "sos", at(100), SOS_DEV), Injected("b", "sos", at(101), SOS_DEV)]
    assert match(twice, [alert(1, "sos", SOS_DEV, at(101.5))]) == {"a": 1, "b": None}


def test_a_second_press_without_the_scenario_maps_to_the_last_sos_of_its_device() -> None:
    injected = [Injected("first", "sos", at(10), SOS_DEV),
                Injected("other", "sos", at(20), OTHER_DEV),
                Injected("press", "second_sos", at(50), SOS_DEV)]
    found = match(injected, [alert(1, "sos", SOS_DEV, at(10)),
                             alert(2, "sos", OTHER_DEV, at(20))])
    assert found == {"first": 1, "other": 2, "press": 1}


# ------------------------------------------------------------------ a trainee who does it all


def test_a_trainee_who_does_everything_right_passes_every_row(scenario: Scenario) -> None:
    s = score(scenario, INJECTED, ALERTS, everything_by("kim"), "kim")
    assert all(r.status == "pass" for r in s.rows), [r for r in s.rows if not r.passed]
    assert len(s.rows) == 4 + 1 + 3 + 2  # sos1, again, exit, play
    sos1 = rows(s, "sos1")
    assert (sos1["ack"].seconds, sos1["cameras"].seconds, sos1["outcome"].seconds) == (12, 30, 160)
    assert (sos1["steps"].seconds, sos1["steps"].done, sos1["steps"].required) == (53, 4, 4)
    assert sos1["outcome"].deadline_s == 300 and sos1["outcome"].by == "kim"
    assert rows(s, "again")["noted"].seconds == 30
    assert (rows(s, "exit")["ack"].seconds, rows(s, "exit")["outcome"].seconds) == (50, 200)
    assert rows(s, "play")["outcome"].seconds == 200
    assert [i.status for i in s.incidents] == ["passed"] * 4
    t = s.totals
    assert (t.ack_mean_s, t.ack_worst_s) == (25.7, 50)  # 12, 50, 15
    assert (t.cameras_mean_s, t.cameras_worst_s) == (30, 30)
    assert (t.steps_done, t.steps_required) == (6, 6)
    assert (t.dispatch_mean_s, t.dispatch_worst_s) == (160, 160)
    assert (t.outcomes_correct, t.outcomes_expected) == (3, 3)
    assert t.missed == () and t.worked_by_others == ()
    assert (t.rows_passed, t.rows_scored, t.percent) == (10, 10, 100.0)


def test_scoring_is_deterministic_and_ignores_history_order(scenario: Scenario) -> None:
    shuffled = {k: list(reversed(v)) for k, v in everything_by("kim").items()}
    assert score(scenario, INJECTED, ALERTS, shuffled, "kim") == \
        score(scenario, INJECTED, ALERTS, everything_by("kim"), "kim")


def test_late_answers_fail_with_the_deadline_in_words(scenario: Scenario) -> None:
    hist = everything_by("kim")
    hist[1] = [line("ack", "kim", 145), *[h for h in hist[1] if h.action != "ack"]]
    s = score(scenario, INJECTED, ALERTS, hist, "kim")
    ack = rows(s, "sos1")["ack"]
    assert (ack.status, ack.seconds) == ("fail", 45)
    assert ack.reason == "late: 45 s, the deadline was 30 s"
    assert s.incidents[0].status == "failed"
    assert s.totals.ack_worst_s == 50 and s.totals.percent == pytest.approx(90.0)


# ------------------------------------------------------------------ missing and others' work


def test_a_trainee_who_never_acks_the_zone_exit_misses_it(scenario: Scenario) -> None:
    hist = everything_by("kim")
    del hist[2]  # nobody touched the zone exit's alert
    s = score(scenario, INJECTED, ALERTS, hist, "kim")
    exit_rows = rows(s, "exit")
    assert {r.status for r in exit_rows.values()} == {"missed"}
    assert exit_rows["ack"].reason == "never acknowledged"
    assert exit_rows["ack"].seconds is None and exit_rows["ack"].by == ""
    exit_score = next(i for i in s.incidents if i.incident == "exit")
    assert exit_score.status == "missed" and exit_score.alert_id == 2
    assert exit_score.reason.startswith("not done by anyone: ack, steps, outcome")
    t = s.totals
    assert t.missed == ("exit",)
    assert (t.steps_done, t.steps_required) == (4, 6)
    assert (t.outcomes_correct, t.outcomes_expected) == (2, 3)
    assert (t.rows_passed, t.rows_scored) == (7, 10) and t.percent == 70.0


def test_no_alert_raised_is_missed_and_an_incident_never_injected_is_not_scored(
        scenario: Scenario) -> None:
    injected = [i for i in INJECTED if i.incident != "play"]
    s = score(scenario, injected, ALERTS[:1], {1: sos1_done_by("kim")}, "kim")
    assert {r.status for r in rows(s, "exit").values()} == {"missed"}
    assert rows(s, "exit")["ack"].reason == "no alert was raised for it"
    assert {r.status for r in rows(s, "play").values()} == {"not_run"}
    assert [i.status for i in s.incidents] == ["passed", "passed", "missed", "not_run"]
    assert s.totals.rows_scored == 4 + 1 + 3  # sos1, its note and the missed exit


def test_another_trainees_actions_are_not_credited(scenario: Scenario) -> None:
    hist = {1: sos1_done_by("kim"), 2: exit_done_by("lee"), 3: play_done_by("kim")}
    kim = score(scenario, INJECTED, ALERTS, hist, "kim")
    exit_rows = rows(kim, "exit")
    assert {r.status for r in exit_rows.values()} == {"other"}
    assert exit_rows["ack"].by == "lee" and exit_rows["ack"].reason == "done by lee at 50 s"
    assert exit_rows["steps"].done == 0
    exit_score = next(i for i in kim.incidents if i.incident == "exit")
    assert (exit_score.status, exit_score.worked_by) == ("worked_by", ("lee",))
    assert kim.totals.worked_by_others == ("exit",) and kim.totals.missed == ()
    assert (kim.totals.rows_passed, kim.totals.rows_scored) == (7, 7)  # sos1, again, play
    assert kim.totals.ack_worst_s == 15  # lee's 50 s is not kim's

    lee = score(scenario, INJECTED, ALERTS, hist, "lee")
    assert {r.status for r in rows(lee, "exit").values()} == {"pass"}
    assert lee.totals.worked_by_others == ("again", "play", "sos1")
    assert (lee.totals.rows_scored, lee.totals.percent) == (3, 100.0)
    assert people(hist) == ["kim", "lee"]
    assert [s.trainee for s in score_all(scenario, INJECTED, ALERTS, hist)] == ["kim", "lee"]


def test_a_trainee_who_did_nothing_has_nothing_scored(scenario: Scenario) -> None:
    s = score(scenario, INJECTED, ALERTS, everything_by("kim"), "park")
    assert {i.status for i in s.incidents} == {"worked_by"}
    assert s.totals.percent is None and s.totals.rows_scored == 0


def test_steps_shared_with_someone_else_fail_and_say_who(scenario: Scenario) -> None:
    hist = everything_by("kim")
    hist[1] = [h for h in hist[1] if not (h.action == "step" and "call_guardian" in h.detail)]
    hist[1].append(line("step", "lee", 155, detail="call_guardian done"))
    s = score(scenario, INJECTED, ALERTS, hist, "kim")
    st = rows(s, "sos1")["steps"]
    assert (st.status, st.done, st.required) == ("fail", 3, 4)
    assert st.reason == "3 of 4 by the trainee; by others: call_guardian (lee)"
    assert (s.totals.steps_done, s.totals.steps_required) == (5, 6)
    # lee touched kim's alert, but kim worked it: not "worked by" for kim
    assert s.incidents[0].status == "failed" and s.incidents[0].worked_by == ("lee",)


# ------------------------------------------------------------------ the second press


def test_the_second_press_needs_a_note_after_it(scenario: Scenario) -> None:
    hist = everything_by("kim")
    no_note = [h for h in hist[1] if h.action != "note"]
    s = score(scenario, INJECTED, ALERTS, {**hist, 1: no_note}, "kim")
    noted = rows(s, "again")["noted"]  # the dispatch's note counts, but came at 260 s
    assert (noted.status, noted.alert_id, noted.seconds, noted.action) == ("fail", 1, 120,
                                                                           "dispatch")
    early = [line("ack", "kim", 112, note="child crying"),
             *[h for h in no_note if h.action not in ("ack", "dispatch")]]
    s = score(scenario, INJECTED, ALERTS, {**hist, 1: early}, "kim")
    noted = rows(s, "again")["noted"]
    assert (noted.status, noted.reason) == ("missed", "no note after the second press")
    late = [*early, line("note", "kim", 250, note="second press logged")]
    noted = rows(score(scenario, INJECTED, ALERTS, {**hist, 1: late}, "kim"), "again")["noted"]
    assert (noted.status, noted.seconds) == ("fail", 110)
    assert noted.reason == "late: 110 s, the deadline was 90 s"


# ------------------------------------------------------------------ outcomes


def test_dispatching_a_false_alarm_fails_with_a_reason(scenario: Scenario) -> None:
    hist = everything_by("kim")
    hist[3] = play_done_by("kim", line("dispatch", "kim", 600, note="sent police",
                                       detail="police 112 ref 77"))
    s = score(scenario, INJECTED, ALERTS, hist, "kim")
    out = rows(s, "play")["outcome"]
    assert (out.status, out.seconds, out.correct) == ("fail", 100, False)
    assert out.reason == "dispatched to police, expected resolved as false_alarm at 100 s"
    assert (s.totals.outcomes_correct, s.totals.outcomes_expected) == (2, 3)
    assert s.totals.dispatch_worst_s == 160  # a wrong dispatch is no dispatch time


def test_a_wrong_resolve_or_target_fails_and_a_late_right_one_is_still_correct(
        scenario: Scenario) -> None:
    hist = everything_by("kim")
    hist[3] = play_done_by("kim", line("resolve", "kim", 560, note="ok", detail="child_safe"))
    hist[1] = [*[h for h in hist[1] if h.action != "dispatch"],
               line("dispatch", "kim", 500, note="fire", detail="fire 119 ref 9")]
    s = score(scenario, INJECTED, ALERTS, hist, "kim")
    assert rows(s, "play")["outcome"].reason == \
        "resolved as child_safe, expected false_alarm at 60 s"
    sos_out = rows(s, "sos1")["outcome"]
    assert sos_out.status == "fail" and sos_out.reason.startswith(
        "dispatched to fire, expected police")
    hist = everything_by("kim")
    hist[2] = [*[h for h in hist[2] if h.action != "resolve"],
               line("resolve", "kim", 900, note="home", detail="child_safe")]
    out = rows(score(scenario, INJECTED, ALERTS, hist, "kim"), "exit")["outcome"]
    assert (out.status, out.correct) == ("fail", True)
    assert out.reason == "late: 700 s, the deadline was 600 s"


def test_an_alert_the_engine_cleared_was_resolved_by_nobody(scenario: Scenario) -> None:
    hist = everything_by("kim")
    hist[2] = [line("ack", "kim", 250),
               line("resolve", "engine", 300, note="back in the zone", detail="cleared")]
    out = rows(score(scenario, INJECTED, ALERTS, hist, "kim"), "exit")["outcome"]
    assert out.status == "missed"
    assert out.reason == "never resolved or dispatched; the engine cleared it by itself"
