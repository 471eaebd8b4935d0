"""The one interface every delivery channel implements, and the choice of
adapters from the configuration.

Why one interface: the notifier's loop (claim, send, mark) must not change
when an SMS gateway or another mail relay is plugged in; an adapter only
says "delivered" (returns) or "not delivered, and whether trying again can
help" (``DeliveryError``).

Which adapter handles what:

- ``notifier_adapter = "record"`` (the demo): every notice goes to
  ``<data_dir>/notices.jsonl``.
- ``notifier_adapter = "smtp"``: e-mail goes through ``smtp_host``; SMS and
  "record" rows (guardians without an e-mail) still go to the record file,
  which is the hand-off point for an SMS gateway until one is plugged in
  here. Those rows count as sent once recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from models.notices import Outgoing

if TYPE_CHECKING:
    from console.config import Config


class DeliveryError(Exception):
    """A notice was not delivered. ``permanent``: trying again cannot help
    (a refused address, a 5xx reply), so the notice is dead-lettered for an
    operator; otherwise it is retried on the schedule."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __str__(self) -> str:
        return self.message


class Adapter(Protocol):
    """Delivers notices of its ``channels``. ``send`` returns once the
    notice is handed over for good and raises ``DeliveryError`` otherwise;
    it must end in bounded time (the notifier waits for it)."""

    channels: frozenset[str]

    def send(self, notice: Outgoing) -> None: ...


class Routing:
    """Several adapters as one: each notice goes to the first adapter that
    handles its channel; a channel nobody handles is a permanent failure
    (named, never dropped)."""

    def __init__(self, adapters: Iterable[Adapter]) -> None:
        self.adapters = list(adapters)
        self.channels = frozenset(c for a in self.adapters for c in a.channels)

    def send(self, notice: Outgoing) -> None:
        for adapter in self.adapters:
            if notice.channel in adapter.channels:
                adapter.send(notice)
                return
        raise DeliveryError(f"no adapter delivers channel {notice.channel!r}", permanent=True)


def adapter_for(config: Config, data_dir: Path | None = None) -> Adapter:
    """The adapter ``config.notifier_adapter`` names (see the module's doc)."""
    # Imported here: both modules import DeliveryError from this one.
    from console.notify.recording import RecordingAdapter
    from console.notify.smtp import SmtpAdapter

    record = RecordingAdapter(Path(data_dir or config.data_dir) / "notices.jsonl")
    if config.notifier_adapter == "record":
        return record
    if config.notifier_adapter == "smtp":
        return Routing([SmtpAdapter.from_config(config), record])
    raise ValueError(f"notifier_adapter: 'record' or 'smtp', not {config.notifier_adapter!r}")
