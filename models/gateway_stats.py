"""The gateway's counters as its heartbeat carries them (``accepted.<protocol>``,
``rejected.<protocol>:<reason>``), parsed once for the CLI and the panel."""

from __future__ import annotations

from dataclasses import dataclass, field

# Every device path the gateway serves, listed even before it has delivered
# anything: a feed that stays at zero is what an admin needs to notice.
DEVICE_PROTOCOLS = ("watch", "osmand", "tag", "carrier")


@dataclass
class GatewayCounters:
    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[tuple[str, str], int] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)
    unregistered_devices: int = 0
    # Delivery (``console.journal``): is the engine heard (alarms acknowledged)?
    # does the journal take reports? what was not acknowledged?
    engine_up: bool = True
    journal_ok: bool = True
    journal_seq: int = 0
    journal_failures: int = 0
    alarms_unacknowledged: int = 0
    unacknowledged_watch: int = 0

    @classmethod
    def from_stats(cls, stats: dict[str, float]) -> GatewayCounters:
        c = cls()
        for key, value in stats.items():
            kind, _, rest = key.partition(".")
            if kind == "accepted":
                c.accepted[rest] = int(value)
            elif kind == "rejected":
                protocol, _, reason = rest.partition(":")
                c.rejected[(protocol, reason)] = int(value)
            elif kind == "connections":
                c.connections[rest] = int(value)
            elif key == "unregistered_devices":
                c.unregistered_devices = int(value)
        c.engine_up = stats.get("engine_up", 1.0) != 0.0
        c.journal_ok = stats.get("journal_ok", 1.0) != 0.0
        c.journal_seq = int(stats.get("journal_seq", 0))
        c.journal_failures = int(stats.get("journal_failures", 0))
        c.alarms_unacknowledged = int(stats.get("alarms_unacknowledged", 0))
        c.unacknowledged_watch = int(stats.get("unacknowledged.watch", 0))
        return c

    def delivery(self) -> list[str]:
        """What devices are being told, in words: the acknowledgement state."""
        return [
            "alarms: " + ("acknowledged (engine heard)" if self.engine_up else
                          "NOT acknowledged: the engine is not heard; devices resend"),
            "journal: " + (f"taking reports (batch {self.journal_seq:,})" if self.journal_ok
                           else "REFUSING writes: devices are told to resend"),
            f"journal refusals: {self.journal_failures:,}; alarms not acknowledged: "
            f"{self.alarms_unacknowledged:,}; watch frames not acknowledged: "
            f"{self.unacknowledged_watch:,}",
        ]

    def protocols(self) -> list[str]:
        """The device protocols in a fixed order, then any other counted
        source (e.g. the HTTP layer's own refusals)."""
        seen = set(self.accepted) | {p for p, _ in self.rejected}
        return [*DEVICE_PROTOCOLS, *sorted(seen - set(DEVICE_PROTOCOLS))]

    def rejected_total(self, protocol: str) -> int:
        return sum(n for (p, _), n in self.rejected.items() if p == protocol)

    def table(self) -> str:
        """A plain-text table for ``childsafe gateway stats``."""
        lines = [f"{'protocol':<10} {'accepted':>10} {'rejected':>10}"]
        for protocol in self.protocols():
            lines.append(f"{protocol:<10} {self.accepted.get(protocol, 0):>10,} "
                         f"{self.rejected_total(protocol):>10,}")
        if self.rejected:
            lines += ["", f"{'rejected by reason':<40} {'count':>8}"]
            for (protocol, reason), n in sorted(self.rejected.items()):
                lines.append(f"{protocol + ': ' + reason:<40} {n:>8,}")
        lines += ["", f"unregistered devices seen: {self.unregistered_devices}", "",
                  *self.delivery()]
        return "\n".join(lines)
