"""The demo's adapter: each notice becomes one JSON line in
``<data_dir>/notices.jsonl``.

Why a file: the demo has no mail server, yet an operator (or a test) must
see what a guardian would have received; with SMTP configured it is also
where SMS notices wait for a gateway. The line is flushed and fsynced
before ``send`` returns, since returning means "delivered": the notice is
then marked sent and never written again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from console.notify.adapters import DeliveryError
from models.notices import CHANNELS, Outgoing


class RecordingAdapter:
    channels: frozenset[str] = frozenset(CHANNELS)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def send(self, notice: Outgoing) -> None:
        line = json.dumps({
            "at": round(time.time(), 3), "id": notice.id, "key": notice.key,
            "child": notice.child_token, "kind": notice.kind, "zone": notice.zone,
            "channel": notice.channel, "address": notice.address,
            "subject": notice.subject, "body": notice.body, "event_at": notice.event_at,
            "attempt": notice.attempts + 1,
        }, ensure_ascii=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # a full disk empties out again; retry
            raise DeliveryError(f"cannot record notice: {exc}", permanent=False) from exc
