"""Request dependencies: the caller's :class:`Principal` from ``Authorization: Bearer <key>`` and
role checks. Roles are ordered viewer < auditor < admin (viewers read, auditors create, admins
manage keys)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.errors import Forbidden, Unauthorized
from service.store import repo

ROLE_RANK = {"viewer": 0, "auditor": 1, "admin": 2}
# A verified key is trusted for this long without a database read (keeps the reasons route fast);
# a key revoked through the CLI stops working within this delay, one revoked through the API at once.
KEY_CACHE_TTL_S = 10.0


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: their key id, organisation and role."""

    key_id: str
    org_id: str
    role: str


def get_session(request: Request) -> Iterator[Session]:
    """A database session for the request (committed by the route, closed afterwards)."""
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


def get_principal(request: Request) -> Principal:
    """Authenticate the bearer key; 401 when missing or not valid."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <api key>' (create one with 'assay keys create')")
    token = token.strip()
    # keyed by a digest so that the process memory holds no usable key
    digest = hashlib.sha256(token.encode()).digest()
    cache: dict[bytes, tuple[Principal, float]] = request.app.state.key_cache
    now = time.monotonic()
    hit = cache.get(digest)
    if hit is not None and hit[1] > now:
        principal = hit[0]
    else:
        with request.app.state.sessions() as session:
            row = repo.verify_key(session, token)
            if row is None:
                cache.pop(digest, None)
                raise Unauthorized("the API key is not valid or has been revoked")
            principal = Principal(key_id=row.id, org_id=row.org_id, role=row.role)
        if len(cache) > 10_000:
            cache.clear()
        cache[digest] = (principal, now + KEY_CACHE_TTL_S)
    request.state.principal = principal
    return principal


def require_role(role: str) -> Callable[..., Principal]:
    """Dependency factory: ``Depends(require_role("auditor"))`` → the principal, or 403 if below ``role``."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    def dependency(principal: Principal = Depends(get_principal)) -> Principal:
        if ROLE_RANK[principal.role] < ROLE_RANK[role]:
            raise Forbidden(f"this action needs the '{role}' role; your key has '{principal.role}'")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


__all__ = ["KEY_CACHE_TTL_S", "Principal", "ROLE_RANK", "get_principal", "get_session", "require_role"]
