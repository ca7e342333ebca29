"""The explicit registry of audits: section name → function. Order matters (later audits may read
earlier sections from ``ctx.results``). Adding a section = a new module plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from service.audits import (
    data,
    drift,
    explanations,  # registered last: reads the proxies section
    fairness,
    imbalance,
    performance,
    proxies,
    representation,
    temporal,
)
from service.audits.context import AuditContext, SectionOutput

AuditFn = Callable[[AuditContext], SectionOutput]

AUDITS: dict[str, AuditFn] = {
    "data": data.run,
    "representation": representation.run,
    "proxies": proxies.run,
    "imbalance": imbalance.run,
    "performance": performance.run,
    "fairness": fairness.run,
    "temporal": temporal.run,
    "drift": drift.run,
    "explanations": explanations.run,
    "reasons": explanations.run_reasons,
}

__all__ = ["AUDITS", "AuditFn"]
