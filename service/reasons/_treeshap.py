"""Interventional TreeSHAP against a fixed reference set, vectorised over applicants.

For one tree, one applicant ``x`` and one reference row ``r``, the Baseline-Shapley value of the
hybrid game ``v(S) = f(x_S, r_S̄)`` has a closed form per leaf (Lundberg et al. 2020, *Nat. Mach.
Intell.* 2:56, interventional TreeSHAP; Laberge & Pequignot 2022, arXiv 2209.15123): let ``F`` be
the distinct features on the leaf's path, ``P_x`` / ``P_r`` those whose path conditions ``x`` / ``r``
satisfy. The leaf is reachable by a hybrid iff ``P_x ∪ P_r = F``; then with ``A = P_x \\ P_r``
(|A| = a) and ``B = P_r \\ P_x`` (|B| = b), the leaf value ``v`` contributes

    φ_i += v · (a−1)! b! / (a+b)!   for i ∈ A,      φ_i −= v · a! (b−1)! / (a+b)!   for i ∈ B.

Interventional TreeSHAP against a reference set R is the mean of these over r ∈ R, so
Σ_i φ_i = f(x) − mean_{r∈R} f(r).

How this beats shap's per-(applicant, reference) C++ loop: the contribution depends on ``r`` only
through its pattern ``P_r`` (a d-bit mask), so the reference set is summarised once per leaf as a
histogram over patterns, and for leaves with d ≤ ``TABLE_MAX_DEPTH`` distinct path features the
whole answer is tabulated for every possible applicant pattern (2^d rows). Explaining an applicant
is then: evaluate every tree node once, build each leaf's pattern from its path steps and add one
table row into the feature sums: O(total path length) per applicant, independent of the
reference-set size, compiled with numba and parallel over blocks of applicants that share each
leaf's table while it is in cache. Leaves deeper than ``TABLE_MAX_DEPTH`` distinct features are
evaluated directly against the pattern histogram.

Groups as players: the same closed form holds when a "player" is a set of features (a leaf's
condition on a group holds when all of its steps on the group's features do), which gives exact
group Shapley values (``players=``), used for ``reasons.grouping: partition``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

from service.errors import InputError

TABLE_MAX_DEPTH = 12
BLOCK = 64
DENSE_HIST_MAX_DEPTH = 16
_FACT = np.array([math.factorial(i) for i in range(64)], dtype="float64")


@dataclass
class TreeEnsemble:
    """Flattened trees. Node decision: left when ``x <= thr`` (see ``missing`` for NaN/zero)."""

    n_features: int
    node_feat: np.ndarray  # (N,) int
    node_thr: np.ndarray  # (N,) float
    node_default_left: np.ndarray  # (N,) bool
    node_missing: (
        np.ndarray
    )  # (N,) int: 0 = NaN compared as 0 (LightGBM None), 1 = NaN → default, 2 = 0/NaN → default
    leaf_value: np.ndarray  # (L,) leaves with at least one split on their path
    leaf_steps: list[list[tuple[int, bool]]]  # per leaf: (global node, went_left)
    constant: float  # sum of single-leaf trees and base score
    float32: bool = False  # XGBoost compares in float32


def from_lightgbm(booster: Any) -> TreeEnsemble:
    """Flatten a LightGBM binary booster (``dump_model``); categorical splits are refused."""
    dump = booster.dump_model()
    if int(dump.get("num_tree_per_iteration", 1)) != 1:
        raise InputError(
            "multi-class LightGBM models are not supported by the reason engine",
            field="model",
            expected="a binary classifier (one tree per iteration)",
        )
    scale = 1.0 / len(dump["tree_info"]) if dump.get("average_output") else 1.0
    feat: list[int] = []
    thr: list[float] = []
    dleft: list[bool] = []
    miss: list[int] = []
    leaf_value: list[float] = []
    leaf_steps: list[list[tuple[int, bool]]] = []
    constant = 0.0
    for info in dump["tree_info"]:
        root = info["tree_structure"]
        if "leaf_value" in root and "split_feature" not in root:
            constant += float(root["leaf_value"]) * scale
            continue
        stack: list[tuple[dict[str, Any], list[tuple[int, bool]]]] = [(root, [])]
        while stack:
            node, path = stack.pop()
            if "split_feature" not in node:
                leaf_value.append(float(node["leaf_value"]) * scale)
                leaf_steps.append(path)
                continue
            if node.get("decision_type", "<=") != "<=":
                raise InputError(
                    "the LightGBM model uses categorical splits, which interventional TreeSHAP does not "
                    "support",
                    field="model",
                    expected="numeric splits (encode categories as integer codes)",
                )
            gid = len(feat)
            feat.append(int(node["split_feature"]))
            thr.append(float(node["threshold"]))
            dleft.append(bool(node.get("default_left", True)))
            mt = str(node.get("missing_type", "None"))
            miss.append({"None": 0, "NaN": 1, "Zero": 2}.get(mt, 0))
            stack.append((node["right_child"], path + [(gid, False)]))
            stack.append((node["left_child"], path + [(gid, True)]))
    return TreeEnsemble(
        n_features=int(dump.get("max_feature_idx", max(feat, default=0))) + 1,
        node_feat=np.asarray(feat, dtype=np.int64),
        node_thr=np.asarray(thr, dtype="float64"),
        node_default_left=np.asarray(dleft, dtype=bool),
        node_missing=np.asarray(miss, dtype=np.int64),
        leaf_value=np.asarray(leaf_value, dtype="float64"),
        leaf_steps=leaf_steps,
        constant=constant,
    )


def from_xgboost(booster: Any, features: list[str]) -> TreeEnsemble:
    """Flatten an XGBoost binary ``gbtree`` booster (``get_dump`` JSON): left ("yes") when ``x < t``."""
    import json

    index = {f: i for i, f in enumerate(features)}
    feat: list[int] = []
    thr: list[float] = []
    dleft: list[bool] = []
    miss: list[int] = []
    leaf_value: list[float] = []
    leaf_steps: list[list[tuple[int, bool]]] = []
    constant = 0.0
    for text in booster.get_dump(dump_format="json"):
        root = json.loads(text)
        if "leaf" in root:
            constant += float(root["leaf"])
            continue
        stack: list[tuple[dict[str, Any], list[tuple[int, bool]]]] = [(root, [])]
        while stack:
            node, path = stack.pop()
            if "leaf" in node:
                leaf_value.append(float(node["leaf"]))
                leaf_steps.append(path)
                continue
            if "split_condition" not in node:
                raise InputError(
                    "the XGBoost model uses categorical splits", field="model", expected="numeric splits"
                )
            kids = {c["nodeid"]: c for c in node["children"]}
            gid = len(feat)
            name = node["split"]
            feat.append(index[name] if name in index else int(str(name).lstrip("f")))
            # x < t  <=>  x <= nextafter(t, -inf) in float32
            t32 = np.float32(node["split_condition"])
            thr.append(float(np.nextafter(t32, np.float32(-np.inf))))
            dleft.append(node["missing"] == node["yes"])
            miss.append(1)
            stack.append((kids[node["no"]], path + [(gid, False)]))
            stack.append((kids[node["yes"]], path + [(gid, True)]))
    return TreeEnsemble(
        n_features=len(features),
        node_feat=np.asarray(feat, dtype=np.int64),
        node_thr=np.asarray(thr, dtype="float64"),
        node_default_left=np.asarray(dleft, dtype=bool),
        node_missing=np.asarray(miss, dtype=np.int64),
        leaf_value=np.asarray(leaf_value, dtype="float64"),
        leaf_steps=leaf_steps,
        constant=constant,
        float32=True,
    )


def _conditions(ens: TreeEnsemble, players: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per leaf: its distinct players (features, or groups of features) and the path steps.

    A leaf's condition on player q holds for a row iff every step of the path on a feature of q goes
    the path's way (NaN and zero routing included: see ``_goes_left``). ``k`` is q's bit in the leaf's
    pattern, ``feat`` the player index (output column).
    """
    L = len(ens.leaf_value)
    cstart = np.zeros(L + 1, dtype=np.int64)
    sstart = np.zeros(L + 1, dtype=np.int64)
    feat: list[int] = []
    kk: list[int] = []
    s_node: list[int] = []
    s_left: list[bool] = []
    s_bit: list[int] = []
    for li, steps in enumerate(ens.leaf_steps):
        pos: dict[int, int] = {}
        for node, went_left in steps:
            f = int(ens.node_feat[node])
            q = int(players[f]) if players is not None else f
            if q not in pos:
                pos[q] = len(pos)
                feat.append(q)
                kk.append(pos[q])
            s_node.append(int(node))
            s_left.append(bool(went_left))
            s_bit.append(1 << pos[q])
        cstart[li + 1] = len(feat)
        sstart[li + 1] = len(s_node)
    return {
        "start": cstart,
        "feat": np.asarray(feat, dtype=np.int64),
        "k": np.asarray(kk, dtype=np.int64),
        "sstart": sstart,
        "s_node": np.asarray(s_node, dtype=np.int64),
        "s_left": np.asarray(s_left, dtype=np.bool_),
        "s_bit": np.asarray(s_bit, dtype=np.int64),
    }


