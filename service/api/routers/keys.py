"""``/v1/keys`` and ``/v1/audit-log``: admins manage their organisation's keys and read the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from service.api.deps import Principal, get_session, require_role
from service.api.routers._common import Limit, Offset, audit
from service.api.schemas import PROBLEM_RESPONSES, KeyCreated, KeyCreateIn, KeyOut, LogEntryOut, Page, page
from service.errors import Conflict, NotFound
from service.store import repo
from service.store.db import utcnow

router = APIRouter(prefix="/v1", tags=["administration"], responses=PROBLEM_RESPONSES)

Admin = Annotated[Principal, Depends(require_role("admin"))]
DB = Annotated[Session, Depends(get_session)]


@router.post("/keys", status_code=201, response_model=KeyCreated, summary="Create an API key (shown once)")
def create_key(body: KeyCreateIn, request: Request, principal: Admin, session: DB) -> Any:
    new = repo.create_key(session, principal.org_id, body.role, label=body.label)
    audit(session, request, principal, "key.create", new.key_id, role=body.role)
    session.commit()
    row = repo.get_key(session, principal.org_id, new.key_id)
    return KeyCreated.model_validate({**KeyOut.model_validate(row).model_dump(), "key": new.key})


@router.get("/keys", response_model=Page[KeyOut], summary="List the organisation's keys (never the secrets)")
def list_keys(principal: Admin, session: DB, limit: Limit = 50, offset: Offset = 0) -> Any:
    rows = repo.list_keys(session, principal.org_id)
    return page([KeyOut.model_validate(r) for r in rows[offset : offset + limit]], len(rows), limit, offset)


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke a key")
def revoke_key(key_id: str, request: Request, principal: Admin, session: DB) -> Any:
    row = repo.get_key(session, principal.org_id, key_id)
    if row is None:
        raise NotFound(f"no key {key_id!r} in your organisation")
    if row.revoked_at is not None:
        raise Conflict(f"key {key_id!r} is already revoked")
    row.revoked_at = utcnow()
    audit(session, request, principal, "key.revoke", key_id)
    session.commit()
    request.app.state.key_cache.clear()
    return KeyOut.model_validate(row)


@router.get("/audit-log", response_model=Page[LogEntryOut], summary="Who did what (append-only)")
def audit_log(principal: Admin, session: DB, limit: Limit = 50, offset: Offset = 0) -> Any:
    rows, total = repo.list_log(session, principal.org_id, limit=limit, offset=offset)
    return page([LogEntryOut.model_validate(r) for r in rows], total, limit, offset)
