"""Training scenario files (``models.scenario``) and the shipped ones."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from models.procedures import Procedures
from models.scenario import (
    INCIDENT_KINDS,
    RAISES,
    SCENARIO_DIR,
    Expect,
    Population,
    Recording,
    ScenarioError,
    demo_zone_names,
    load_scenario,
    load_scenarios,
)

SHIPPED = ("after-school-rush", "park-zone-exit", "school-morning-sos")

HEAD = """
title = "Test"
site = "Sindorim Elementary"
duration_s = 900

[population]
children = 400
seed = 1
zones = ["Sindorim Elementary"]
"""

SOS = """
[[incident]]
id = "sos1"
at_s = 100
kind = "sos"
child = 7
"""

EXPECT_ACK = """
[[expect]]
incident = "sos1"
ack_within_s = 30
"""


def write(tmp_path: Path, text: str, name: str = "test.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path.name}: ")
    return info.value.problems


# ------------------------------------------------------------------ the shipped files


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_scenario_loads(name: str) -> None:
    scenario = load_scenario(SCENARIO_DIR / f"{name}.toml")
    assert scenario.id == name
    assert 600 <= scenario.duration_s <= 1200  # 10 to 20 minutes
    assert isinstance(scenario.base, Population)
    assert scenario.site in demo_zone_names()
    assert scenario.site in scenario.base.zones
    assert scenario.title and scenario.description
    assert all(scenario.expect_for(e.incident) is e for e in scenario.expects)


def test_load_scenarios_finds_the_three_shipped_files_by_name() -> None:
    assert [s.id for s in load_scenarios()] == list(SHIPPED)


def test_the_school_morning_scenario_says_what_the_issue_asks() -> None:
    s = load_scenario(SCENARIO_DIR / "school-morning-sos.toml")
    kinds = {i.kind: i for i in s.incidents}
    sos, again, camera = kinds["sos"], kinds["second_sos"], kinds["camera_offline"]
    assert again.of == sos.id and again.child == sos.child
    assert again.at_s - sos.at_s == 40
    assert camera.camera is not None and camera.child is None
    expect = s.expect_for(sos.id)
    assert expect is not None
    assert (expect.ack_within_s, expect.cameras_within_s) == (30, 60)
    assert list(expect.steps) == Procedures.load().missing_mandatory("sos", [])
    assert (expect.outcome, expect.dispatch_to, expect.outcome_within_s) == (
        "dispatched", "police", 300)


def test_the_park_and_rush_scenarios_have_their_incidents() -> None:
    park = load_scenario(SCENARIO_DIR / "park-zone-exit.toml")
    assert isinstance(park.base, Population) and park.base.children == 1800
    assert sorted(i.kind for i in park.incidents) == ["battery_dies", "leave_zone", "sos"]
    sos = next(i for i in park.incidents if i.kind == "sos")
    assert park.expect_for(sos.id) == Expect(
        sos.id, 30, 60, ("cctv", "call_device", "call_guardian", "decide_dispatch"),
        "false_alarm", None, 420)
    rush = load_scenario(SCENARIO_DIR / "after-school-rush.toml")
    soses = [i for i in rush.incidents if i.kind == "sos"]
    assert len(soses) == 2 and soses[0].child != soses[1].child
    assert abs(soses[0].at_s - soses[1].at_s) <= 60
    assert {"leave_zone", "battery_dies"} <= {i.kind for i in rush.incidents}


def test_every_incident_kind_says_what_it_raises() -> None:
    assert set(RAISES) == set(INCIDENT_KINDS)
    assert RAISES["second_sos"] == "sos" and RAISES["camera_offline"] is None
    assert RAISES["leave_zone"] == "zone_exit" and RAISES["battery_dies"] == "low_battery"


# ------------------------------------------------------------------ a good file


def test_a_minimal_file_loads_with_every_demo_zone_by_default(tmp_path: Path) -> None:
    text = HEAD.replace('zones = ["Sindorim Elementary"]\n', "") + SOS + EXPECT_ACK
    s = load_scenario(write(tmp_path, text, "minimal.toml"))
    assert s.id == "minimal"
    assert isinstance(s.base, Population) and s.base.zones == demo_zone_names()
    assert s.incidents[0].raises == "sos" and s.incidents[0].at_s == 100.0
    assert s.expects == (Expect("sos1", ack_within_s=30.0),)


def test_a_recording_base_takes_iso_times_and_device_ids(tmp_path: Path) -> None:
    text = """
