"""The reveal and disclosure rules, without a store: who sees a child at
once, who must wait for four eyes, and what a disclosure is bound to."""

from __future__ import annotations

import math

import pytest

from models.alerts import KINDS, Refused
from models.messages import MAX_TRAIL_S, AlertView
from models.privacy import (
    EMERGENCY_KINDS,
    PENDING_S,
    check_child_token,
    check_decider,
    check_disclosable,
    check_notice,
    check_reason,
    live_grant,
    may_decide,
    reveal_grant,
    reveal_state,
    trail_window,
)

NOW = 1_790_000_000.0
OPERATOR = frozenset({"operator"})
SUPERVISOR = frozenset({"supervisor", "operator"})


def alert(**kw: object) -> AlertView:
    base: dict[str, object] = dict(id=7, kind="sos", priority=1, state="acknowledged",
                                   child_token="C-1", child_slot=0, device_id="d1",
                                   lat=37.5, lon=127.0, place="성동구 성수동1가",
                                   opened_at=NOW - 60, owner="op1")
    base.update(kw)
    return AlertView(**base)  # type: ignore[arg-type]


def code(exc: pytest.ExceptionInfo[Refused]) -> str:
    return exc.value.code


# ------------------------------------------------------------------- reveals

def test_the_owner_of_an_open_alert_about_the_child_is_granted_at_once() -> None:
    assert reveal_grant("op1", OPERATOR, "C-1", alert(), NOW, 900) == ("granted", NOW + 900)


@pytest.mark.parametrize("state", ["new", "acknowledged", "in_progress", "on_hold",
                                   "dispatched"])
def test_every_unresolved_state_counts_as_open(state: str) -> None:
    assert reveal_grant("op1", OPERATOR, "C-1", alert(state=state), NOW, 60)[0] == "granted"


@pytest.mark.parametrize("who, roles, the_alert", [
    ("op1", OPERATOR, None),  # no alert: a supervisor decides
    ("op2", OPERATOR, alert()),  # someone else's alert
    ("op1", OPERATOR, alert(owner="")),  # nobody's yet: take it first
    ("op1", OPERATOR, alert(state="resolved")),  # the incident is over
    ("sup1", SUPERVISOR, alert()),  # a supervisor gets no shortcut on op1's alert
])
def test_anything_else_waits_for_a_supervisor(who: str, roles: frozenset[str],
                                              the_alert: AlertView | None) -> None:
    assert reveal_grant(who, roles, "C-1", the_alert, NOW, 900) == ("pending", 0.0)


def test_a_supervisor_who_owns_the_alert_is_granted_like_anyone() -> None:
    assert reveal_grant("sup1", SUPERVISOR, "C-1", alert(owner="sup1"), NOW, 900)[0] == \
        "granted"


def test_an_alert_about_another_child_is_refused() -> None:
    with pytest.raises(Refused) as exc:
        reveal_grant("op1", OPERATOR, "C-2", alert(), NOW, 900)
    assert code(exc) == "bad_value" and "not about child C-2" in str(exc.value)


@pytest.mark.parametrize("reveal_s", [0.0, -1.0, math.nan, math.inf])
def test_a_reveal_time_that_is_not_positive_is_a_configuration_error(reveal_s: float) -> None:
    with pytest.raises(ValueError):
        reveal_grant("op1", OPERATOR, "C-1", alert(), NOW, reveal_s)


def test_nobody_decides_their_own_request() -> None:
    assert may_decide("sup1", "op1")
    assert not may_decide("sup1", "sup1")
    assert not may_decide("", "op1")


def test_check_decider_names_the_rule() -> None:
    check_decider("sup1", SUPERVISOR, "op1", "pending", "reveal 3")
    with pytest.raises(Refused) as exc:
        check_decider("sup1", SUPERVISOR, "sup1", "pending", "reveal 3")
    assert code(exc) == "four_eyes"
    with pytest.raises(Refused) as exc:
        check_decider("op2", OPERATOR, "op1", "pending", "reveal 3")
    assert code(exc) == "forbidden"
    with pytest.raises(Refused) as exc:
        check_decider("sup1", SUPERVISOR, "op1", "granted", "reveal 3")
    assert code(exc) == "illegal" and "already decided" in str(exc.value)


