"""``/v1/audits``: queue an audit (202), poll its status and result, fetch the PDF, list."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.api.deps import Principal, get_session, require_role
from service.api.routers._common import Limit, Offset, audit
from service.api.schemas import (
    PROBLEM_RESPONSES,
    AuditCreated,
    AuditOut,
    Page,
    page,
    problem_response,
)
from service.errors import Conflict, InputError, NotFound
from service.store import repo
from service.store.models import AuditJob

router = APIRouter(prefix="/v1/audits", tags=["audits"], responses=PROBLEM_RESPONSES)

SPEC_EXAMPLE = {
    "model_name": "German credit scorecard",
    "dataset": "ds_0123456789abcdef01234567",
    "model": "mdl_0123456789abcdef01234567",
    "target": "default",
    "protected": [{"name": "sex", "column": "sex", "reference": "male"}],
}


def _spec_hash(spec: dict[str, Any]) -> str:
    from service.jobs import spec_sha256

    return spec_sha256(spec)


def _out(request: Request, job: AuditJob, *, with_result: bool) -> dict[str, Any]:
    body = AuditOut.model_validate(job).model_dump(mode="json")
    body["report_pdf"] = job.pdf_sha256 is not None
    if with_result and job.status == "succeeded" and job.result_sha256:
        body["result"] = json.loads(request.app.state.store.read_bytes(job.result_sha256))
    return body


@router.post(
    "",
    status_code=202,
    response_model=AuditCreated,
    responses={409: problem_response("Idempotency-Key reused with a different spec")},
    summary="Queue an audit; the body is the audit spec (SPEC.md §3) with upload ids",
)
def create_audit(
    request: Request,
    principal: Annotated[Principal, Depends(require_role("auditor"))],
    session: Annotated[Session, Depends(get_session)],
    spec: Annotated[dict[str, Any], Body(examples=[SPEC_EXAMPLE])],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    from service.config import parse_spec
    from service.jobs import check_http_spec, resolve_spec

    spec_hash = _spec_hash(spec)
    if idempotency_key:
        existing = repo.find_job_by_idempotency(session, principal.org_id, idempotency_key)
        if existing is not None:
            return _replay(existing, spec_hash)
    check_http_spec(spec)
    parse_spec(spec, source="request body")  # shape: unknown keys, types, enumerations
    resolve_spec(session, request.app.state.store, principal.org_id, spec)  # ids of this organisation
    job = AuditJob(
        id=repo.new_id("aud"),
        org_id=principal.org_id,
        status="queued",
        spec=spec,
        idempotency_key=idempotency_key,
        created_by=principal.key_id,
        attempts=0,
        progress="queued",
    )
    session.add(job)
    audit(
        session,
        request,
        principal,
        "audit.create",
        job.id,
        spec_sha256=spec_hash,
        idempotency_key=idempotency_key,
    )
    try:
        session.commit()
    except IntegrityError:  # a concurrent request with the same Idempotency-Key won the race
        session.rollback()
        existing = repo.find_job_by_idempotency(session, principal.org_id, idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, spec_hash)
    return JSONResponse(
        {"id": job.id, "status": job.status}, status_code=202, headers={"Location": f"/v1/audits/{job.id}"}
    )


def _replay(existing: AuditJob, spec_hash: str) -> JSONResponse:
    if _spec_hash(existing.spec) != spec_hash:
        raise Conflict("this Idempotency-Key was already used with a different spec; use a new key")
    return JSONResponse(
        {"id": existing.id, "status": existing.status},
        status_code=202,
        headers={"Location": f"/v1/audits/{existing.id}", "Idempotent-Replayed": "true"},
    )


@router.get("", response_model=Page[AuditOut], summary="List audits (newest first, without results)")
def list_audits(
    request: Request,
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
    limit: Limit = 50,
    offset: Offset = 0,
    status: Annotated[Literal["queued", "running", "succeeded", "failed"] | None, Query()] = None,
) -> Any:
    rows, total = repo.list_jobs(session, principal.org_id, limit=limit, offset=offset, status=status)
    return page([_out(request, r, with_result=False) for r in rows], total, limit, offset)


@router.get("/{audit_id}", response_model=AuditOut, summary="Status, progress and (when done) the audit.json")
def get_audit(
    audit_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
) -> Any:
    job = repo.get_job(session, principal.org_id, audit_id)
    if job is None:
        raise NotFound(f"no audit {audit_id!r} in your organisation")
    return _out(request, job, with_result=True)


@router.get(
    "/{audit_id}/report.pdf",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "the PDF report"},
        409: problem_response("the audit has not succeeded"),
    },
    summary="The PDF report of a succeeded audit",
)
def get_report(
    audit_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
) -> Any:
    job = repo.get_job(session, principal.org_id, audit_id)
    if job is None:
        raise NotFound(f"no audit {audit_id!r} in your organisation")
    if job.status != "succeeded":
        raise Conflict(f"the audit is {job.status}; the report exists once it has succeeded")
    if job.pdf_sha256 is None:
        raise NotFound("this audit has no PDF report (the report renderer was not available when it ran)")
    return FileResponse(
        request.app.state.store.path(job.pdf_sha256), media_type="application/pdf", filename=f"{audit_id}.pdf"
    )


__all__ = ["router", "InputError"]
