"""The store's tables (SQLAlchemy 2.0 declarative).

Times are float epoch seconds (UTC): fixes arrive by the hundred thousand
and are compared and batched numerically; a float keeps the hot insert path
free of datetime conversions and is identical on SQLite and PostgreSQL.

Children are pseudonymous everywhere but here: ``Child.token`` is what the
routine map and the alert queue show; the name is only for disclosure flows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Zone(Base):
    """A safety zone (school, park, academy, home or custom): a circle
    (``shape`` empty: centre and ``radius_m``) or a polygon (``shape``: its
    GeoJSON geometry in WGS84; centre and radius then bound it)."""

    __tablename__ = "zones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # models.zones.ZONE_KINDS
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    shape: Mapped[str] = mapped_column(Text, default="", server_default="")
    hours: Mapped[str] = mapped_column(String(40), default="", server_default="")  # "07:00-20:00"
    district: Mapped[str] = mapped_column(String(40), default="", server_default="")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class Change(Base):
    """Every admin change to what the engine and gateway load (zones, the
    roster, timetables, the calendar), in order: each process reloads a
    scope when its newest id moves, and the rows are the change history
    (a zone's row holds its GeoJSON as it became)."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_scope_id", "scope", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))  # zones | roster | timetables | calendar
    key: Mapped[str] = mapped_column(String(64))  # the zone id, child token...
    action: Mapped[str] = mapped_column(String(16))  # add | update | remove
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")


class Child(Base):
    __tablename__ = "children"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))  # the school
    # How the child travels, for unusual-movement alerts: walking | bus
    profile: Mapped[str] = mapped_column(String(12), default="walking", server_default="walking")
    # Enrolment ended (children remove): devices unregistered, history kept
    # under retention, nothing tracked or expected any more.
    removed_at: Mapped[float | None] = mapped_column(Float)


