"""The alert queue as the console holds it: Qt-free, ordered for operators.

Order: unresolved before resolved, then by priority (1 = most urgent), then
newest first — what needs a person now is always at the top.
"""

from __future__ import annotations

from models.messages import AlertView

STATE_RANK = {"open": 0, "acknowledged": 1, "resolved": 2}


def sort_key(a: AlertView) -> tuple[int, int, float]:
    return (STATE_RANK.get(a.state, 3), a.priority, -a.opened_at)


class AlertBook:
    def __init__(self) -> None:
        self._by_id: dict[int, AlertView] = {}
        self.rows: list[AlertView] = []

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, alert_id: int) -> AlertView | None:
        return self._by_id.get(alert_id)

    def reset(self, alerts: list[AlertView]) -> None:
        self._by_id = {a.id: a for a in alerts}
        self._sort()

    def upsert(self, alert: AlertView) -> None:
        self._by_id[alert.id] = alert
        self._sort()

    def _sort(self) -> None:
        self.rows = sorted(self._by_id.values(), key=sort_key)

    def unresolved_slots(self) -> list[int]:
        return [a.child_slot for a in self.rows if a.state != "resolved" and a.child_slot >= 0]
