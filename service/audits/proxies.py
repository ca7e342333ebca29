"""Proxy-feature audit (REGULATORY.md §(a) 9 feature-level proxy screen; EU AI Act Art 10(2)(f)-(g)).

For each protected attribute, on the development sample:

1. **Single-feature screen**, each model feature against the attribute:
   * categorical feature: Cramér's V = √(χ² / (n·(min(r, c) − 1))) of the feature × group table;
   * numeric feature: correlation ratio η = √(SS_between / SS_total) of the feature across groups;
   * both: normalised mutual information NMI = I / mean(H(feature), H(group)) (numeric features
     binned at their deciles, missing values as their own category);
   * single-feature AUC, one-vs-rest per group (the feature's values, or for a categorical feature
     its group share per category, cross-fitted over 5 folds so that identifier-like features are
     not rewarded for memorising rows), folded to ≥ 0.5; ``auc`` is the largest over groups.
   Missing values count as their own category for V and NMI and are dropped for η and AUC. A
   feature is flagged when V or η ≥ ``policy.proxy_association_max`` or its AUC ≥
   ``policy.proxy_auc_max``.
2. **Redundant encoding**: a gradient-boosted classifier (scikit-learn
   ``HistGradientBoostingClassifier``) predicting the attribute from *all* model features, out of
   fold (stratified K-fold); AUC one-vs-rest macro-averaged over groups (binary attribute: the plain
   AUC), with a 95% percentile CI from a row bootstrap of the out-of-fold predictions; which features
   carry the signal by permutation importance (drop in that AUC on a held-out fold when the feature is
   shuffled, 3 repeats). Features with importance ≥ 0.01 and ≥ 2 × its standard deviation over
   the repeats are flagged when the AUC ≥ ``policy.proxy_auc_max``.

Rows count toward groups through membership weights (BISG probabilities for an estimated attribute).
For the proxy model of an estimated attribute each row gets one label drawn from its probabilities
(seeded), so the fitted model sees the joint distribution the probabilities imply. Large samples
are sampled (sizes reported): ``max_rows_screen`` rows for the AUCs, ``max_rows_model`` for the
model. A feature that *is* the protected column is reported under ``direct_use`` and left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from service.audits._stats import (
    _f,
    auc_from_counts,
    ci_pair,
    contingency_from_membership,
    correlation_ratio,
    cramers_v,
    normalized_mutual_info,
    percentile_ci,
    quantile_edges,
    score_table,
)
from service.audits.context import AuditContext, ProtectedGroups, SectionOutput
from service.findings import finding
from service.inputs.datasets import column_kind
from service.result import Finding, ResultModel

SECTION = "proxies"
MAX_ROWS_SCREEN = 200_000
MAX_ROWS_MODEL = 10_000
MAX_BOOT_MODEL = 500
IMPORTANCE_MIN = 0.01
SCREEN_FOLDS = 5


class FeatureAssociation(ResultModel):
    feature: str
    kind: str
    measure: str
    cramers_v: float | None
    eta: float | None
    mutual_info: float | None
    auc: float | None
    auc_by_group: dict[str, float | None]
    flagged: bool
    reasons: list[str]


class CarryingFeature(ResultModel):
    feature: str
    importance: float | None
    importance_std: float | None


class RedundantEncoding(ResultModel):
    auc: float | None
    auc_ci: list[float | None] | None
    auc_by_group: dict[str, float | None]
    model: str
    cv_folds: int
    sample_size: int
    n_bootstrap: int
    top_features: list[CarryingFeature]
    flagged: bool
    note: str | None = None


class AttributeProxies(ResultModel):
    name: str
    reference: str
    groups: list[str]
    estimated: bool
    direct_use: list[str]
    sample_size: int
    features: list[FeatureAssociation]
    redundant_encoding: RedundantEncoding | None
    flagged_features: list[str]


class ProxiesSection(ResultModel):
    split: str
    n: int
    proxy_association_max: float
    proxy_auc_max: float
    attributes: dict[str, AttributeProxies]
    flagged_features: list[str]
    method: str


# --------------------------------------------------------------------------- pure statistics


def _codes(values: pd.Series, kind: str, *, n_bins: int = 10) -> np.ndarray:
    """Category codes 0..K−1 for V/NMI: categories as they are, numeric at decile bins; NaN its own code."""
    if kind == "numeric":
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
        ok = np.isfinite(x)
        edges = quantile_edges(x[ok], n_bins) if ok.any() else np.array([])
        c = np.searchsorted(edges, np.where(ok, x, 0.0), side="left")
        return np.where(ok, c, edges.size + 1).astype(np.int64)
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    return np.where(codes < 0, codes.max() + 1, codes).astype(np.int64)


def single_feature_auc(
    x: np.ndarray, membership: np.ndarray, *, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """One-vs-rest AUC of ``x`` for each group, folded to max(AUC, 1 − AUC); NaN where undefined.

    ``x`` is one score per row (n,), or one score per row and group (n, k). Row i is a positive for
    group g with weight w_i·m_ig and a negative with weight w_i·(1 − m_ig), so BISG probabilities
    enter as fractional memberships. Ties count one half (Mann–Whitney).
    """
    xv = np.asarray(x, dtype="float64")
    m = np.asarray(membership, dtype="float64")
    xm = xv if xv.ndim == 2 else np.repeat(xv[:, None], m.shape[1], axis=1)
    w = np.ones(m.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    ok = np.isfinite(xm).all(axis=1) & (m.sum(axis=1) > 0)
    xm, m, w = xm[ok], m[ok], w[ok]
    out = np.full(m.shape[1], np.nan)
    if xm.shape[0] < 2:
        return out
    cells = None if xv.ndim == 2 else _score_cells(xm[:, 0])  # one ranking shared by every group
    for j in range(m.shape[1]):
        inv, k = cells if cells is not None else _score_cells(xm[:, j])
        pos = np.bincount(inv, weights=w * m[:, j], minlength=k)
        neg = np.bincount(inv, weights=w * (1.0 - m[:, j]), minlength=k)
        a = float(auc_from_counts(pos, neg))
        out[j] = max(a, 1.0 - a) if np.isfinite(a) else np.nan
    return out


def _score_cells(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Rank cells of a score: its distinct values, or 4000 quantile cells when there are more (O(n))."""
    uniq, inv = np.unique(x, return_inverse=True)
    if uniq.size > 4000:  # ties within a quantile cell count 1/2: AUC error below 1/4000
        edges = quantile_edges(x, 4000)
        inv = np.searchsorted(edges, x, side="left")
    return inv, int(inv.max()) + 1


