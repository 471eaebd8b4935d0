"""Roles, permissions and sign-in rules (``models.accounts``)."""

from __future__ import annotations

import re
import string

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.accounts import (
    MIN_PASSWORD,
    PERMISSIONS,
    ROLES,
    check_password,
    check_user_name,
    may,
    parse_roles,
)
from models.alerts import Actor, Policy, Refused, transition
from models.messages import (
    AckAlert,
    AddNote,
    AlertView,
    AssignAlert,
    DispatchAlert,
    HoldAlert,
    MarkStep,
    ReopenAlert,
    ResolveAlert,
    ResumeAlert,
    TakeAlert,
)

ALERT_COMMANDS = ("cmd.ack", "cmd.take", "cmd.assign", "cmd.hold", "cmd.resume",
                  "cmd.dispatch", "cmd.resolve", "cmd.reopen", "cmd.step", "cmd.note",
                  "cmd.evidence")
CAMERA_ADMIN = {"req.cameras", "cmd.camera", "cmd.import_cameras", "cmd.cameras"}
ZONE_ENROLMENT_ADMIN = {"cmd.save_zone", "cmd.remove_zone", "cmd.import_zones",
                        "req.export_zones", "req.enrolled", "cmd.enrol", "cmd.unenrol",
                        "cmd.add_device", "cmd.remove_device", "cmd.import_roster"}

# What each role may send, written out from DESIGN.md's role table.
# Reveals, the revealed child and disclosures for whoever works alerts; the
# decisions are a supervisor's (four eyes); the usage log an auditor's.
PRIVACY_WORK = {"cmd.reveal", "req.reveals", "req.child", "cmd.disclose", "req.disclosures"}
EXPECTED: dict[str, set[str]] = {
    "operator": set(ALERT_COMMANDS) - {"cmd.assign", "cmd.reopen"}
    | {"req.alert", "req.alerts"} | PRIVACY_WORK | {"req.child_card", "cmd.viewed"},
    "supervisor": set(ALERT_COMMANDS) | {"req.alert", "req.alerts", "req.shift"}
    | PRIVACY_WORK | {"cmd.decide_reveal", "cmd.decide_disclosure", "req.child_card",
                      "cmd.viewed"},
    "auditor": {"req.alert", "req.alerts", "req.shift", "req.disclosures", "req.usage"},
    "admin": CAMERA_ADMIN | ZONE_ENROLMENT_ADMIN,
    "trainer": {"cmd.replay"},  # a training session's controls, nothing live
}
# On a training installation a trainer also reads the session's alerts.
TRAINING_EXTRA = {"trainer": {"req.alert", "req.alerts", "req.shift"}}


# ------------------------------------------------------------------ parse_roles


@pytest.mark.parametrize(("given_", "roles"), [
    (["operator"], {"operator"}),
    (("operator", "supervisor"), {"operator", "supervisor"}),
    ("operator", {"operator"}),
    (" operator , supervisor ", {"operator", "supervisor"}),
    ("admin,admin,auditor", {"admin", "auditor"}),
    ("trainer,", {"trainer"}),
    (["", " auditor "], {"auditor"}),
    (",".join(ROLES), set(ROLES)),
])
def test_parse_roles(given_: list[str] | str, roles: set[str]) -> None:
    parsed = parse_roles(given_)
    assert parsed == frozenset(roles)
    assert isinstance(parsed, frozenset)


@pytest.mark.parametrize("given_", ["root", "operator,root", ["Operator"], "operators",
                                    ["operator", "god", "boss"]])
def test_parse_roles_unknown_role_names_it_and_lists_the_roles(given_: list[str] | str
                                                               ) -> None:
    with pytest.raises(ValueError) as info:
        parse_roles(given_)
    message = str(info.value)
    assert "unknown role" in message
    assert all(role in message for role in ROLES)
    items = given_.split(",") if isinstance(given_, str) else given_
    for bad in {i.strip() for i in items} - set(ROLES):
        assert bad in message


