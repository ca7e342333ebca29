"""``/v1/monitors``: create a monitor from uploads, push windows, post delayed labels, read history.

Over HTTP a monitor never touches server paths: ``reference`` and every window or labels file are
dataset ids from ``POST /v1/datasets``, and the audit spec's ``model`` a model id (``POST /v1/models``).
Windows are pushed (``POST /v1/monitors/{id}/windows``) rather than picked from a ``source`` glob, so
``source`` and ``schedule`` are refused here (they belong to monitor files run by ``assay serve``).
The reference profile is built once when the monitor is created; a window is compared with it only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from service.api.deps import Principal, get_session, require_role
from service.api.routers._common import audit
from service.api.schemas import PROBLEM_RESPONSES, Problem
from service.errors import Conflict, InputError, NotFound

router = APIRouter(prefix="/v1/monitors", tags=["monitors"], responses=PROBLEM_RESPONSES)

MONITOR_EXAMPLE = {
    "name": "taiwan-weekly",
    "reference": "ds_0123456789abcdef01234567",
    "audit": {
        "model_name": "taiwan-default-lgbm",
        "model": "mdl_0123456789abcdef01234567",
        "target": "default.payment.next.month",
        "id_column": "ID",
        "score": {"direction": "higher_is_riskier", "threshold": 0.35},
        "protected": [{"name": "sex", "column": "SEX", "reference": "1"}],
    },
    "alerts": [{"webhook": "https://hooks.example.com/assay"}],
}
HTTP_REFUSED = {
    "source": "push each window with POST /v1/monitors/{id}/windows instead of a server-side glob",
    "schedule": "schedules run monitor files under 'assay serve'; over HTTP, push windows when they arrive",
}


def _relabel(exc: InputError, *, field: str | None = None, file: str | None = None) -> InputError:
    """The same error naming the caller's id and field rather than a server-side artifact path."""
    return InputError(exc.message, file=file or exc.file, field=field or exc.field, expected=exc.expected)


