"""Storage fixtures: a migrated engine on SQLite (always) and on PostgreSQL when
``ASSAY_TEST_POSTGRES_URL`` is set (``make test-postgres`` starts a local server and sets it).

Each PostgreSQL test gets a database of its own, created and dropped around it.
"""

from __future__ import annotations

import os
import uuid

import pytest

PG_URL = os.environ.get("ASSAY_TEST_POSTGRES_URL", "").strip()
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def _pg_database(url: str):
    """(url of a fresh database, drop callback) on the server of ``url``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from service.store.db import normalise_url

    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    name = f"assay_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    fresh = make_url(normalise_url(url)).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return fresh, drop


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'assay.db'}"
        return
    url, drop = _pg_database(PG_URL)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def engine(db_url):
    from service.store.db import make_engine
    from service.store.migrate import upgrade

    eng = make_engine(url=db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine):
    from service.store.db import session_factory

    return session_factory(engine)


@pytest.fixture
def two_orgs(sessions):
    """Two organisations (ids) committed."""
    from service.store import repo
    from service.store.db import session_scope

    with session_scope(sessions) as s:
        a = repo.get_or_create_org(s, "org-a").id
        b = repo.get_or_create_org(s, "org-b").id
    return a, b
