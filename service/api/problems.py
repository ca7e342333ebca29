"""RFC 9457 problem details (``application/problem+json``) for every 4xx/5xx response."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import AssayError, InputError, Unauthorized, UntrustedModelError

log = logging.getLogger("assay.api")
PROBLEM = "application/problem+json"


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response: ``type``, ``title``, ``status``, ``detail``, ``instance`` + extensions."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = str(request.url.path)
        rid = getattr(request.state, "request_id", None)
        if rid:
            body["request_id"] = rid
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _assay_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AssayError)
    extra: dict[str, Any] = {}
    if isinstance(exc, InputError):
        extra = {"field": exc.field, "expected": exc.expected}
        detail = exc.message if exc.file is None else exc.render()
    else:
        detail = str(exc) or exc.title
    if isinstance(exc, UntrustedModelError):
        extra["untrusted_types"] = exc.types
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    title = HTTPStatus(exc.status).phrase if exc.status == 415 else exc.title
    if exc.status >= 500:
        log.error("server error: %s", detail)
    return problem(exc.status, detail, title=title, request=request, headers=headers, **extra)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; see /docs for the API"
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        detail = f"method {request.method} is not allowed on {request.url.path}; allowed: " + ", ".join(
            allowed
        )
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return problem(exc.status_code, detail, request=request, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the API serves at this path, from the OpenAPI paths (Starlette's own Allow
    header names the methods of one route only)."""
    import re

    path = request.url.path
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            methods |= {m.upper() for m in item if m in _HTTP_METHODS}
    return sorted(methods)


_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()))
        errors.append({"loc": loc, "msg": str(e.get("msg")), "type": str(e.get("type"))})
    first = errors[0] if errors else {"loc": "", "msg": "invalid request"}
    detail = f"{first['loc']}: {first['msg']}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
    return problem(422, detail, title="Invalid request", request=request, errors=errors)


def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return problem(
        503,
        "the database is unavailable; retry shortly (GET /readyz shows the state)",
        request=request,
        headers={"Retry-After": "5"},
    )


def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal error; the request id identifies it in the server log", request=request)


def install(app: FastAPI) -> None:
    app.add_exception_handler(AssayError, _assay_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(Exception, _unhandled)
