"""``/v1/datasets``: streamed CSV/Parquet uploads (type checked by content), list, metadata."""

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
from service.api.uploads import UPLOAD_OPENAPI, Uploaded, receive_upload
from service.errors import InputError, NotFound
from service.store import repo

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=PROBLEM_RESPONSES)

_PARQUET = b"PAR1"


def sniff_dataset(path: Path, up: Uploaded) -> tuple[str, dict[str, Any]]:
    """(format, meta) from the content: Parquet magic bytes at both ends, else a UTF-8 CSV with a header.

    Only the head (and the Parquet footer) is read, so a 1 GB upload is checked in constant memory.
    """
    from service.inputs import datasets as ds

    label = up.filename or "upload"
    if up.head[:4] == _PARQUET:
        if up.tail[-4:] != _PARQUET:
            raise InputError(
                "starts like Parquet but the footer is missing (truncated upload?)",
                file=label,
                field="file",
                expected="a complete Parquet file",
            )
        import pyarrow.parquet as pq

        try:
            meta = pq.read_metadata(path)
            names = list(meta.schema.to_arrow_schema().names)
        except Exception as exc:
            raise InputError(
                f"not a readable Parquet file ({str(exc).splitlines()[0]})", file=label, field="file"
            ) from None
        return "parquet", {"columns": names, "rows": int(meta.num_rows)}
    head = up.head
    if b"\x00" in head:
        raise InputError(
            "the file is binary (NUL bytes) and is neither CSV nor Parquet",
            file=label,
            field="file",
            expected="a UTF-8 CSV or a Parquet file",
        )
    try:
        sample = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4 or len(head) < 65536:
            raise InputError(
                f"not UTF-8 text (invalid byte at offset {exc.start})",
                file=label,
                field="file",
                expected="a UTF-8 CSV or a Parquet file",
            ) from None
        sample = head[: exc.start].decode("utf-8-sig")
    lines = [ln for ln in sample.splitlines() if ln.strip()]
    if len(lines) < 2:
        raise InputError(
            "a CSV needs a header row and at least one data row",
            file=label,
            field="file",
            expected="a header row naming the columns, then data rows",
        )
    delim = ds._sniff_delimiter(sample, Path(label))
    header = ds._header_fields(sample, delim)
    ds._check_duplicates(header, Path(label), "file")
    return "csv", {"columns": header, "delimiter": delim}


@router.post(
    "",
    status_code=201,
    response_model=ArtifactOut,
    openapi_extra=UPLOAD_OPENAPI,
    responses={
        200: {"model": ArtifactOut, "description": "the same bytes were already uploaded"},
        413: problem_response("over the size limit"),
    },
    summary="Upload a dataset (CSV or Parquet), streamed",
)
async def upload_dataset(
    request: Request,
    principal: Annotated[Principal, Depends(require_role("auditor"))],
    session: Annotated[Session, Depends(get_session)],
) -> Any:
    store = request.app.state.store
    up = await receive_upload(request, store, request.app.state.settings.max_upload_bytes)
    try:
        fmt, meta = await run_in_threadpool(sniff_dataset, store.path(up.sha256), up)
    except InputError:
        await run_in_threadpool(discard_if_unreferenced, session, request, up)
        raise
    # database work off the event loop (a busy SQLite writer must not stall other requests)
    return await run_in_threadpool(
        register, session, request, principal, up, kind="dataset", fmt=fmt, meta=meta
    )


@router.get("", response_model=Page[ArtifactOut], summary="List datasets")
def list_datasets(
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
    limit: Limit = 50,
    offset: Offset = 0,
) -> Any:
    rows, total = repo.list_artifacts(session, principal.org_id, "dataset", limit=limit, offset=offset)
    return page([ArtifactOut.model_validate(r) for r in rows], total, limit, offset)


@router.get("/{dataset_id}", response_model=ArtifactOut, summary="Dataset metadata")
def get_dataset(
    dataset_id: str,
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
) -> Any:
    row = repo.get_artifact(session, principal.org_id, "dataset", dataset_id)
    if row is None:
        raise NotFound(f"no dataset {dataset_id!r} in your organisation")
    return ArtifactOut.model_validate(row)