@njit(cache=True)
def _leaf_phi_into(out, px, pr, cr, d, v, fact, feats, s0):  # type: ignore[no-untyped-def]
    """Add one leaf's attributions for applicant pattern ``px`` into ``out[feats[s0 + k]]``."""
    full = (1 << d) - 1
    for u in range(pr.shape[0]):
        q = pr[u]
        if (px | q) != full:
            continue
        A = px & ~q
        B = q & ~px
        a = 0
        b = 0
        for j in range(d):
            a += (A >> j) & 1
            b += (B >> j) & 1
        if a + b == 0:
            continue
        s = a + b
        wa = fact[a - 1] * fact[b] / fact[s] if a >= 1 else 0.0
        wb = fact[a] * fact[b - 1] / fact[s] if b >= 1 else 0.0
        for j in range(d):
            if (A >> j) & 1:
                out[feats[s0 + j]] += v * cr[u] * wa
            elif (B >> j) & 1:
                out[feats[s0 + j]] -= v * cr[u] * wb


@njit(cache=True, parallel=True)
def _build_tables(depth, offset, tabled, values, hp_start, hp_pat, hp_cnt, table, fact):  # type: ignore[no-untyped-def]
    L = depth.shape[0]
    for li in prange(L):
        if not tabled[li]:
            continue
        d = depth[li]
        pr = hp_pat[hp_start[li] : hp_start[li + 1]]
        cr = hp_cnt[hp_start[li] : hp_start[li + 1]]
        ident = np.arange(d)
        tmp = np.zeros(d)
        for px in range(1 << d):
            tmp[:] = 0.0
            _leaf_phi_into(tmp, px, pr, cr, d, values[li], fact, ident, 0)
            base = offset[li] + px * d
            for j in range(d):
                table[base + j] = tmp[j]


