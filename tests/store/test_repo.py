"""Repositories and migrations on SQLite and (with ASSAY_TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

import hashlib
import threading

import pytest
from sqlalchemy import inspect, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from service.store import repo
from service.store.db import session_scope
from service.store.models import AuditJob, AuditLogEntry

CORE_TABLES = {"organisations", "api_keys", "artifacts", "audit_jobs", "audit_log"}


def _table_of(obj, type_):
    if type_ == "table":
        return obj.name
    table = getattr(obj, "table", None)
    return getattr(table, "name", None)


def test_migrations_create_exactly_the_models(engine):
    """Alembic's own autogenerate comparison: the migrated schema has no drift from the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from service.store.db import Base

    def include(obj, name, type_, reflected, compare_to):
        return _table_of(obj if obj is not None else compare_to, type_) in CORE_TABLES

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include})
        diffs = compare_metadata(ctx, Base.metadata)
    assert diffs == []
    assert set(inspect(engine).get_table_names()) >= CORE_TABLES


def test_upgrade_is_idempotent(engine):
    from service.store.migrate import upgrade

    with engine.connect() as conn:
        before = {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}
    upgrade(engine)
    upgrade(engine)
    with engine.connect() as conn:
        after = {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}
    assert "0003_job_heartbeat" in before and before == after


def test_keys_store_only_a_salted_hash_and_verify(sessions, two_orgs):
    a, _ = two_orgs
    with session_scope(sessions) as s:
        new = repo.create_key(s, a, "auditor", label="ci")
        other = repo.create_key(s, a, "auditor")
    prefix, key_id, secret = new.key.split("_", 2)
    assert prefix == "assay" and key_id == new.key_id
    with sessions() as s:
        row = repo.verify_key(s, new.key)
        assert row is not None and (row.org_id, row.role, row.label) == (a, "auditor", "ci")
        assert row.hash == hashlib.sha256(bytes.fromhex(row.salt) + secret.encode()).hexdigest()
        assert secret not in (row.hash, row.salt)
        assert row.salt != repo.verify_key(s, other.key).salt  # a salt per key
        for bad in (
            new.key[:-1] + ("A" if new.key[-1] != "A" else "B"),  # wrong secret
            f"assay_{other.key_id}_{secret}",  # another key's id with this secret
            new.key.replace("assay_", "other_", 1),
            "assay_nope",
            "",
        ):
            assert repo.verify_key(s, bad) is None, bad
    with session_scope(sessions) as s:
        from service.store.db import utcnow

        s.get(type(row), key_id).revoked_at = utcnow()
    with sessions() as s:
        assert repo.verify_key(s, new.key) is None
        assert repo.verify_key(s, other.key) is not None
    with pytest.raises(Exception, match="unknown role 'root'"), session_scope(sessions) as s:
        repo.create_key(s, a, "root")


def test_every_getter_is_scoped_to_the_organisation(sessions, two_orgs):
    a, b = two_orgs
    with session_scope(sessions) as s:
        art, created = repo.upsert_artifact(
            s, org_id=a, kind="dataset", sha256="0" * 64, size=10, filename="x.csv", fmt="csv", meta={}
        )
        assert created
        job = AuditJob(id=repo.new_id("aud"), org_id=a, status="queued", spec={"x": 1}, attempts=0)
        s.add(job)
        key = repo.create_key(s, a, "viewer")
    with sessions() as s:
        assert repo.get_artifact(s, a, "dataset", art.id) is not None
        assert repo.get_artifact(s, b, "dataset", art.id) is None
        assert repo.get_artifact(s, a, "model", art.id) is None  # right org, wrong kind
        assert repo.get_job(s, a, job.id) is not None and repo.get_job(s, b, job.id) is None
        assert repo.get_key(s, a, key.key_id) is not None and repo.get_key(s, b, key.key_id) is None
        assert repo.list_artifacts(s, b, "dataset", limit=10, offset=0) == ([], 0)
        assert repo.list_jobs(s, b, limit=10, offset=0) == ([], 0)
        assert [k.id for k in repo.list_keys(s, b)] == []


def test_same_bytes_same_id_per_organisation(sessions, two_orgs):
    a, b = two_orgs
    sha = hashlib.sha256(b"abc").hexdigest()
    kw = {"kind": "dataset", "sha256": sha, "size": 3, "fmt": "csv", "meta": {}}
    with session_scope(sessions) as s:
        first, c1 = repo.upsert_artifact(s, org_id=a, filename="one.csv", **kw)
        again, c2 = repo.upsert_artifact(s, org_id=a, filename="two.csv", **kw)
        theirs, c3 = repo.upsert_artifact(s, org_id=b, filename="one.csv", **kw)
        model, c4 = repo.upsert_artifact(s, org_id=a, filename="m", **{**kw, "kind": "model"})
    assert (c1, c2, c3, c4) == (True, False, True, True)
    assert first.id == again.id and again.filename == "one.csv"
    assert len({first.id, theirs.id, model.id}) == 3
    assert first.id.startswith("ds_") and model.id.startswith("mdl_")
    # the database itself refuses a second row for the same (organisation, kind, bytes)
    from service.store.models import Artifact

    with pytest.raises(IntegrityError), session_scope(sessions) as s:
        s.add(Artifact(id="ds_dupe", org_id=a, kind="dataset", sha256=sha, size=3, format="csv", meta={}))


