"""``assay serve`` (the HTTP API under uvicorn) and ``assay keys create|list|revoke``."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer
from sqlalchemy import Engine

from service.config import Settings
from service.store.models import ROLES


def _engine_and_settings() -> tuple[Engine, Settings]:
    from service.store.db import open_database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_database(settings), settings


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default ASSAY_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default ASSAY_PORT, 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Audit worker processes (default ASSAY_WORKERS).")
    ] = None,
) -> None:
    """Serve the HTTP API (SPEC.md §6b); storage under ASSAY_DATA_DIR or ASSAY_DATABASE_URL."""
    import uvicorn

    from service.api.app import create_app
    from service.api.observability import uvicorn_log_config

    engine, settings = _engine_and_settings()
    if workers is not None:
        settings.workers = workers
    app = create_app(settings, engine=engine)
    try:
        scheduler = importlib.import_module("service.monitoring.scheduler")
    except ImportError:
        scheduler = None
    running = None
    if scheduler is not None and settings.scheduler and hasattr(scheduler, "start"):
        running = scheduler.start(settings, app.state.engine)
    try:
        uvicorn.run(
            app,
            host=host or settings.host,
            port=port or settings.port,
            log_level=settings.log_level.lower(),
            log_config=uvicorn_log_config(settings.log_level),
            access_log=False,  # our JSON access log carries the request id
            timeout_graceful_shutdown=10,
        )
    finally:
        if running is not None and hasattr(running, "shutdown"):
            running.shutdown(wait=False)


keys_app = typer.Typer(help="API keys: create (printed once), list, revoke.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="Organisation name (created if new).")],
    role: Annotated[str, typer.Option("--role", help="viewer | auditor | admin")],
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
) -> None:
    """Create a key; the key is printed once, alone on the last line (only its salted hash is stored)."""
    from service.errors import InputError
    from service.store import repo
    from service.store.db import session_factory, session_scope

    if role not in ROLES:
        raise InputError(f"unknown role {role!r}", field="--role", expected=" | ".join(ROLES))
    engine, _ = _engine_and_settings()
    with session_scope(session_factory(engine)) as s:
        o = repo.get_or_create_org(s, org)
        new = repo.create_key(s, o.id, role, label=label)
        repo.log_action(
            s,
            org_id=o.id,
            key_id=None,
            action="key.create",
            target=new.key_id,
            detail={"role": role, "via": "cli"},
        )
    typer.echo(f"organisation: {org} ({new.org_id})")
    typer.echo(f"key id: {new.key_id}  role: {role}")
    typer.echo("store this key now; it is not shown again:", err=True)
    typer.echo(new.key)


@keys_app.command("list")
def keys_list(org: Annotated[str, typer.Option("--org", help="Organisation name.")]) -> None:
    """List an organisation's keys (ids and roles, never secrets)."""
    from sqlalchemy import select

    from service.errors import InputError
    from service.store import repo
    from service.store.db import session_factory, session_scope
    from service.store.models import Organisation

    engine, _ = _engine_and_settings()
    with session_scope(session_factory(engine)) as s:
        o = s.scalar(select(Organisation).where(Organisation.name == org))
        if o is None:
            raise InputError(f"no organisation named {org!r}", field="--org")
        for k in repo.list_keys(s, o.id):
            state = "revoked" if k.revoked_at else "active"
            typer.echo(f"{k.id}\t{k.role}\t{state}\t{k.created_at:%Y-%m-%d}\t{k.label or ''}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (second part of the key).")]) -> None:
    """Revoke a key by id (a running server stops accepting it within 10 s)."""
    from service.errors import InputError
    from service.store import repo
    from service.store.db import session_factory, session_scope, utcnow
    from service.store.models import ApiKey

    engine, _ = _engine_and_settings()
    with session_scope(session_factory(engine)) as s:
        k = s.get(ApiKey, key_id)
        if k is None:
            raise InputError(f"no key with id {key_id!r}", field="key_id")
        k.revoked_at = utcnow()
        repo.log_action(
            s, org_id=k.org_id, key_id=None, action="key.revoke", target=key_id, detail={"via": "cli"}
        )
    typer.echo(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
