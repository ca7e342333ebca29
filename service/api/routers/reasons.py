"""``POST /v1/reasons``: adverse-action reasons for one or many applicants, synchronously (SPEC.md §6).

The body carries the audit spec (upload ids for ``dataset`` and ``model``, the catalogue inline in
``reason_codes``) and the applicants as JSON objects. The engine (reference set, attributor, proxy
screen) is built once per distinct spec and cached; later calls pay only for the attribution.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from service.api.deps import Principal, get_session, require_role
from service.api.routers._common import audit
from service.api.schemas import PROBLEM_RESPONSES
from service.errors import InputError

router = APIRouter(prefix="/v1/reasons", tags=["reasons"], responses=PROBLEM_RESPONSES)

MAX_APPLICANTS = 10_000


class ReasonsRequest(BaseModel):
    spec: dict[str, Any] = Field(
        description="audit spec (SPEC.md §3) with upload ids and an inline reason_codes"
    )
    applicants: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_APPLICANTS)
    proxy_screen: bool = Field(
        default=True, description="never give features the proxy audit flags as reasons"
    )


class ReasonOut(BaseModel):
    code: str
    statement: str
    contribution: float | None


class ReasonRecord(BaseModel):
    row: int
    id: Any = None
    decision: str
    score: float
    reasons: list[ReasonOut]
    reference_version: str
    model_sha256: str


class ReasonsResponse(BaseModel):
    records: list[ReasonRecord]
    method: str
    reference: str
    reference_version: str
    reference_size: int
    model_sha256: str
    blocked_features: list[str]
    max_reasons: int


@router.post(
    "", response_model=ReasonsResponse, summary="Adverse-action reasons (Regulation B) for applicants"
)
def create_reasons(
    request: Request,
    principal: Annotated[Principal, Depends(require_role("auditor"))],
    session: Annotated[Session, Depends(get_session)],
    body: Annotated[ReasonsRequest, Body()],
) -> Any:
    from service.config import parse_spec
    from service.jobs import check_http_spec, resolve_spec
    from service.reasons.service import build_engine, explain_records

    check_http_spec(body.spec)
    if body.spec.get("reason_codes") is None:
        raise InputError(
            "the spec has no reason catalogue",
            field="spec.reason_codes",
            expected="reason_codes: the catalogue as a JSON object (SPEC.md §3)",
        )
    parse_spec(body.spec, source="request body")  # shape first: unknown keys, types
    resolved = resolve_spec(session, request.app.state.store, principal.org_id, body.spec)
    spec = parse_spec(resolved, source="request body")
    try:
        engine = build_engine(spec, allow_pickle=False, proxy_screen=body.proxy_screen)
    except InputError as exc:  # name uploads by their ids, never by server paths
        paths = {
            str(resolved[k]): str(body.spec[k])
            for k in ("dataset", "oot_dataset", "model")
            if body.spec.get(k)
        }
        root = str(request.app.state.store.root)

        def scrub(text: str | None) -> str | None:
            if text is None:
                return None
            for path, ref in paths.items():
                text = text.replace(path, ref)
            return text.replace(root, "<artifacts>")

        raise InputError(
            scrub(exc.message) or "", file=scrub(exc.file), field=exc.field, expected=exc.expected
        ) from None
    records = explain_records(engine, spec, body.applicants, source="request body: applicants")
    audit(
        session,
        request,
        principal,
        "reasons.create",
        None,
        applicants=len(records),
        declined=sum(1 for r in records if r["decision"] == "adverse"),
        reference_version=engine.reference.version,
    )
    session.commit()
    return {
        "records": records,
        "method": engine.method,
        "reference": engine.reference.method,
        "reference_version": engine.reference.version,
        "reference_size": engine.reference.size,
        "model_sha256": engine.model_sha256,
        "blocked_features": engine.blocked,
        "max_reasons": engine.max_reasons,
    }


__all__ = ["router"]