class Device(Base):
    """A registered device; ``id`` is the identifier the device sends."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # watch | phone | tag
    child_id: Mapped[int | None] = mapped_column(ForeignKey("children.id"), index=True)
    registered_at: Mapped[float] = mapped_column(Float, index=True)


class DeviceHolding(Base):
    """Which child held a device when: one row per registration, closed
    (``until``) when the device is unregistered.

    Why: a device's fixes are the child's who held it then, and stay in the
    store after the device leaves the registry (they are history). A
    guardian's withdrawal must delete them all (§24), also those of a
    device unregistered before, and none of another child's who holds the
    device now (``db.consent.withdrawal_scope``). ``devices`` alone forgets
    both the moment a device is removed."""

    __tablename__ = "device_holdings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    since: Mapped[float] = mapped_column(Float)  # the registration (0: before this table)
    until: Mapped[float | None] = mapped_column(Float)  # NULL: registered now


class Fix(Base):
    """A raw fix as the gateway accepted it; expires on the retention schedule.

    On PostgreSQL the table is partitioned by UTC day of ``t`` and its key
    is (id, t) (``db.partitions``, migration 0008): ``id`` still comes from
    one sequence and identifies a row here, but the store does not enforce
    it alone, so code selects fixes by ranges, never loads them by id.
    """

    __tablename__ = "fixes"
    __table_args__ = (Index("ix_fixes_device_t", "device_id", "t"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    t: Mapped[float] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)  # NULL: an SOS with no position
    lon: Mapped[float | None] = mapped_column(Float)
    speed: Mapped[float] = mapped_column(Float)
    bearing: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)  # NULL: the device did not say
    battery: Mapped[int] = mapped_column(SmallInteger)
    flags: Mapped[int] = mapped_column(SmallInteger)
    # The tag reader a tag read came through (the child's breadcrumb); NULL
    # for every fix from GPS or the carrier. No foreign key: a reader removed
    # from the registry must not take its history with it.
    reader_id: Mapped[str | None] = mapped_column(String(64))


class LatestPosition(Base):
    """Each device's newest fix with a position, as ``fixes`` holds it
    (PostgreSQL only: ``db.latest`` says why).

    Why a table: "where is the child now" (a guardian's location check) is
    then one primary-key lookup, not a probe into days of fixes spread over
    day partitions. ``repositories.insert_fixes`` keeps it in step in the
    transaction that stores the fixes, moving a row only forward in device
    time (a fix that arrives late never takes it back); whatever deletes
    fixes (retention, withdrawal) re-derives the rows it touched
    (``db.latest``), so nothing here outlives the fix it came from.
    """

    __tablename__ = "latest_positions"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    t: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed: Mapped[float] = mapped_column(Float)
    bearing: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    battery: Mapped[int] = mapped_column(SmallInteger)
    flags: Mapped[int] = mapped_column(SmallInteger)
    reader_id: Mapped[str | None] = mapped_column(String(64))


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    priority: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[str] = mapped_column(String(16), index=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"))
    device_id: Mapped[str] = mapped_column(String(64))
    lat: Mapped[float | None] = mapped_column(Float)  # NULL: no position known at all
    lon: Mapped[float | None] = mapped_column(Float)
    place: Mapped[str] = mapped_column(String(80))
    zone: Mapped[str] = mapped_column(String(120), default="")
    position_is_last_known: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[float] = mapped_column(Float)
    acked_by: Mapped[str | None] = mapped_column(String(64))
    acked_at: Mapped[float | None] = mapped_column(Float)
    # The breadcrumb when the alert opened (incident data: it stays with the
    # case after raw fixes expire).
    last_reader: Mapped[str | None] = mapped_column(String(64))
    last_reader_at: Mapped[float | None] = mapped_column(Float)
    position_from_reader: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())
    # The lifecycle (models.alerts): the engine keeps the live copy and
    # writes every change here with its history line, in one transaction.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    owner: Mapped[str] = mapped_column(String(64), default="", server_default="")
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_trigger_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    first_trigger_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    hold_reason: Mapped[str] = mapped_column(String(200), default="", server_default="")
    hold_until: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    dispatched_to: Mapped[str] = mapped_column(String(16), default="", server_default="")
    dispatch_ref: Mapped[str] = mapped_column(String(60), default="", server_default="")
    outcome: Mapped[str] = mapped_column(String(24), default="", server_default="")
    resolved_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    steps: Mapped[str] = mapped_column(String(400), default="", server_default="")
    last_note: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    last_actor: Mapped[str] = mapped_column(String(64), default="", server_default="")
    updated_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    ack_due: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    close_due: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    breaches: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    escalated_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    battery: Mapped[int] = mapped_column(SmallInteger, default=-1, server_default="-1")
    battery_trend: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class AlertAction(Base):
    """Append-only history of every command applied to an alert: who, when,
    why (the note), and for a repeated trigger where the child was."""

    __tablename__ = "alert_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    detail: Mapped[str] = mapped_column(String(200), default="", server_default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)


class User(Base):
    """A local account. ``roles`` is a comma-separated subset of
    models.accounts.ROLES; the password is an argon2id hash, never the text."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[str] = mapped_column(String(100))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    created_at: Mapped[float] = mapped_column(Float)


class UserSession(Base):
    """A signed-in console. Only the token's SHA-256 is kept, so a copy of the
    store cannot be used to act as anyone."""

    __tablename__ = "user_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    console: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)


class AccessRecord(Base):
    """Sign-ins, sign-outs and every command the engine refused: who tried
    what, when, and why it was refused (append-only)."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    ok: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(String(300), default="")


class Event(Base):
    """The bus event log: every published body, for audit and replay."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_origin_seq", "origin", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(40))
    origin: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[float] = mapped_column(Float, index=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)


class Reader(Base):
    """An electronic-tag reader in a safety zone: a tag read becomes a fix at
    the reader's position, with the reader's range as its accuracy."""

    __tablename__ = "readers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    range_m: Mapped[float] = mapped_column(Float)
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))


