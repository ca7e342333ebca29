"""The adverse-action reason catalogue (SPEC.md §3 ``reason_codes:``) and knockout rules.

A catalogue maps every model feature to exactly one reason group (or lists it under ``excluded:``
with a reason), each group with a plain-language statement. Statements should follow Regulation B
Appendix C Form C-1 wording only where it is accurate (REGULATORY.md §(c).1 item 8; App. C comment 3).
Knockout rules (``when: "months_since_bankruptcy < 24"``) decline regardless of the score and are
disclosed first (comment 9(b)(2)-8). Their expressions use a tiny grammar parsed here, never ``eval``::

    rule    := column OP value
    OP      := < | <= | > | >= | == | !=
    value   := number | 'text' | "text" | bare-word
    column  := a column name, optionally in backquotes (`col name`)

A missing value (NaN/None) never triggers a knockout.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from service.errors import InputError

_FORBIDDEN_STATEMENTS = ("insufficient score", "internal standard", "internal policy", "failed to achieve")
_RULE = re.compile(
    r"""^\s*(?:`(?P<qcol>[^`]+)`|(?P<col>[A-Za-z_][\w.\-]*))\s*
        (?P<op><=|>=|==|!=|<|>)\s*
        (?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|(?P<bare>[^\s'"]+))\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class ReasonGroup:
    code: str
    statement: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class KnockoutRule:
    """One automatic-decline rule: ``column op value``."""

    code: str
    statement: str
    when: str
    column: str
    op: str
    value: float | str

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean array: rows the rule declines (missing values never trigger)."""
        s = frame[self.column]
        if isinstance(self.value, float):
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64")
            with np.errstate(invalid="ignore"):
                out = _compare(x, self.op, self.value)
            return np.asarray(out & np.isfinite(x), dtype=bool)
        txt = s.astype(object)
        ok = txt.notna().to_numpy()
        vals = np.array([str(v).strip() if v is not None else "" for v in txt], dtype=object)
        if self.op not in ("==", "!="):
            raise InputError(
                f"knockout '{self.code}': operator {self.op} needs a number, got text {self.value!r}",
                field=f"knockouts[{self.code}].when",
                expected="== or != for text values",
            )
        res = (vals == self.value) if self.op == "==" else (vals != self.value)
        return np.asarray(res & ok, dtype=bool)


def _compare(x: np.ndarray, op: str, v: float) -> np.ndarray:
    if op == "<":
        return x < v
    if op == "<=":
        return x <= v
    if op == ">":
        return x > v
    if op == ">=":
        return x >= v
    if op == "==":
        return x == v
    return x != v


def parse_rule(code: str, statement: str, when: str, *, source: str = "reason_codes") -> KnockoutRule:
    """Parse ``column OP value`` (no ``eval``); errors name the rule and show the grammar."""
    m = _RULE.match(when or "")
    if not m:
        raise InputError(
            f"cannot parse knockout rule {when!r} of '{code}'",
            file=source,
            field=f"knockouts[{code}].when",
            expected="'column OP value' with OP one of < <= > >= == != "
            '(e.g. "months_since_bankruptcy < 24")',
        )
    col = m.group("qcol") or m.group("col")
    op = m.group("op")
    value: float | str
    if m.group("sq") is not None or m.group("dq") is not None:
        value = m.group("sq") if m.group("sq") is not None else m.group("dq")
    else:
        bare = m.group("bare")
        try:
            value = float(bare)
        except ValueError:
            value = bare
    if isinstance(value, str) and op not in ("==", "!="):
        raise InputError(
            f"knockout rule {when!r} of '{code}' compares text with {op}",
            file=source,
            field=f"knockouts[{code}].when",
            expected="a number after < <= > >=, or == / != for text",
        )
    return KnockoutRule(code, statement, when, col, op, value)


@dataclass
class Catalogue:
    """A validated reason catalogue for one model's features."""

    groups: list[ReasonGroup]
    knockouts: list[KnockoutRule] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    source: str = "reason_codes"

    def group_of(self) -> dict[str, str]:
        return {f: g.code for g in self.groups for f in g.features}

    def statement(self, code: str) -> str:
        for g in self.groups:
            if g.code == code:
                return g.statement
        for k in self.knockouts:
            if k.code == code:
                return k.statement
        raise KeyError(code)

    def digest(self) -> str:
        """A stable hash of the catalogue content (part of the engine cache key)."""
        payload = {
            "groups": [[g.code, g.statement, list(g.features)] for g in self.groups],
            "knockouts": [[k.code, k.statement, k.when] for k in self.knockouts],
            "excluded": sorted(self.excluded.items()),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def matrix(self, features: list[str]) -> np.ndarray:
        """(p, g) 0/1 matrix: feature j belongs to group k (excluded features have a zero row)."""
        index = {c: k for k, c in enumerate(g.code for g in self.groups)}
        gof = self.group_of()
        m = np.zeros((len(features), len(self.groups)))
        for j, f in enumerate(features):
            if f in gof:
                m[j, index[gof[f]]] = 1.0
        return m


def _need(cond: bool, msg: str, source: str, fld: str, expected: str | None = None) -> None:
    if not cond:
        raise InputError(msg, file=source, field=fld, expected=expected)


def parse_catalogue(
    data: Any,
    *,
    features: list[str],
    source: str = "reason_codes",
    protected_columns: list[str] | None = None,
) -> Catalogue:
    """Validate a catalogue mapping against the model's features.

    Every model feature must be in exactly one group or under ``excluded:`` (with a reason); a
    catalogue feature that is not a model feature is an error (reasons must relate only to factors
    actually scored, comment 9(b)(2)-4); a protected attribute column that the model uses must be
    under ``excluded:`` (a protected basis is never a reason).
    """
    _need(
        isinstance(data, dict),
        f"the catalogue must be a mapping, got {type(data).__name__}",
        source,
        "(top level)",
        "keys groups, knockouts (optional), excluded (optional)",
    )
    unknown = set(data) - {"groups", "knockouts", "excluded"}
    _need(
        not unknown,
        f"unknown key(s) {sorted(unknown)}",
        source,
        ", ".join(sorted(unknown)),
        "only groups, knockouts, excluded",
    )
    raw_groups = data.get("groups") or []
    _need(
        isinstance(raw_groups, list) and len(raw_groups) > 0,
        "no reason groups given",
        source,
        "groups",
        "a list of {code, statement, features}",
    )
    groups: list[ReasonGroup] = []
    seen_codes: set[str] = set()
    owner: dict[str, str] = {}
    for i, g in enumerate(raw_groups):
        _need(
            isinstance(g, dict),
            f"group #{i + 1} is not a mapping",
            source,
            f"groups[{i}]",
            "{code, statement, features}",
        )
        extra = set(g) - {"code", "statement", "features"}
        _need(
            not extra,
            f"group #{i + 1} has unknown key(s) {sorted(extra)}",
            source,
            f"groups[{i}]",
            "only code, statement, features",
        )
        code = str(g.get("code") or "").strip()
        stmt = str(g.get("statement") or "").strip()
        feats = g.get("features")
        _need(bool(code), f"group #{i + 1} has no code", source, f"groups[{i}].code")
        _need(
            code not in seen_codes,
            f"reason code '{code}' is used twice",
            source,
            f"groups[{i}].code",
            "unique codes",
        )
        _need(bool(stmt), f"group '{code}' has no statement", source, f"groups[{code}].statement")
        low = stmt.lower()
        bad = [p for p in _FORBIDDEN_STATEMENTS if p in low]
        _need(
            not bad,
            f"group '{code}' statement {stmt!r} is not a specific reason ('{bad[0] if bad else ''}')",
            source,
            f"groups[{code}].statement",
            "a specific factor (12 CFR 1002.9(b)(2): internal standards or an insufficient score "
            "are insufficient)",
        )
        _need(
            isinstance(feats, list) and len(feats) > 0,
            f"group '{code}' lists no features",
            source,
            f"groups[{code}].features",
            "a non-empty list of model features",
        )
        for f in feats:
            f = str(f)
            _need(
                f not in owner,
                f"feature '{f}' is in both group '{owner.get(f)}' and group '{code}'",
                source,
                f"groups[{code}].features",
                "every feature in exactly one group",
            )
            owner[f] = code
        seen_codes.add(code)
        groups.append(ReasonGroup(code, stmt, tuple(str(f) for f in feats)))

    excluded: dict[str, str] = {}
    raw_ex = data.get("excluded") or []
    _need(
        isinstance(raw_ex, list), "excluded must be a list", source, "excluded", "a list of {feature, reason}"
    )
    for i, e in enumerate(raw_ex):
        _need(
            isinstance(e, dict) and bool(e.get("feature")) and bool(e.get("reason")),
            f"excluded entry #{i + 1} needs 'feature' and 'reason'",
            source,
            f"excluded[{i}]",
            "{feature: NAME, reason: WHY}",
        )
        f = str(e["feature"])
        _need(
            f not in owner,
            f"feature '{f}' is both in group '{owner.get(f)}' and excluded",
            source,
            f"excluded[{i}]",
            "a feature either in one group or excluded",
        )
        excluded[f] = str(e["reason"])

    model_feats = set(features)
    for f in list(owner) + list(excluded):
        _need(
            f in model_feats,
            f"catalogue feature '{f}' is not a model feature",
            source,
            f"groups[{owner[f]}].features" if f in owner else "excluded",
            "only the model's input features: " + ", ".join(features[:30]),
        )
    unmapped = [f for f in features if f not in owner and f not in excluded]
    if unmapped:
        _need(
            False,
            f"model feature '{unmapped[0]}' is not mapped to any reason group"
            + (f" (nor are {', '.join(unmapped[1:6])})" if len(unmapped) > 1 else ""),
            source,
            "groups",
            "every model feature in exactly one group, or under 'excluded:' with a reason",
        )
    for col in protected_columns or []:
        _need(
            col not in owner,
            f"feature '{col}' is a protected attribute but is in reason group '{owner.get(col)}'",
            source,
            f"groups[{owner.get(col)}].features",
            "protected attributes listed under 'excluded:' "
            "(a protected basis is never an adverse-action reason)",
        )

    knockouts: list[KnockoutRule] = []
    raw_k = data.get("knockouts") or []
    _need(
        isinstance(raw_k, list),
        "knockouts must be a list",
        source,
        "knockouts",
        "a list of {code, statement, when}",
    )
    for i, k in enumerate(raw_k):
        _need(
            isinstance(k, dict) and bool(k.get("code") and k.get("statement") and k.get("when")),
            f"knockout #{i + 1} needs 'code', 'statement' and 'when'",
            source,
            f"knockouts[{i}]",
            '{code, statement, when: "column < number"}',
        )
        code = str(k["code"])
        _need(
            code not in seen_codes,
            f"reason code '{code}' is used twice",
            source,
            f"knockouts[{i}].code",
            "unique codes",
        )
        seen_codes.add(code)
        knockouts.append(parse_rule(code, str(k["statement"]), str(k["when"]), source=source))
    return Catalogue(groups, knockouts, excluded, source)


def load_catalogue(
    ref: str | dict[str, Any],
    *,
    features: list[str],
    base_dir: Path | None = None,
    protected_columns: list[str] | None = None,
) -> Catalogue:
    """Load a catalogue from a YAML/JSON path (relative to ``base_dir``) or an inline mapping."""
    if isinstance(ref, dict):
        return parse_catalogue(
            ref, features=features, source="reason_codes", protected_columns=protected_columns
        )
    from service.config import read_mapping

    p = Path(ref)
    if not p.is_absolute() and base_dir is not None:
        p = (base_dir / p).resolve()
    return parse_catalogue(
        read_mapping(p), features=features, source=str(p), protected_columns=protected_columns
    )


__all__ = ["Catalogue", "KnockoutRule", "ReasonGroup", "load_catalogue", "parse_catalogue", "parse_rule"]
