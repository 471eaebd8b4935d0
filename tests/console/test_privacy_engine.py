"""Reveals, disclosures and the usage log through a real engine: CURVE
sockets, sessions, the command table and a SQLite store.

One backend serves the module (each test uses children of its own); the
expiry test starts a second, bus and engine only, with a 3-second reveal.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from db.repositories import RosterEntry
from db.store import open_store
from db.tables import Child, Device, Fix, Guardian, Guardianship
from models.messages import (
    AlertDetail,
    AlertDetailRequest,
    AlertView,
    ChildDetail,
    ChildRequest,
    CommandReply,
    DiscloseRequest,
    DisclosureDecision,
    DisclosureList,
    DisclosureReply,
    DisclosuresRequest,
    RevealDecision,
    RevealList,
    RevealReply,
    RevealRequest,
    RevealsRequest,
    RevealView,
    TakeAlert,
    UsageRequest,
    UsageRows,
    unpack,
)
from models.usage import UsageEntry, UsageFilter
from tests.console.conftest import (
    SEOUL_FOREST,
    Backend,
    make_config,
    running_backend,
    wait_for,
)
from tests.console.test_alert_handling import open_alerts, resolve_fully

SERVICES = ("bus", "engine", "gateway")  # alerts come from devices; nothing needs video
TRAIL_AGO = (1800.0, 600.0, 300.0)  # seconds before the backend started: child 0's history


def _history(s: Session) -> None:
    """Three fixes of the first child within the last hour (its trail)."""
    device = s.scalar(select(Device.id).where(
        Device.child_id == select(Child.id).order_by(Child.id).limit(1).scalar_subquery()))
    now = time.time()
    s.execute(insert(Fix), [dict(device_id=device, t=now - ago, lat=37.54 + i * 1e-4,
                                 lon=127.03, speed=0.0, bearing=0.0, accuracy=5.0, battery=80,
                                 flags=0, reader_id=None) for i, ago in enumerate(TRAIL_AGO)])


@pytest.fixture(scope="module")
def b() -> Iterator[Backend]:
    data_dir = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    try:
        with running_backend(make_config(data_dir, children=20), SERVICES,
                             seed=_history) as backend:
            yield backend
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def children(b: Backend) -> list[RosterEntry]:
    """One roster entry (its first device) per child, in roster order."""
    first: dict[str, RosterEntry] = {}
    for r in b.roster:
        first.setdefault(r.token, r)
    return list(first.values())


@pytest.fixture(scope="module")
def tokens(b: Backend) -> dict[str, str]:
    return {u: b.sign_in(u) for u in ("operator1", "operator2", "supervisor1", "auditor1")}


def refused(reply: object, code: str) -> str:
    assert isinstance(reply, CommandReply) and not reply.ok, reply
    assert reply.code == code, reply
    return reply.error


def revealed(reply: object) -> RevealView:
    assert isinstance(reply, RevealReply), reply
    return reply.reveal


def sos_owned_by(b: Backend, token: str, device: str) -> AlertView:
    """Press SOS on ``device`` and take the alert."""
    b.fix(device, *SEOUL_FOREST, alarm="sos")
    wait_for(lambda: open_alerts(b, "sos", device), 10, "the SOS")
    alert = open_alerts(b, "sos", device)[0]
    reply = b.command(TakeAlert(token=token, alert_id=alert.id, alert_version=alert.version))
    assert isinstance(reply, CommandReply) and reply.ok and reply.alert, reply
    return reply.alert


def usage(b: Backend, auditor: str, **filter_: object) -> list[UsageEntry]:
    reply = b.command(UsageRequest(token=auditor, filter=UsageFilter(**filter_)))  # type: ignore[arg-type]
    assert isinstance(reply, UsageRows), reply
    assert reply.verified and not reply.problem, reply
    return reply.rows


def store_guardians(b: Backend, child_id: int) -> set[tuple[str, str, str]]:
    engine, sessions = open_store(b.config.db_url)
    try:
        with sessions() as s:
            return {(g.name, rel, g.phone) for g, rel in s.execute(
                select(Guardian, Guardianship.relation)
                .join(Guardianship, Guardianship.guardian_id == Guardian.id)
                .where(Guardianship.child_id == child_id))}
    finally:
        engine.dispose()


def child_name(b: Backend, child_id: int) -> str:
    engine, sessions = open_store(b.config.db_url)
    try:
        with sessions() as s:
            name = s.scalar(select(Child.name).where(Child.id == child_id))
            assert name
            return name
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- reveals

def test_a_reveal_needs_a_reason_and_a_known_child(b: Backend, tokens: dict[str, str],
                                                   children: list[RosterEntry]) -> None:
    op = tokens["operator1"]
    child = children[5].token
    for reason in ("", "    ", "why"):
        assert "reason" in refused(b.command(RevealRequest(token=op, child=child,
                                                           reason=reason)), "bad_value")
    refused(b.command(RevealRequest(token=op, child="C-NOBODY", reason="checking a call")),
            "unknown")
    refused(b.command(RevealRequest(token=op, child="x" * 100, reason="checking a call")),
            "bad_value")


def test_the_owner_of_an_open_sos_sees_the_child_at_once_and_it_is_logged(
        b: Backend, tokens: dict[str, str], children: list[RosterEntry]) -> None:
    op, auditor = tokens["operator1"], tokens["auditor1"]
    entry = children[0]
    alert = sos_owned_by(b, op, entry.device_id)
    assert alert.owner == "operator1" and alert.child_token == entry.token
    before = time.time()
    view = revealed(b.command(RevealRequest(token=op, child=entry.token, alert_id=alert.id,
                                            reason="SOS pressed, calling the guardian")))
    assert view.state == "granted" and view.alert_id == alert.id
    assert before + 890 < view.expires_at < time.time() + 910  # reveal_s = 900

    detail = b.command(ChildRequest(token=op, child=entry.token, trail_s=3600))
    assert isinstance(detail, ChildDetail), detail
    assert detail.name == child_name(b, entry.child_id)
    assert {(g.name, g.relation, g.phone) for g in detail.guardians} == \
        store_guardians(b, entry.child_id) != set()
    assert detail.services == ["routine", "location", "emergency"]  # the demo's consent
    assert detail.reveal_id == view.id and detail.expires_at == view.expires_at
    trail_t = unpack("t", detail.trail_t)
    assert len(trail_t) >= len(TRAIL_AGO) and list(trail_t) == sorted(trail_t)
    assert len(unpack("lat", detail.trail_lat)) == len(trail_t)

    rows = usage(b, auditor, subject=entry.token)
    actions = [r.action for r in reversed(rows)]  # oldest first
    assert actions[-3:] == ["reveal", "reveal", "history"]
    grant, shown, history = rows[2], rows[1], rows[0]
    assert (grant.actor, grant.alert_id, grant.purpose) == (
        "operator1", alert.id, "SOS pressed, calling the guardian")
    assert f"reveal {view.id} granted" in grant.detail
    assert "identity shown" in shown.detail and shown.alert_id == alert.id
    assert f"{len(trail_t)} positions" in history.detail
    assert "37.5" not in history.detail  # counts and windows, never positions

    # Somebody else gets nothing from operator1's grant.
    refused(b.command(ChildRequest(token=tokens["operator2"], child=entry.token)),
            "no_reveal")
    # Naming operator1's alert for another child is refused, not queued.
    refused(b.command(RevealRequest(token=op, child=children[1].token, alert_id=alert.id,
                                    reason="SOS pressed, calling the guardian")), "bad_value")


def test_without_an_alert_a_reveal_waits_for_another_supervisor(
        b: Backend, tokens: dict[str, str], children: list[RosterEntry]) -> None:
    op, sup, auditor = tokens["operator1"], tokens["supervisor1"], tokens["auditor1"]
    child, other = children[2].token, children[3].token
    pending = revealed(b.command(RevealRequest(token=op, child=child,
                                               reason="guardian called: child not home")))
    assert pending.state == "pending" and pending.expires_at == 0.0
    # Asking again while it waits adds nothing.
    assert revealed(b.command(RevealRequest(token=op, child=child,
                                            reason="guardian called again"))).id == pending.id
    assert "give a reason first" in refused(
        b.command(ChildRequest(token=op, child=child)), "no_reveal")
    # An operator may not decide at all: the engine's permission table says so.
    refused(b.command(RevealDecision(token=op, reveal_id=pending.id, approve=True)),
            "forbidden")
    # A supervisor never decides their own (they are an operator too).
    own = revealed(b.command(RevealRequest(token=sup, child=other,
                                           reason="checking a school's report")))
    assert own.state == "pending"
    refused(b.command(RevealDecision(token=sup, reveal_id=own.id, approve=True)), "four_eyes")
    queue = b.command(RevealsRequest(token=sup))
    assert isinstance(queue, RevealList)
    assert {pending.id, own.id} <= {r.id for r in queue.reveals}
    assert all(r.state == "pending" for r in queue.reveals)
    mine = b.command(RevealsRequest(token=op))
    assert isinstance(mine, RevealList) and own.id not in {r.id for r in mine.reveals}

    granted = revealed(b.command(RevealDecision(token=sup, reveal_id=pending.id, approve=True,
                                                note="guardian confirmed by phone")))
    assert granted.state == "granted" and granted.decided_by == "supervisor1"
    assert granted.expires_at == pytest.approx(granted.decided_at + 900)
    refused(b.command(RevealDecision(token=sup, reveal_id=pending.id, approve=False)),
            "illegal")
    detail = b.command(ChildRequest(token=op, child=child))
    assert isinstance(detail, ChildDetail) and detail.reveal_id == pending.id
    assert detail.trail_t == b""
    approval = [r for r in usage(b, auditor, subject=child) if "approved" in r.detail]
    assert len(approval) == 1 and approval[0].actor == "operator1"
    assert "approved by supervisor1 for operator1" in approval[0].detail
    assert approval[0].purpose == "guardian called: child not home"

    curious = revealed(b.command(RevealRequest(token=tokens["operator2"], child=other,
                                               reason="curious about this one")))
    no = revealed(b.command(RevealDecision(token=sup, reveal_id=curious.id, approve=False)))
    assert (no.state, no.decided_by) == ("refused", "supervisor1")
    refused(b.command(ChildRequest(token=tokens["operator2"], child=other)), "no_reveal")
    refused(b.command(RevealDecision(token=sup, reveal_id=999_999, approve=True)), "unknown")


# ------------------------------------------------------------------ disclosures

def test_a_disclosure_is_for_an_unresolved_emergency_only(
        b: Backend, tokens: dict[str, str], children: list[RosterEntry]) -> None:
    op = tokens["operator1"]
    low = children[6].device_id
    b.fix(low, *SEOUL_FOREST, batt=9)
    wait_for(lambda: open_alerts(b, "low_battery", low), 10, "the low-battery alert")
    alert = open_alerts(b, "low_battery", low)[0]
    assert "only for emergencies" in refused(b.command(DiscloseRequest(
        token=op, alert_id=alert.id, agency="police", reason="police asked for the child")),
        "illegal")

    closed = sos_owned_by(b, op, children[7].device_id)
    done = resolve_fully(b, op, closed)
    assert done.state == "resolved"
    assert "resolved" in refused(b.command(DiscloseRequest(
        token=op, alert_id=closed.id, agency="police", reason="police asked for the child")),
        "illegal")
    refused(b.command(DiscloseRequest(token=op, alert_id=999_999, agency="fire",
                                      reason="police asked for the child")), "unknown")


def test_a_supervisor_approves_a_disclosure_with_the_guardian_notice(
        b: Backend, tokens: dict[str, str], children: list[RosterEntry]) -> None:
    op, sup, auditor = tokens["operator1"], tokens["supervisor1"], tokens["auditor1"]
    entry = children[8]
    alert = sos_owned_by(b, op, entry.device_id)
    asked = b.command(DiscloseRequest(token=op, alert_id=alert.id, agency="police",
                                      reason="child missing after SOS; police search"))
    assert isinstance(asked, DisclosureReply), asked
    d = asked.disclosure
    assert (d.state, d.child, d.requested_by) == ("pending", entry.token, "operator1")
    assert not [r for r in usage(b, auditor, subject=entry.token) if r.action == "disclosure"]
    refused(b.command(DiscloseRequest(token=op, alert_id=alert.id, agency="police",
                                      reason="child missing after SOS; police search")),
            "illegal")  # one waits already
    refused(b.command(DisclosureDecision(token=op, disclosure_id=d.id, approve=True,
                                         guardian_notice="called the mother")), "forbidden")
    assert "guardian" in refused(b.command(DisclosureDecision(
        token=sup, disclosure_id=d.id, approve=True)), "bad_value")
    queue = b.command(DisclosuresRequest(token=sup))
    assert isinstance(queue, DisclosureList) and d.id in {x.id for x in queue.disclosures}

    before = time.time()
    done = b.command(DisclosureDecision(token=sup, disclosure_id=d.id, approve=True,
                                        guardian_notice="mother told by phone at 14:05"))
    assert isinstance(done, DisclosureReply), done
    v = done.disclosure
    assert (v.state, v.decided_by, v.guardian_notice) == (
        "approved", "supervisor1", "mother told by phone at 14:05")
    assert v.guardian_notified_at >= before
    rows = [r for r in usage(b, auditor, subject=entry.token) if r.action == "disclosure"]
    assert len(rows) == 1
    assert (rows[0].actor, rows[0].alert_id) == ("supervisor1", alert.id)
    assert "to police" in rows[0].detail and "mother told by phone" in rows[0].detail
    history = b.command(AlertDetailRequest(token=op, alert_id=alert.id))
    assert isinstance(history, AlertDetail)
    line = [h for h in history.history if h.action == "disclosure"]
    assert len(line) == 1 and "to police" in line[0].detail
    assert "mother" not in line[0].detail + line[0].note  # the notice stays with the record
    everything = b.command(DisclosuresRequest(token=auditor, pending_only=False))
    assert isinstance(everything, DisclosureList)
    assert [x.state for x in everything.disclosures if x.id == d.id] == ["approved"]

    # Four eyes hold for disclosures too.
    own = b.command(DiscloseRequest(token=sup, alert_id=alert.id, agency="fire",
                                    reason="fire brigade asked for the child's name"))
    assert isinstance(own, DisclosureReply)
    refused(b.command(DisclosureDecision(token=sup, disclosure_id=own.disclosure.id,
                                         approve=True, guardian_notice="father told")),
            "four_eyes")


def test_an_alert_panels_trail_is_logged_and_never_sent_to_an_auditor(
        b: Backend, tokens: dict[str, str], children: list[RosterEntry]) -> None:
    entry = children[0]  # the child with a seeded history
    if not open_alerts(b, "sos", entry.device_id):
        b.fix(entry.device_id, *SEOUL_FOREST, alarm="sos")
        wait_for(lambda: open_alerts(b, "sos", entry.device_id), 10, "the SOS")
    alert = open_alerts(b, "sos", entry.device_id)[0]
    detail = b.command(AlertDetailRequest(token=tokens["operator2"], alert_id=alert.id))
    assert isinstance(detail, AlertDetail) and len(unpack("t", detail.trail_t)) > 0
    assert usage(b, tokens["auditor1"], subject=entry.token, action="trail")
    audited = b.command(AlertDetailRequest(token=tokens["auditor1"], alert_id=alert.id))
    assert isinstance(audited, AlertDetail) and audited.trail_t == b""


# -------------------------------------------------------------------- auditors

def test_auditors_read_and_export_the_log_but_never_see_a_child(
        b: Backend, tokens: dict[str, str], children: list[RosterEntry]) -> None:
    auditor, op = tokens["auditor1"], tokens["operator1"]
    refused(b.command(ChildRequest(token=auditor, child=children[0].token)), "forbidden")
    refused(b.command(RevealRequest(token=auditor, child=children[0].token,
                                    reason="auditing this child")), "forbidden")
    refused(b.command(UsageRequest(token=op)), "forbidden")
    refused(b.command(UsageRequest(token=auditor, filter=UsageFilter(since=float("nan")))),
            "bad_value")
    page = b.command(UsageRequest(token=auditor, filter=UsageFilter(action="reveal"),
                                  export=True))
    assert isinstance(page, UsageRows) and page.verified
    assert page.rows and {r.action for r in page.rows} == {"reveal"}
    export = usage(b, auditor, action="export", actor="auditor1")
    assert export and f"usage log, {len(page.rows)} rows" in export[0].detail
    assert "action reveal" in export[0].detail


# ---------------------------------------------------------------------- expiry

@pytest.fixture
def short(data_dir: Path) -> Iterator[Backend]:
    with running_backend(make_config(data_dir, children=5, reveal_s=3.0), ("bus", "engine"),
                         ports=()) as backend:
        yield backend


def test_a_reveal_expires_and_the_engine_says_so(short: Backend) -> None:
    op, sup = short.sign_in("operator1"), short.sign_in("supervisor1")
    child = short.roster[0].token
    pending = revealed(short.command(RevealRequest(token=op, child=child,
                                                   reason="guardian called: child late")))
    granted = revealed(short.command(RevealDecision(token=sup, reveal_id=pending.id,
                                                    approve=True)))
    assert granted.expires_at == pytest.approx(granted.decided_at + 3.0)
    assert isinstance(short.command(ChildRequest(token=op, child=child)), ChildDetail)
    time.sleep(max(0.0, granted.expires_at - time.time()) + 0.2)
    refused(short.command(ChildRequest(token=op, child=child)), "no_reveal")
    mine = short.command(RevealsRequest(token=op, pending_only=False))
    assert isinstance(mine, RevealList)
    assert [r.state for r in mine.reveals if r.id == pending.id] == ["expired"]


def test_a_grant_given_with_an_alert_ends_when_the_alert_is_resolved(
        b: Backend, tokens: dict[str, str], children: list[RosterEntry]) -> None:
    op = tokens["operator2"]
    entry = children[7]
    alert = sos_owned_by(b, op, entry.device_id)
    view = revealed(b.command(RevealRequest(token=op, child=entry.token, alert_id=alert.id,
                                            reason="SOS pressed, calling the guardian")))
    assert view.state == "granted"
    assert isinstance(b.command(ChildRequest(token=op, child=entry.token)), ChildDetail)
    resolve_fully(b, op, alert)
    assert "resolved" in refused(b.command(ChildRequest(token=op, child=entry.token)),
                                 "no_reveal")