def test_parse_roles_names_unknown_roles_sorted() -> None:
    with pytest.raises(ValueError, match="unknown role\\(s\\) boss, god;"):
        parse_roles(["god", "operator", "boss"])


@pytest.mark.parametrize("given_", ["", " ", " , ,", [], ["", "  "], ()])
def test_parse_roles_needs_at_least_one(given_: list[str] | str) -> None:
    with pytest.raises(ValueError, match="at least one role"):
        parse_roles(given_)


@given(st.lists(st.sampled_from(ROLES), min_size=1))
@settings(max_examples=200, deadline=None)
def test_parse_roles_round_trips_through_a_comma_string(roles: list[str]) -> None:
    assert parse_roles(",".join(roles)) == parse_roles(roles) == frozenset(roles)


# ------------------------------------------------------------------ user names


@pytest.mark.parametrize("name", ["op1", "ab", "a.b-c_d", "sup.kim", "x" * 32, "a1",
                                  "kim-2024", "z_"])
def test_good_user_names(name: str) -> None:
    assert check_user_name(name) == name


@pytest.mark.parametrize("name", ["", "a", "x" * 33, "Op1", "1op", "_op", ".op", "-op",
                                  "op 1", "op@x", "op1\n", " op1", "öp1", "김철수",
                                  "op/1", "op1 "])
def test_bad_user_names_say_the_rule(name: str) -> None:
    with pytest.raises(ValueError) as info:
        check_user_name(name)
    message = str(info.value)
    assert repr(name) in message
    assert "2-32 characters" in message and "starting with a letter" in message


def _is_good_name(name: str) -> bool:
    tail = set(string.ascii_lowercase + string.digits + "._-")
    return (2 <= len(name) <= 32 and name[0] in string.ascii_lowercase
            and all(c in tail for c in name[1:]))


@given(st.text(alphabet=string.ascii_letters + string.digits + "._- @\n\tö", max_size=40))
@settings(max_examples=300, deadline=None)
def test_user_name_rule_matches_its_statement(name: str) -> None:
    if _is_good_name(name):
        assert check_user_name(name) == name
    else:
        with pytest.raises(ValueError):
            check_user_name(name)


@given(st.from_regex(re.compile(r"[a-z][a-z0-9_.-]{1,31}"), fullmatch=True))
@settings(max_examples=100, deadline=None)
def test_every_name_of_the_documented_shape_is_accepted(name: str) -> None:
    assert check_user_name(name) == name


# ------------------------------------------------------------------ passwords


def test_password_length_bounds() -> None:
    assert MIN_PASSWORD == 10
    assert check_password("p" * 10) == "p" * 10
    assert check_password("p" * 256) == "p" * 256
    assert check_password("  spaces  ") == "  spaces  "  # kept as typed
    assert check_password("비밀번호는열글자이상") == "비밀번호는열글자이상"
    with pytest.raises(ValueError, match="at least 10 characters"):
        check_password("p" * 9)
    with pytest.raises(ValueError, match="at least 10 characters"):
        check_password("")
    with pytest.raises(ValueError, match="at most 256 characters"):
        check_password("p" * 257)


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_password_rule_is_exactly_its_length(password: str) -> None:
    if 10 <= len(password) <= 256:
        assert check_password(password) == password
    else:
        with pytest.raises(ValueError):
            check_password(password)


# ------------------------------------------------------------------ may()


def test_every_permission_names_known_roles_only() -> None:
    for schema, roles in PERMISSIONS.items():
        assert roles, schema
        assert roles <= set(ROLES), schema


@pytest.mark.parametrize("role", ROLES)
def test_may_per_role_over_every_schema(role: str) -> None:
    allowed = {schema for schema in PERMISSIONS if may(frozenset({role}), schema)}
    assert allowed == EXPECTED[role]
    training = {schema for schema in PERMISSIONS if may(frozenset({role}), schema, True)}
    assert training == EXPECTED[role] | TRAINING_EXTRA.get(role, set())


