"""BISG: Bayesian Improved Surname Geocoding of race/ethnicity (CFPB 2014 method).

When race/ethnicity is not collected (outside mortgage lending, 12 CFR 1002.5(b)), fair-lending
analysis uses a proxy (REGULATORY.md §(b).4). This module implements the CFPB Office of Research
method, "Using publicly available information to proxy for unidentified race and ethnicity"
(2014; code at github.com/cfpb/proxy-methodology, scripts ``surname_creation_lower.do``,
``create_attr_over18_all_geo_entities.do``, ``geo_name_merger_all_entities_over18.do``):

    P(r | s, g) = P(r | s) · P(g | r) / Σ_r' P(r' | s) · P(g | r')

which is the same as ∝ P(s | r) · P(r | g) (Bayes' rule on both terms; the national P(r) cancels).

* ``P(r | s)``: Census 2010 "Frequently Occurring Surnames" percentages. Suppressed "(S)" cells
  get an equal share of the remainder, ``(1 − Σ observed) / #suppressed`` (CFPB
  ``surname_creation_lower.do``).
* ``P(g | r)``: adults 18+ by race/ethnicity in the ZCTA (5-digit ZIP) or census tract (11-digit
  GEOID), Census 2010 SF1 counts as prepared by the CFPB, with "Some Other Race" reallocated as the
  CFPB does (Word 2008): ``X_Other`` counts folded into the single-race counts, Asian + NHPI merged
  into ``api``, and the remaining non-Hispanic "Other alone" spread proportionally over the five
  non-Hispanic groups; ``P(g | r) = count(g, r) / Σ_g count(g, r)`` over the table. Puerto Rico is
  excluded, as the CFPB does (its population is not reflected in the surname list).
* Fallbacks (documented, counted in ``diagnostics``): surname not in the list (after cleaning) →
  geography alone, ``P(r | g)``; geography not in the table → surname alone, ``P(r | s)``; neither →
  an all-zero row (the attribute is missing for that applicant; it counts toward no group).

Categories (``GROUPS``): ``white`` (non-Hispanic White alone), ``black`` (non-Hispanic Black alone),
``api`` (non-Hispanic Asian or Pacific Islander alone), ``aian`` (non-Hispanic American Indian or
Alaska Native alone), ``multiracial`` (non-Hispanic two or more races, CFPB ``mult_other``),
``hispanic`` (Hispanic or Latino, any race).

Surname cleaning follows CFPB ``surname_parser.do``: lower case, accents folded to ASCII, digits and
``` `{}\\,.`` removed, apostrophes dropped (O'Connor → oconnor), suffixes jr/sr/ii/iii/iv/dds/md/phd and
lone initials removed, spaces removed, and for hyphenated names the first part is tried, then the
second.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from service.errors import InputError

DATA_DIR = Path(__file__).resolve().parent / "bisg_data"
GROUPS: list[str] = ["white", "black", "api", "aian", "multiracial", "hispanic"]
_PCT = ["pctwhite", "pctblack", "pctapi", "pctaian", "pct2prace", "pcthispanic"]
_SUPPRESSED = 65535
_SUFFIXES = ("jr", "sr", "ii", "iii", "iv", "dds", "md", "phd")
GeoKind = Literal["auto", "zcta", "tract"]


@dataclass
class BisgEstimate:
    """Result of :func:`estimate`: one row of probabilities over ``groups`` per applicant."""

    groups: list[str]
    probabilities: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)
    source: np.ndarray | None = None  # per row: "surname+geography" | "geography" | "surname" | "none"


# --------------------------------------------------------------------------- tables (lazy, cached)


@lru_cache(maxsize=1)
def surname_table() -> tuple[pd.Index, np.ndarray]:
    """(upper-case names, P(race | surname) as an (n, 6) array) with suppressed cells imputed."""
    t = pd.read_parquet(DATA_DIR / "surnames_2010.parquet")
    raw = t[_PCT].to_numpy(dtype="float64")
    sup = raw == _SUPPRESSED
    pct = np.where(sup, 0.0, raw / 10000.0)
    n_sup = sup.sum(axis=1)
    remainder = np.clip(1.0 - pct.sum(axis=1), 0.0, None)
    share = np.divide(remainder, n_sup, out=np.zeros_like(remainder), where=n_sup > 0)
    pct = np.where(sup, share[:, None], pct)
    return pd.Index(t["name"].to_numpy()), pct


def allocate_counts(t: pd.DataFrame) -> np.ndarray:
    """CFPB reallocation of the Census 2010 adult counts into the six BISG groups, (n, 6) floats.

    Follows ``create_attr_over18_all_geo_entities.do`` step by step (Word 2008 "Other" handling).
    """
    c = {k: t[k].to_numpy(dtype="float64") for k in t.columns if k not in ("geoid", "state")}
    white = c["NH_White_alone"] + c["NH_White_Other"]
    black = c["NH_Black_alone"] + c["NH_Black_Other"]
    aian = c["NH_AIAN_alone"] + c["NH_AIAN_Other"]
    api = c["NH_API_alone"] + c["NH_API_Other"] + c["NH_Asian_HPI"] + c["NH_Asian_HPI_Other"]
    mult = c["NH_Mult_Total"] - (
        c["NH_White_Other"]
        + c["NH_Black_Other"]
        + c["NH_AIAN_Other"]
        + c["NH_Asian_HPI"]
        + c["NH_API_Other"]
        + c["NH_Asian_HPI_Other"]
    )
    other = c["NH_Other_alone"]
    total = c["Total_Pop"]
    nh = np.stack([white, black, api, aian, mult], axis=1)
    denom = (total - c["Hispanic_Total"] - other)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        nh = nh + nh / denom * other[:, None]
    nh = np.where((total == 0)[:, None], 0.0, nh)
    nh = np.where((c["Non_Hispanic_Total"] == other)[:, None], (other / 5.0)[:, None], nh)
    return np.column_stack([nh, c["Hispanic_Total"]])


@lru_cache(maxsize=2)
def geography_table(kind: Literal["zcta", "tract"]) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """(integer geography codes, P(race | g), P(g | race)) for ``zcta`` or ``tract`` (Census 2010)."""
    t = pd.read_parquet(DATA_DIR / f"{kind}_2010.parquet")
    geoid = t["geoid"].to_numpy()
    # Puerto Rico: ZCTAs 006xx-009xx, tracts in state 72
    pr = (geoid >= 600) & (geoid < 1000) if kind == "zcta" else t["state"].to_numpy() == 72
    t = t.loc[~pr].reset_index(drop=True)
    counts = allocate_counts(t)
    total = t["Total_Pop"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        p_r_given_g = counts / total[:, None]
        p_g_given_r = counts / counts.sum(axis=0, keepdims=True)
    p_r_given_g[total == 0] = np.nan
    return pd.Index(t["geoid"].to_numpy()), p_r_given_g, p_g_given_r


# --------------------------------------------------------------------------- cleaning and validation


_STRIP = re.compile(r"[`{}\\,.0-9\"]")
_SUFFIX = re.compile(r" (?:" + "|".join(_SUFFIXES) + r")(?= )")
_INITIAL = re.compile(r" [a-z](?= )")


def clean_surnames(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """CFPB surname cleaning; returns (first part, second part of a hyphenated name), upper case."""
    txt = s.astype("string")
    txt = txt.map(
        lambda v: v if v is pd.NA else unicodedata.normalize("NFKD", v).encode("ascii", "ignore").decode()
    ).astype("string")
    txt = " " + txt.str.lower() + " "
    txt = txt.str.replace(_STRIP, " ", regex=True).str.replace("'", "", regex=False)
    txt = txt.str.replace(_SUFFIX, " ", regex=True).str.replace(_SUFFIX, " ", regex=True)
    txt = txt.str.replace(_INITIAL, " ", regex=True).str.replace(_INITIAL, " ", regex=True)
    txt = txt.str.replace(r"[^a-z\-]", "", regex=True)
    parts = txt.str.split("-", n=2, expand=False)
    # .astype("string"): a column with no hyphenated name gives an all-missing (float) second part
    first = parts.str[0].astype("string").str.upper()
    second = parts.str[1].astype("string").str.upper()
    return first, second


def _check_surnames(s: pd.Series, source: str) -> None:
    field_name = f"bisg.surname ({s.name})"
    nonnull = s.dropna()
    if nonnull.astype(str).str.strip().eq("").all():
        raise InputError(
            f"surname column '{s.name}' is entirely missing, so BISG cannot use surnames",
            file=source,
            field=field_name,
            expected="applicants' last names as text on at least some rows",
        )
    if pd.api.types.is_numeric_dtype(s):
        raise InputError(
            f"surname column '{s.name}' holds numbers (dtype {s.dtype}), not names",
            file=source,
            field=field_name,
            expected="applicants' last names as text (e.g. 'Garcia')",
        )
    txt = nonnull.astype(str)
    with_digits = txt.str.contains(r"\d", regex=True)
    if with_digits.sum() > 0.01 * len(txt):
        ex = ", ".join(repr(v) for v in txt[with_digits].head(3))
        raise InputError(
            f"surname column '{s.name}' has {int(with_digits.sum())} of {len(txt)} values containing digits "
            f"(e.g. {ex}); it looks like an id or code column, not surnames",
            file=source,
            field=field_name,
            expected="applicants' last names as text (at most 1% of values with stray digits)",
        )


def parse_geographies(g: pd.Series, *, kind: GeoKind, source: str) -> tuple[np.ndarray, str]:
    """Geography codes as int64 (−1 where missing) and the resolved kind ("zcta" or "tract").

    Accepts 5-digit ZIP/ZCTA (``"02134"``, ZIP+4 ``"02134-1234"`` is cut to 5 digits) or 11-digit
    census tract GEOIDs as text; numeric columns (leading zeros lost by a CSV reader) are accepted
    when integral and re-padded.
    """
    field_name = f"bisg.geography ({g.name})"
    miss = g.isna().to_numpy()
    if miss.all():
        raise InputError(
            f"geography column '{g.name}' is entirely missing",
            file=source,
            field=field_name,
            expected="a 5-digit ZIP/ZCTA or 11-digit census tract on at least some rows",
        )
    if pd.api.types.is_numeric_dtype(g) and not pd.api.types.is_bool_dtype(g):
        v = g.to_numpy(dtype="float64", na_value=np.nan)
        ok = ~np.isnan(v)
        if not np.all(v[ok] == np.round(v[ok])) or (v[ok] < 0).any():
            raise InputError(
                f"geography column '{g.name}' has non-integer or negative numbers",
                file=source,
                field=field_name,
                expected="5-digit ZIP/ZCTA or 11-digit census tract codes",
            )
        vmax = v[ok].max()
        resolved = kind if kind != "auto" else ("zcta" if vmax < 1e5 else "tract")
        limit = 1e5 if resolved == "zcta" else 1e11
        lower = 0 if resolved == "zcta" else 1e9
        bad = ok & ((v >= limit) | (v < lower))
        if bad.any():
            ex = ", ".join(str(int(x)) for x in v[bad][:3])
            raise InputError(
                f"geography column '{g.name}' has {int(bad.sum())} code(s) that are not "
                f"{'5-digit ZIP/ZCTA' if resolved == 'zcta' else '11-digit tract'} codes (e.g. {ex})",
                file=source,
                field=field_name,
                expected="one kind of code throughout: 5-digit ZIP/ZCTA or 11-digit census tract GEOID",
            )
        return np.where(ok, np.nan_to_num(v), -1).astype("int64"), resolved
    # validate and parse each distinct value once (codes repeat heavily); counts are of rows
    row_codes, uniq = pd.factorize(g, use_na_sentinel=True)
    rows_per = np.bincount(row_codes[row_codes >= 0], minlength=len(uniq))
    gu = pd.Series(uniq, dtype=object)
    txt = gu.astype("string").str.strip()
    zip4 = txt.str.fullmatch(r"\d{5}-\d{4}").fillna(False).to_numpy(dtype=bool)
    txt = txt.where(~zip4, txt.str.slice(0, 5))
    is5 = txt.str.fullmatch(r"\d{5}").fillna(False).to_numpy(dtype=bool)
    is11 = txt.str.fullmatch(r"\d{11}").fillna(False).to_numpy(dtype=bool)
    empty = txt.fillna("").eq("").to_numpy(dtype=bool)
    bad = ~(is5 | is11 | empty)
    if kind == "zcta":
        bad |= is11
    elif kind == "tract":
        bad |= is5
    if bad.any():
        ex = ", ".join(repr(str(x)) for x in gu[bad].head(3))
        want = {"zcta": "5-digit ZIP/ZCTA codes", "tract": "11-digit census tract GEOIDs"}.get(
            kind, "5-digit ZIP/ZCTA or 11-digit census tract codes"
        )
        raise InputError(
            f"geography column '{g.name}' has {int(rows_per[bad].sum())} value(s) in the wrong format "
            f"(e.g. {ex})",
            file=source,
            field=field_name,
            expected=f"{want} as text, e.g. '02134' or '25025010405' (if leading zeros were lost, "
            "keep the column numeric or re-pad it)",
        )
    if kind == "auto" and is5.any() and is11.any():
        raise InputError(
            f"geography column '{g.name}' mixes 5-digit ZIP codes ({int(rows_per[is5].sum())}) and "
            f"11-digit tracts ({int(rows_per[is11].sum())})",
            file=source,
            field=field_name,
            expected="one kind of geography code throughout (set bisg.geography_kind to say which)",
        )
    if empty.all():
        raise InputError(
            f"geography column '{g.name}' is entirely missing",
            file=source,
            field=field_name,
            expected="a 5-digit ZIP/ZCTA or 11-digit census tract on at least some rows",
        )
    resolved = kind if kind != "auto" else ("tract" if is11.any() else "zcta")
    parsed = pd.to_numeric(txt.where(~pd.Series(empty, index=txt.index)), errors="coerce")
    per_value = parsed.fillna(-1).to_numpy(dtype="int64")
    return np.where(row_codes >= 0, per_value[np.maximum(row_codes, 0)], -1), resolved


# --------------------------------------------------------------------------- the estimate


def combine(p_r_s: np.ndarray, p_g_r: np.ndarray) -> np.ndarray:
    """Bayesian update P(r|s,g) = P(r|s)·P(g|r) / Σ_r' P(r'|s)·P(g|r') row by row (NaN if the sum is 0)."""
    u = p_r_s * p_g_r
    tot = u.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, u / tot, np.nan)