def _category_scores(
    codes: np.ndarray, membership: np.ndarray, w: np.ndarray, folds: np.ndarray | None
) -> np.ndarray:
    """(n, k): each row's group shares within its category, cross-fitted over ``folds``.

    A row's score comes from the rows of the *other* folds (out-of-fold target encoding), with one
    pseudo-row at the overall group shares added to every category, so a high-cardinality
    identifier (one or two rows per category) scores near chance instead of near-perfectly.
    ``folds=None`` gives the in-sample shares.
    """
    m = np.asarray(membership, dtype="float64") * w[:, None]
    n_cat = int(codes.max()) + 1 if codes.size else 0

    def table(rows: np.ndarray) -> np.ndarray:
        return np.column_stack(
            [np.bincount(codes[rows], weights=m[rows, j], minlength=n_cat) for j in range(m.shape[1])]
        )

    every = np.ones(codes.size, dtype=bool)
    full = table(every)
    if folds is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num((full / full.sum(axis=1, keepdims=True))[codes])
    prior = full.sum(axis=0) / max(full.sum(), 1e-300)
    out = np.zeros(m.shape)
    for f in np.unique(folds):
        te = folds == f
        tab = full - table(te)
        out[te] = ((tab + prior) / (tab.sum(axis=1, keepdims=True) + 1.0))[codes[te]]
    return out


