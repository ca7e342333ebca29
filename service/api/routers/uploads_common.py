"""Registering an uploaded blob as an artifact of the caller's organisation."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.api.deps import Principal
from service.api.routers._common import audit
from service.api.schemas import ArtifactOut
from service.api.uploads import Uploaded
from service.store import repo
from service.store.models import Artifact, AuditJob


def discard_if_unreferenced(session: Session, request: Request, up: Uploaded) -> None:
    """Delete a rejected upload's bytes if this upload brought them and nothing refers to them.

    The store is shared: the same bytes may be another organisation's upload, or an audit's stored
    audit.json / PDF (a user re-uploading a downloaded result must not delete it).
    """
    if not up.created:
        return
    sha = up.sha256
    used = session.scalar(select(Artifact.id).where(Artifact.sha256 == sha).limit(1)) or session.scalar(
        select(AuditJob.id).where(or_(AuditJob.result_sha256 == sha, AuditJob.pdf_sha256 == sha)).limit(1)
    )
    if used is None:
        request.app.state.store.path(sha).unlink(missing_ok=True)


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
