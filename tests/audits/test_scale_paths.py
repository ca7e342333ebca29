"""The large-data shortcuts of the data section and ``score_table`` give exactly what the plain
computations give: ``score_table`` vs the np.unique implementation it replaced, the duplicate-row
count vs ``DataFrame.duplicated``, distinct counts vs ``Series.nunique``."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from service.audits import data
from service.audits._stats import ScoreTable, score_table


def _reference_table(score, y, *, sample_weight=None, max_bins=4000) -> ScoreTable:
    """``score_table`` as it was before the sort-based shortcut (np.unique with the inverse)."""
    s = np.asarray(score, dtype="float64")
    yy = np.asarray(y).astype(bool)
    w = np.ones_like(s) if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    uniq, inv = np.unique(s, return_inverse=True)
    exact = uniq.size <= max_bins
    if exact:
        values, idx, k = uniq, inv, uniq.size
    else:
        edges = np.unique(np.quantile(s, np.linspace(0, 1, max_bins + 1)[1:-1]))
        idx = np.searchsorted(edges, s, side="left")
        k = edges.size + 1
        sums = np.bincount(idx, weights=s, minlength=k)
        cnt = np.bincount(idx, minlength=k)
        values = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
    pos_n = np.bincount(idx[yy], minlength=k)
    neg_n = np.bincount(idx[~yy], minlength=k)
    pos_w = np.bincount(idx[yy], weights=w[yy], minlength=k)
    neg_w = np.bincount(idx[~yy], weights=w[~yy], minlength=k)
    keep = (pos_n + neg_n) > 0
    return ScoreTable(values[keep], pos_n[keep], neg_n[keep], pos_w[keep], neg_w[keep], exact)


def _scores(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "continuous":
        return rng.normal(size=n)
    if kind == "few":
        return rng.integers(0, 37, n).astype("float64")
    if kind == "rounded":
        return np.round(rng.random(n), 3)  # ~1000 distinct: either side of max_bins
    if kind == "inf":
        s = rng.normal(size=n)
        s[:5] = np.inf
        s[5:9] = -np.inf
        return s
    if kind == "nan":
        s = rng.normal(size=n)
        s[::50] = np.nan
        return s
    s = rng.integers(-3, 4, n).astype("float64")  # signed zeros among ties
    s[s == 0] = rng.choice([0.0, -0.0], int((s == 0).sum()))
    return s


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # quantiles between ±inf
@pytest.mark.parametrize("kind", ["continuous", "few", "rounded", "inf", "nan", "zeros"])
@pytest.mark.parametrize("max_bins", [20, 1000, 4000])
@pytest.mark.parametrize("weighted", [False, True])
def test_score_table_equals_the_np_unique_implementation(kind, max_bins, weighted):
    rng = np.random.default_rng([zlib.crc32(kind.encode()), max_bins, weighted])
    n = 5000
    s = _scores(kind, n, rng)
    y = rng.random(n) < 0.2
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    got = score_table(s, y, sample_weight=w, max_bins=max_bins)
    want = _reference_table(s, y, sample_weight=w, max_bins=max_bins)
    assert got.exact == want.exact
    for field in ("values", "pos_n", "neg_n", "pos_w", "neg_w"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)


def test_score_table_small_and_empty_inputs():
    for s in (np.array([]), np.array([0.3]), np.array([0.1, 0.1, 0.2])):
        y = np.arange(s.size) % 2 == 0
        got, want = score_table(s, y, max_bins=2), _reference_table(s, y, max_bins=2)
        assert got.exact == want.exact
        np.testing.assert_array_equal(got.pos_n, want.pos_n)
        np.testing.assert_array_equal(got.neg_w, want.neg_w)


def _mixed_frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    f = rng.integers(0, 4, n).astype("float64")
    f[rng.random(n) < 0.1] = np.nan
    f[f == 0] = rng.choice([0.0, -0.0], int((f == 0).sum()))
    txt = rng.choice(np.array(["a", "b", None, "c"], dtype=object), n)
    when = pd.Series(pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 3, n), unit="D"))
    when[rng.random(n) < 0.1] = pd.NaT
    nullable = pd.array(rng.integers(0, 3, n), dtype="Int64")
    nullable[rng.random(n) < 0.1] = pd.NA
    return pd.DataFrame(
        {
            "f": f,
            "g": rng.integers(0, 2, n).astype("float32"),
            "i": rng.integers(0, 3, n),
            "u": rng.integers(0, 2, n).astype("uint64") + np.uint64(2**63),
            "b": rng.random(n) < 0.5,
            "txt": txt,
            "cat": pd.Categorical(rng.choice(["x", "y"], n)),
            "when": when,
            "nullable": nullable,
            "mixed": np.array([1, 1.0, True, "1"], dtype=object)[rng.integers(0, 4, n)],
        }
    )


@pytest.mark.parametrize("seed", range(4))
def test_duplicate_rows_equal_pandas(seed):
    rng = np.random.default_rng(seed)
    frame = _mixed_frame(3000, rng)
    for cols in (list(frame.columns), ["f", "g"], ["txt", "cat", "when"], ["f"], ["mixed", "i"]):
        assert data._duplicate_rows(frame, cols) == int(frame[cols].duplicated().sum()), cols
    assert data._duplicate_rows(frame, []) == 0


def test_duplicate_rows_without_and_with_only_repeats():
    rng = np.random.default_rng(5)
    unique = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.normal(size=1000)})
    assert data._duplicate_rows(unique, ["a", "b"]) == 0
    repeated = pd.concat([unique.iloc[:10]] * 30, ignore_index=True)
    assert data._duplicate_rows(repeated, ["a", "b"]) == int(repeated.duplicated().sum()) == 290


def test_leakage_distinct_count_is_nunique_for_float_columns():
    rng = np.random.default_rng(9)
    n = 5000
    y = (rng.random(n) < 0.3).astype(np.int8)
    cases = {
        "many": pd.Series(rng.normal(size=n)),  # > 1000 distinct: the sorted path
        "few": pd.Series(rng.integers(0, 40, n).astype("float64")),
        "zeros": pd.Series(np.where(rng.random(n) < 0.5, 0.0, -0.0)),
        "missing": pd.Series(np.where(rng.random(n) < 0.3, np.nan, np.round(rng.normal(size=n), 2))),
    }
    for name, s in cases.items():
        auc, distinct = data._leakage(s, y, None, "numeric")
        assert distinct == s.nunique(dropna=True), name
    # integer columns keep pandas' count (int → float may merge huge values)
    assert data._leakage(pd.Series(rng.integers(0, 9, n)), y, None, "numeric")[1] is None


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("kind", ["continuous", "few", "rounded", "inf", "zeros"])
@pytest.mark.parametrize("max_bins", [20, 1000])
def test_leakage_cell_counts_equal_score_table(kind, max_bins):
    rng = np.random.default_rng([zlib.crc32(kind.encode()), max_bins])
    n = 5000
    s = _scores(kind, n, rng)
    y = rng.random(n) < 0.15
    pos, neg, distinct = data._cell_counts(s, y, max_bins)
    want = _reference_table(s, y, max_bins=max_bins)
    np.testing.assert_array_equal(pos, want.pos_w)
    np.testing.assert_array_equal(neg, want.neg_w)
    assert distinct == np.unique(s).size


def test_leakage_auc_equals_the_score_table_auc():
    from service.audits._stats import auc_from_counts

    rng = np.random.default_rng(4)
    n = 20_000
    y = (rng.random(n) < 0.1).astype(np.int8)
    x = pd.Series(rng.normal(size=n) + 0.5 * y)
    x[rng.random(n) < 0.05] = np.nan
    ok = x.notna().to_numpy()
    t = _reference_table(x[ok].to_numpy(), y[ok], max_bins=data.LEAKAGE_BINS)
    auc = float(auc_from_counts(t.pos_w, t.neg_w))
    assert data._leakage(x, y, None, "numeric")[0] == max(auc, 1 - auc)
    w = rng.uniform(0.5, 2, n)
    tw = _reference_table(x[ok].to_numpy(), y[ok], sample_weight=w[ok], max_bins=data.LEAKAGE_BINS)
    aw = float(auc_from_counts(tw.pos_w, tw.neg_w))
    assert data._leakage(x, y, w, "numeric")[0] == max(aw, 1 - aw)


def test_score_tables_share_cells_and_equal_separate_tables():
    from service.audits._stats import _score_tables

    rng = np.random.default_rng(8)
    n = 20_000
    s = np.round(rng.random(n), 4)
    y = rng.random(n) < 0.2
    weights = [None, rng.uniform(0, 1, n), rng.uniform(0, 3, n)]
    for max_bins in (50, 4000, 20_000):
        tables, _ = _score_tables(s, y, weights, max_bins)
        for t, w in zip(tables, weights, strict=True):
            want = _reference_table(s, y, sample_weight=w, max_bins=max_bins)
            assert t.exact == want.exact
            for field in ("values", "pos_n", "neg_n", "pos_w", "neg_w"):
                np.testing.assert_array_equal(getattr(t, field), getattr(want, field), err_msg=field)
