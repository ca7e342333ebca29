"""Build a :class:`ReasonEngine` from an audit context (development data = reference population)."""

from __future__ import annotations

from typing import Any

from service.audits.context import AuditContext
from service.errors import InputError
from service.reasons.catalogue import Catalogue, load_catalogue
from service.reasons.engine import ReasonEngine, reference_set


def catalogue_for(spec: Any, features: list[str]) -> Catalogue:
    """The spec's ``reason_codes`` catalogue validated against the model's features."""
    if spec.reason_codes is None:
        raise InputError(
            "the spec has no reason catalogue",
            file=str(spec.spec_path or "spec"),
            field="reason_codes",
            expected="reason_codes: a YAML/JSON file (or inline mapping) of reason groups, SPEC.md §3",
        )
    protected = [p.column for p in spec.protected if p.column]
    return load_catalogue(
        spec.reason_codes, features=features, base_dir=spec.base_dir, protected_columns=protected
    )


def blocked_from_results(ctx: AuditContext) -> list[str]:
    """Features the proxy audit flagged on their own (association or single-feature AUC).

    Empty when the proxy audit did not run.

    Features that only carry weight in the redundant-encoding model are not blocked: that flag is a
    property of the feature set as a whole, and blocking every carrier would drop principal reasons,
    which comment 9(b)(2)-4 forbids. They are reported by the proxies section instead.
    """
    prox = ctx.results.get("proxies") or {}
    out: list[str] = []
    for attr in (prox.get("attributes") or {}).values():
        for row in attr.get("features") or []:
            f = row.get("feature")
            if row.get("flagged") and f in ctx.features and f not in out:
                out.append(str(f))
    return out


def engine_from_context(
    ctx: AuditContext,
    *,
    method: str | None = None,
    blocked_features: list[str] | None = None,
    catalogue: Catalogue | None = None,
) -> ReasonEngine:
    spec = ctx.spec
    cat = catalogue or catalogue_for(spec, ctx.features)
    ref = reference_set(
        ctx.dev.frame,
        ctx.dev.score,
        features=ctx.features,
        threshold=spec.score.threshold,
        direction=spec.score.direction,
        method=method or spec.reasons.reference,
        weight=ctx.dev.weight,
    )
    return ReasonEngine(
        ctx.model,
        cat,
        ref,
        threshold=spec.score.threshold,
        direction=spec.score.direction,
        max_reasons=spec.reasons.max_reasons,
        blocked_features=blocked_features if blocked_features is not None else blocked_from_results(ctx),
        id_column=spec.id_column,
        seed=spec.seed,
        grouping=spec.reasons.grouping,
    )


__all__ = ["blocked_from_results", "catalogue_for", "engine_from_context"]
