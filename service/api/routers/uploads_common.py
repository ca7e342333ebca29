"""Registering an uploaded blob as an artifact of the caller's organisation."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import Principal
from service.api.routers._common import audit
from service.api.schemas import ArtifactOut
from service.api.uploads import Uploaded
from service.store import repo
from service.store.models import Artifact


def discard_if_unreferenced(session: Session, request: Request, sha256: str) -> None:
    """Delete a rejected upload's bytes unless an artifact already points at them."""
    if session.scalar(select(Artifact.id).where(Artifact.sha256 == sha256).limit(1)) is None:
        request.app.state.store.path(sha256).unlink(missing_ok=True)


def register(
    session: Session,
    request: Request,
    principal: Principal,
    up: Uploaded,
    *,
    kind: str,
    fmt: str,
    meta: dict[str, Any],
) -> JSONResponse:
    row, created = repo.upsert_artifact(
        session,
        org_id=principal.org_id,
        kind=kind,
        sha256=up.sha256,
        size=up.size,
        filename=up.filename,
        fmt=fmt,
        meta=meta,
    )
    audit(
        session, request, principal, f"{kind}.upload", row.id, sha256=up.sha256, size=up.size, created=created
    )
    session.commit()
    body = ArtifactOut.model_validate(row).model_dump(mode="json")
    return JSONResponse(
        body, status_code=201 if created else 200, headers={"Location": f"/v1/{kind}s/{row.id}"}
    )
