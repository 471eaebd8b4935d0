"""How long each kind of stored data may be kept (Qt- and store-free).

Raw fixes are routine and go after a week; what documents an incident stays
with its case until the case has been closed for ``case_hold_days``; the
location-usage log (§16(2)) and the access log (PIPA) are kept for their
legal periods. ``db.retention`` applies a policy; the recorder runs it
hourly with the installation's settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

DAY_S = 86400.0
CASE_LEAD_S = 1800.0  # a case keeps the half hour before its alert opened
USAGE_LEGAL_MIN_DAYS = 183.0  # Location Information Act §16(2): at least six months
ACCESS_LEGAL_MIN_DAYS = 365.0  # PIPA safety measures: at least a year (two for large systems)


class RetentionSettings(Protocol):
    """What ``from_config`` reads (``console.config.Config`` has it)."""

    fix_retention_days: float
    usage_keep_days: float
    access_keep_days: float
    case_hold_days: float
    tape_keep_days: float
    data_dir: Path


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Periods in seconds. ``evidence_dir`` is the only folder whose files a
    purge deletes: an evidence row naming a file elsewhere loses its row,
    never the file (a path in the store is not trusted to be ours)."""

    fix_s: float
    usage_s: float
    access_s: float
    case_hold_s: float
    case_lead_s: float = CASE_LEAD_S
    evidence_dir: Path | None = None
    tape_s: float = 7 * DAY_S  # the bus tape (``db.tape``): whole hourly files

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "evidence_dir":
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"retention {f.name} must be a finite number, not {value!r}")
            if value < 0 or (value == 0 and f.name != "case_lead_s"):
                # zero would mean "delete everything now": a typo, not a policy
                raise ValueError(f"retention {f.name} must be more than 0, not {value!r}")

    @classmethod
    def from_config(cls, cfg: RetentionSettings) -> RetentionPolicy:
        return cls(fix_s=cfg.fix_retention_days * DAY_S, usage_s=cfg.usage_keep_days * DAY_S,
                   access_s=cfg.access_keep_days * DAY_S, case_hold_s=cfg.case_hold_days * DAY_S,
                   evidence_dir=Path(cfg.data_dir) / "evidence",
                   tape_s=cfg.tape_keep_days * DAY_S)

    def concerns(self) -> list[str]:
        """Settings below a legal minimum, or keeping raw positions longer
        than ``fix_s`` allows, in words for the log (they are applied all the
        same: the law may have changed, the log says so)."""
        out = []
        if self.usage_s < USAGE_LEGAL_MIN_DAYS * DAY_S:
            out.append(f"the location-usage log is kept {self.usage_s / DAY_S:g} days, less "
                       f"than the {USAGE_LEGAL_MIN_DAYS:g} the Location Information Act asks")
        if self.access_s < ACCESS_LEGAL_MIN_DAYS * DAY_S:
            out.append(f"the access log is kept {self.access_s / DAY_S:g} days, less than "
                       f"the {ACCESS_LEGAL_MIN_DAYS:g} PIPA asks")
        if self.tape_s > self.fix_s:
            out.append(f"the bus tape keeps raw positions {self.tape_s / DAY_S:g} days, longer "
                       f"than the {self.fix_s / DAY_S:g} days raw fixes are kept")
        return out


@dataclass(slots=True)
class PurgeReport:
    """What one purge removed, kind by kind (counts only). ``files_left``:
    evidence files named outside the evidence folder, left on disk;
    ``usage_error``: why the usage log was not purged ("" when it was)."""

    fixes: int = 0
    events: int = 0
    access: int = 0
    usage: int = 0
    evidence: int = 0
    evidence_files: int = 0
    files_left: int = 0
    usage_error: str = ""

    @property
    def removed(self) -> int:
        return self.fixes + self.events + self.access + self.usage + self.evidence

    def detail(self) -> str:
        """One line for the "purge" usage record and the recorder's log."""
        text = (f"fixes {self.fixes}, events {self.events}, access {self.access}, "
                f"usage {self.usage}, evidence {self.evidence} ({self.evidence_files} files)")
        if self.files_left:
            text += f"; {self.files_left} files outside the evidence folder left on disk"
        if self.usage_error:
            text += f"; {self.usage_error}"
        return text