def estimate(
    surnames: pd.Series,
    geographies: pd.Series,
    *,
    kind: GeoKind = "auto",
    source: str = "dataset",
) -> BisgEstimate:
    """BISG race/ethnicity probabilities for each applicant (CFPB 2014 method, module docstring).

    Parameters
    ----------
    surnames : applicants' last names (text).
    geographies : 5-digit ZIP/ZCTA or 11-digit census tract codes.
    kind : "zcta", "tract" or "auto" (from the code length).
    source : the data file's name, for error messages.

    Returns
    -------
    BisgEstimate with ``groups`` = :data:`GROUPS`, ``probabilities`` (n, 6) with rows summing to 1
    (or all 0 where neither surname nor geography matched) and ``diagnostics``.
    """
    if len(surnames) != len(geographies):
        raise InputError(
            f"surnames ({len(surnames)}) and geographies ({len(geographies)}) differ in length",
            file=source,
            field="bisg",
            expected="one surname and one geography per row",
        )
    _check_surnames(surnames, source)
    geo_codes, resolved = parse_geographies(geographies, kind=kind, source=source)
    names, p_r_s_table = surname_table()
    # clean each distinct spelling once (surnames repeat heavily: ~6x faster on 1M applicants)
    codes, uniq = pd.factorize(surnames, use_na_sentinel=True)
    first, second = clean_surnames(pd.Series(uniq, dtype=object))
    idx1 = names.get_indexer(first.fillna("").to_numpy(dtype=object))
    idx2 = names.get_indexer(second.fillna("").to_numpy(dtype=object))
    s_idx = np.where(codes >= 0, np.where(idx1 >= 0, idx1, idx2)[np.maximum(codes, 0)], -1)
    geo_index, p_r_g_table, p_g_r_table = geography_table(resolved)  # type: ignore[arg-type]
    g_idx = np.where(geo_codes >= 0, geo_index.get_indexer(geo_codes), -1)
    g_ok = g_idx >= 0
    g_ok[g_ok] = np.isfinite(p_r_g_table[g_idx[g_ok]]).all(axis=1)  # zero-population geographies
    s_ok = s_idx >= 0

    n = len(surnames)
    k = len(GROUPS)
    probs = np.zeros((n, k), dtype="float64")
    src = np.full(n, "none", dtype=object)
    both = s_ok & g_ok
    if both.any():
        comb = combine(p_r_s_table[s_idx[both]], p_g_r_table[g_idx[both]])
        probs[both] = comb
        src[both] = "surname+geography"
    # a surname and a geography with no race in common: fall back to geography, as for an unknown name
    degenerate = both.copy()
    degenerate[both] = ~np.isfinite(probs[both]).all(axis=1)
    geo_only = (~s_ok & g_ok) | degenerate
    probs[geo_only] = p_r_g_table[g_idx[geo_only]]
    src[geo_only] = "geography"
    sur_only = s_ok & ~g_ok
    probs[sur_only] = p_r_s_table[s_idx[sur_only]]
    src[sur_only] = "surname"
    probs = np.nan_to_num(probs)
    row = probs.sum(axis=1, keepdims=True)
    probs = np.divide(probs, row, out=np.zeros_like(probs), where=row > 0)  # exact sums after rounding

    counts = {v: int((src == v).sum()) for v in ("surname+geography", "geography", "surname", "none")}
    nz = max(n, 1)
    diagnostics: dict[str, Any] = {
        "method": "BISG, CFPB 2014: P(r|s,g) ∝ P(r|s)·P(g|r); Census 2010 surnames and adult (18+) counts",
        "geography_kind": resolved,
        "n": n,
        "coverage": (n - counts["none"]) / nz,
        "surname_match_rate": float(s_ok.mean()) if n else 0.0,
        "geography_match_rate": float(g_ok.mean()) if n else 0.0,
        "both_matched": counts["surname+geography"],
        "geography_only": counts["geography"],
        "surname_only": counts["surname"],
        "unassigned": counts["none"],
        "degenerate_fallbacks": int(degenerate.sum()),
        "surname_missing": int(surnames.isna().sum()),
        "geography_missing": int((geo_codes < 0).sum()),
        "groups": list(GROUPS),
        "expected_counts": {g: float(v) for g, v in zip(GROUPS, probs.sum(axis=0), strict=True)},
    }
    return BisgEstimate(list(GROUPS), probs, diagnostics, src)


__all__ = [
    "GROUPS",
    "BisgEstimate",
    "allocate_counts",
    "clean_surnames",
    "combine",
    "estimate",
    "geography_table",
    "parse_geographies",
    "surname_table",
]
