"""Glue between the privacy widgets and the engine, owned by the window.

Reveals, disclosures, approvals and the usage log are requests to the
engine (``console.engine.privacy``), which checks the role, the reason and
the four eyes, records every use, and answers. This controller asks for
the reason (``ReasonDialog``), sends, and hands each answer to the widget
that shows it:

- a reveal's state to the identity card (``RevealView``); a granted one is
  followed by ``ChildRequest``, at once or when a poll of one's own reveals
  shows the supervisor's approval;
- the identity itself goes straight from the reply to the card and is kept
  nowhere else here: when the grant ends the card clears itself, and this
  controller holds only reveal numbers, tokens and times;
- a disclosure's state to the alert panel; the approval queues to the
  supervisor's ``ApprovalsPanel``; the log's pages to ``UsageLogView``,
  whose export is written here (``models.privacy_view.write_usage_csv``).

Every answer is checked against the session it was asked in: a reply that
arrives after a sign-out or a switch of user is dropped, so the next
person at the desk never sees what the previous one asked for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from models.messages import (
    AlertView,
    AnyMessage,
    ChildDetail,
    ChildRequest,
    CommandReply,
    DiscloseRequest,
    DisclosureDecision,
    DisclosureList,
    DisclosureReply,
    DisclosuresRequest,
    DisclosureView,
    RevealDecision,
    RevealList,
    RevealReply,
    RevealRequest,
    RevealsRequest,
    UsageRequest,
    UsageRows,
)
from models.messages import RevealView as RevealState
from models.privacy_view import EMERGENCY_KINDS, may_disclose, write_usage_csv
from models.usage import UsageFilter
from widgets.alert_panel import AlertPanel
from widgets.approvals_panel import ApprovalsPanel
from widgets.reveal_view import ReasonDialog, RevealView
from widgets.usage_log_view import UsageLogView

log = logging.getLogger(__name__)

POLL_S = 5.0  # approval queues while shown, and one's own requests while they wait
BADGE_POLL_S = 15.0  # a supervisor's approval count while the panel is not shown
# Rows one usage reply carries at most (db.usage_log.QUERY_MAX): an export
# this long may have left records out, and says so.
EXPORT_MAX = 10_000

OnReply = Callable[[Any], None]


class SessionLike(Protocol):
    """``console.session.Session`` as far as the controller needs it."""

    @property
    def user(self) -> str: ...

    def may(self, schema: str) -> bool: ...

    def send(self, command: AnyMessage, on_reply: OnReply | None = None) -> int: ...


def _error(reply: object) -> str:
    if isinstance(reply, CommandReply):
        return reply.error.rstrip(".") or f"refused ({reply.code})"
    log.warning("unexpected privacy reply %s", type(reply).__name__)
    return f"unexpected answer {type(reply).__name__}"


class PrivacyController(QObject):
    """Connects the identity card, the alert panel's privacy buttons, the
    approvals panel and the usage log to the engine."""

    status = Signal(str)  # a line for the status bar
    forgotten = Signal(str)  # child token: its identity (and any trail drawn) is gone

    def __init__(self, session: SessionLike, panel: AlertPanel, view: RevealView,
                 approvals: ApprovalsPanel, usage: UsageLogView, *,
                 parent: QObject | None = None, dialog_parent: QWidget | None = None,
                 clock: Callable[[], float] = time.time,
                 ask_path: Callable[[str], str] | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.panel = panel
        self.view = view
        self.approvals = approvals
        self.usage = usage
        self.clock = clock
        self.ask_path = ask_path or (lambda _name: "")
        self.reveal_dialog = ReasonDialog(dialog_parent)
        self.disclose_dialog = ReasonDialog(dialog_parent, agencies=True)
        # Reveal numbers, tokens and times only: never an identity.
        self.mine: dict[int, RevealState] = {}
        self.waiting_on = 0  # the reveal the card waits to see granted
        self.disclosures: dict[int, DisclosureView] = {}  # own requests, by id
        self._target: tuple[str, int] = ("", 0)  # child, alert of the open reveal dialog
        self._disclose_alert = 0
        self._generation = 0  # bumped by reset(): older answers are dropped
        self._polled_mine = 0.0
        self._polled_approvals = 0.0
        self._polled_disclosures = 0.0

        panel.reveal_requested.connect(self.request_reveal)
        panel.disclose_requested.connect(self.request_disclosure)
        panel.detail_needed.connect(self._alert_shown)
        view.history_requested.connect(self.ask_child)
        view.forgotten.connect(self._forgot)
        approvals.reveal_decided.connect(self.decide_reveal)
        approvals.disclosure_decided.connect(self.decide_disclosure)
        approvals.refresh_wanted.connect(self.poll_approvals)
        usage.query_requested.connect(self.query_usage)
        usage.export_requested.connect(self.export_usage)
        self.reveal_dialog.submitted.connect(lambda _agency, reason: self._send_reveal(reason))
        self.disclose_dialog.submitted.connect(self._send_disclosure)

    # ------------------------------------------------------------ window API
    def reset(self) -> None:
        """The session changed: forget every identity, request and list, and
        drop answers still on their way."""
        self._generation += 1
        for dialog in (self.reveal_dialog, self.disclose_dialog):
            if dialog.isVisible():
                dialog.reject()
        self.view.reset()
        self.mine.clear()
        self.disclosures.clear()
        self.waiting_on = 0
        self._polled_mine = self._polled_approvals = self._polled_disclosures = 0.0
        self.panel.clear_disclosures()
        self.approvals.clear()
        self.approvals.set_user(self.session.user)
        self.usage.clear()

    def tick(self, now: float) -> None:
        """Once a second: the card's countdown (and forgetting), the
        approvals' ages, and the polls that are due."""
        self.view.tick(now)
        self.approvals.tick(now)
        if (any(r.state == "pending" for r in self.mine.values())
                and now - self._polled_mine >= POLL_S):
            self.poll_mine()
        if self.session.may("cmd.decide_reveal"):
            every = POLL_S if self.approvals.isVisible() else BADGE_POLL_S
            if now - self._polled_approvals >= every:
                self.poll_approvals()
        if (any(d.state == "pending" for d in self.disclosures.values())
                and now - self._polled_disclosures >= POLL_S):
            self.poll_disclosures()

    # --------------------------------------------------------------- reveals
    def request_reveal(self, alert: AlertView) -> None:
        """"Reveal identity…": show a live grant again, wait on a pending
        one, or ask for a reason and request a new one."""
        child, now, me = alert.child_token, self.clock(), self.session.user
        mine = [r for r in self.mine.values() if r.child == child and r.user == me]
        live = [r for r in mine if r.state == "granted" and r.expires_at > now]
        if live:
            self.view.show_reveal(live[-1])
            self.ask_child(child, 0.0)
            return
        pending = [r for r in mine if r.state == "pending"]
        if pending:
            self.view.show_reveal(pending[-1])
            self.waiting_on = pending[-1].id
            self.poll_mine()
            return
        own_open = alert.state != "resolved" and alert.owner == me
        if own_open:
            intro = self.tr("Alert %1 is open and yours: %2's name and guardians are shown at "
                            "once, for a limited time. Say why you need them.")
        else:
            intro = self.tr("Alert %1 is not an open alert of yours, so a supervisor must "
                            "approve showing %2's identity (four eyes). Say why you need it.")
        self._target = (child, alert.id)
        self.reveal_dialog.ask(self.tr("Reveal identity of %1").replace("%1", child),
                               intro.replace("%1", str(alert.id)).replace("%2", child),
                               self.tr("e.g. SOS, child not answering; calling the guardian"))

    def _send_reveal(self, reason: str) -> None:
        child, alert_id = self._target
        if not child:
            return
        self.view.show_asking(child)
        self._send(RevealRequest(token="", child=child, reason=reason, alert_id=alert_id),
                   self._revealed)

    def _revealed(self, reply: object) -> None:
        if isinstance(reply, RevealReply):
            r = reply.reveal
            self.mine[r.id] = r
            self.view.show_reveal(r)
            if r.state == "granted":
                self.waiting_on = 0
                self.ask_child(r.child, 0.0)
            elif r.state == "pending":
                self.waiting_on = r.id
                self._polled_mine = self.clock()
                self.status.emit(self.tr("Reveal of %1 asked: waiting for a supervisor's "
                                         "approval").replace("%1", r.child))
        else:
            self.view.show_error(self.tr("Not revealed: %1").replace("%1", _error(reply)))

    def ask_child(self, child: str, trail_s: float) -> None:
        """The identity under a granted reveal (and ``trail_s`` of history)."""
        self._send(ChildRequest(token="", child=child, trail_s=trail_s), self._child_answered)

    def _child_answered(self, reply: object) -> None:
        if isinstance(reply, ChildDetail):
            self.waiting_on = 0
            self.view.show_detail(reply, self.clock())
            return
        if isinstance(reply, CommandReply) and reply.code == "no_reveal":
            for r in list(self.mine.values()):
                if r.state == "granted":
                    del self.mine[r.id]  # the engine says it is over
        self.view.show_error(self.tr("Not shown: %1").replace("%1", _error(reply)))

    def poll_mine(self) -> None:
        """This user's reveals: one waiting may have been decided."""
        self._polled_mine = self.clock()
        self._send(RevealsRequest(token="", pending_only=False), self._mine_listed)

    def _mine_listed(self, reply: object) -> None:
        if not isinstance(reply, RevealList):
            return
        me, now = self.session.user, self.clock()
        for r in reply.reveals:
            if r.user != me:
                continue  # a supervisor's list holds everyone's
            if r.state == "pending" or (r.state == "granted" and r.expires_at > now):
                self.mine[r.id] = r
            else:
                self.mine.pop(r.id, None)
            if r.id == self.waiting_on and r.state != "pending":
                self.waiting_on = 0
                self.view.show_reveal(r)
                if r.state == "granted":
                    self.status.emit(self.tr("Reveal of %1 approved by %2")
                                     .replace("%1", r.child).replace("%2", r.decided_by))
                    self.ask_child(r.child, 0.0)

    def _forgot(self, child: str) -> None:
        self.status.emit(self.tr("The identity of %1 was cleared from this console")
                         .replace("%1", child))
        self.forgotten.emit(child)

    # ------------------------------------------------------------- approvals
    def poll_approvals(self) -> None:
        """The supervisor's queues: pending reveals and disclosures."""
        self._polled_approvals = self.clock()
        if self.session.may("cmd.decide_reveal"):
            self._send(RevealsRequest(token="", pending_only=True), self._reveals_listed)
        if self.session.may("cmd.decide_disclosure"):
            self._send(DisclosuresRequest(token="", pending_only=True),
                       self._disclosures_listed)

    def _reveals_listed(self, reply: object) -> None:
        if isinstance(reply, RevealList):
            self.approvals.show_reveals(reply.reveals, self.clock())
        else:
            self.approvals.show_message(self.tr("Could not read the reveals: %1")
                                        .replace("%1", _error(reply)), "error")

    def _disclosures_listed(self, reply: object) -> None:
        if isinstance(reply, DisclosureList):
            self.approvals.show_disclosures(reply.disclosures, self.clock())
            for d in reply.disclosures:
                self.panel.show_disclosure(d)
        else:
            self.approvals.show_message(self.tr("Could not read the disclosures: %1")
                                        .replace("%1", _error(reply)), "error")

    def decide_reveal(self, reveal_id: int, approve: bool, note: str) -> None:
        self._send(RevealDecision(token="", reveal_id=reveal_id, approve=approve, note=note),
                   self._reveal_decided)

    def _reveal_decided(self, reply: object) -> None:
        if isinstance(reply, RevealReply):
            r = reply.reveal
            what = self.tr("approved") if r.state == "granted" else self.tr("refused")
            self.approvals.show_message(self.tr("Reveal %1 of %2 for %3 %4.")
                                        .replace("%1", str(r.id)).replace("%2", r.child)
                                        .replace("%3", r.user).replace("%4", what))
        else:
            self.approvals.show_message(self.tr("Not decided: %1").replace("%1", _error(reply)),
                                        "error")
        self.poll_approvals()

    def decide_disclosure(self, disclosure_id: int, approve: bool, notice: str) -> None:
        self._send(DisclosureDecision(token="", disclosure_id=disclosure_id, approve=approve,
                                      guardian_notice=notice), self._disclosure_decided)

    def _disclosure_decided(self, reply: object) -> None:
        if isinstance(reply, DisclosureReply):
            d = reply.disclosure
            what = self.tr("approved") if d.state == "approved" else self.tr("refused")
            self.approvals.show_message(self.tr("Disclosure %1 of alert %2 to %3 %4.")
                                        .replace("%1", str(d.id)).replace("%2", str(d.alert_id))
                                        .replace("%3", d.agency).replace("%4", what))
            self.panel.show_disclosure(d)
        else:
            self.approvals.show_message(self.tr("Not decided: %1").replace("%1", _error(reply)),
                                        "error")
        self.poll_approvals()

    # ----------------------------------------------------------- disclosures
    def request_disclosure(self, alert: AlertView) -> None:
        """"Disclose to police/fire…": agency and reason, for a supervisor to approve."""
        if not may_disclose(alert):
            return
        self._disclose_alert = alert.id
        self.disclose_dialog.ask(
            self.tr("Disclose alert %1 to police or fire").replace("%1", str(alert.id)),
            self.tr("%1's identity and this alert's positions go to the agency only after a "
                    "supervisor approves and the guardian has been told. Say why they are "
                    "needed.").replace("%1", alert.child_token),
            self.tr("e.g. missing after zone exit; patrol needs a name and photo"))

    def _send_disclosure(self, agency: str, reason: str) -> None:
        if not self._disclose_alert:
            return
        self._send(DiscloseRequest(token="", alert_id=self._disclose_alert,
                                   agency=agency, reason=reason),  # type: ignore[arg-type]
                   self._disclosed)

    def _disclosed(self, reply: object) -> None:
        if isinstance(reply, DisclosureReply):
            d = reply.disclosure
            self.disclosures[d.id] = d
            self._polled_disclosures = self.clock()
            self.panel.show_disclosure(d)
            self.status.emit(self.tr("Disclosure of alert %1 to %2 asked: waiting for a "
                                     "supervisor").replace("%1", str(d.alert_id))
                             .replace("%2", d.agency))
        else:
            self.panel.show_refusal(self.tr("Not asked: %1").replace("%1", _error(reply)))

    def poll_disclosures(self) -> None:
        self._polled_disclosures = self.clock()
        self._send(DisclosuresRequest(token="", pending_only=False), self._own_disclosures)

    def _own_disclosures(self, reply: object) -> None:
        if not isinstance(reply, DisclosureList):
            return
        for d in reply.disclosures:
            if d.id in self.disclosures:
                self.disclosures[d.id] = d
            self.panel.show_disclosure(d)

    def _alert_shown(self, alert_id: int) -> None:
        """An emergency alert in the panel: what has been asked for it."""
        alert = self.panel.alert
        if (alert is None or alert.id != alert_id or alert.kind not in EMERGENCY_KINDS
                or not self.session.may("req.disclosures")):
            return
        self._send(DisclosuresRequest(token="", pending_only=False), self._own_disclosures)

    # ------------------------------------------------------------- usage log
    def query_usage(self, f: UsageFilter) -> None:
        self._send(UsageRequest(token="", filter=f), self._usage_read)

    def _usage_read(self, reply: object) -> None:
        if isinstance(reply, UsageRows):
            self.usage.show_rows(reply)
        else:
            self.usage.show_message(self.tr("Not read: %1").replace("%1", _error(reply)))

    def export_usage(self, f: UsageFilter) -> None:
        """Ask where, then for every matching record (the engine logs the
        export), then write them."""
        path = self.ask_path(time.strftime("usage-log-%Y%m%d-%H%M.csv"))
        if not path:
            return
        self.usage.show_message(self.tr("Exporting…"))
        self._send(UsageRequest(token="", filter=f, export=True),
                   lambda reply: self._usage_exported(reply, path))

    def _usage_exported(self, reply: object, path: str) -> None:
        if not isinstance(reply, UsageRows):
            self.usage.show_message(self.tr("Not exported: %1").replace("%1", _error(reply)))
            return
        try:
            n = write_usage_csv(path, reply.rows)
        except OSError as exc:
            self.usage.show_message(self.tr("Could not write %1: %2").replace("%1", path)
                                    .replace("%2", exc.strerror or str(exc)))
            return
        chain = (self.tr("chain verified") if reply.verified
                 else self.tr("chain BROKEN: %1").replace("%1", reply.problem))
        text = (self.tr("%1 records written to %2 (%3).").replace("%1", f"{n:,}")
                .replace("%2", path).replace("%3", chain))
        if n >= EXPORT_MAX:
            text += " " + self.tr("The engine sends at most %1 records at once: narrow the "
                                  "dates and export the rest.").replace("%1", f"{EXPORT_MAX:,}")
        self.usage.show_message(text)
        self.status.emit(text)

    # -------------------------------------------------------------- internals
    def _send(self, request: AnyMessage, on_reply: OnReply) -> int:
        """Send with this session; an answer from before a reset is dropped."""
        generation = self._generation

        def answered(reply: object) -> None:
            if generation == self._generation:
                on_reply(reply)
            else:
                log.info("dropped a privacy answer from an earlier session (%s)",
                         type(reply).__name__)

        return self.session.send(request, answered)