def test_a_grant_past_its_time_reads_as_expired() -> None:
    assert reveal_state("granted", NOW + 1, NOW) == "granted"
    assert reveal_state("granted", NOW, NOW) == "expired"
    assert reveal_state("pending", 0.0, NOW) == "pending"
    assert reveal_state("refused", 0.0, NOW) == "refused"
    # a request nobody decided lapses: approving it later would grant a stale need
    assert reveal_state("pending", 0.0, NOW, requested_at=NOW - PENDING_S + 1) == "pending"
    assert reveal_state("pending", 0.0, NOW, requested_at=NOW - PENDING_S) == "expired"
    with pytest.raises(Refused, match="already decided"):
        check_decider("sup2", frozenset({"supervisor"}), "op1",
                      reveal_state("pending", 0.0, NOW, requested_at=NOW - 2 * PENDING_S),
                      "reveal 1")
    with pytest.raises(ValueError):
        reveal_state("bogus", 0.0, NOW)
    assert live_grant("granted", NOW + 1, NOW)
    assert not live_grant("granted", NOW, NOW)
    assert not live_grant("pending", NOW + 1, NOW)


# ------------------------------------------------------------------- text

@pytest.mark.parametrize("reason", ["", "   ", "abcd", "x" * 201, "two\nlines"])
def test_a_reason_is_a_real_sentence(reason: str) -> None:
    with pytest.raises(Refused) as exc:
        check_reason(reason)
    assert code(exc) == "bad_value"


def test_a_reason_is_kept_stripped_at_the_bounds() -> None:
    assert check_reason("  abcde  ") == "abcde"
    assert check_reason("가" * 200) == "가" * 200


@pytest.mark.parametrize("notice", ["", "    ", "tel", "x" * 301])
def test_an_approval_needs_a_guardian_notice(notice: str) -> None:
    with pytest.raises(Refused) as exc:
        check_notice(notice)
    assert code(exc) == "bad_value"
    assert check_notice("called the mother at 14:05") == "called the mother at 14:05"
    assert len(check_notice("y" * 300)) == 300


@pytest.mark.parametrize("token", ["", "x" * 33, "C-1\x00"])
def test_a_child_token_is_short_and_printable(token: str) -> None:
    with pytest.raises(Refused):
        check_child_token(token)
    assert check_child_token("C-9D396A5") == "C-9D396A5"


def test_the_trail_window_is_bounded() -> None:
    assert trail_window(0) == 0.0
    assert trail_window(-5) == 0.0
    assert trail_window(600) == 600.0
    assert trail_window(1e12) == MAX_TRAIL_S
    assert trail_window(math.inf) == MAX_TRAIL_S
    with pytest.raises(Refused):
        trail_window(math.nan)


# ------------------------------------------------------------------- disclosure

def test_emergency_kinds_are_known_alert_kinds_without_low_battery() -> None:
    assert EMERGENCY_KINDS.issubset(KINDS)
    assert {"sos", "zone_exit"} <= EMERGENCY_KINDS
    assert "low_battery" not in EMERGENCY_KINDS


@pytest.mark.parametrize("kind", sorted(EMERGENCY_KINDS))
def test_an_unresolved_emergency_may_be_disclosed(kind: str) -> None:
    check_disclosable(alert(kind=kind))


def test_a_routine_or_closed_case_is_not_disclosed() -> None:
    with pytest.raises(Refused) as exc:
        check_disclosable(alert(kind="low_battery"))
    assert code(exc) == "illegal" and "only for emergencies" in str(exc.value)
    with pytest.raises(Refused) as exc:
        check_disclosable(alert(state="resolved"))
    assert code(exc) == "illegal" and "resolved" in str(exc.value)
