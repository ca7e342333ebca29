"""``AuditContext``: everything an audit may read, validated and computed once.

Audits are pure functions of the context: they never read files, never import api/store/report.
Orientation conventions: ``Split.y == 1`` is the adverse event (default, fraud, ...);
``Split.risk`` is the score oriented so higher = riskier; ``Split.adverse`` is the decision.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from service.config import AuditSpec
from service.inputs.models import ScoreModel
from service.result import Finding


@dataclass
class ProtectedGroups:
    """One protected attribute on one split.

    ``membership`` is an (n, k) matrix of weights in [0, 1], one column per group in ``groups``:
    one-hot for an observed attribute, BISG probabilities for an estimated one (rows sum to 1,
    or to 0 where the attribute is missing). ``codes`` is the hard assignment (−1 = missing),
    ``argmax`` of the probabilities for an estimated attribute.
    """

    name: str
    column: str | None
    reference: str
    groups: list[str]
    codes: np.ndarray
    membership: np.ndarray
    estimated: bool = False
    method: str = "observed"
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def reference_index(self) -> int:
        return self.groups.index(self.reference)

    def labels(self) -> np.ndarray:
        """Hard group label per row (object array, None where missing)."""
        lab = np.array(self.groups + [None], dtype=object)
        return lab[np.where(self.codes >= 0, self.codes, len(self.groups))]


@dataclass
class Split:
    """One dataset (development or out-of-time) with model outputs and decisions."""

    name: str
    frame: pd.DataFrame
    y: np.ndarray
    score: np.ndarray
    risk: np.ndarray
    prob: np.ndarray | None
    margin: np.ndarray | None
    adverse: np.ndarray
    weight: np.ndarray | None
    protected: dict[str, ProtectedGroups]
    dates: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def w(self) -> np.ndarray:
        """Weights, ones when the spec gives none."""
        return np.ones(self.n) if self.weight is None else self.weight


@dataclass
class SectionOutput:
    """What an audit returns: its section (a pydantic model) and its findings."""

    section: BaseModel
    findings: list[Finding] = field(default_factory=list)


class NotApplicable(Exception):  # noqa: N818 - a signal, not an error
    """Raised by an audit that cannot run on these inputs; the message says why (shown as "not run")."""


@dataclass
class AuditContext:
    spec: AuditSpec
    model: ScoreModel
    features: list[str]
    dev: Split
    oot: Split | None = None
    score_kind: str = "probability"
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda _msg: None

    @property
    def seed(self) -> int:
        return self.spec.seed

    def rng(self, name: str) -> np.random.Generator:
        """A generator for one audit, derived from the spec seed and the audit's name.

        Deriving per name keeps each section's random draws independent of which other
        sections ran, so adding an audit never changes another section's numbers.
        """
        return np.random.default_rng([self.spec.seed, zlib.crc32(name.encode())])

    @property
    def n_boot(self) -> int:
        return self.spec.bootstrap

    def splits(self) -> list[Split]:
        return [s for s in (self.dev, self.oot) if s is not None]


__all__ = ["AuditContext", "NotApplicable", "ProtectedGroups", "SectionOutput", "Split"]
