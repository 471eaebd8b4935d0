"""Standard operating procedures (``models.procedures`` and the shipped sop.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.alerts import KINDS
from models.procedures import SOP_FILE, Procedures, Step

SHIPPED = Procedures.load()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sop.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ the shipped file


def test_the_shipped_file_is_the_default() -> None:
    assert SOP_FILE.is_file()
    assert SOP_FILE.parts[-3:] == ("resources", "procedures", "sop.toml")


@pytest.mark.parametrize("kind", KINDS)
def test_every_alert_kind_has_a_mandatory_step(kind: str) -> None:
    steps = SHIPPED.steps(kind)
    assert any(s.mandatory for s in steps), kind
    assert SHIPPED.missing_mandatory(kind, []), kind


def test_the_shipped_file_names_only_alert_kinds() -> None:
    data = tomllib.loads(SOP_FILE.read_text(encoding="utf-8"))
    assert set(data) == set(KINDS)  # a typo'd kind would silently have no checklist


def test_the_shipped_steps_are_well_formed() -> None:
    for kind in KINDS:
        steps = SHIPPED.steps(kind)
        ids = [s.id for s in steps]
        assert len(ids) == len(set(ids)), kind
        for s in steps:
            assert isinstance(s, Step)
            assert s.id and s.id == s.id.strip() and " " not in s.id
            assert s.text.strip()
            assert isinstance(s.mandatory, bool)


def test_the_shipped_sos_checklist() -> None:
    assert [s.id for s in SHIPPED.steps("sos")] == [
        "cctv", "call_device", "call_guardian", "decide_dispatch", "log_outcome"]
    assert SHIPPED.missing_mandatory("sos", []) == [
        "cctv", "call_device", "call_guardian", "decide_dispatch"]
    assert SHIPPED.step("sos", "log_outcome") == Step(
        "log_outcome", "Write what happened in the note", False)
    assert SHIPPED.missing_mandatory("low_battery", []) == ["notify_guardian"]
    assert SHIPPED.missing_mandatory("removed", []) == ["call_guardian"]
    assert SHIPPED.missing_mandatory("zone_exit", []) == ["check_trail", "call_guardian"]


# ------------------------------------------------------------------ missing_mandatory


def test_missing_mandatory_ignores_optional_unknown_and_order() -> None:
    done = ["log_outcome", "bogus", "call_guardian", "cctv"]
    assert SHIPPED.missing_mandatory("sos", done) == ["call_device", "decide_dispatch"]
    all_done = ["decide_dispatch", "call_guardian", "call_device", "cctv"]
    assert SHIPPED.missing_mandatory("sos", all_done) == []
    assert SHIPPED.missing_mandatory("sos", [*all_done, *all_done]) == []


def test_unknown_kind_has_no_steps() -> None:
    assert SHIPPED.steps("meteor") == []
    assert SHIPPED.step("meteor", "cctv") is None
    assert SHIPPED.missing_mandatory("meteor", []) == []


def test_step_lookup_is_per_kind() -> None:
    assert SHIPPED.step("fall", "cctv") == Step("cctv", "Look at the nearest cameras", True)
    assert SHIPPED.step("low_battery", "cctv") is None
    assert SHIPPED.step("sos", "CCTV") is None


def test_steps_returns_a_copy() -> None:
    steps = SHIPPED.steps("sos")
    steps.clear()
    assert len(SHIPPED.steps("sos")) == 5


@given(kind=st.sampled_from(KINDS), data=st.data())
@settings(max_examples=200, deadline=None)
def test_missing_mandatory_is_mandatory_minus_done(kind: str, data: st.DataObject) -> None:
    ids = [s.id for s in SHIPPED.steps(kind)]
    done = data.draw(st.lists(st.sampled_from([*ids, "bogus", "cctv"])))
    missing = SHIPPED.missing_mandatory(kind, done)
    mandatory = [s.id for s in SHIPPED.steps(kind) if s.mandatory]
    assert missing == [i for i in mandatory if i not in done]  # in checklist order
    assert not set(missing) & set(done)


# ------------------------------------------------------------------ loading other files


def test_load_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
[sos]
steps = [
  { id = "a", text = "first", mandatory = true },
  { id = "b", text = "second" },
]
[fall]
steps = []
""")
    procs = Procedures.load(path)
    assert procs.steps("sos") == [Step("a", "first", True), Step("b", "second", False)]
    assert procs.steps("fall") == []
    assert procs.missing_mandatory("sos", []) == ["a"]
    assert procs.missing_mandatory("fall", []) == []


@pytest.mark.parametrize("bad", [
    '{ id = 3, text = "numeric id" }', '{ id = "a" }',
    '{ id = "a", text = "t", mandatory = "false" }'])
def test_a_malformed_step_is_an_error_naming_the_kind(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, f"[sos]\nsteps = [ {bad} ]\n")
    with pytest.raises(ValueError, match="sos step"):
        Procedures.load(path)


def test_a_duplicate_step_id_is_an_error_naming_the_file_kind_and_step(
        tmp_path: Path) -> None:
    path = write(tmp_path, """
[sos]
steps = [ { id = "cctv", text = "one", mandatory = true } ]
[zone_exit]
steps = [
  { id = "cctv", text = "cameras", mandatory = true },
  { id = "call", text = "call" },
  { id = "cctv", text = "cameras again" },
]
""")
    with pytest.raises(ValueError) as info:
        Procedures.load(path)
    message = str(info.value)
    assert "sop.toml" in message and "zone_exit" in message and "'cctv'" in message
    assert "twice" in message


def test_the_same_step_id_in_two_kinds_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, """
[sos]
steps = [ { id = "cctv", text = "a", mandatory = true } ]
[fall]
steps = [ { id = "cctv", text = "b", mandatory = false } ]
""")
    procs = Procedures.load(path)
    assert procs.step("sos", "cctv") == Step("cctv", "a", True)
    assert procs.step("fall", "cctv") == Step("cctv", "b", False)


def test_invalid_toml_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        Procedures.load(write(tmp_path, "[sos\nsteps = ["))
