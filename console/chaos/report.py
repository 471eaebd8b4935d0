"""The figures of one fault, the verdict on them, and the printed table.

Why a verdict in code: "nothing acknowledged lost, exactly one alert per
child's SOS episode" is the promise; the table is for people, ``lost`` and
``episodes_wrong`` are for the exit status and the CI tests, which assert
counts only (never times: a loaded 2-core CI machine makes times noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figures:
    fault: str
    injected: str = ""
    simulated: bool = True  # False: the fault could not be injected here (says why)
    error: str = ""  # the harness itself failed: nothing was measured
    # SOS: presses (distinct SOS, a resend is not a press), how many got an
    # acknowledgement, how many sends it took in all, and why devices resent.
    sos_presses: int = 0
    sos_acked: int = 0
    sos_sends: int = 0
    sos_refusals: dict[str, int] = field(default_factory=dict)
    # Episodes: one per child that pressed (its presses fold into one alert).
    episodes: int = 0
    episodes_one_alert: int = 0
    episodes_no_alert: int = 0
    episodes_many_alerts: int = 0
    acked_sos_without_alert: int = 0  # acknowledged presses whose child has no alert
    sos_alerts: int = 0  # distinct SOS alerts in the store for those children
    # An alert counts the presses folded into it: fewer than were acknowledged
    # means a press was dropped on the way; more than were sent, that a
    # resend was taken for a new press (not idempotent by device time).
    presses_not_counted: int = 0
    presses_counted_twice: int = 0
    console_sos_alerts: int = 0  # ... in the headless console's queue
    # Fixes: acknowledged (200) and of those how many are in the fixes table.
    fixes_sent: int = 0
    fixes_acked: int = 0
    fixes_stored: int = 0
    fixes_refused: int = 0  # answered 200 "refused: reason" (content), not kept on purpose
    fix_sends: int = 0
    # The event log: alert.opened records for the installation's alerts.
    alerts_total: int = 0
    alerts_with_event: int = 0
    # A console: first non-LIVE state after the fault began, and when it
    # was LIVE for good after the fault ended (None: never, or not yet).
    to_unhealthy_s: float | None = None
    unhealthy_state: str = ""
    unhealthy_reason: str = ""
    worst_state: str = ""
    to_live_s: float | None = None
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # what else the fault broke

    @property
    def fixes_lost(self) -> int:
        return self.fixes_acked - self.fixes_stored

    @property
    def events_missing(self) -> int:
        return self.alerts_total - self.alerts_with_event

    @property
    def episodes_wrong(self) -> int:
        """Children whose SOS episode did not end as exactly one alert."""
        return self.episodes - self.episodes_one_alert

    @property
    def lost(self) -> int:
        """Acknowledged items that are not where they must be."""
        return self.acked_sos_without_alert + self.fixes_lost

    @property
    def ok(self) -> bool:
        return (not self.error and self.lost == 0 and self.episodes_wrong == 0
                and not self.failures)

    def verdict(self) -> str:
        if self.error:
            return "NOT MEASURED"
        if not self.simulated:
            return "not simulated"
        problems = []
        if self.acked_sos_without_alert:
            problems.append(f"{self.acked_sos_without_alert} acked SOS lost")
        if self.fixes_lost:
            problems.append(f"{self.fixes_lost} acked fixes lost")
        if self.episodes_many_alerts:
            problems.append(f"{self.episodes_many_alerts} episodes >1 alert")
        if self.episodes_no_alert:
            problems.append(f"{self.episodes_no_alert} episodes no alert")
        if self.failures:
            problems.append(f"{len(self.failures)} other")
        if problems:
            return "FAIL: " + ", ".join(problems)
        warnings = []  # not a device's acknowledgement lost, but not right either
        if self.events_missing:
            warnings.append(f"{self.events_missing} alert.opened not in the event log")
        if self.presses_not_counted:
            warnings.append(f"{self.presses_not_counted} acked presses not counted")
        if self.presses_counted_twice:
            warnings.append(f"{self.presses_counted_twice} resends counted as presses")
        return "ok, but " + ", ".join(warnings) if warnings else "ok"

    def summary(self) -> str:
        """One line for a failed assertion: every count that matters."""
        return (f"{self.fault}: SOS acked {self.sos_acked}/{self.sos_presses} "
                f"(sends {self.sos_sends}, refusals {self.sos_refusals}); episodes "
                f"{self.episodes}: one alert {self.episodes_one_alert}, none "
                f"{self.episodes_no_alert}, several {self.episodes_many_alerts}; acked SOS "
                f"without alert {self.acked_sos_without_alert}; presses not counted "
                f"{self.presses_not_counted}, counted twice {self.presses_counted_twice}; "
                f"fixes acked "
                f"{self.fixes_acked} stored {self.fixes_stored}; alert.opened events "
                f"{self.alerts_with_event}/{self.alerts_total}; notes: "
                f"{'; '.join(self.notes)}; failures: {'; '.join(self.failures)}")


def _secs(value: float | None, never: str) -> str:
    return never if value is None else f"{value:.1f} s"


COLUMNS = ("fault", "SOS acked/sent", "alerts (1 per child)", "fixes acked→stored",
           "alert.opened/alerts", "to DEGRADED/STALE", "back to LIVE", "verdict")


def row(f: Figures) -> tuple[str, ...]:
    if f.error or not f.simulated:
        return (f.fault, "", "", "", "", "", "", f.verdict())
    unhealthy = ("stayed LIVE" if f.to_unhealthy_s is None
                 else f"{f.to_unhealthy_s:.1f} s {f.unhealthy_state}")
    return (
        f.fault,
        f"{f.sos_acked}/{f.sos_presses} ({f.sos_sends} sends)",
        f"{f.sos_alerts} ({f.episodes_one_alert}/{f.episodes}; console {f.console_sos_alerts})",
        f"{f.fixes_acked}→{f.fixes_stored}",
        f"{f.alerts_with_event}/{f.alerts_total}",
        unhealthy,
        _secs(f.to_live_s, "not LIVE") if f.to_unhealthy_s is not None else "-",
        f.verdict(),
    )


def table(figures: list[Figures]) -> str:
    """The table, then per fault what was injected and what else was seen."""
    rows = [COLUMNS, *(row(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for f in figures:
        lines.append(f"{f.fault}: {f.injected or f.error}")
        if f.error:
            lines.append(f"    error: {f.error}")
        if f.sos_refusals:
            why = ", ".join(f"{k} ×{v}" for k, v in sorted(f.sos_refusals.items()))
            lines.append(f"    SOS not acknowledged at first: {why}")
        if f.fixes_refused:
            lines.append(f"    fixes answered but refused for their content: {f.fixes_refused}")
        if f.unhealthy_reason:
            lines.append(f"    console said: {f.unhealthy_reason}")
        if f.worst_state and f.worst_state != f.unhealthy_state:
            lines.append(f"    worst console state: {f.worst_state}")
        lines.extend(f"    {note}" for note in f.notes)
        lines.extend(f"    FAILED: {failure}" for failure in f.failures)
    return "\n".join(lines)