title = "Replay"
site = "Seoul Forest Park"
duration_s = 600
[recording]
from = 2008-10-01T08:00:00+09:00
to = "2008-10-01T08:15:00+09:00"
[[incident]]
id = "sos1"
at_s = 10
kind = "sos"
child = "8812345678"
""" + EXPECT_ACK
    s = load_scenario(write(tmp_path, text))
    assert isinstance(s.base, Recording)
    assert s.base.length_s == 900
    assert s.base.start.utcoffset() == timedelta(hours=9)
    assert s.incidents[0].child == "8812345678"


# ------------------------------------------------------------------ faults


def test_a_file_with_many_faults_names_each_one(tmp_path: Path) -> None:
    text = """
title = "Broken"
site = "Sindorim Elementary"
duration_s = 900
[population]
children = 400
seed = 1
zones = ["Sindorim Elementary"]

[[incident]]
id = "sos1"
at_s = 100
kind = "sos"
child = 7

[[incident]]
id = "late"
at_s = 1200
kind = "sos"
child = 8

[[incident]]
id = "nobody"
at_s = 50
kind = "sos"
child = 400

[[incident]]
id = "what"
at_s = 60
kind = "fire"
child = 3

[[incident]]
id = "sos1"
at_s = 70
kind = "battery_dies"
child = 2

[[incident]]
id = "cam"
at_s = 80
kind = "camera_offline"
child = 4

[[expect]]
incident = "sos1"
ack_within_s = -5
outcome = "resolved"

[[expect]]
incident = "cam"
ack_within_s = 30

[[expect]]
incident = "ghost"
ack_within_s = 30

[[expect]]
incident = "sos1"
dispatch_to = "army"
"""
    found = problems(write(tmp_path, text, "broken.toml"))
    expected = [
        "incident 2 (late): at_s 1200 is past duration_s 900",
        "incident 3 (nobody): child must be an index into the population, 0 to 399, not 400",
        "incident 4 (what): kind 'fire' is not one of",
        "incident 5 (sos1): id 'sos1' is used by an earlier incident",
        "incident 6 (cam): child does not apply to camera_offline",
        "incident 6 (cam): camera is missing",
        "expect 1 (sos1): ack_within_s must be a number of seconds, more than 0, not -5",
        "expect 1 (sos1): outcome 'resolved' is not one of dispatched, child_safe",
        "expect 2 (cam): incident 'cam' names no (valid) incident",
        "expect 3 (ghost): incident 'ghost' names no (valid) incident",
        "expect 4 (sos1): dispatch_to 'army' is not one of police, fire",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in found), (line, found)
    assert len(found) == len(expected), found


def test_an_expect_on_a_camera_going_offline_is_an_error(tmp_path: Path) -> None:
    text = HEAD + SOS + """
[[incident]]
id = "cam"
at_s = 80
kind = "camera_offline"
camera = 10
""" + EXPECT_ACK + """
[[expect]]
incident = "cam"
cameras_within_s = 60
"""
    assert problems(write(tmp_path, text)) == [
        "expect 2 (cam): cam is a camera_offline incident, which raises no alert: nothing "
        "can be expected of it"]


@pytest.mark.parametrize(("where", "line"), [
    ("top", 'titel = "typo"\n'),
    ("population", "childs = 5\n"),
    ("incident", "severity = 1\n"),
    ("expect", "ack_whithin_s = 30\n"),
])
def test_an_unknown_key_is_an_error(tmp_path: Path, where: str, line: str) -> None:
    text = {"top": line + HEAD + SOS + EXPECT_ACK,
            "population": HEAD + line + SOS + EXPECT_ACK,
            "incident": HEAD + SOS + line + EXPECT_ACK,
            "expect": HEAD + SOS + EXPECT_ACK + line}[where]
    found = problems(write(tmp_path, text))
    key = line.split(" ")[0]
    assert len(found) == 1 and f"unknown key {key!r}" in found[0], found
    prefix = {"top": "unknown", "population": "[population]: ", "incident": "incident 1 (sos1): ",
              "expect": "expect 1 (sos1): "}[where]
    assert found[0].startswith(prefix)


def test_the_id_comes_from_the_file_name(tmp_path: Path) -> None:
    found = problems(write(tmp_path, 'id = "other"\n' + HEAD + SOS + EXPECT_ACK))
    assert len(found) == 1
    assert found[0].startswith("unknown key 'id' (the id is the file name); known: title, ")


def second(of: str, extra: str = "", at_s: int = 140) -> str:
    return f"""
