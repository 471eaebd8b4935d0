"""The privacy widgets offscreen on fake data with a pinned clock: device ids
masked in the queue and the panel, the identity card's countdown and its
forgetting, the reason dialog, the approvals' four eyes and guardian
notice, and the auditor's usage log (table, banner, export text)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path

import msgspec
import pytest
from PySide6.QtCore import QDate, Qt
from pytestqt.qtbot import QtBot

from models.messages import AlertView, DisclosureView, UsageRows
from models.messages import RevealView as RevealState
from models.privacy_view import (
    EXPORT_COLUMNS,
    mask_device,
    may_disclose,
    usage_csv,
    write_usage_csv,
)
from models.qt.alert_table import COLUMNS
from models.usage import UsageEntry, UsageFilter
from widgets.alert_panel import AlertPanel
from widgets.alert_queue import AlertQueue
from widgets.approvals_panel import ApprovalsPanel, fake_requests
from widgets.reveal_view import ReasonDialog, RevealView, fake_child_detail
from widgets.usage_log_view import DETAIL, PAGE, PURPOSE, UsageLogView, day_start, fake_rows

NOW = 1_790_000_000.0
LEFT = Qt.MouseButton.LeftButton
DEVICE_ID = "860123456784821"


def alert(**kw: object) -> AlertView:
    base: dict[str, object] = dict(id=7, kind="sos", priority=1, state="in_progress",
                                   child_token="C-A13F00", child_slot=3, device_id=DEVICE_ID,
                                   lat=37.5444, lon=127.0374, place="성동구 성수동1가",
                                   opened_at=NOW - 60, owner="kim.op", version=4,
                                   device_kind="watch")
    base.update(kw)
    return AlertView(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------ masking


def test_mask_device_shows_the_tail_never_more_than_half() -> None:
    assert mask_device(DEVICE_ID) == "•••• 4821"
    assert mask_device("86012345") == "•••• 2345"
    assert mask_device("860123") == "•••• 123"  # four of six would be most of it
    assert mask_device("8601") == "•••• 01"
    assert mask_device("8") == "••••"
    assert mask_device("") == ""


def test_the_queue_never_shows_a_whole_device_id(qtbot: QtBot) -> None:
    queue = AlertQueue()
    qtbot.addWidget(queue)
    queue.set_alerts([alert(), alert(id=8, device_id="8800000015")], now=NOW)
    device = COLUMNS.index("Device")
    texts = {str(queue.model.index(r, device).data()) for r in range(queue.model.rowCount())}
    assert texts == {"•••• 4821", "•••• 0015"}
    every_role = [queue.model.index(r, c).data(role)
                  for r in range(queue.model.rowCount()) for c in range(len(COLUMNS))
                  for role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole)]
    assert not any(DEVICE_ID in str(v) or "8800000015" in str(v) for v in every_role)


def test_the_panel_masks_the_device_and_keeps_its_kind(qtbot: QtBot) -> None:
    panel = AlertPanel(clock=lambda: NOW)
    qtbot.addWidget(panel)
    panel.set_user("kim.op", ["operator"])
    panel.show_alert(alert())
    assert "device •••• 4821 (watch)" in panel.meta.text()
    assert DEVICE_ID not in panel.meta.text()


# ------------------------------------------------------------------ alert panel buttons


def test_reveal_and_disclose_buttons_follow_role_kind_and_state(qtbot: QtBot) -> None:
    panel = AlertPanel(clock=lambda: NOW)
    qtbot.addWidget(panel)
    panel.set_user("kim.op", ["operator"])
    asked: list[tuple[str, int]] = []
    panel.reveal_requested.connect(lambda a: asked.append(("reveal", a.id)))
    panel.disclose_requested.connect(lambda a: asked.append(("disclose", a.id)))
    panel.show_alert(alert())
    assert panel.reveal_button.isEnabled() and panel.disclose_button.isEnabled()
    qtbot.mouseClick(panel.reveal_button, LEFT)
    qtbot.mouseClick(panel.disclose_button, LEFT)
    assert asked == [("reveal", 7), ("disclose", 7)]
    # A low battery is routine: no disclosure. A resolved alert: a reveal (it
    # waits for a supervisor), never a disclosure.
    panel.show_alert(alert(id=9, kind="low_battery", priority=4))
    assert panel.reveal_button.isEnabled() and not panel.disclose_button.isEnabled()
    assert "Only for emergency alerts" in panel.disclose_button.toolTip()
    panel.show_alert(alert(id=10, state="resolved"))
    assert panel.reveal_button.isEnabled() and not panel.disclose_button.isEnabled()
    assert not may_disclose(alert(state="resolved")) and may_disclose(alert(kind="fall"))
    # An auditor reads; they neither reveal nor disclose.
    panel.set_user("choi.au", ["auditor"])
    panel.show_alert(alert(id=11))
    assert not panel.reveal_button.isEnabled() and not panel.disclose_button.isEnabled()


def test_the_panel_shows_each_agency_s_newest_disclosure(qtbot: QtBot) -> None:
    panel = AlertPanel(clock=lambda: NOW)
    qtbot.addWidget(panel)
    panel.set_user("kim.op", ["operator"])
    panel.show_alert(alert())
    asked = DisclosureView(id=3, alert_id=7, child="C-A13F00", agency="police",
                           reason="patrol needs a name", requested_by="kim.op",
                           requested_at=NOW - 30, state="pending")
    panel.show_disclosure(asked)
    assert "Police 112: waiting for a supervisor's approval" in panel.fact["disclosure"].text()
    panel.show_disclosure(msgspec.structs.replace(
        asked, state="approved", decided_by="park.sv", decided_at=NOW,
        guardian_notice="phoned the mother at 14:20"))
    panel.show_disclosure(msgspec.structs.replace(asked, id=2, state="refused"))  # older
    text = panel.fact["disclosure"].text()
    assert "approved by park.sv" in text and "phoned the mother at 14:20" in text
    assert "refused" not in text
    panel.show_disclosure(msgspec.structs.replace(asked, id=9, alert_id=8))  # another alert
    assert panel.fact["disclosure"].text() == text
    panel.clear_disclosures()
    assert panel.fact["disclosure"].text() == ""


# ------------------------------------------------------------------ reason dialog


@pytest.mark.parametrize("agencies", [False, True])
def test_the_reason_dialog_refuses_an_empty_or_short_reason(qtbot: QtBot,
                                                            agencies: bool) -> None:
    dialog = ReasonDialog(agencies=agencies)
    qtbot.addWidget(dialog)
    sent: list[tuple[str, str]] = []
    dialog.submitted.connect(lambda a, r: sent.append((a, r)))
    dialog.ask("Reveal identity of C-A13F00", "why")
    assert dialog.isVisible() and not dialog.ok.isEnabled()
    for text in ("", "    ", "abcd", "  ab c  "):
        dialog.reason.setText(text)
        assert not dialog.ok.isEnabled(), text
        dialog.accept()  # Enter with a short reason does nothing
        assert dialog.isVisible() and sent == []
    assert "at least 5 characters" in dialog.hint.text()
    if agencies:
        dialog.agency.setCurrentIndex(dialog.agency.findData("fire"))
    dialog.reason.setText("  SOS, child not answering  ")
    assert dialog.ok.isEnabled()
    qtbot.mouseClick(dialog.ok, LEFT)
    assert sent == [("fire" if agencies else "", "SOS, child not answering")]
    assert not dialog.isVisible()
    dialog.ask("again", "why")
    assert dialog.reason.text() == "" and not dialog.ok.isEnabled()  # nothing carried over


# ------------------------------------------------------------------ identity card


@pytest.fixture
def card(qtbot: QtBot) -> RevealView:
    view = RevealView(clock=lambda: NOW)
    qtbot.addWidget(view)
    view.resize(640, 360)
    view.show()
    return view


def test_the_card_counts_down_and_forgets_everything_at_the_end(card: RevealView,
                                                                qtbot: QtBot) -> None:
    detail = fake_child_detail(NOW, ttl=12 * 60 + 41)
    end = datetime.fromtimestamp(detail.expires_at).strftime("%H:%M")
    forgotten: list[str] = []
    card.forgotten.connect(forgotten.append)
    card.show_detail(detail, NOW)
    text = card.shown_text()
    assert f"shown until {end} (12:41 left)" in text
    for word in ("김하늘 (Kim Haneul)", "박지영 (Park Jiyoung)", "mother", "010-2345-6789",
                 "jiyoung.park@example.kr", "김민수 (Kim Minsu)", "father", "emergency alerts"):
        assert word in text
    assert card.countdown.property("ending") == "false"
    card.tick(NOW + 12 * 60)
    assert "(0:41 left)" in card.countdown.text()
    assert card.countdown.property("ending") == "true"
    assert card.detail is detail
    card.tick(detail.expires_at)  # the second the grant ends
    assert card.detail is None and card.expires_at == 0.0
    after = card.shown_text()
    for word in ("Kim Haneul", "Park Jiyoung", "mother", "010-", "@example.kr", "father",
                 "emergency alerts", "left)"):
        assert word not in after
    assert "forgotten" in after and card.guardians.rowCount() == 0
    assert not card.name.isVisible() and not card.guardians.isVisible()
    assert not card.history_button.isEnabled()
    assert forgotten == ["C-A13F00"]
    card.tick(detail.expires_at + 5)  # nothing twice
    assert forgotten == ["C-A13F00"]


def test_an_identity_arriving_after_its_end_is_not_shown(card: RevealView) -> None:
    card.show_detail(fake_child_detail(NOW - 600, ttl=300), NOW)
    assert card.detail is None and "Kim Haneul" not in card.shown_text()
    assert card.state.property("state") == "expired"


def test_forget_now_and_another_child_clear_the_card(card: RevealView, qtbot: QtBot) -> None:
    card.show_detail(fake_child_detail(NOW), NOW)
    with qtbot.waitSignal(card.forget_requested):
        qtbot.mouseClick(card.forget_button, LEFT)
    assert card.detail is None and "Kim Haneul" not in card.shown_text()
    card.show_detail(fake_child_detail(NOW), NOW)
    card.show_reveal(RevealState(id=50, child="C-B00001", user="kim.op", reason="another one",
                                 alert_id=0, state="pending", requested_at=NOW))
    assert card.detail is None and "Kim Haneul" not in card.shown_text()
    assert "waiting for a supervisor's approval" in card.state.text()
    assert card.state.property("state") == "pending"


def test_the_card_asks_for_history_and_hands_the_trail_to_the_map(card: RevealView,
                                                                  qtbot: QtBot) -> None:
    card.show_detail(fake_child_detail(NOW), NOW)
    with qtbot.waitSignal(card.history_requested) as asked:
        qtbot.mouseClick(card.history_button, LEFT)
    assert asked.args == ["C-A13F00", 3600.0]
    with qtbot.waitSignal(card.trail_ready) as drawn:
        card.show_detail(fake_child_detail(NOW, trail=True), NOW)
    assert len(drawn.args[0]) == 120
    assert "120 positions" in card.trail.text()


# ------------------------------------------------------------------ approvals


@pytest.fixture
def approvals(qtbot: QtBot) -> ApprovalsPanel:
    panel = ApprovalsPanel()
    qtbot.addWidget(panel)
    panel.set_user("park.sv")
    reveals, disclosures = fake_requests(NOW)
    panel.show_reveals(reveals, NOW)
    panel.show_disclosures(disclosures, NOW)
    panel.resize(900, 700)
    panel.show()
    return panel


def test_a_supervisor_s_own_requests_are_listed_with_buttons_off(
        approvals: ApprovalsPanel) -> None:
    assert approvals.reveal_table.rowCount() == 3
    assert approvals.disclosure_table.rowCount() == 2
    assert approvals.waiting == 3  # the supervisor's own two are not theirs to decide
    assert approvals.select_reveal(33)
    assert approvals.reveal_table.item(2, 0).text() == "park.sv (you)"
    assert not approvals.approve_reveal.isEnabled() and not approvals.refuse_reveal.isEnabled()
    assert "four eyes" in approvals.reveal_hint.text() and approvals.reveal_hint.isVisible()
    approvals.notice.setText("phoned the father at 14:20")
    assert approvals.select_disclosure(8)
    assert not approvals.approve_disclosure.isEnabled()
    assert not approvals.refuse_disclosure.isEnabled()
    assert approvals.select_reveal(31)
    assert approvals.approve_reveal.isEnabled() and approvals.refuse_reveal.isEnabled()
    assert not approvals.reveal_hint.isVisible()


def test_reveal_decisions_carry_the_note(approvals: ApprovalsPanel, qtbot: QtBot) -> None:
    approvals.select_reveal(32)
    approvals.reveal_note.setText("school confirmed the case")
    with qtbot.waitSignal(approvals.reveal_decided) as approved:
        qtbot.mouseClick(approvals.approve_reveal, LEFT)
    assert approved.args == [32, True, "school confirmed the case"]
    approvals.select_reveal(31)
    with qtbot.waitSignal(approvals.reveal_decided) as refused:
        qtbot.mouseClick(approvals.refuse_reveal, LEFT)
    assert refused.args == [31, False, ""]


def test_approving_a_disclosure_needs_the_guardian_notice(approvals: ApprovalsPanel,
                                                          qtbot: QtBot) -> None:
    decided: list[tuple[int, bool, str]] = []
    approvals.disclosure_decided.connect(lambda i, a, n: decided.append((i, a, n)))
    approvals.select_disclosure(7)
    assert not approvals.approve_disclosure.isEnabled()
    assert "guardian" in approvals.approve_disclosure.toolTip()
    assert approvals.refuse_disclosure.isEnabled()  # refusing tells nobody anything
    approvals.notice.setText("rang")
    assert not approvals.approve_disclosure.isEnabled()
    qtbot.mouseClick(approvals.approve_disclosure, LEFT)
    assert decided == []
    approvals.notice.setText("phoned the mother at 14:20")
    qtbot.mouseClick(approvals.approve_disclosure, LEFT)
    assert decided == [(7, True, "phoned the mother at 14:20")]
    approvals.select_disclosure(7)
    qtbot.mouseClick(approvals.refuse_disclosure, LEFT)
    assert decided[-1] == (7, False, "")


def test_a_refresh_keeps_the_selection_and_drops_decided_ones(approvals: ApprovalsPanel,
                                                               qtbot: QtBot) -> None:
    counts: list[int] = []
    approvals.pending_changed.connect(counts.append)
    reveals, _ = fake_requests(NOW)
    approvals.select_reveal(32)
    approvals.show_reveals(reveals, NOW + 5)
    assert approvals.selected_reveal() is not None and approvals.selected_reveal().id == 32  # type: ignore[union-attr]
    decided = [msgspec.structs.replace(r, state="granted") if r.id == 32 else r
               for r in reveals]
    approvals.show_reveals(decided, NOW + 10)
    assert approvals.selected_reveal() is None and approvals.reveal_table.rowCount() == 2
    assert counts == [2]
    approvals.tick(NOW + 125)
    assert approvals.reveal_table.item(0, 4).text() == "3:40"  # asked 95 s before NOW
    approvals.clear()
    assert approvals.reveal_table.rowCount() == 0 and approvals.disclosure_table.rowCount() == 0
    assert approvals.reveal_empty.isVisible() and counts[-1] == 0


# ------------------------------------------------------------------ usage log


@pytest.fixture
def usage(qtbot: QtBot) -> UsageLogView:
    view = UsageLogView(today=date(2026, 9, 21))
    qtbot.addWidget(view)
    view.resize(1200, 640)
    view.show()
    return view


def test_the_usage_table_shows_every_field_whole_somewhere(usage: UsageLogView) -> None:
    rows = fake_rows(NOW)
    usage.show_rows(UsageRows(rows=rows, verified=True))
    assert usage.table.rowCount() == len(rows)
    first = rows[0]
    assert [usage.cell_text(0, c) for c in range(8)] == [
        str(first.seq), datetime.fromtimestamp(first.at).strftime("%Y-%m-%d %H:%M:%S"),
        first.actor, first.subject, first.action, first.purpose, str(first.alert_id),
        first.detail]
    long = next(i for i, r in enumerate(rows) if r.action == "disclosure")
    item = usage.table.item(long, DETAIL)
    assert item is not None and item.toolTip() == rows[long].detail  # whole, if cut on screen
    assert usage.table.item(long, PURPOSE).toolTip() == rows[long].purpose  # type: ignore[union-attr]
    assert usage.table.editTriggers() == usage.table.EditTrigger.NoEditTriggers
    assert usage.banner.property("chain") == "verified"
    assert usage.count.text() == f"{len(rows)} records"
    assert usage.table.horizontalHeader().sectionResizeMode(PURPOSE) == \
        usage.table.horizontalHeader().ResizeMode.Interactive


def test_a_broken_chain_and_a_cut_page_say_so(usage: UsageLogView) -> None:
    usage.search()
    usage.show_rows(UsageRows(rows=fake_rows(NOW, PAGE), verified=False,
                              problem="record 1012 was edited (its hash does not match)"))
    assert usage.banner.text().startswith("Chain BROKEN: record 1012 was edited")
    assert usage.banner.property("chain") == "broken"
    assert "Showing the newest 1,000 records: there may be more" in usage.count.text()
    assert usage.count.property("cut") == "true"
    usage.clear()
    assert usage.table.rowCount() == 0 and usage.banner.property("chain") == "unknown"


def test_the_filter_fields_make_the_request(usage: UsageLogView, qtbot: QtBot) -> None:
    with qtbot.waitSignal(usage.query_requested) as asked:
        qtbot.mouseClick(usage.search_button, LEFT)
    assert asked.args == [UsageFilter(limit=PAGE)]
    usage.child.setText(" C-A13F00 ")
    usage.actor.setText("kim.op")
    usage.action.setCurrentIndex(usage.action.findData("reveal"))
    usage.since_on.setChecked(True)
    usage.since.setDate(QDate(2026, 9, 1))
    usage.until_on.setChecked(True)
    usage.until.setDate(QDate(2026, 9, 20))
    with qtbot.waitSignal(usage.export_requested) as exported:
        qtbot.mouseClick(usage.export_button, LEFT)
    # The "to" day is included: until is the next midnight (exclusive).
    assert exported.args == [UsageFilter(subject="C-A13F00", actor="kim.op", action="reveal",
                                         since=day_start(date(2026, 9, 1)),
                                         until=day_start(date(2026, 9, 21)), limit=None)]


def test_the_export_text_is_whole_oldest_first_and_spreadsheet_safe(tmp_path: Path) -> None:
    rows = [
        UsageEntry(seq=12, at=NOW + 0.123456, actor="kim.op", subject="C-A13F00",
                   action="reveal", purpose="=HYPERLINK(\"http://x\")", alert_id=7,
                   detail='identity shown, "name", 2 guardian(s)\nsecond line'),
        UsageEntry(seq=11, at=NOW, actor="engine", subject="", action="purge",
                   detail="-48,211 fixes 서울"),
    ]
    text = usage_csv(rows)
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == list(EXPORT_COLUMNS)
    assert [r[0] for r in parsed[1:]] == ["11", "12"]  # oldest first, as the chain runs
    assert parsed[1][7] == "'-48,211 fixes 서울" and parsed[1][6] == ""
    assert parsed[2][5] == "'=HYPERLINK(\"http://x\")"
    assert parsed[2][7] == 'identity shown, "name", 2 guardian(s)\nsecond line'
    assert float(parsed[2][8]) == NOW + 0.123456  # the exact stored time
    out = tmp_path / "usage.csv"
    assert write_usage_csv(out, rows) == 2
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads the Hangul right
    assert raw.decode("utf-8-sig") == text
    assert out.stat().st_mode & 0o777 == 0o600
