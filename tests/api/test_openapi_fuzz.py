"""Schemathesis against the app's own OpenAPI schema: generated requests (valid and invalid) never
get a 5xx, every error response is RFC 9457 problem+json, and responses match the schema (bodies,
content types, Allow headers). Bounded: a few examples per operation."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_schema_conformance,
)

from tests.api.conftest import make_org

EXAMPLES_PER_OPERATION = 12


def _build_app():
    from service.api.app import create_app
    from service.config import Settings
    from tests.store.conftest import PG_URL, _pg_database

    data = Path(tempfile.mkdtemp(prefix="assay-fuzz-")) / "data"
    settings = Settings(data_dir=data, max_upload_bytes=200_000, log_level="ERROR")
    if PG_URL:  # make test-postgres: the same fuzzing against PostgreSQL (stricter about lengths, NULs)
        settings.database_url, _ = _pg_database(PG_URL)
    app = create_app(settings, start_jobs=False)
    app.state.fuzz_org = make_org(app, "fuzz-org")
    return app


# built at collection: schemathesis parametrizes one test per operation of this app's schema
APP = _build_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    APP.state.engine.dispose()
    shutil.rmtree(APP.state.settings.data_dir.parent, ignore_errors=True)


def problem_json_on_errors(ctx, response, case):
    """Every 4xx/5xx is application/problem+json with the RFC 9457 members."""
    if response.status_code >= 400:
        ctype = response.headers.get("content-type", [""])
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        assert ctype.startswith("application/problem+json"), (response.status_code, ctype)
        body = response.json()
        assert body["status"] == response.status_code and body["title"] and body["detail"], body
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_problem_json(case):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {APP.state.fuzz_org.keys['admin']}"},
        checks=[
            not_a_server_error,
            problem_json_on_errors,
            response_schema_conformance,
            content_type_conformance,
            allow_header_conformance,
        ],
    )