[[incident]]
id = "again"
at_s = {at_s}
kind = "second_sos"
of = "{of}"
{extra}"""


@pytest.mark.parametrize(("incident", "message"), [
    (second("nope"), "incident 2 (again): of 'nope' names no incident"),
    ('[[incident]]\nid = "exit"\nat_s = 20\nkind = "leave_zone"\nchild = 3\n' + second("exit"),
     "incident 3 (again): of 'exit' is a leave_zone incident; a second press needs an sos"),
    (second("sos1", "child = 8"), "incident 2 (again): child 8 is not sos1's child 7"),
    (second("sos1", at_s=90), "incident 2 (again): at_s 90 is not after sos1's at_s 100"),
])
def test_a_second_press_must_follow_an_sos_of_the_same_child(
        tmp_path: Path, incident: str, message: str) -> None:
    found = problems(write(tmp_path, HEAD + SOS + incident + EXPECT_ACK))
    assert len(found) == 1 and found[0].startswith(message), found


def test_a_second_press_takes_its_sos_child_and_expects_only_a_note(tmp_path: Path) -> None:
    ok = load_scenario(write(tmp_path, HEAD + SOS + second("sos1", "child = 7") + EXPECT_ACK
                             + '[[expect]]\nincident = "again"\nnoted_within_s = 60\n'))
    assert ok.incident("again").child == 7
    assert ok.expect_for("again") == Expect("again", noted_within_s=60.0)
    found = problems(write(tmp_path, HEAD + SOS + second("sos1") + EXPECT_ACK
                           + '[[expect]]\nincident = "again"\nack_within_s = 10\n'))
    assert len(found) == 1 and "belong on the expect of sos1" in found[0], found
    found = problems(write(tmp_path, HEAD + SOS + EXPECT_ACK.replace(
        "ack_within_s", "noted_within_s")))
    assert found == ["expect 1 (sos1): noted_within_s applies only to a second_sos, not sos"]


def test_steps_must_be_in_the_procedure_of_the_alert_raised(tmp_path: Path) -> None:
    text = HEAD + SOS + """
[[incident]]
id = "exit"
at_s = 200
kind = "leave_zone"
child = 3

[[expect]]
incident = "sos1"
steps = ["cctv", "call_police"]

