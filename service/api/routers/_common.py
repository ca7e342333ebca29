"""Helpers shared by the resource routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from sqlalchemy.orm import Session

from service.api.deps import Principal
from service.store import repo

Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")]


def audit(
    session: Session,
    request: Request,
    principal: Principal,
    action: str,
    target: str | None,
    **detail: object,
) -> None:
    """Append to the audit log (committed with the caller's transaction)."""
    repo.log_action(
        session,
        org_id=principal.org_id,
        key_id=principal.key_id,
        action=action,
        target=target,
        request_id=getattr(request.state, "request_id", None),
        detail=dict(detail),
    )
