"""Stress-scenario shocks to input features (spec ``stress:``; REGULATORY.md §(a) 8, §(d) "Stress / regime").

A scenario is a set of shocks, one per input column, applied to a copy of the audit sample, which is
then rescored through the model. Shocks:

* ``multiply: k``      x' = k·x                          (numeric columns)
* ``add: d``           x' = x + d                        (numeric columns)
* ``set_quantile: q``  x' = Q_x(q), every row set to the q-quantile of the column (numeric columns)
* ``shift_mix: {c: s}`` the categorical mix moves to the target shares s for the listed categories;
  the unlisted categories share the remainder in proportion to their current shares. Rows are
  moved from categories above their target to categories below it, chosen at random with the
  seeded generator (as few rows as possible move). Missing values are left alone.

Missing values stay missing under every shock. A shock of zero (``add: 0``, ``multiply: 1``, or a
``shift_mix`` equal to the current mix) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from service.config import ShockSpec
from service.errors import InputError
from service.inputs.datasets import is_numeric


def validate_shocks(
    frame: pd.DataFrame, shocks: Mapping[str, ShockSpec], *, index: int, source: str = "spec"
) -> None:
    """Check every shock against the data; raise :class:`InputError` naming ``stress[i].shocks.<feature>``."""
    for col, shock in shocks.items():
        key = f"stress[{index}].shocks.{col}"
        if col not in frame.columns:
            cols = ", ".join(map(str, frame.columns[:15])) + (" ..." if frame.shape[1] > 15 else "")
            raise InputError(
                f"stress shock on column '{col}', which is not in the data",
                file=source,
                field=key,
                expected=f"one of the columns: {cols}",
            )
        s = frame[col]
        if shock.shift_mix is None and not is_numeric(s):
            raise InputError(
                f"shock '{_shock_kind(shock)}' needs a numeric column but '{col}' holds {s.dtype} values",
                file=source,
                field=key,
                expected="multiply/add/set_quantile on numeric columns; shift_mix on categorical columns",
            )
        if shock.shift_mix is not None:
            present = {str(v) for v in s.dropna().unique()}
            unknown = [k for k in shock.shift_mix if str(k) not in present]
            if unknown:
                raise InputError(
                    f"shift_mix names categories not present in column '{col}': "
                    + ", ".join(map(str, unknown)),
                    file=source,
                    field=key,
                    expected=f"categories among: {', '.join(sorted(present)[:20])}",
                )
            shares = list(shock.shift_mix.values())
            total = float(sum(shares))
            if any(v < 0 or v > 1 for v in shares) or total > 1 + 1e-9:
                raise InputError(
                    f"shift_mix shares for '{col}' must be in [0, 1] and sum to at most 1 "
                    f"(got sum {total:g})",
                    file=source,
                    field=key,
                    expected="target shares such as {A: 0.3, B: 0.5}",
                )
            if len(shock.shift_mix) == len(present) and abs(total - 1.0) > 1e-6:
                raise InputError(
                    f"shift_mix lists every category of '{col}' but the shares sum to {total:g}",
                    file=source,
                    field=key,
                    expected="shares summing to 1 when every category is listed",
                )


def _shock_kind(shock: ShockSpec) -> str:
    for k in ("multiply", "add", "set_quantile", "shift_mix"):
        if getattr(shock, k) is not None:
            return k
    return "?"


def describe(shock: ShockSpec) -> str:
    """Human-readable form of one shock, e.g. ``×0.8``, ``+5``, ``= q0.90``, ``mix {A: 0.3}``."""
    if shock.multiply is not None:
        return f"×{shock.multiply:g}"
    if shock.add is not None:
        return f"{shock.add:+g}"
    if shock.set_quantile is not None:
        return f"= q{shock.set_quantile:.2f}"
    assert shock.shift_mix is not None
    return "mix {" + ", ".join(f"{k}: {v:g}" for k, v in shock.shift_mix.items()) + "}"


def shift_mix(values: pd.Series, targets: Mapping[str, float], *, rng: np.random.Generator) -> pd.Series:
    """Move rows between categories so the mix reaches ``targets`` (see module docstring)."""
    s = values.copy()
    ok = s.notna().to_numpy()
    lab = s.astype(object).where(s.notna(), None).map(lambda v: None if v is None else str(v))
    cats = sorted({v for v in lab.dropna().unique()})
    n = int(ok.sum())
    if n == 0:
        return s
    counts = {c: int((lab == c).sum()) for c in cats}
    listed = {str(k): float(v) for k, v in targets.items()}
    rest = [c for c in cats if c not in listed]
    remainder = max(0.0, 1.0 - sum(listed.values()))
    rest_total = sum(counts[c] for c in rest)
    share = dict(listed)
    for c in rest:
        share[c] = remainder * (counts[c] / rest_total if rest_total else 1.0 / len(rest))
    # integer targets by largest remainder, summing to n
    raw = np.array([share[c] * n for c in cats])
    base = np.floor(raw).astype(int)
    short = n - int(base.sum())
    if short > 0:
        order = np.argsort(-(raw - base), kind="mergesort")
        base[order[:short]] += 1
    target = dict(zip(cats, base.tolist(), strict=True))
    donors: list[int] = []
    positions = np.arange(len(s))
    lab_arr = lab.to_numpy(dtype=object)
    for c in cats:
        excess = counts[c] - target[c]
        if excess > 0:
            rows = positions[lab_arr == c]
            donors.extend(rng.choice(rows, size=excess, replace=False).tolist())
    donors_arr = np.array(sorted(donors), dtype=np.int64)
    donors_arr = rng.permutation(donors_arr) if donors_arr.size else donors_arr
    new_lab = lab_arr.copy()
    k = 0
    for c in cats:
        need = target[c] - counts[c]
        if need > 0:
            new_lab[donors_arr[k : k + need]] = c
            k += need
    # write back in the column's own type (numeric codes stay numeric)
    if is_numeric(values):
        mapping = {str(v): v for v in values.dropna().unique()}
        out = pd.Series([mapping.get(v, v) if v is not None else np.nan for v in new_lab], index=s.index)
        return out.astype(values.dtype, errors="ignore")
    out = values.astype(object).copy()
    changed = new_lab != lab_arr
    out.iloc[np.nonzero(changed)[0]] = new_lab[changed]
    return out


def apply_shocks(
    frame: pd.DataFrame, shocks: Mapping[str, ShockSpec], *, rng: np.random.Generator
) -> pd.DataFrame:
    """A shocked copy of ``frame`` (the input frame is not modified)."""
    out = frame.copy()
    for col, shock in shocks.items():
        s = out[col]
        if shock.shift_mix is not None:
            out[col] = shift_mix(s, shock.shift_mix, rng=rng)
            continue
        x = pd.to_numeric(s, errors="coerce").astype("float64")
        if shock.multiply is not None:
            y = x * shock.multiply
        elif shock.add is not None:
            y = x + shock.add
        else:
            assert shock.set_quantile is not None
            q = float(np.nanquantile(x.to_numpy(), shock.set_quantile)) if x.notna().any() else np.nan
            y = x.where(x.isna(), q)
        if pd.api.types.is_integer_dtype(s.dtype) and np.allclose(y.dropna(), np.round(y.dropna())):
            out[col] = y.round().astype(s.dtype)
        else:
            out[col] = y
    return out


__all__ = ["apply_shocks", "describe", "shift_mix", "validate_shocks"]