def screen_feature(
    values: pd.Series,
    membership: np.ndarray,
    *,
    kind: str,
    sample_weight: np.ndarray | None = None,
    auc_rows: np.ndarray | None = None,
    folds: np.ndarray | None = None,
) -> dict[str, object]:
    """V or η, NMI and one-vs-rest AUCs of one feature against one attribute (see module docstring).

    ``folds`` (one fold id per row) cross-fits the category scores of a categorical feature's AUC.
    """
    m = np.asarray(membership, dtype="float64")
    has = m.sum(axis=1) > 0
    w = np.ones(len(values)) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    codes = _codes(values, kind)
    tab = contingency_from_membership(codes[has], m[has], sample_weight=w[has])
    nmi = normalized_mutual_info(tab)
    rows = np.arange(len(values)) if auc_rows is None else auc_rows
    if kind == "numeric":
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
        eta = correlation_ratio(x, m, sample_weight=w)
        v = None
        aucs = single_feature_auc(x[rows], m[rows], sample_weight=w[rows])
    else:
        eta = None
        v = cramers_v(tab)
        cats = codes.copy()
        cats_missing = values.isna().to_numpy()
        scores = _category_scores(cats[has], m[has], w[has], None if folds is None else folds[has])
        full = np.zeros(m.shape)
        full[has] = scores
        r = rows[~cats_missing[rows]]
        aucs = single_feature_auc(full[r], m[r], sample_weight=w[r])
    return {"cramers_v": v, "eta": eta, "mutual_info": nmi, "auc_by_group": aucs}


