"""What the console may show of a child and a device, Qt-free.

A device id is the device's only credential (the gateway accepts whatever
a device sends under it), so a screen, a screenshot or a shoulder-surfer
must never get all of it: consoles show the last four characters, enough
to tell two devices apart on a call with a guardian. Children are tokens;
their identity travels only in a ``ChildDetail`` under a granted reveal.

The console offers what the engine's rules (``models.privacy``: reason
lengths, which alerts may be disclosed) would allow, from the same
constants; the engine checks them again.

The console's usage-log export is here too: a pure function of the rows
the engine sent, oldest first, its cells made safe for the spreadsheet an
auditor opens it in (as ``db.usage_log.export_csv`` does for the CLI).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from models.messages import AlertView
from models.privacy import EMERGENCY_KINDS, MAX_NOTICE, MAX_REASON, MIN_NOTICE, MIN_REASON
from models.usage import UsageEntry

MASK = "••••"
SHOWN_TAIL = 4  # characters of a device id a console shows

# The engine's own limits (``models.privacy``), re-exported for the widgets.
__all__ = ["EMERGENCY_KINDS", "EXPORT_COLUMNS", "MAX_NOTICE", "MAX_REASON", "MIN_NOTICE",
           "MIN_REASON", "USAGE_COLUMNS", "local_time", "mask_device", "may_disclose",
           "reason_ok", "usage_cells", "usage_csv", "write_usage_csv"]

USAGE_COLUMNS = ("seq", "time", "actor", "child", "action", "purpose", "alert", "detail")
# The export adds the exact stored time, so the chain can be re-verified from the file.
EXPORT_COLUMNS = (*USAGE_COLUMNS, "at_epoch")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def mask_device(device_id: str) -> str:
    """"•••• 4821": the tail of a device id, never more than half of it.

    A short id (a test rig's "8601") shows less than four characters, since
    four of four would be the whole credential; an empty id stays empty.
    """
    if not device_id:
        return ""
    keep = min(SHOWN_TAIL, len(device_id) // 2)
    return f"{MASK} {device_id[-keep:]}" if keep else MASK


def reason_ok(text: str, minimum: int = MIN_REASON, maximum: int = MAX_REASON) -> bool:
    """Whether ``text`` (trimmed) is long enough to mean something and fits its column."""
    n = len(text.strip())
    return minimum <= n <= maximum


def may_disclose(alert: AlertView) -> bool:
    """An open emergency alert: the only case a disclosure may be bound to."""
    return alert.kind in EMERGENCY_KINDS and alert.state != "resolved"


def local_time(t: float, with_date: bool = True) -> str:
    """An epoch time as the control room reads it: local, to the second."""
    fmt = "%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S"
    return datetime.fromtimestamp(t).strftime(fmt)


def usage_cells(e: UsageEntry) -> tuple[str, ...]:
    """One record as the auditor's table shows it (``USAGE_COLUMNS``)."""
    alert = "" if e.alert_id is None else str(e.alert_id)
    return (str(e.seq), local_time(e.at), e.actor, e.subject, e.action, e.purpose, alert,
            e.detail)


def _cell_safe(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula.

    Purposes and details are typed by operators; "=HYPERLINK(…)" in one
    must reach the auditor as text. The quote is the usual spreadsheet
    convention for "this is text" and is the only change made.
    """
    return "'" + value if value.startswith(_FORMULA_START) else value


def usage_csv(rows: Iterable[UsageEntry]) -> str:
    """The export's text: a header, then one line per record oldest first
    (the order the chain runs), every field whole (the csv module quotes
    commas, quotes and line breaks)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for e in sorted(rows, key=lambda e: e.seq):
        cells = usage_cells(e)
        seq, time_, alert = cells[0], cells[1], cells[6]
        text = [_cell_safe(c) for c in (e.actor, e.subject, e.action, e.purpose)]
        writer.writerow([seq, time_, *text, alert, _cell_safe(e.detail), repr(float(e.at))])
    return out.getvalue()


def write_usage_csv(path: str | Path, rows: Iterable[UsageEntry]) -> int:
    """Write the export as UTF-8 with a BOM (Excel then reads Hangul right),
    readable by its owner only (it names children's tokens and what was done
    with them); returns the number of records written."""
    rows = list(rows)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8-sig", newline="") as fh:
        fh.write(usage_csv(rows))
    return len(rows)
