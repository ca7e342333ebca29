"""FastAPI application factory (SPEC.md §6b).

Routers are listed in :data:`ROUTERS` (module paths exposing ``router``); a new resource adds one line.
``create_app`` runs the Alembic migrations, opens the artifact store, and (unless ``start_jobs=False``)
starts the process worker pool and recovers jobs left ``running`` by a previous process.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from service.config import Settings

ROUTERS: list[str] = [
    "service.api.routers.health",
    "service.api.routers.datasets",
    "service.api.routers.models",
    "service.api.routers.audits",
    "service.api.routers.reasons",
    "service.api.routers.keys",
    "service.api.routers.monitors",
]

log = logging.getLogger("assay.api")


def create_app(settings: Settings | None = None, *, start_jobs: bool = True, engine: Any = None) -> FastAPI:
    """Build the API. ``start_jobs=False`` leaves audit jobs queued (tests drive the runner directly)."""
    from service.api import observability, problems
    from service.store.artifacts import ArtifactStore
    from service.store.db import make_engine, session_factory
    from service.store.migrate import upgrade

    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine or make_engine(settings)
    upgrade(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_jobs:
            app.state.jobs.start()
        try:
            yield
        finally:
            app.state.jobs.stop()

    app = FastAPI(
        title="Assay",
        version="1",
        summary="Model-risk and fairness audits for financial AI",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.store = ArtifactStore(settings.data_dir / "artifacts")
    app.state.key_cache = {}
    from service.jobs import JobManager

    app.state.jobs = JobManager(settings, engine, app.state.store)
    problems.install(app)
    observability.install(app)
    for mod in ROUTERS:
        app.include_router(importlib.import_module(mod).router)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Every 4xx/5xx response in the OpenAPI schema is documented as ``application/problem+json``
    (what the exception handlers send), whichever router declared it."""
    from service.api.schemas import Problem

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.setdefault("Problem", problem_schema)
        ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
        for item in schema.get("paths", {}).values():
            for op in item.values():
                for code, resp in op.get("responses", {}).items():
                    if str(code)[:1] in "45":
                        resp.setdefault("content", {})["application/problem+json"] = ref
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["ROUTERS", "create_app"]
