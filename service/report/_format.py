"""Number and table formatting for the report context (the templates only print strings)."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

DASH = "—"


def is_num(x: Any) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def num(x: Any, nd: int = 3) -> str:
    """Integers with thousands separators, floats to ``nd`` decimals, ``None``/NaN as a dash."""
    if x is None:
        return DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return DASH
        if x.is_integer() and abs(x) >= 1000:
            return f"{int(x):,}"
        return f"{x:.{nd}f}"
    return str(x)


def count(x: Any) -> str:
    """A count (possibly a weighted float): no decimals when whole."""
    if is_num(x) and float(x).is_integer():
        return f"{int(x):,}"
    return num(x, 1)


def pct(x: Any, nd: int = 1) -> str:
    return f"{100 * float(x):.{nd}f}%" if is_num(x) else DASH


def pval(x: Any) -> str:
    if not is_num(x):
        return DASH
    return "<0.001" if float(x) < 0.001 else f"{float(x):.3f}"


def ci(x: Any, nd: int = 3) -> str:
    if isinstance(x, list | tuple) and len(x) == 2 and is_num(x[0]) and is_num(x[1]):
        return f"[{float(x[0]):.{nd}f}, {float(x[1]):.{nd}f}]"
    return DASH


def human(key: str) -> str:
    """``false_positive_rate`` → ``false positive rate``; keeps short acronyms upper-case."""
    words = str(key).replace("_", " ").strip()
    upper = {"auc", "ks", "psi", "air", "smd", "ci", "js", "shap", "id", "oot", "pr", "hl"}
    return " ".join(w.upper() if w.lower() in upper else w for w in words.split(" "))


def cell(value: Any, key: str = "") -> str:
    """Generic cell formatting by key name: rates/shares as numbers to 3 dp, p-values, CIs, counts."""
    k = key.lower()
    if isinstance(value, list | tuple):
        if len(value) == 2 and all(is_num(v) for v in value) and (k.endswith("ci") or "_ci" in k):
            return ci(value)
        if all(not isinstance(v, dict | list) for v in value):
            text = ", ".join(num(v) for v in value[:12])
            return text + (f", … ({len(value)} items)" if len(value) > 12 else "")
        return f"({len(value)} items)"
    if isinstance(value, dict):
        return f"({len(value)} entries)"
    if k.endswith("p_value") or k.endswith("_p") or k in ("p", "p_value", "q_value") or k.endswith("q_value"):
        return pval(value)
    if k in ("n", "rows", "count", "events", "columns") or k.startswith("n_") or k.endswith("_count"):
        return count(value)
    return num(value)


__all__ = ["DASH", "cell", "ci", "count", "human", "is_num", "num", "pct", "pval"]