@njit(cache=True, inline="always")
def _goes_left(v: float, thr: float, mt: int, dl: bool) -> bool:
    if np.isnan(v):
        return (thr >= 0.0) if mt == 0 else dl
    if mt == 2 and v == 0.0:
        return dl
    return v <= thr


@njit(cache=True)
def _node_decisions(X, i0, i1, node_feat, node_thr, node_miss, node_dl):  # type: ignore[no-untyped-def]
    N = node_feat.shape[0]
    D = np.empty((i1 - i0, N), dtype=np.bool_)
    for i in range(i0, i1):
        for nd in range(N):
            D[i - i0, nd] = _goes_left(X[i, node_feat[nd]], node_thr[nd], node_miss[nd], node_dl[nd])
    return D


@njit(cache=True, inline="always")
def _leaf_pattern(D, r, s0, s1, s_node, s_left, s_bit, d):  # type: ignore[no-untyped-def]
    bad = 0
    for s in range(s0, s1):
        if D[r, s_node[s]] != s_left[s]:
            bad |= s_bit[s]
    return ((1 << d) - 1) & ~bad


@njit(cache=True, parallel=True)
def _explain_nodes(
    X,
    node_feat,
    node_thr,
    node_miss,
    node_dl,
    sstart,
    s_node,
    s_left,
    s_bit,  # type: ignore[no-untyped-def]
    cstart,
    feat,
    k,
    depth,
    offset,
    tabled,
    values,
    hp_start,
    hp_pat,
    hp_cnt,
    table,
    fact,
    n_features,
):
    """Like ``_explain`` but each tree node is evaluated once per applicant; leaf patterns come from
    the path steps (a leaf's condition on a feature holds iff every step on that feature goes the
    path's way), which is cheaper than re-testing merged intervals leaf by leaf."""
    n = X.shape[0]
    L = depth.shape[0]
    out = np.zeros((n, n_features))
    nb = (n + BLOCK - 1) // BLOCK
    for bi in prange(nb):
        i0 = bi * BLOCK
        i1 = min(n, i0 + BLOCK)
        D = _node_decisions(X, i0, i1, node_feat, node_thr, node_miss, node_dl)
        for li in range(L):
            s0 = cstart[li]
            s1 = cstart[li + 1]
            d = depth[li]
            for i in range(i0, i1):
                p = _leaf_pattern(D, i - i0, sstart[li], sstart[li + 1], s_node, s_left, s_bit, d)
                if tabled[li]:
                    base = offset[li] + p * d
                    for c in range(s0, s1):
                        out[i, feat[c]] += table[base + k[c]]
                else:
                    _leaf_phi_into(
                        out[i],
                        p,
                        hp_pat[hp_start[li] : hp_start[li + 1]],
                        hp_cnt[hp_start[li] : hp_start[li + 1]],
                        d,
                        values[li],
                        fact,
                        feat,
                        s0,
                    )
    return out


