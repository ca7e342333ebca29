"""Findings: severity from policy thresholds, stable ids, and the ``--fail-on`` gate."""

from __future__ import annotations

from collections.abc import Iterable

from service.config import PolicySpec
from service.result import SEVERITY_ORDER, Finding, Severity


def finding(
    section: str,
    severity: Severity,
    title: str,
    detail: str,
    *,
    metric: str | None = None,
    value: float | None = None,
    policy: PolicySpec | None = None,
    threshold_name: str | None = None,
    threshold: float | None = None,
) -> Finding:
    """Build a finding; when ``threshold_name`` names a policy field its value and source are filled in."""
    source = None
    if policy is not None and threshold_name is not None:
        threshold = float(getattr(policy, threshold_name))
        source = policy.source(threshold_name)
        detail = f"{detail} (threshold {threshold_name} = {threshold:g}, {source})"
    elif threshold is not None:
        source = "default"
    return Finding(
        severity=severity,
        section=section,
        title=title,
        detail=detail,
        metric=metric,
        value=None if value is None else float(value),
        threshold=threshold,
        threshold_source=source,
    )


def number(findings: Iterable[Finding]) -> list[Finding]:
    """Sort by severity (worst first), then section order of appearance, and assign stable ids."""
    items = list(findings)
    order = {f.section: i for i, f in reversed(list(enumerate(items)))}
    items.sort(key=lambda f: (-SEVERITY_ORDER[f.severity], order[f.section]))
    for i, f in enumerate(items, start=1):
        f.id = f"F{i:03d}"
    return items


def worst_at_or_above(findings: Iterable[Finding], severity: str) -> bool:
    """True when any finding is at or above ``severity`` (for ``--fail-on``)."""
    floor = SEVERITY_ORDER[severity]
    return any(SEVERITY_ORDER[f.severity] >= floor for f in findings)


def counts_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    out = {k: 0 for k in SEVERITY_ORDER}
    for f in findings:
        out[f.severity] += 1
    return out


__all__ = ["counts_by_severity", "finding", "number", "worst_at_or_above"]