class UnregisteredDevice(Base):
    """Device ids the gateway refused, for the admin to register or ignore."""

    __tablename__ = "unregistered_devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)


class Camera(Base):
    """A CCTV camera (the national CCTV standard data layout, plus what the
    viewers and the ranking need)."""

    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    agency: Mapped[str] = mapped_column(String(120), default="")
    purpose: Mapped[str] = mapped_column(String(60), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    direction_deg: Mapped[float | None] = mapped_column(Float)  # None: unknown / 360° PTZ
    fov_deg: Mapped[float] = mapped_column(Float, default=90.0)
    range_m: Mapped[float] = mapped_column(Float, default=80.0)
    ptz: Mapped[bool] = mapped_column(Boolean, default=False)
    stream_url: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    camera_count: Mapped[int] = mapped_column(Integer, default=1)
    pixels: Mapped[str] = mapped_column(String(40), default="")
    retention_days: Mapped[int | None] = mapped_column(Integer)
    installed: Mapped[str] = mapped_column(String(20), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    data_date: Mapped[str] = mapped_column(String(20), default="")


class Evidence(Base):
    """A frame or clip saved from a camera, linked to the alert it documents."""

    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    kind: Mapped[str] = mapped_column(String(16))  # snapshot | clip
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[float] = mapped_column(Float)
    t_start: Mapped[float] = mapped_column(Float)
    t_end: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))


class Cursor(Base):
    """Where a consumer (engine, recorder) has got to in the gateway's journal
    (``console.journal``): it restarts from here, so nothing acknowledged to
    a device is skipped and nothing applied twice."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[float] = mapped_column(Float)


class Guardian(Base):
    """A parent or legal guardian: who consents for a child, who is told
    when the child's data is provided or disclosed (Location Information
    Act §19(3)), and who may ask where the child is."""

    __tablename__ = "guardians"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str] = mapped_column(String(40), default="", server_default="")
    email: Mapped[str] = mapped_column(String(120), default="", server_default="")
    created_at: Mapped[float] = mapped_column(Float)
    # The location-check token (sha256 hex of it; the token itself is shown
    # once, when issued).
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    token_at: Mapped[float | None] = mapped_column(Float)


class Guardianship(Base):
    """Which guardian answers for which child, and as whom (mother, father,
    grandparent, legal guardian): siblings share guardians."""

    __tablename__ = "guardianships"

    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), primary_key=True)
    guardian_id: Mapped[int] = mapped_column(ForeignKey("guardians.id"), primary_key=True)
    relation: Mapped[str] = mapped_column(String(20), default="", server_default="")


class Consent(Base):
    """One consent given for a child: by whom, when, to which services
    (``models.consent.SERVICES``), and the child's age band (a guardian's
    consent is required under 14). A withdrawal is written on the row,
    never by deleting it: the registry is evidence."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    guardian_id: Mapped[int | None] = mapped_column(ForeignKey("guardians.id"))
    services: Mapped[str] = mapped_column(String(60))  # comma-separated
    age_band: Mapped[str] = mapped_column(String(8))  # under14 | 14plus
    given_at: Mapped[float] = mapped_column(Float)
    recorded_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    withdrawn_at: Mapped[float | None] = mapped_column(Float, index=True)
    withdrawn_by: Mapped[str] = mapped_column(String(64), default="", server_default="")


class UsageRecord(Base):
    """The location-usage log (Location Information Act §16(2)): every reveal,
    history view, trail, location check, export, disclosure and deletion.
    Append-only and hash-chained: ``hash`` covers the record and the hash
    before it, so an edited or deleted record breaks the chain there."""

    __tablename__ = "usage_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(32), index=True)  # child token, or "" for none
    action: Mapped[str] = mapped_column(String(24))
    purpose: Mapped[str] = mapped_column(String(200), default="", server_default="")
    alert_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(500), default="", server_default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class UsageHead(Base):
    """The chain's one head row: the last record's number and hash (so that
    deleting the newest record is detected too) and the anchor the chain
    starts from after retention removed its oldest records. Appending
    updates this row first, which serializes writers on both stores."""

    __tablename__ = "usage_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    base_seq: Mapped[int] = mapped_column(BigInteger)
    base_hash: Mapped[str] = mapped_column(String(64))


