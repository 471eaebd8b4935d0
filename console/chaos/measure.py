"""The run every fault shares, and the rules that judge it.

Every fault runs the same way (``measure``): an SOS storm (half watches,
half phones, each press resent until acknowledged) and a fix load (phones)
start; after a second of normal traffic the fault is injected for the
window; devices keep resending until everything is acknowledged or the
window plus a settle time is over; then the store is read once the system
has settled, and a headless console's timeline is consulted. Why shared: a
fault function only injects (and notes what it saw), so every fault is
judged by the same counting rules (``fill``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from console.chaos.devices import FixLoad, SosStorm
from console.chaos.harness import DeviceInfo, Installation
from console.chaos.observe import StoreCounts, fix_key, store_counts
from console.chaos.report import Figures

log = logging.getLogger(__name__)

STABLE_S = 3.0  # counts that have not changed this long (console LIVE) have settled


@dataclass
class Plan:
    """How hard to push. The defaults are the command line's; ``ci()`` is
    the short version the tests run."""

    seconds: float = 10.0  # the fault window
    sos_children: int = 24  # children pressing SOS (one episode each)
    presses: int = 3  # presses per child during the storm
    fix_rate: float = 60.0  # fixes/s from the other phones
    lead_s: float = 1.0  # normal traffic before the fault
    settle_s: float = 15.0  # after the window: resends, then the counts settle
    children: int = 100  # children in the private installation

    @classmethod
    def ci(cls) -> Plan:
        return cls(seconds=3.0, sos_children=16, presses=2, fix_rate=50.0, settle_s=12.0,
                   children=60)


@dataclass
class Run:
    """One fault being run: what the fault function reads and reports."""

    inst: Installation
    plan: Plan
    fig: Figures
    window_s: float
    t_inject: float = 0.0
    t_clear: float = 0.0  # when the fault ended (the last kill, SIGCONT, unlock...)
    failures: list[str] = field(default_factory=list)  # beyond the shared rules

    def note(self, text: str) -> None:
        self.fig.notes.append(text)

    def sleep_until(self, at: float) -> None:
        time.sleep(max(0.0, at - time.monotonic()))


Inject = Callable[[Run], None]


# ------------------------------------------------------------ the shared run


def pick_devices(inst: Installation, plan: Plan) -> tuple[list[DeviceInfo], list[DeviceInfo]]:
    """(SOS devices, fix-load phones): one device per child, half the SOS
    on watches and half on phones, and the load on the remaining phones but
    the last (``spare_phone``), so a storm child's SOS is never behind its
    own routine fixes."""
    seen: set[str] = set()
    watches, phones = [], []
    for d in inst.devices:
        if d.child in seen:
            continue
        seen.add(d.child)
        (watches if d.kind == "watch" else phones if d.kind == "phone" else []).append(d)
    n_phone = min(plan.sos_children // 2, max(0, len(phones) - 2))
    n_watch = min(plan.sos_children - n_phone, len(watches))
    return watches[:n_watch] + phones[:n_phone], phones[n_phone:-1]


def spare_phone(inst: Installation) -> DeviceInfo:
    """A phone neither in the storm nor in the load, for a fault's own input."""
    return [d for d in inst.devices if d.kind == "phone"][-1]


def measure(inst: Installation, plan: Plan, name: str, inject: Inject,
            window_s: float | None = None) -> Figures:
    """Run ``inject`` under an SOS storm and a fix load; count what survived."""
    fig = Figures(fault=name)
    run = Run(inst, plan, fig, window_s if window_s is not None else plan.seconds)
    sos_devices, load_devices = pick_devices(inst, plan)
    cfg = inst.config
    storm = SosStorm(sos_devices, plan.presses, plan.lead_s + run.window_s, cfg.watch_port,
                     cfg.osmand_port)
    load = FixLoad(load_devices, plan.fix_rate, plan.lead_s + run.window_s, cfg.osmand_port)
    t0 = time.monotonic()
    deadline = t0 + plan.lead_s + run.window_s + plan.settle_s
    storm.start(deadline)
    load.start(deadline)
    time.sleep(plan.lead_s)
    run.t_inject = time.monotonic()
    try:
        inject(run)
    finally:
        if not run.t_clear:
            run.t_clear = time.monotonic()
        storm.join()
        load.join()
    counts = settle(inst, storm, load, deadline + plan.settle_s)
    fill(fig, run, storm, load, counts)
    return fig


