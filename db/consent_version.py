"""A cheap fingerprint of the consent registry, so the engine and the gateway
re-read it within a second of any change (a withdrawal stops tracking at
once) without loading 100k rows every second."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.tables import Consent


def consent_version(session: Session) -> tuple[int, float, int, float]:
    """(consents, newest given, withdrawn, newest withdrawal): any give or
    withdrawal changes it; consent rows are never deleted."""
    count, given, withdrawn, last_withdrawn = session.execute(select(
        func.count(Consent.id), func.max(Consent.given_at),
        func.count(Consent.withdrawn_at), func.max(Consent.withdrawn_at))).one()
    return int(count), float(given or 0.0), int(withdrawn), float(last_withdrawn or 0.0)
