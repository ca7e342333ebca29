"""``/v1/models``: streamed model uploads validated with the safe loaders (never unpickled)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from service.api.deps import Principal, get_session, require_role
from service.api.routers._common import Limit, Offset
from service.api.routers.uploads_common import discard_if_unreferenced, register
from service.api.schemas import PROBLEM_RESPONSES, ArtifactOut, Page, page, problem_response
from service.api.uploads import UPLOAD_OPENAPI, receive_upload
from service.errors import InputError, NotFound
from service.store import repo

router = APIRouter(prefix="/v1/models", tags=["models"], responses=PROBLEM_RESPONSES)


def inspect_model(path: Path, label: str) -> tuple[str, dict[str, Any]]:
    """Load with ``allow_pickle=False``: pickle → 415, untrusted skops types → 422 listing them."""
    from service.inputs.models import load_model

    try:
        model = load_model(path, allow_pickle=False)
    except InputError as exc:
        exc.file = label  # never echo server-side paths
        raise
    except Exception as exc:
        raise InputError(
            f"the model could not be loaded ({type(exc).__name__}: {exc})", file=label, field="file"
        ) from None
    return model.kind, {"features": list(model.features or [])}


@router.post(
    "",
    status_code=201,
    response_model=ArtifactOut,
    openapi_extra=UPLOAD_OPENAPI,
    responses={
        200: {"model": ArtifactOut, "description": "the same bytes were already uploaded"},
        413: problem_response("over the size limit"),
        415: problem_response("pickle/joblib models are refused"),
    },
    summary="Upload a model (.skops, LightGBM text, XGBoost JSON/UBJ, ONNX), streamed",
)
async def upload_model(
    request: Request,
    principal: Annotated[Principal, Depends(require_role("auditor"))],
    session: Annotated[Session, Depends(get_session)],
) -> Any:
    store = request.app.state.store
    up = await receive_upload(request, store, request.app.state.settings.max_upload_bytes)
    try:
        fmt, meta = await run_in_threadpool(inspect_model, store.path(up.sha256), up.filename or "upload")
    except InputError:
        await run_in_threadpool(discard_if_unreferenced, session, request, up)
        raise
    # database work off the event loop (a busy SQLite writer must not stall other requests)
    return await run_in_threadpool(
        register, session, request, principal, up, kind="model", fmt=fmt, meta=meta
    )


@router.get("", response_model=Page[ArtifactOut], summary="List models")
def list_models(
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
    limit: Limit = 50,
    offset: Offset = 0,
) -> Any:
    rows, total = repo.list_artifacts(session, principal.org_id, "model", limit=limit, offset=offset)
    return page([ArtifactOut.model_validate(r) for r in rows], total, limit, offset)


@router.get("/{model_id}", response_model=ArtifactOut, summary="Model metadata")
def get_model(
    model_id: str,
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
) -> Any:
    row = repo.get_artifact(session, principal.org_id, "model", model_id)
    if row is None:
        raise NotFound(f"no model {model_id!r} in your organisation")
    return ArtifactOut.model_validate(row)
