"""API fixtures: an app on a temporary data folder (jobs run inline), two organisations with keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURES

GERMAN = FIXTURES / "german_credit"
UPLOAD_LIMIT = 400_000  # bytes: German CSV (88 kB) and model (163 kB) fit, the test's big file does not


@dataclass
class Org:
    name: str
    id: str
    keys: dict[str, str] = field(default_factory=dict)  # role -> key

    def h(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@dataclass
class Api:
    app: Any
    client: Any
    a: Org
    b: Org
    data_dir: Path

    def run_queued(self) -> list[str]:
        """Run every queued job inline, as a worker process would (same functions)."""
        from service.jobs import claim_next, run_job

        done = []
        while (job_id := claim_next(self.app.state.sessions, "test-worker")) is not None:
            run_job(self.app.state.sessions, self.app.state.store, job_id)
            done.append(job_id)
        return done


def make_org(app: Any, name: str) -> Org:
    from service.store import repo
    from service.store.db import session_scope

    with session_scope(app.state.sessions) as s:
        o = repo.get_or_create_org(s, name)
        org = Org(name, o.id)
        for role in ("viewer", "auditor", "admin"):
            org.keys[role] = repo.create_key(s, o.id, role).key
    return org


def german_spec_body(dataset_id: str, model_id: str, *, bootstrap: int = 0) -> dict[str, Any]:
    spec = yaml.safe_load((GERMAN / "audit.yaml").read_text())
    spec["dataset"] = dataset_id
    spec["model"] = model_id
    spec["reason_codes"] = yaml.safe_load((GERMAN / "reasons.yaml").read_text())
    spec["bootstrap"] = bootstrap
    return json.loads(json.dumps(spec, default=str))


@pytest.fixture
def api(tmp_path):
    """The app on a fresh SQLite file (or PostgreSQL database when ASSAY_TEST_POSTGRES_URL is set)."""
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.config import Settings
    from tests.store.conftest import PG_URL, _pg_database

    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=UPLOAD_LIMIT, log_level="WARNING")
    drop = None
    if PG_URL:
        settings.database_url, drop = _pg_database(PG_URL)
    app = create_app(settings, start_jobs=False)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(app, client, make_org(app, "org-a"), make_org(app, "org-b"), settings.data_dir)
    finally:
        app.state.engine.dispose()
        if drop is not None:
            drop()


def upload(client: Any, path: str, data: bytes, headers: dict[str, str], name: str = "f") -> Any:
    return client.post(path, headers=headers, files={"file": (name, data)})


@pytest.fixture
def german_uploaded(api):
    """German CSV and model uploaded by organisation A: (dataset id, model id)."""
    d = upload(
        api.client, "/v1/datasets", (GERMAN / "german_credit.csv").read_bytes(), api.a.h("auditor"), "g.csv"
    )
    m = upload(api.client, "/v1/models", (GERMAN / "model.skops").read_bytes(), api.a.h("auditor"), "m.skops")
    assert d.status_code == 201 and m.status_code == 201, (d.text, m.text)
    return d.json()["id"], m.json()["id"]


def assert_problem(resp: Any, status: int, *needles: str) -> dict[str, Any]:
    """The response is RFC 9457 problem+json with ``status`` and a detail mentioning every needle."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert body["status"] == status and body["title"] and body["detail"]
    for n in needles:
        assert n in body["detail"], (n, body["detail"])
    return body


def finish_fake(
    api: Api, job_id: str, result: dict[str, Any], pdf: bytes | None = b"%PDF-1.7 test\n"
) -> None:
    """Mark a job succeeded with a given result (routes are tested without running a real audit)."""
    from sqlalchemy import update

    from service.store.db import utcnow
    from service.store.models import AuditJob

    store = api.app.state.store
    rsha = store.put_bytes(json.dumps(result).encode())
    psha = store.put_bytes(pdf) if pdf is not None else None
    with api.app.state.sessions() as s:
        s.execute(
            update(AuditJob)
            .where(AuditJob.id == job_id)
            .values(
                status="succeeded", result_sha256=rsha, pdf_sha256=psha, finished_at=utcnow(), progress="done"
            )
        )
        s.commit()
