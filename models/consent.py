"""Consent to locate a child, Qt-free and store-free.

u-Seoul locates children under Korea's Location Information Act: nothing is
collected without consent (§15), a child under 14 needs a guardian's consent
(§25), and a withdrawal deletes what was collected (§24). The rules live
here so that the store, the command line, the engine and the gateway apply
the same ones; ``ConsentBook`` is the in-memory answer the engine and the
gateway consult per fix, rebuilt from the store's rows in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, get_args

Service = Literal["routine", "location", "emergency"]
# routine: arrival/departure notices; location: a guardian's location check;
# emergency: SOS, zone-exit and lost-signal alerts.
SERVICES: tuple[Service, ...] = get_args(Service)

AgeBand = Literal["under14", "14plus"]
AGE_BANDS: tuple[AgeBand, ...] = get_args(AgeBand)

# An open alert's case keeps the fixes from this long before it opened: the
# lead-up is what operators and police look at. Withdrawal leaves them to
# the case; retention deletes them when it closes.
CASE_LEAD_S = 30 * 60.0


def parse_services(value: str | Iterable[str]) -> frozenset[Service]:
    """Services from a comma-separated string or a list; an unknown one is an
    error, never dropped, since a typo must not narrow or widen a consent."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {v.strip() for v in items if v.strip()}
    unknown = sorted(names - set(SERVICES))
    if unknown:
        raise ValueError(f"services: unknown {', '.join(unknown)}; "
                         f"services are {', '.join(SERVICES)}")
    if not names:
        raise ValueError(f"services: a consent names at least one of {', '.join(SERVICES)}")
    return frozenset(names)  # type: ignore[arg-type]


def format_services(services: Iterable[str]) -> str:
    """The stored form: comma-separated in ``SERVICES`` order, so equal
    consents read the same in the registry and in the usage log."""
    chosen = set(services)
    return ",".join(s for s in SERVICES if s in chosen)


def check_age_band(age_band: str) -> AgeBand:
    if age_band not in AGE_BANDS:
        raise ValueError(f"age band must be one of {', '.join(AGE_BANDS)}, not {age_band!r}")
    return age_band  # type: ignore[return-value]


def check_consent(services: str | Iterable[str], age_band: str,
                  guardian_id: int | None) -> frozenset[Service]:
    """The services of a valid consent, or ValueError naming what is wrong.

    Under 14 only a guardian can consent (§25), so the guardian is required;
    from 14 the child may consent alone, or a guardian for them.
    """
    band = check_age_band(age_band)
    chosen = parse_services(services)
    if band == "under14" and guardian_id is None:
        raise ValueError("guardian: a child under 14 needs a guardian's consent "
                         "(Location Information Act §25)")
    return chosen


class ConsentBook:
    """Who may be located, for what: the union of every consent in force per
    child (any one guardian's consent suffices; several may consent to
    different services). Immutable, so the engine can swap in a new book
    while the gateway still reads the old one."""

    __slots__ = ("_services",)

    def __init__(self, services: Mapping[int, frozenset[Service]] | None = None) -> None:
        self._services: dict[int, frozenset[Service]] = {
            child: frozenset(s) for child, s in (services or {}).items() if s}

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, str | Iterable[str]]]) -> ConsentBook:
        """From ``(child_id, services)`` rows of consents in force; services
        as stored (comma-separated) or as a list."""
        merged: dict[int, set[Service]] = {}
        for child_id, services in rows:
            merged.setdefault(child_id, set()).update(parse_services(services))
        return cls({child: frozenset(s) for child, s in merged.items()})

    def __len__(self) -> int:
        """Children with a consent in force."""
        return len(self._services)

    def services(self, child_id: int) -> frozenset[Service]:
        return self._services.get(child_id, frozenset())

    def allows(self, child_id: int, service: str) -> bool:
        """Whether ``service`` may run for the child. An unknown service is a
        programming error and raises, rather than quietly refusing alerts."""
        if service not in SERVICES:
            raise ValueError(f"service must be one of {', '.join(SERVICES)}, not {service!r}")
        return service in self._services.get(child_id, frozenset())

    def tracked(self, child_id: int) -> bool:
        """Whether any consent is in force: the child's fixes may be taken."""
        return child_id in self._services

    def refused_devices(self, device_children: Mapping[str, int | None],
                        service: str | None = None) -> list[str]:
        """Device ids whose fixes must be refused, sorted: the child has no
        consent in force (or, given ``service``, none to that service). A
        device registered to no child locates nobody anyone consented for,
        so it is refused too."""
        if service is not None and service not in SERVICES:
            raise ValueError(f"service must be one of {', '.join(SERVICES)}, not {service!r}")
        book = self._services
        return sorted(
            device for device, child in device_children.items()
            if child is None or child not in book
            or (service is not None and service not in book[child]))

    def updated(self, child_id: int, services: Iterable[str]) -> ConsentBook:
        """A new book where the child has exactly ``services`` (none: not
        tracked), for applying one change without reloading 100k rows; the
        caller passes the union of the child's consents now in force."""
        merged = dict(self._services)
        chosen = frozenset(services)
        if chosen:
            merged[child_id] = parse_services(chosen)
        else:
            merged.pop(child_id, None)
        return ConsentBook(merged)

    def withdrawn(self, child_id: int) -> ConsentBook:
        """A new book without the child: a withdrawal ends every consent, and
        the gateway must refuse the child's devices from that moment."""
        return self.updated(child_id, ())
