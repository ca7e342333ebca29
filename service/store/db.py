"""Database engine, session factory and the declarative ``Base`` shared by every table.

SQLite file ``<ASSAY_DATA_DIR>/assay.db`` by default (WAL journal, foreign keys on, busy timeout),
PostgreSQL when ``ASSAY_DATABASE_URL`` is set. Tables of other packages (e.g. monitoring) subclass
:class:`Base` and ship their own Alembic version file in ``service/store/migrations/versions/``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from service.config import Settings
from service.errors import InputError


class Base(DeclarativeBase):
    """Declarative base for every Assay table."""


def utcnow() -> dt.datetime:
    """Timezone-aware current UTC time (stored as naive UTC by SQLite)."""
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(settings: Settings | None = None, *, url: str | None = None) -> Engine:
    """An engine for ``url`` or ``settings.sqlalchemy_url()``; creates the data folder for SQLite."""
    settings = settings or Settings()
    url = url or settings.sqlalchemy_url()
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and ":memory:" not in url:
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(normalise_url(url), pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise InputError(
            f"not a usable database URL ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            field="ASSAY_DATABASE_URL",
            expected="postgresql://user:password@host:5432/dbname, or unset for SQLite under ASSAY_DATA_DIR",
        ) from None


def open_database(settings: Settings) -> Engine:
    """Engine + migrations for a server or CLI command; an unreachable database is a clear error."""
    from service.store.migrate import upgrade

    engine = make_engine(settings)
    try:
        upgrade(engine)
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise InputError(
            f"cannot open the database {where} ({str(exc.orig).strip().splitlines()[0]})",
            field="ASSAY_DATABASE_URL" if settings.database_url else "ASSAY_DATA_DIR",
            expected="a reachable database the server may write to",
        ) from None
    return engine


def normalise_url(url: str) -> str:
    """``postgresql://`` or ``postgres://`` → the psycopg 3 driver (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A ``sessionmaker`` bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """``with session_scope(f) as s:`` commits on success, rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


__all__ = [
    "Base",
    "make_engine",
    "normalise_url",
    "open_database",
    "session_factory",
    "session_scope",
    "utcnow",
]
