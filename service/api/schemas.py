"""Response bodies of the HTTP API (they define the OpenAPI schema)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

T = TypeVar("T")


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# SQLite hands back naive datetimes (stored as UTC): responses always carry the offset (RFC 3339)
UtcDatetime = Annotated[dt.datetime, AfterValidator(_utc)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ArtifactOut(_Out):
    id: str
    kind: Literal["dataset", "model"]
    sha256: str
    size: int
    filename: str | None
    format: str
    meta: dict[str, Any]
    created_at: UtcDatetime


class AuditCreated(_Out):
    id: str
    status: str


class AuditOut(_Out):
    id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    error: str | None
    progress: str | None
    attempts: int
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    report_pdf: bool = False
    result: dict[str, Any] | None = None


class KeyCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["viewer", "auditor", "admin"]
    label: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class KeyOut(_Out):
    id: str
    role: str
    label: str | None
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None


class KeyCreated(KeyOut):
    key: str


class LogEntryOut(_Out):
    id: int
    at: UtcDatetime
    key_id: str | None
    action: str
    target: str | None
    request_id: str | None
    detail: dict[str, Any]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    nxt = offset + len(items)
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": nxt if nxt < total else None,
    }


def problem_response(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for an error: RFC 9457 body as ``application/problem+json``."""
    return {"model": Problem, "content": {"application/problem+json": {}}, "description": description}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: problem_response(desc)
    for code, desc in {
        401: "missing or invalid API key",
        403: "the key's role does not allow this",
        404: "not found in your organisation",
        422: "invalid input",
    }.items()
}