[[expect]]
incident = "exit"
steps = ["check_trail", "call_device"]
"""
    found = problems(write(tmp_path, text))
    assert found == [
        "expect 1 (sos1): steps 'call_police' are not in the sos procedure (cctv, call_device, "
        "call_guardian, decide_dispatch, log_outcome)",
        "expect 2 (exit): steps 'call_device' are not in the zone_exit procedure (check_trail, "
        "cctv, call_guardian)",
    ]


@pytest.mark.parametrize(("times", "message"), [
    ('from = "yesterday morning"\nto = 2008-10-01T09:00:00+09:00',
     "[recording]: from 'yesterday morning' is not an ISO-8601 time"),
    ("from = 2008-10-01T08:00:00\nto = 2008-10-01T09:00:00+09:00",
     "[recording]: from 2008-10-01T08:00:00 has no UTC offset (add e.g. +09:00)"),
    ('from = "2008-10-01T08:00:00"\nto = 2008-10-01T09:00:00+09:00',
     "[recording]: from 2008-10-01T08:00:00 has no UTC offset"),
    ("from = 2008-10-01\nto = 2008-10-01T09:00:00+09:00",
     "[recording]: from must be a date and time with its offset, not a date alone"),
    ("from = 2008-10-01T09:00:00+09:00\nto = 2008-10-01T08:00:00+09:00",
     "[recording]: to 2008-10-01T08:00:00+09:00 is not after from"),
    ("from = 2008-10-01T08:00:00+09:00\nto = 2008-10-01T08:05:00+09:00",
     "[recording]: the recording lasts 300 s, shorter than duration_s 900"),
])
def test_bad_recording_times_are_named(tmp_path: Path, times: str, message: str) -> None:
    text = ('title = "Replay"\nsite = "Seoul Forest Park"\nduration_s = 900\n'
            f"[recording]\n{times}\n" + SOS.replace("child = 7", 'child = "881"') + EXPECT_ACK)
    found = problems(write(tmp_path, text))
    assert len(found) == 1 and found[0].startswith(message), found


def test_a_recording_child_is_a_device_id_and_a_population_child_an_index(
        tmp_path: Path) -> None:
    rec = ('title = "R"\nsite = "X"\nduration_s = 900\n[recording]\n'
           "from = 2008-10-01T08:00:00+09:00\nto = 2008-10-01T09:00:00+09:00\n")
    found = problems(write(tmp_path, rec + SOS + EXPECT_ACK))
    assert found == ["incident 1 (sos1): child must be a device id (a string) on a recording, "
                     "not 7", "expect 1 (sos1): incident 'sos1' names no (valid) incident"]
    found = problems(write(tmp_path, HEAD + SOS.replace("child = 7", 'child = "881"')
                           + EXPECT_ACK))
    assert found[0].startswith("incident 1 (sos1): child must be an index into the population")


def test_the_base_and_the_site_are_checked(tmp_path: Path) -> None:
    no_base = 'title = "T"\nsite = "Sindorim Elementary"\nduration_s = 900\n'
    assert problems(write(tmp_path, no_base + SOS + EXPECT_ACK))[0].startswith(
        "give exactly one base")
    found = problems(write(tmp_path, HEAD.replace('"Sindorim Elementary"]', '"Gangnam"]')
                           + SOS + EXPECT_ACK))
    assert found[0].startswith("[population]: zones 'Gangnam' are not demo zones")
    found = problems(write(tmp_path, HEAD.replace("children = 400", "children = 6000")
                           + SOS + EXPECT_ACK))
    assert found[0] == "[population]: children must be a whole number from 1 to 5000, not 6000"
    found = problems(write(tmp_path, HEAD.replace('site = "Sindorim Elementary"',
                                                  'site = "Seoul Forest Park"')
                           + SOS + EXPECT_ACK))
    assert found == ["site 'Seoul Forest Park' is not one of the population's zones "
                     "(Sindorim Elementary)"]


def test_deadlines_must_end_within_the_session(tmp_path: Path) -> None:
    text = HEAD + SOS + '[[expect]]\nincident = "sos1"\noutcome = "false_alarm"\n' \
        "outcome_within_s = 900\n"
    assert problems(write(tmp_path, text)) == [
        "expect 1 (sos1): outcome_within_s 900 ends past the session (sos1 at_s 100 + 900 > "
        "duration_s 900)"]


def test_an_unreadable_file_names_itself(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "title = [unclosed\n", "bad.toml"))
    assert len(found) == 1 and found[0].startswith("cannot read it:")


def test_load_scenarios_reports_every_bad_file(tmp_path: Path) -> None:
    write(tmp_path, HEAD + SOS + EXPECT_ACK, "good.toml")
    write(tmp_path, HEAD + SOS, "no-expect.toml")
    write(tmp_path, "duration_s = 1\n", "worse.toml")
    with pytest.raises(ScenarioError) as info:
        load_scenarios(tmp_path)
    found = info.value.problems
    assert any(p.startswith("no-expect.toml: a scenario needs at least one [[expect]]")
               for p in found)
    assert any(p.startswith("worse.toml: title is missing") for p in found)
    assert not any(p.startswith("good.toml") for p in found)
    assert str(info.value).startswith(f"{tmp_path.name}: {len(found)} problems:")


def test_an_expect_that_asks_nothing_is_an_error(tmp_path: Path) -> None:
    found = problems(write(tmp_path, HEAD + SOS + '[[expect]]\nincident = "sos1"\n'))
    assert found == ["expect 1 (sos1): expects nothing: give ack_within_s, cameras_within_s, "
                     "steps, outcome or noted_within_s"]