@njit(cache=True, parallel=True)
def _patterns_nodes(X, node_feat, node_thr, node_miss, node_dl, sstart, s_node, s_left, s_bit, depth):  # type: ignore[no-untyped-def]
    n = X.shape[0]
    L = depth.shape[0]
    out = np.zeros((n, L), dtype=np.int64)
    nb = (n + BLOCK - 1) // BLOCK
    for bi in prange(nb):
        i0 = bi * BLOCK
        i1 = min(n, i0 + BLOCK)
        D = _node_decisions(X, i0, i1, node_feat, node_thr, node_miss, node_dl)
        for li in range(L):
            for i in range(i0, i1):
                out[i, li] = _leaf_pattern(
                    D, i - i0, sstart[li], sstart[li + 1], s_node, s_left, s_bit, depth[li]
                )
    return out


@njit(cache=True, parallel=True)
def _dense_hist(PR, w, dense, hoff, hist):  # type: ignore[no-untyped-def]
    """Weighted histogram of reference patterns per leaf (leaves with few distinct path features)."""
    m, L = PR.shape
    for li in prange(L):
        if not dense[li]:
            continue
        base = hoff[li]
        for r in range(m):
            hist[base + PR[r, li]] += w[r]


class InterventionalTreeShap:
    """Interventional TreeSHAP of a tree ensemble's raw margin against a fixed reference set.

    Parameters
    ----------
    ensemble : the flattened trees.
    reference : (m, p) float array, the reference (background) rows; NaN = missing.
    reference_weight : optional (m,) non-negative weights of the reference rows.
    players : optional (p,) player index of each feature. Features sharing a player are one player
        of the game (group Shapley values: the Owen value of the group quotient game); the output then
        has one column per player.

    Attributes
    ----------
    expected_value : mean raw margin of the reference rows (weighted), so that each row of
        :meth:`shap_values` sums to ``f(x) − expected_value``.
    reference_size : number of reference rows.
    """

    def __init__(
        self,
        ensemble: TreeEnsemble,
        reference: np.ndarray,
        *,
        reference_weight: np.ndarray | None = None,
        players: np.ndarray | None = None,
    ):
        self.ens = ensemble
        self.players = None if players is None else np.asarray(players, dtype=np.int64)
        self.n_players = ensemble.n_features if self.players is None else int(self.players.max()) + 1
        self.cond = _conditions(ensemble, self.players)
        c = self.cond
        L = len(ensemble.leaf_value)
        depth = np.diff(c["start"]).astype(np.int64)
        self.depth = depth
        R = self._prep(reference)
        if R.ndim != 2 or R.shape[0] == 0:
            raise InputError(
                "the reference set is empty", field="reasons.reference", expected="at least one reference row"
            )
        w = np.ones(R.shape[0]) if reference_weight is None else np.asarray(reference_weight, dtype="float64")
        w = w / w.sum()
        self.reference_size = int(R.shape[0])
        PR = self._patterns(R)  # (m, L)
        full = (np.int64(1) << depth) - 1
        reach_full = full[None, :] == PR
        self.expected_value = float(
            ensemble.constant + (w @ (reach_full * ensemble.leaf_value[None, :])).sum()
        )
        dense = depth <= DENSE_HIST_MAX_DEPTH
        hist = np.zeros(int(((np.int64(1) << np.where(dense, depth, 0)) * dense).sum()))
        hoff = np.zeros(L + 1, dtype=np.int64)
        hoff[1:] = np.cumsum((np.int64(1) << np.where(dense, depth, 0)) * dense)
        _dense_hist(PR, w, dense, hoff, hist)
        hp_start = np.zeros(L + 1, dtype=np.int64)
        pats: list[np.ndarray] = []
        cnts: list[np.ndarray] = []
        for li in range(L):
            if dense[li]:
                h = hist[hoff[li] : hoff[li + 1]]
                u = np.nonzero(h > 0)[0].astype(np.int64)
                cnt = h[u]
            else:
                uu, inv = np.unique(PR[:, li], return_inverse=True)
                bc = np.bincount(inv.ravel(), weights=w, minlength=uu.size)
                u = uu[bc > 0].astype(np.int64)
                cnt = np.asarray(bc[bc > 0], dtype="float64")
            pats.append(u)
            cnts.append(cnt)
            hp_start[li + 1] = hp_start[li] + u.size
        self.hp_start = hp_start
        self.hp_pat = np.concatenate(pats) if pats else np.zeros(0, dtype=np.int64)
        self.hp_cnt = np.concatenate(cnts) if cnts else np.zeros(0)
        self.tabled = depth <= TABLE_MAX_DEPTH
        size = np.where(self.tabled, (np.int64(1) << np.minimum(depth, TABLE_MAX_DEPTH)) * depth, 0)
        self.offset = np.zeros(L, dtype=np.int64)
        self.offset[1:] = np.cumsum(size)[:-1]
        self.table = np.zeros(int(size.sum()))
        _build_tables(
            depth,
            self.offset,
            self.tabled,
            ensemble.leaf_value,
            self.hp_start,
            self.hp_pat,
            self.hp_cnt,
            self.table,
            _FACT,
        )

    def _prep(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype="float64")
        if self.ens.float32:
            X = X.astype("float32").astype("float64")
        return X

    def _patterns(self, X: np.ndarray) -> np.ndarray:
        c = self.cond
        e = self.ens
        if X.shape[0] == 0 or e.node_feat.size == 0:
            return np.zeros((X.shape[0], len(e.leaf_value)), dtype=np.int64)
        return _patterns_nodes(
            X,
            e.node_feat,
            e.node_thr,
            e.node_missing,
            e.node_default_left,
            c["sstart"],
            c["s_node"],
            c["s_left"],
            c["s_bit"],
            self.depth,
        )

    def shap_values(self, X: np.ndarray) -> np.ndarray:
        """(n, players) interventional SHAP values of the raw margin; rows sum to f(x) − expected_value."""
        X = self._prep(X)
        c = self.cond
        if X.shape[0] == 0:
            return np.zeros((0, self.n_players))
        e = self.ens
        if e.node_feat.size == 0:
            return np.zeros((X.shape[0], self.n_players))
        return _explain_nodes(
            X,
            e.node_feat,
            e.node_thr,
            e.node_missing,
            e.node_default_left,
            c["sstart"],
            c["s_node"],
            c["s_left"],
            c["s_bit"],
            c["start"],
            c["feat"],
            c["k"],
            self.depth,
            self.offset,
            self.tabled,
            e.leaf_value,
            self.hp_start,
            self.hp_pat,
            self.hp_cnt,
            self.table,
            _FACT,
            self.n_players,
        )


__all__ = ["InterventionalTreeShap", "TreeEnsemble", "from_lightgbm", "from_xgboost"]
