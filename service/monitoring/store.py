"""Monitor and window-history tables and their repository functions (migration 0101_monitoring).

Monitors made by the CLI have ``org_id`` NULL ("local"); API monitors belong to one organisation and
every query here filters on it, so another organisation's monitor is indistinguishable from a
missing one (404). A window is unique per (monitor, source file sha256): a file is processed once,
whoever (CLI, scheduler, a restarted server) gets to it first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.store.db import Base, utcnow


class Monitor(Base):
    __tablename__ = "monitors"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_monitor_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"), index=True, nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    profile: Mapped[str | None] = mapped_column(Text, nullable=True)
    profile_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reference_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MonitorWindow(Base):
    __tablename__ = "monitor_windows"
    __table_args__ = (UniqueConstraint("monitor_id", "source_sha256", name="uq_window_source"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(1000))
    source_sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    scores_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    alert_status: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    labels_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def get_monitor(session: Session, org_id: str | None, monitor_id: str) -> Monitor | None:
    row = session.get(Monitor, monitor_id)
    return row if row is not None and row.org_id == org_id else None


def find_monitor(session: Session, org_id: str | None, name: str) -> Monitor | None:
    q = select(Monitor).where(Monitor.name == name)
    q = q.where(Monitor.org_id.is_(None)) if org_id is None else q.where(Monitor.org_id == org_id)
    return session.scalar(q)


def list_monitors(session: Session, org_id: str | None = None, *, all_orgs: bool = False) -> list[Monitor]:
    q = select(Monitor)
    if not all_orgs:
        q = q.where(Monitor.org_id.is_(None)) if org_id is None else q.where(Monitor.org_id == org_id)
    return list(session.scalars(q.order_by(Monitor.created_at, Monitor.id)))


def processed_sources(session: Session, monitor_id: str) -> set[str]:
    """sha256 of every file this monitor has taken (succeeded, running or failed)."""
    q = select(MonitorWindow.source_sha256).where(MonitorWindow.monitor_id == monitor_id)
    return set(session.scalars(q))


def window_for_source(session: Session, monitor_id: str, sha256: str) -> MonitorWindow | None:
    """The window that took the file with this sha256, if any."""
    q = select(MonitorWindow).where(
        MonitorWindow.monitor_id == monitor_id, MonitorWindow.source_sha256 == sha256
    )
    return session.scalar(q)


def next_seq(session: Session, monitor_id: str) -> int:
    return (
        int(
            session.scalar(select(func.max(MonitorWindow.seq)).where(MonitorWindow.monitor_id == monitor_id))
            or 0
        )
        + 1
    )


def windows(
    session: Session, monitor_id: str, *, limit: int | None = None, before_seq: int | None = None
) -> list[MonitorWindow]:
    """Windows in order (oldest first); the last ``limit`` (before ``before_seq``) when given."""
    q = select(MonitorWindow).where(MonitorWindow.monitor_id == monitor_id).order_by(MonitorWindow.seq.desc())
    if before_seq is not None:
        q = q.where(MonitorWindow.seq < before_seq)
    if limit is not None:
        q = q.limit(limit)
    return list(reversed(list(session.scalars(q))))


def get_window(session: Session, monitor_id: str, ref: str | int) -> MonitorWindow | None:
    """A window by id or by sequence number."""
    q = select(MonitorWindow).where(MonitorWindow.monitor_id == monitor_id)
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        q = q.where(MonitorWindow.seq == int(ref))
    else:
        q = q.where(MonitorWindow.id == ref)
    return session.scalar(q)


__all__ = [
    "Monitor",
    "MonitorWindow",
    "find_monitor",
    "get_monitor",
    "get_window",
    "list_monitors",
    "new_id",
    "next_seq",
    "processed_sources",
    "window_for_source",
    "windows",
]