def _encode_features(frame: pd.DataFrame, features: list[str]) -> tuple[np.ndarray, list[bool]]:
    cols = []
    cat_mask = []
    for f in features:
        s = frame[f]
        if column_kind(s) == "numeric":
            cols.append(pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64"))
            cat_mask.append(False)
        else:
            top = s.astype("string").value_counts().index[:250]
            codes = pd.Categorical(s.astype("string"), categories=top).codes.astype("float64")
            codes[codes < 0] = np.nan if s.isna().all() else len(top)
            codes[s.isna().to_numpy()] = np.nan
            cols.append(codes)
            cat_mask.append(True)
    return np.column_stack(cols) if cols else np.zeros((len(frame), 0)), cat_mask


def _macro_ovr_auc(proba: np.ndarray, labels: np.ndarray, present: list[int]) -> float:
    vals = []
    for j in present:
        pos = labels == j
        t = score_table(proba[:, j], pos)
        vals.append(float(auc_from_counts(t.pos_n, t.neg_n)))
    return float(np.nanmean(vals)) if vals else float("nan")


@dataclass
class ProxyModelFit:
    """What :func:`redundant_encoding` returns (``auc`` None with a ``note`` when it cannot fit)."""

    auc: float | None
    auc_ci: list[float | None] | None = None
    auc_by_group: dict[str, float | None] = field(default_factory=dict)
    importances: list[CarryingFeature] = field(default_factory=list)
    n: int = 0
    n_boot: int = 0
    note: str | None = None


def redundant_encoding(
    X: np.ndarray,
    labels: np.ndarray,
    groups: list[str],
    feature_names: list[str],
    *,
    categorical: list[bool],
    folds: int = 3,
    n_boot: int = 500,
    rng: np.random.Generator,
) -> ProxyModelFit:
    """Out-of-fold AUC of predicting ``labels`` (group codes) from all features, with CI and importances."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    present = [j for j in range(len(groups)) if (labels == j).sum() >= folds]
    keep = np.isin(labels, present)
    X, labels = X[keep], labels[keep]
    if len(present) < 2:
        return ProxyModelFit(
            auc=None, n=int(labels.size), note="fewer than two groups with enough rows to fit a model"
        )
    seed = int(rng.integers(0, 2**31 - 1))

    def model() -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=60,
            learning_rate=0.15,
            max_leaf_nodes=15,
            categorical_features=np.array(categorical, bool) if any(categorical) else None,
            random_state=seed,
            early_stopping=False,
        )

    with threadpool_limits(limits=1):  # OpenMP oversubscription on busy small machines costs ~6x
        return _redundant_encoding(X, labels, groups, feature_names, present, model, folds, n_boot, seed, rng)


def _redundant_encoding(
    X: np.ndarray,
    labels: np.ndarray,
    groups: list[str],
    feature_names: list[str],
    present: list[int],
    model: Callable[[], Any],
    folds: int,
    n_boot: int,
    seed: int,
    rng: np.random.Generator,
) -> ProxyModelFit:
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = np.zeros((labels.size, len(groups)))
    last: tuple[Any, np.ndarray] | None = None
    for tr, te in skf.split(X, labels):
        clf = model().fit(X[tr], labels[tr])
        pr = clf.predict_proba(X[te])
        proba[np.ix_(te, clf.classes_.astype(int))] = pr
        last = (clf, te)
    binary = len(present) == 2
    scored = [present[1]] if binary else present
    auc_by: dict[str, float | None] = {g: None for g in groups}
    for j in present:
        t = score_table(proba[:, j], labels == j)
        auc_by[groups[j]] = _f(float(auc_from_counts(t.pos_n, t.neg_n)))
    auc = _macro_ovr_auc(proba, labels, scored)

    # row bootstrap of the macro AUC over the out-of-fold predictions (cells = distinct scores)
    n = labels.size
    B = int(n_boot)
    ci: list[float | None] | None = None
    if B > 0:
        reps = rng.multinomial(n, np.full(n, 1.0 / n), size=B).astype("float64")
        acc = np.zeros(B)
        for j in scored:
            s = proba[:, j]
            order = np.argsort(s, kind="mergesort")
            ss = s[order]
            starts = np.r_[0, np.flatnonzero(np.diff(ss)) + 1]
            pos = (labels[order] == j).astype("float64")
            rp = np.add.reduceat(reps[:, order] * pos, starts, axis=1)
            rn = np.add.reduceat(reps[:, order] * (1 - pos), starts, axis=1)
            acc += auc_from_counts(rp, rn)
        lo, hi = percentile_ci(acc / len(scored))
        ci = ci_pair(lo, hi)  # type: ignore[arg-type]

    # permutation importance on the last held-out fold
    importances: list[CarryingFeature] = []
    if last is not None:
        clf, te = last
        Xte, yte = X[te], labels[te]
        classes = np.asarray(clf.classes_)
        cols_idx = [int(np.searchsorted(classes, j)) for j in scored]
        relabel = np.searchsorted(classes, yte)
        base = _macro_ovr_auc(clf.predict_proba(Xte), relabel, cols_idx)
        for i, fname in enumerate(feature_names):
            drops = []
            for _ in range(3):
                Xp = Xte.copy()
                Xp[:, i] = Xp[rng.permutation(Xp.shape[0]), i]
                drops.append(base - _macro_ovr_auc(clf.predict_proba(Xp), relabel, cols_idx))
            importances.append(
                CarryingFeature(
                    feature=fname, importance=_f(np.mean(drops)), importance_std=_f(np.std(drops))
                )
            )
        importances.sort(key=lambda r: -(r.importance or 0.0))
    return ProxyModelFit(auc=_f(auc), auc_ci=ci, auc_by_group=auc_by, importances=importances, n=n, n_boot=B)


# --------------------------------------------------------------------------- the audit


def _carries(c: CarryingFeature) -> bool:
    """A feature carries the signal: importance ≥ IMPORTANCE_MIN and above twice its permutation noise."""
    imp = c.importance or 0.0
    return imp >= IMPORTANCE_MIN and imp >= 2 * (c.importance_std or 0.0)


def _attribute(ctx: AuditContext, pg: ProtectedGroups) -> AttributeProxies:
    split = ctx.dev
    policy = ctx.spec.policy
    frame = split.frame
    rng = ctx.rng(f"{SECTION}:{pg.name}")
    direct = [f for f in ctx.features if pg.column is not None and f == pg.column]
    feats = [f for f in ctx.features if f not in direct]
    m = pg.membership
    has = m.sum(axis=1) > 0
    idx_has = np.flatnonzero(has)
    auc_rows = (
        idx_has if idx_has.size <= MAX_ROWS_SCREEN else np.sort(rng.choice(idx_has, MAX_ROWS_SCREEN, False))
    )
    folds = rng.permutation(split.n) % SCREEN_FOLDS
    rows: list[FeatureAssociation] = []
    for f in feats:
        kind = "numeric" if column_kind(frame[f]) == "numeric" else "categorical"
        r = screen_feature(frame[f], m, kind=kind, sample_weight=split.weight, auc_rows=auc_rows, folds=folds)
        aucs = np.asarray(r["auc_by_group"], dtype="float64")
        auc_max = _f(np.nanmax(aucs)) if np.isfinite(aucs).any() else None
        assoc = r["cramers_v"] if kind == "categorical" else r["eta"]
        reasons = []
        if assoc is not None and assoc >= policy.proxy_association_max:  # type: ignore[operator]
            reasons.append(f"{'cramers_v' if kind == 'categorical' else 'eta'} {assoc:.2f}")
        if auc_max is not None and auc_max >= policy.proxy_auc_max:
            reasons.append(f"single-feature auc {auc_max:.2f}")
        rows.append(
            FeatureAssociation(
                feature=f,
                kind=kind,
                measure="cramers_v" if kind == "categorical" else "eta",
                cramers_v=r["cramers_v"],  # type: ignore[arg-type]
                eta=r["eta"],  # type: ignore[arg-type]
                mutual_info=r["mutual_info"],  # type: ignore[arg-type]
                auc=auc_max,
                auc_by_group={g: _f(aucs[j]) for j, g in enumerate(pg.groups)},
                flagged=bool(reasons),
                reasons=reasons,
            )
        )
    rows.sort(key=lambda a: -max(a.auc or 0.0, (a.cramers_v or a.eta or 0.0)))

    red: RedundantEncoding | None = None
    if feats and idx_has.size >= 20:
        sample = (
            idx_has if idx_has.size <= MAX_ROWS_MODEL else np.sort(rng.choice(idx_has, MAX_ROWS_MODEL, False))
        )
        if pg.estimated:
            p = m[sample] / m[sample].sum(axis=1, keepdims=True)
            u = rng.random(sample.size)[:, None]
            labels = (u > np.cumsum(p, axis=1)).sum(axis=1).clip(0, len(pg.groups) - 1)
        else:
            labels = pg.codes[sample]
        X, cat = _encode_features(frame.iloc[sample], feats)
        res = redundant_encoding(
            X, labels, pg.groups, feats, categorical=cat, n_boot=min(ctx.n_boot, MAX_BOOT_MODEL), rng=rng
        )
        flagged = res.auc is not None and res.auc >= policy.proxy_auc_max
        red = RedundantEncoding(
            auc=res.auc,
            auc_ci=res.auc_ci,
            auc_by_group=res.auc_by_group,
            model="HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15), out-of-fold predictions",
            cv_folds=3,
            sample_size=res.n,
            n_bootstrap=res.n_boot,
            top_features=res.importances[:10],
            flagged=flagged,
            note=res.note or ("labels drawn from BISG probabilities" if pg.estimated else None),
        )
    flagged_feats = [a.feature for a in rows if a.flagged]
    if red is not None and red.flagged:
        for c in red.top_features:
            if _carries(c) and c.feature not in flagged_feats:
                flagged_feats.append(c.feature)
    return AttributeProxies(
        name=pg.name,
        reference=pg.reference,
        groups=list(pg.groups),
        estimated=pg.estimated,
        direct_use=direct,
        sample_size=int(auc_rows.size),
        features=rows,
        redundant_encoding=red,
        flagged_features=flagged_feats,
    )


def run(ctx: AuditContext) -> SectionOutput:
    split = ctx.dev
    attrs = {}
    for name, pg in split.protected.items():
        ctx.progress(f"proxies: {name}")
        attrs[name] = _attribute(ctx, pg)
    overall: list[str] = []
    for a in attrs.values():
        overall += [f for f in a.flagged_features if f not in overall]
    section = ProxiesSection(
        split=split.name,
        n=split.n,
        proxy_association_max=ctx.spec.policy.proxy_association_max,
        proxy_auc_max=ctx.spec.policy.proxy_auc_max,
        attributes=attrs,
        flagged_features=overall,
        method="single-feature screen (Cramér's V / correlation ratio, normalised MI, one-vs-rest AUC) and "
        "redundant encoding (cross-validated gradient boosting, permutation importance)",
    )
    return SectionOutput(section, _findings(section, ctx))


def _findings(sec: ProxiesSection, ctx: AuditContext) -> list[Finding]:
    policy = ctx.spec.policy
    out: list[Finding] = []
    for name, a in sec.attributes.items():
        for f in a.direct_use:
            out.append(
                finding(
                    SECTION,
                    "medium",
                    f"Protected attribute used as a feature: {f}",
                    f"the model uses '{f}', the column of protected attribute '{name}', directly; confirm a "
                    "legal basis (e.g. Reg B 12 CFR 1002.6(b)(2) for age in an empirically derived system)",
                    metric="direct_use",
                    value=1.0,
                )
            )
        strong = [x for x in a.features if x.flagged]
        if strong:
            top = strong[0]
            names = ", ".join(x.feature for x in strong[:5])
            assoc = top.cramers_v if top.kind == "categorical" else top.eta
            out.append(
                finding(
                    SECTION,
                    "medium",
                    f"Proxy features for {name}: {names}",
                    f"{len(strong)} feature(s) are strongly associated with '{name}'; the strongest, "
                    f"'{top.feature}', has {top.measure} {assoc if assoc is None else round(assoc, 3)} and "
                    f"one-vs-rest AUC {top.auc if top.auc is None else round(top.auc, 3)}. Check the "
                    "business justification and their contribution to any disparity",
                    metric="single_feature_auc",
                    value=top.auc,
                    policy=policy,
                    threshold_name="proxy_auc_max",
                )
            )
        red = a.redundant_encoding
        if red is not None and red.flagged:
            carriers = ", ".join(c.feature for c in red.top_features[:3] if _carries(c))
            ci = (
                f" (95% CI {red.auc_ci[0]:.3f}–{red.auc_ci[1]:.3f})"
                if red.auc_ci and None not in red.auc_ci
                else ""
            )
            out.append(
                finding(
                    SECTION,
                    "high" if (red.auc or 0) >= 0.8 else "medium",
                    f"Redundant encoding of {name}",
                    f"the model features together predict '{name}' with AUC {red.auc:.3f}{ci}"
                    + (f"; carried mostly by {carriers}" if carriers else "")
                    + (" (attribute estimated by BISG)" if a.estimated else ""),
                    metric="redundant_encoding_auc",
                    value=red.auc,
                    policy=policy,
                    threshold_name="proxy_auc_max",
                )
            )
    return out


__all__ = ["ProxiesSection", "redundant_encoding", "run", "screen_feature", "single_feature_auc"]