def test_auditor_is_read_only() -> None:
    for schema in PERMISSIONS:
        if may({"auditor"}, schema):
            assert schema.startswith("req."), schema
    assert not any(may({"auditor"}, s) for s in ALERT_COMMANDS)


def test_admin_has_the_registry_commands_only() -> None:
    assert {s for s in PERMISSIONS if may({"admin"}, s)} == CAMERA_ADMIN | ZONE_ENROLMENT_ADMIN
    assert not may({"admin"}, "req.alerts") and not may({"admin"}, "cmd.ack")


def test_only_a_supervisor_assigns_or_reopens() -> None:
    for schema in ("cmd.assign", "cmd.reopen"):
        assert PERMISSIONS[schema] == {"supervisor"}
        assert not may({"operator"}, schema)


def test_may_with_several_roles_is_the_union() -> None:
    both = frozenset({"auditor", "admin"})
    assert {s for s in PERMISSIONS if may(both, s)} == EXPECTED["auditor"] | EXPECTED["admin"]
    assert may({"operator", "supervisor"}, "cmd.reopen")
    assert may({"operator", "trainer"}, "cmd.ack")


def test_may_refuses_the_unknown() -> None:
    assert not may(frozenset(), "cmd.ack")
    assert not may(set(ROLES), "cmd.launch_missiles")
    assert not may(set(ROLES), "")
    assert not may({"root"}, "cmd.ack")


@given(st.frozensets(st.sampled_from(ROLES)), st.sampled_from(sorted(PERMISSIONS)))
@settings(max_examples=200, deadline=None)
def test_may_is_any_of_the_roles(roles: frozenset[str], schema: str) -> None:
    assert may(roles, schema) == any(may({r}, schema) for r in roles)


# ------------------------------------------------------------------ agreement with alerts


def _alert(state: str) -> AlertView:
    return AlertView(id=1, kind="low_battery", priority=4, state=state, child_token="c",
                     child_slot=0, device_id="d", lat=37.5, lon=127.0, place="성동구",
                     opened_at=1.7e9)


_SAMPLES = [
    (AckAlert, {}, "new"), (TakeAlert, {}, "new"), (AssignAlert, {"user": "op2"}, "new"),
    (HoldAlert, {"reason": "r"}, "in_progress"), (ResumeAlert, {}, "on_hold"),
    (DispatchAlert, {"target": "police", "reference": "R"}, "in_progress"),
    (ResolveAlert, {"outcome": "other", "note": "n"}, "in_progress"),
    (ReopenAlert, {"note": "n"}, "resolved"),
    (MarkStep, {"step": "notify_guardian"}, "in_progress"), (AddNote, {"note": "n"}, "new"),
]


@pytest.mark.parametrize(("cls", "fields", "state"), _SAMPLES,
                         ids=[c.__name__ for c, _, _ in _SAMPLES])
@pytest.mark.parametrize("role", ROLES)
def test_permissions_and_the_alert_rules_agree(cls: type, fields: dict, state: str,
                                               role: str) -> None:
    """A console that hides what ``may`` forbids hides exactly what the engine refuses."""
    schema = cls.__struct_config__.tag
    assert schema in PERMISSIONS
    policy = Policy()
    alert = _alert(state)
    if cls is ResolveAlert:
        alert = msgspec.structs.replace(alert, steps=["notify_guardian"])
    cmd = cls(token="t", alert_id=1, alert_version=1, **fields)
    actor = Actor("op1", frozenset({role}))
    if may({role}, schema):
        new, line = transition(alert, cmd, actor, 1.7e9 + 5, policy, frozenset({"op2"}))
        assert new.version == 2 and line.actor == "op1"
    else:
        with pytest.raises(Refused) as info:
            transition(alert, cmd, actor, 1.7e9 + 5, policy, frozenset({"op2"}))
        assert info.value.code == "forbidden"