def _scrub(exc: InputError, names: dict[str, str]) -> InputError:
    """The same error with server-side paths replaced by the caller's ids (``names``: path -> label)."""

    def fix(text: str | None) -> str | None:
        if text is None:
            return None
        for path, label in sorted(names.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(path, label)
        return text

    return InputError(fix(exc.message) or "", file=fix(exc.file), field=exc.field, expected=fix(exc.expected))


def _dataset_path(session: Session, request: Request, org_id: str, ref: Any, field: str) -> str:
    from service.jobs import resolve_spec

    if not isinstance(ref, str):
        raise InputError(
            f"expected a dataset id, got {'nothing' if ref is None else type(ref).__name__}",
            field=field,
            expected="an id returned by POST /v1/datasets",
        )
    try:
        return str(resolve_spec(session, request.app.state.store, org_id, {"dataset": ref})["dataset"])
    except InputError as exc:
        raise _relabel(exc, field=field) from None


def _resolve(session: Session, request: Request, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The monitor body with upload ids replaced by artifact paths (ids of this organisation only)."""
    from service.jobs import check_http_spec, resolve_spec

    for key, why in HTTP_REFUSED.items():
        if body.get(key) is not None:
            raise InputError(f"'{key}' is not accepted over HTTP", field=key, expected=why)
    spec = body.get("audit")
    if not isinstance(spec, dict):
        raise InputError(
            "the monitor's audit spec must be given inline over HTTP",
            field="audit",
            expected="the audit spec as a JSON object (SPEC.md §3) with 'model' an id from POST /v1/models",
        )
    out = dict(body)
    out["reference"] = _dataset_path(session, request, org_id, body.get("reference"), "reference")
    spec = dict(spec)
    spec.setdefault("dataset", body["reference"])  # the audit's dataset is unused by a monitor
    if isinstance(body.get("name"), str):
        spec.setdefault("model_name", body["name"])  # shown in the monitoring report
    check_http_spec(spec)
    try:
        out["audit"] = resolve_spec(session, request.app.state.store, org_id, spec)
    except InputError as exc:
        raise _relabel(exc, field=f"audit.{exc.field}" if exc.field else "audit") from None
    return out


def _summary(row: Any, n_windows: int) -> dict[str, Any]:
    import json

    cfg = row.config or {}
    prof = json.loads(row.profile) if row.profile else {}
    return {
        "id": row.id,
        "name": row.name,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "profile_sha256": row.profile_sha256,
        "reference_sha256": row.reference_sha256,
        "reference_rows": prof.get("n_rows"),
        "features": sorted(prof.get("features") or {}),
        "protected": sorted(prof.get("fairness") or {}),
        "alerts": [{"webhook": a.get("webhook")} for a in cfg.get("alerts") or []],  # headers stay private
        "windows": n_windows,
    }


def _monitor_or_404(session: Session, org_id: str, monitor_id: str) -> Any:
    from service.monitoring import store

    row = store.get_monitor(session, org_id, monitor_id)
    if row is None:
        raise NotFound(f"no monitor {monitor_id!r} in your organisation")
    return row


@router.post(
    "",
    status_code=201,
    responses={409: {"model": Problem, "description": "a monitor with this name exists"}},
    summary="Create a monitor: profile the reference dataset once and store the profile",
)
def create_monitor(
    request: Request,
    principal: Annotated[Principal, Depends(require_role("auditor"))],
    session: Annotated[Session, Depends(get_session)],
    body: Annotated[dict[str, Any], Body(examples=[MONITOR_EXAMPLE])],
) -> Any:
    from service.monitoring import store
    from service.monitoring.monitor import ensure_monitor, parse_monitor

    name = body.get("name")
    if isinstance(name, str) and store.find_monitor(session, principal.org_id, name) is not None:
        raise Conflict(f"a monitor named {name!r} exists in your organisation; choose another name")
    resolved = _resolve(session, request, principal.org_id, body)
    mspec = parse_monitor(resolved, source="request body", base_dir=request.app.state.settings.data_dir)
    names = {
        str(mspec.resolve(mspec.reference)): f"dataset {body.get('reference')}",
        str(resolved["reference"]): f"dataset {body.get('reference')}",
    }
    model_path = resolved["audit"].get("model")
    if isinstance(model_path, str):
        names[str(mspec.resolve(model_path))] = f"model {body['audit'].get('model')}"
        names[model_path] = f"model {body['audit'].get('model')}"
    try:
        row = ensure_monitor(
            session, mspec, org_id=principal.org_id, reference_label=str(body.get("reference"))
        )
    except InputError as exc:
        raise _scrub(exc, names) from None
    audit(session, request, principal, "monitor.create", row.id, name=row.name)
    session.commit()
    return JSONResponse(_summary(row, 0), status_code=201, headers={"Location": f"/v1/monitors/{row.id}"})


@router.get("", summary="List the organisation's monitors")
def list_monitors(
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
) -> Any:
    from service.monitoring import store

    rows = store.list_monitors(session, principal.org_id)
    return {"items": [_summary(r, store.next_seq(session, r.id) - 1) for r in rows]}


@router.get("/{monitor_id}", summary="A monitor: its reference profile summary and window count")
def get_monitor(
    monitor_id: str,
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
) -> Any:
    from service.monitoring import store

    row = _monitor_or_404(session, principal.org_id, monitor_id)
    return _summary(row, store.next_seq(session, row.id) - 1)


@router.post(
    "/{monitor_id}/windows",
    status_code=201,
    responses={409: {"model": Problem, "description": "this dataset was already processed as a window"}},
    summary="Run one window now on an uploaded dataset; returns the window result (drift, fairness, alerts)",
)
def post_window(
    monitor_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_role("auditor"))],
    session: Annotated[Session, Depends(get_session)],
    body: Annotated[dict[str, Any], Body(examples=[{"dataset": "ds_0123456789abcdef01234567"}])],
) -> Any:
    from pathlib import Path

    from service.monitoring.monitor import run_window

    _monitor_or_404(session, principal.org_id, monitor_id)
    ref = body.get("dataset")
    path = _dataset_path(session, request, principal.org_id, ref, "dataset")
    try:
        outcome = run_window(
            request.app.state.sessions,
            monitor_id,
            data_dir=request.app.state.settings.data_dir,
            path=Path(path),
            org_id=principal.org_id,
            source_label=str(ref),
        )
    except InputError as exc:
        raise _scrub(_relabel(exc, file=f"dataset {ref}"), {path: f"dataset {ref}"}) from None
    if outcome.result is None:
        raise Conflict(outcome.message.replace(str(ref), f"dataset {ref!r}", 1))
    audit(session, request, principal, "monitor.window", outcome.window_id, monitor=monitor_id, dataset=ref)
    session.commit()
    return JSONResponse(
        outcome.result,
        status_code=201,
        headers={"Location": f"/v1/monitors/{monitor_id}/windows/{outcome.seq}"},
    )


@router.get("/{monitor_id}/windows/{seq}", summary="One window's full result")
def get_window(
    monitor_id: str,
    seq: int,
    principal: Annotated[Principal, Depends(require_role("viewer"))],
    session: Annotated[Session, Depends(get_session)],
) -> Any:
    from service.monitoring import store

    row = _monitor_or_404(session, principal.org_id, monitor_id)
    win = store.get_window(session, row.id, seq)
    if win is None:
        raise NotFound(f"monitor {monitor_id!r} has no window {seq}")
    return {"id": win.id, "seq": win.seq, "status": win.status, "error": win.error, "result": win.result}


@router.post(
    "/{monitor_id}/windows/{seq}/labels",
    summary="Delayed outcomes for an earlier window (a dataset id); fills in its AUC and calibration",
)
def post_labels(
    monitor_id: str,
    seq: int,
    request: Request,
    principal: Annotated[Principal, Depends(require_role("auditor"))],
    session: Annotated[Session, Depends(get_session)],
    body: Annotated[dict[str, Any], Body(examples=[{"dataset": "ds_0123456789abcdef01234567"}])],
) -> Any:
    from pathlib import Path

    from service.inputs.datasets import read_dataset
    from service.monitoring.monitor import post_labels as attach

    _monitor_or_404(session, principal.org_id, monitor_id)
    ref = body.get("dataset")
    path = _dataset_path(session, request, principal.org_id, ref, "dataset")
    try:
        labels = read_dataset(Path(path), label="dataset").frame
    except InputError as exc:
        raise _scrub(exc, {path: f"dataset {ref}"}) from None
    try:
        result = attach(
            request.app.state.sessions, monitor_id, seq, labels, org_id=principal.org_id, source=str(ref)
        )
    except InputError as exc:
        raise _relabel(exc, file=f"dataset {ref}") from None
    audit(session, request, principal, "monitor.labels", monitor_id, window=seq, dataset=ref)
    session.commit()
    return result


@router.get("/{monitor_id}/history", summary="The monitor's time series: one point per window")
def get_history(
    monitor_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_role("viewer"))],
) -> Any:
    from service.monitoring.monitor import history

    try:
        return history(request.app.state.sessions, monitor_id, org_id=principal.org_id)
    except NotFound:
        raise NotFound(f"no monitor {monitor_id!r} in your organisation") from None


__all__ = ["router"]
