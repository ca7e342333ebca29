"""Typed result models: ``AuditResult`` is what ``audit.json`` serialises (SPEC.md §5)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class ResultModel(BaseModel):
    """Base of every section model: plain JSON, undefined numbers are ``None`` (null)."""

    model_config = ConfigDict(extra="forbid")


class Finding(ResultModel):
    id: str = ""
    severity: Severity
    section: str
    title: str
    detail: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    threshold_source: Literal["default", "policy"] | None = None


class InputInfo(ResultModel):
    path: str
    sha256: str
    rows: int | None = None
    columns: int | None = None
    format: str | None = None


class Meta(ResultModel):
    run_id: str
    created_at: str
    finished_at: str | None = None
    assay_version: str
    python_version: str
    libraries: dict[str, str]
    seed: int
    model_name: str
    model_kind: str | None = None
    inputs: dict[str, InputInfo]
    spec: dict[str, Any] = Field(default_factory=dict)
    thresholds: dict[str, dict[str, Any]] = Field(default_factory=dict)


class AuditResult(ResultModel):
    schema_version: str = "1"
    meta: Meta
    findings: list[Finding] = Field(default_factory=list)
    sections: dict[str, dict[str, Any]] = Field(default_factory=dict)
    not_run: dict[str, str] = Field(default_factory=dict)


__all__ = ["SEVERITY_ORDER", "AuditResult", "Finding", "InputInfo", "Meta", "ResultModel", "Severity"]