def settle(inst: Installation, storm: SosStorm, load: FixLoad, until: float) -> StoreCounts:
    """The store's counts once nothing acknowledged is missing, or once they
    stopped changing with the console LIVE, or at ``until``."""
    acked_presses = Counter(p.device.child for p in storm.presses if p.acked)
    acked_fixes = {fix_key(f.device_id, f.t) for f in load.acked()}
    devices = {d.device_id for d in load.devices}
    last: tuple[int, ...] | None = None
    stable_since = time.monotonic()
    counts = StoreCounts()
    while True:
        try:
            counts = store_counts(inst.config.db_url, devices)
        except Exception as exc:  # locked or full right now: the store decides when
            log.debug("store not readable yet: %s", exc)
        complete = (storm.children <= set(counts.sos_alerts)
                    and all(_folded(counts, c) >= n for c, n in acked_presses.items())
                    and acked_fixes <= counts.fixes
                    and counts.alert_ids <= counts.opened_events)
        now = time.monotonic()
        shape = (sum(map(len, counts.sos_alerts.values())), sum(counts.trigger_counts.values()),
                 len(counts.fixes), len(counts.opened_events))
        if shape != last:
            last, stable_since = shape, now
        live = inst.health is not None and inst.health.is_live()
        if (complete and live) or (live and now - stable_since >= STABLE_S) or now >= until:
            return counts
        time.sleep(0.5)


def _folded(counts: StoreCounts, child: str) -> int:
    """Presses the store counts on ``child``'s SOS alerts."""
    return sum(counts.trigger_counts.get(a, 0) for a in counts.sos_alerts.get(child, []))


def fill(fig: Figures, run: Run, storm: SosStorm, load: FixLoad, counts: StoreCounts) -> None:
    """The shared figures from the devices' ledgers, the store and the console."""
    refusals: Counter[str] = Counter()
    for p in storm.presses:
        refusals.update(p.refusals)
    fig.sos_presses = sum(1 for p in storm.presses if p.attempts)
    fig.sos_acked = sum(1 for p in storm.presses if p.acked)
    fig.sos_sends = sum(p.attempts for p in storm.presses)
    fig.sos_refusals = dict(refusals)
    children = {p.device.child for p in storm.presses if p.attempts}
    fig.episodes = len(children)
    per_child = {c: len(counts.sos_alerts.get(c, [])) for c in children}
    fig.episodes_one_alert = sum(1 for n in per_child.values() if n == 1)
    fig.episodes_no_alert = sum(1 for n in per_child.values() if n == 0)
    fig.episodes_many_alerts = sum(1 for n in per_child.values() if n > 1)
    fig.acked_sos_without_alert = sum(1 for p in storm.presses
                                      if p.acked and not per_child.get(p.device.child))
    fig.sos_alerts = sum(per_child.values())
    for child in children:  # presses folded into the child's alert vs pressed
        folded = _folded(counts, child)
        acked = sum(1 for p in storm.presses if p.acked and p.device.child == child)
        sent = sum(1 for p in storm.presses if p.attempts and p.device.child == child)
        if folded:
            fig.presses_not_counted += max(0, acked - folded)
            fig.presses_counted_twice += max(0, folded - sent)
    acked = load.acked()
    fig.fixes_sent = len(load.fixes)
    fig.fixes_acked = len(acked)
    fig.fixes_stored = sum(1 for f in acked if fix_key(f.device_id, f.t) in counts.fixes)
    fig.fixes_refused = sum(1 for f in load.fixes if f.acked and f.answer != "200")
    fig.fix_sends = sum(f.attempts for f in load.fixes)
    fig.alerts_total = len(counts.alert_ids)
    fig.alerts_with_event = len(counts.alert_ids & counts.opened_events)
    health = run.inst.health
    if health is not None:
        fig.console_sos_alerts = health.sos_rows(children)
        first = health.first_not_live(run.t_inject)
        if first is not None:
            fig.to_unhealthy_s = first.at - run.t_inject
            fig.unhealthy_state = first.state
            fig.unhealthy_reason = "; ".join(first.reasons)
            fig.worst_state = health.worst_since(run.t_inject)
        back = health.live_again(run.t_clear)
        fig.to_live_s = None if back is None else max(0.0, back - run.t_clear)
    fig.failures = list(run.failures)


def storm_text(plan: Plan) -> str:
    return (f"during an SOS storm ({plan.sos_children} children × {plan.presses} presses) "
            f"and {plan.fix_rate:.0f} fixes/s")