class Reveal(Base):
    """A request to see a child's identity or history, and its outcome: with
    an open alert the alert's owner is granted at once for a while; anything
    else waits for a supervisor (four-eyes). A grant expires."""

    __tablename__ = "reveals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    user: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))
    alert_id: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(12))  # pending | granted | refused
    requested_at: Mapped[float] = mapped_column(Float)
    decided_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    decided_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    expires_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class Disclosure(Base):
    """A disclosure of a child's data to police or fire (§29), bound to an
    emergency alert, approved by a supervisor, with the guardian notice
    §19(3) requires recorded on it."""

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    agency: Mapped[str] = mapped_column(String(16))  # police | fire
    reason: Mapped[str] = mapped_column(String(200))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(12))  # pending | approved | refused
    decided_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    decided_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    guardian_notice: Mapped[str] = mapped_column(String(300), default="", server_default="")
    guardian_notified_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class TimetableSlot(Base):
    """Where a child is expected on a weekday: at school or an academy from
    ``start_min`` to ``end_min`` (minutes after local midnight)."""

    __tablename__ = "timetable_slots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # 0 Monday .. 6 Sunday
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    kind: Mapped[str] = mapped_column(String(10))  # school | academy
    start_min: Mapped[int] = mapped_column(SmallInteger)
    end_min: Mapped[int] = mapped_column(SmallInteger)


class CalendarDay(Base):
    """A day without school: a city-wide holiday (``zone_id`` NULL) beyond
    the built-in Korean public holidays, or one school's closure."""

    __tablename__ = "calendar_days"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[str] = mapped_column(String(10), index=True)  # YYYY-MM-DD, local
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))
    name: Mapped[str] = mapped_column(String(80))


class TimetableException(Base):
    """A one-off change to one child's day: absent (sick day: nothing
    expected) or a trip (nothing expected at school; expected at
    ``zone_id`` from ``start_min`` to ``end_min`` when given)."""

    __tablename__ = "timetable_exceptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    day: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(10))  # absent | trip
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))
    start_min: Mapped[int | None] = mapped_column(SmallInteger)
    end_min: Mapped[int | None] = mapped_column(SmallInteger)
    note: Mapped[str] = mapped_column(String(200), default="", server_default="")


class Notice(Base):
    """The notification outbox: one message to one guardian, with its
    delivery state. ``key`` makes the engine's repeats (a restart replaying
    the journal) fold into the row already there."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_state_next_at", "state", "next_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    guardian_id: Mapped[int | None] = mapped_column(ForeignKey("guardians.id"))
    kind: Mapped[str] = mapped_column(String(20))  # models.notices.NOTICE_KINDS
    zone: Mapped[str] = mapped_column(String(120), default="", server_default="")
    event_at: Mapped[float] = mapped_column(Float)
    channel: Mapped[str] = mapped_column(String(10))  # email | record | sms
    address: Mapped[str] = mapped_column(String(120))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(10))  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    next_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str] = mapped_column(String(300), default="", server_default="")


class LocationCheck(Base):
    """A guardian's current-location request and what was answered."""

    __tablename__ = "location_checks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    guardian_id: Mapped[int] = mapped_column(ForeignKey("guardians.id"), index=True)
    child_id: Mapped[int | None] = mapped_column(ForeignKey("children.id"))
    outcome: Mapped[str] = mapped_column(String(16))  # answered | no_fix | no_consent
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    place: Mapped[str] = mapped_column(String(80), default="", server_default="")
    fix_age_s: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