def test_sizes_over_4_gib_round_trip(sessions, two_orgs):
    a, _ = two_orgs
    size = 5 * 2**30
    with session_scope(sessions) as s:
        art, _ = repo.upsert_artifact(
            s, org_id=a, kind="dataset", sha256="1" * 64, size=size, filename=None, fmt="csv", meta={}
        )
    with sessions() as s:
        assert repo.get_artifact(s, a, "dataset", art.id).size == size


def test_idempotency_key_is_unique_per_organisation(sessions, two_orgs):
    a, b = two_orgs

    def job(org: str) -> AuditJob:
        return AuditJob(
            id=repo.new_id("aud"), org_id=org, status="queued", spec={}, attempts=0, idempotency_key="k1"
        )

    with session_scope(sessions) as s:
        s.add(job(a))
        s.add(job(b))  # the same key in another organisation is independent
    with pytest.raises(IntegrityError), session_scope(sessions) as s:
        s.add(job(a))
    with sessions() as s:
        assert repo.find_job_by_idempotency(s, a, "k1").org_id == a
        assert repo.find_job_by_idempotency(s, b, "k2") is None


def test_audit_log_is_append_only_in_the_database(sessions, two_orgs, engine):
    a, b = two_orgs
    with session_scope(sessions) as s:
        for i in range(3):
            repo.log_action(
                s, org_id=a, key_id="k", action="dataset.upload", target=f"ds_{i}", detail={"i": i}
            )
        repo.log_action(s, org_id=b, key_id="k", action="key.create", target="x")
    statements = [
        update(AuditLogEntry).where(AuditLogEntry.org_id == a).values(action="tampered"),
        AuditLogEntry.__table__.delete().where(AuditLogEntry.org_id == a),
    ]
    if engine.dialect.name == "postgresql":
        statements.append(text("TRUNCATE audit_log"))
    for stmt in statements:
        with pytest.raises(DBAPIError, match="append-only"), session_scope(sessions) as s:
            s.execute(stmt)
    with sessions() as s:
        rows, total = repo.list_log(s, a, limit=2, offset=0)
        assert total == 3 and [r.target for r in rows] == ["ds_2", "ds_1"]  # newest first
        assert {r.action for r in s.scalars(select(AuditLogEntry))} == {"dataset.upload", "key.create"}


def test_claim_is_exclusive_under_concurrency(sessions, two_orgs):
    """Two workers claiming at once: every queued job is claimed exactly once."""
    from service.jobs import claim_next

    a, _ = two_orgs
    with session_scope(sessions) as s:
        for _ in range(12):
            s.add(AuditJob(id=repo.new_id("aud"), org_id=a, status="queued", spec={}, attempts=0))
    claimed: dict[str, list[str]] = {"w1": [], "w2": []}

    def worker(name: str) -> None:
        while (job_id := claim_next(sessions, name)) is not None:
            claimed[name].append(job_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    every = claimed["w1"] + claimed["w2"]
    assert len(every) == len(set(every)) == 12
    with sessions() as s:
        rows = s.scalars(select(AuditJob)).all()
        assert {r.status for r in rows} == {"running"} and {r.attempts for r in rows} == {1}
        assert all(r.worker_id in claimed and r.id in claimed[r.worker_id] for r in rows)
        assert repo.count_jobs_by_state(s) == {"running": 12}


def test_job_list_pages_newest_first(sessions, two_orgs):
    import datetime as dt

    a, _ = two_orgs
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with session_scope(sessions) as s:
        for i in range(7):
            s.add(
                AuditJob(
                    id=f"aud_{i}",
                    org_id=a,
                    status="failed" if i % 3 == 0 else "queued",
                    spec={},
                    attempts=0,
                    created_at=t0 + dt.timedelta(minutes=i),
                )
            )
    with sessions() as s:
        pages = [repo.list_jobs(s, a, limit=3, offset=o) for o in (0, 3, 6)]
        assert [[j.id for j in rows] for rows, _ in pages] == [
            ["aud_6", "aud_5", "aud_4"],
            ["aud_3", "aud_2", "aud_1"],
            ["aud_0"],
        ]
        assert {total for _, total in pages} == {7}
        failed, n = repo.list_jobs(s, a, limit=10, offset=0, status="failed")
        assert [j.id for j in failed] == ["aud_6", "aud_3", "aud_0"] and n == 3
        got = s.get(AuditJob, "aud_6").created_at
        assert got.replace(tzinfo=got.tzinfo or dt.UTC) == t0 + dt.timedelta(minutes=6)
