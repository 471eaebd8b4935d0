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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Zone(Base):
    """A u-Children Safety Zone: a circle around a school or park."""

    __tablename__ = "zones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # school | park
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)


class Child(Base):
    __tablename__ = "children"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"))


class Device(Base):
    """A registered device; ``id`` is the identifier the device sends."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # watch | phone | tag
    child_id: Mapped[int | None] = mapped_column(ForeignKey("children.id"), index=True)
    registered_at: Mapped[float] = mapped_column(Float)


class Fix(Base):
    """A raw fix as the gateway accepted it; expires on the retention schedule."""

    __tablename__ = "fixes"
    __table_args__ = (Index("ix_fixes_device_t", "device_id", "t"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    t: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed: Mapped[float] = mapped_column(Float)
    bearing: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float] = mapped_column(Float)
    battery: Mapped[int] = mapped_column(SmallInteger)
    flags: Mapped[int] = mapped_column(SmallInteger)


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    priority: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[str] = mapped_column(String(16), index=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"))
    device_id: Mapped[str] = mapped_column(String(64))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    place: Mapped[str] = mapped_column(String(80))
    zone: Mapped[str] = mapped_column(String(120), default="")
    position_is_last_known: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[float] = mapped_column(Float)
    acked_by: Mapped[str | None] = mapped_column(String(64))
    acked_at: Mapped[float | None] = mapped_column(Float)


class AlertAction(Base):
    """Append-only history of every command applied to an alert."""

    __tablename__ = "alert_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)


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
