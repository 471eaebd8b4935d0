"""Consent at the engine: no consent, no service.

The engine holds the consent registry in memory (``models.consent``) and
re-reads it within a second of any change. A child with no consent in
force is not tracked: their fixes are dropped before the tracker and what
was known of their whereabouts is forgotten at once. A child tracked for
routine notices only gets no emergency alerts (SOS, zone exit...). Both are
counted, so a refusal the law requires is visible, never silent.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from db import consent as db_consent
from db.consent_version import consent_version
from models.consent import ConsentBook, Service

log = logging.getLogger(__name__)


class ConsentGate:
    def __init__(self, sessions: sessionmaker[Session], child_ids: list[int],
                 device_slots: dict[str, int]) -> None:
        self.sessions = sessions
        self.child_ids = child_ids  # slot -> child id
        self.device_slots = device_slots
        self.book = ConsentBook()
        self.version: tuple[int, int, float] | None = None
        self.untracked_devices: frozenset[str] = frozenset()
        self.untracked_slots: frozenset[int] = frozenset()
        self.dropped: Counter[str] = Counter()  # untracked_fixes, no_consent_alarms

    def refresh(self, forget: Callable[[list[int]], None] = lambda _slots: None) -> bool:
        """Re-read the registry if it changed; ``forget`` gets the slots
        whose consent just ended. Store trouble keeps the book it had."""
        try:
            with self.sessions() as s:
                version = consent_version(s)
                if version == self.version:
                    return False
                book = db_consent.book(s)
        except Exception as exc:
            log.warning("could not re-read consents; keeping the ones known: %s", exc)
            return False
        untracked = frozenset(slot for slot, child in enumerate(self.child_ids)
                              if not book.tracked(child))
        ended = sorted(untracked - self.untracked_slots)
        first = self.version is None
        self.book, self.version, self.untracked_slots = book, version, untracked
        self.untracked_devices = frozenset(d for d, slot in self.device_slots.items()
                                           if slot in untracked)
        if ended and not first:  # at start the tracker knows no one yet
            log.info("consent ended for %d children: no longer tracked", len(ended))
            forget(ended)
        return True

    def keep(self, device_ids: list[str]) -> np.ndarray | None:
        """The rows of a batch whose child may be tracked (None: all of them)."""
        if not self.untracked_devices:
            return None
        keep = np.fromiter((d not in self.untracked_devices for d in device_ids), dtype=bool,
                           count=len(device_ids))
        dropped = len(device_ids) - int(keep.sum())
        if not dropped:
            return None
        self.dropped["untracked_fixes"] += dropped
        return keep

    def emergency(self, slot: int) -> bool:
        """May an emergency alert be raised for the child in ``slot``?"""
        return self.allows(slot, "emergency")

    def allows(self, slot: int, service: Service) -> bool:
        """May ``service`` act for the child in ``slot``? A refusal is counted
        (``no_consent_alarms`` for emergencies, ``no_consent_<service>``)."""
        if 0 <= slot < len(self.child_ids) and self.book.allows(self.child_ids[slot], service):
            return True
        self.dropped["no_consent_alarms" if service == "emergency"
                     else f"no_consent_{service}"] += 1
        return False
