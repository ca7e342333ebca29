"""Validate the spec against the data and build the :class:`AuditContext` (the one boundary).

Everything here raises :class:`~service.errors.InputError` naming the file, the spec key and what
was expected; past this point audits trust their inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from service.audits.context import AuditContext, ProtectedGroups, Split
from service.config import AuditSpec, ProtectedSpec
from service.errors import InputError
from service.inputs.datasets import LoadedDataset, parse_dates, read_dataset
from service.inputs.models import ScoreColumn, ScoreModel, load_model


@dataclass
class PreparedInputs:
    context: AuditContext
    dataset: LoadedDataset
    oot: LoadedDataset | None
    model_path: str | None


def _spec_src(spec: AuditSpec) -> str:
    return str(spec.spec_path) if spec.spec_path else "spec"


def _require_column(frame: pd.DataFrame, col: str, key: str, data_path: str) -> None:
    if col not in frame.columns:
        cols = ", ".join(map(str, frame.columns[:15])) + (" ..." if frame.shape[1] > 15 else "")
        raise InputError(
            f"column '{col}' (from spec key '{key}') is not in the data",
            file=data_path,
            field=key,
            expected=f"one of the columns: {cols}",
        )


def encode_target(series: pd.Series, event_value: Any, *, path: str) -> np.ndarray:
    """1 where the target equals ``event_value`` (numbers compared numerically, else as text)."""
    if series.isna().any():
        raise InputError(
            f"target column '{series.name}' has {int(series.isna().sum())} missing value(s)",
            file=path,
            field="target",
            expected="an observed outcome on every row (drop or impute unlabelled rows first)",
        )
    if (
        pd.api.types.is_numeric_dtype(series)
        and isinstance(event_value, int | float)
        and not isinstance(event_value, bool)
    ):
        y = (series.to_numpy(dtype="float64") == float(event_value)).astype(np.int8)
    else:
        y = (series.astype(str).str.strip() == str(event_value)).to_numpy().astype(np.int8)
    values = sorted(map(str, series.unique()[:20]))
    if y.sum() == 0:
        raise InputError(
            f"event_value {event_value!r} never occurs in target column '{series.name}'",
            file=path,
            field="event_value",
            expected=f"one of the target's values: {', '.join(values)}",
        )
    if y.sum() == y.size:
        raise InputError(
            f"target column '{series.name}' has one class only (every row is {event_value!r})",
            file=path,
            field="target",
            expected="both events and non-events in the data",
        )
    return y


def _label_values(s: pd.Series) -> pd.Series:
    """Group labels as text; integral floats print as integers (1.0 → "1")."""
    if pd.api.types.is_numeric_dtype(s):
        v = s.astype("float64")
        integral = v.dropna().eq(v.dropna().round()).all()
        out = v.map(lambda x: None if pd.isna(x) else (str(int(x)) if integral else f"{x:g}"))
        return out.astype(object)
    return s.map(lambda x: None if pd.isna(x) else str(x).strip()).astype(object)


def build_protected(
    frame: pd.DataFrame, p: ProtectedSpec, *, path: str, known_groups: list[str] | None = None
) -> ProtectedGroups:
    """Group labels (and membership weights) for one protected attribute."""
    if p.bisg is not None:
        from service.inputs import bisg  # lazy: loads the Census tables

        for key, col in (("bisg.surname", p.bisg.surname), ("bisg.geography", p.bisg.geography)):
            _require_column(frame, col, f"protected[{p.name}].{key}", path)
        est = bisg.estimate(
            frame[p.bisg.surname], frame[p.bisg.geography], kind=p.bisg.geography_kind, source=path
        )
        groups = list(est.groups)
        if p.reference not in groups:
            raise InputError(
                f"reference group {p.reference!r} is not a BISG race/ethnicity category",
                file=path,
                field=f"protected[{p.name}].reference",
                expected=f"one of: {', '.join(groups)}",
            )
        probs = est.probabilities
        codes = np.where(probs.sum(axis=1) > 0, probs.argmax(axis=1), -1)
        return ProtectedGroups(
            p.name, None, p.reference, groups, codes, probs, True, "BISG (CFPB 2014)", est.diagnostics
        )
    assert p.column is not None
    _require_column(frame, p.column, f"protected[{p.name}].column", path)
    s = frame[p.column]
    if s.isna().all():
        raise InputError(
            f"protected column '{p.column}' is entirely missing",
            file=path,
            field=f"protected[{p.name}].column",
            expected="group values on at least some rows",
        )
    if p.bins is not None:
        num = pd.to_numeric(s, errors="coerce")
        if (num.isna() & s.notna()).any():
            raise InputError(
                f"protected column '{p.column}' has non-numeric values but 'bins' were given",
                file=path,
                field=f"protected[{p.name}].bins",
                expected="a numeric column, or no bins for a categorical attribute",
            )
        labels = p.band_labels() or []
        cut = pd.cut(num, bins=p.bins, labels=labels, right=False, include_lowest=True)
        lab = cut.astype(object).where(cut.notna(), None)
        groups = list(labels)
    else:
        lab = _label_values(s)
        if p.categories:
            lab = lab.map(lambda x: None if x is None else p.categories.get(x, x))
        seen = sorted({v for v in lab.dropna().unique()})
        groups = known_groups or seen
    if p.reference not in groups or (known_groups is None and not (lab == p.reference).any()):
        present = sorted({v for v in pd.Series(lab).dropna().unique()})
        raise InputError(
            f"reference group {p.reference!r} does not occur in column '{p.column}'",
            file=path,
            field=f"protected[{p.name}].reference",
            expected=f"one of the groups present: {', '.join(map(str, present[:20]))}",
        )
    # reference first, then the others in sorted order (stable across runs and row orders)
    ordered = [p.reference] + [g for g in groups if g != p.reference]
    index = {g: i for i, g in enumerate(ordered)}
    codes = np.array([index.get(v, -1) if v is not None else -1 for v in lab], dtype=np.int64)
    membership = np.zeros((len(codes), len(ordered)), dtype="float64")
    ok = codes >= 0
    membership[np.nonzero(ok)[0], codes[ok]] = 1.0
    return ProtectedGroups(p.name, p.column, p.reference, ordered, codes, membership)


def _score_kind(spec: AuditSpec, model: ScoreModel, scores: np.ndarray) -> str:
    if spec.score.kind != "auto":
        return spec.score.kind
    finite = scores[np.isfinite(scores)]
    in_unit = finite.size > 0 and finite.min() >= 0.0 and finite.max() <= 1.0
    return "probability" if in_unit else "score"


def _make_split(
    name: str,
    ds: LoadedDataset,
    spec: AuditSpec,
    model: ScoreModel,
    features: list[str],
    *,
    check_threshold: bool,
    known_groups: dict[str, list[str]] | None = None,
) -> tuple[Split, str]:
    frame = ds.frame
    path = str(ds.path)
    _require_column(frame, spec.target, "target", path)
    for key, col in (
        ("id_column", spec.id_column),
        ("weight_column", spec.weight_column),
        ("date_column", spec.date_column),
        ("score.column", spec.score.column),
        ("temporal.months_on_book_column", spec.temporal.months_on_book_column),
    ):
        if col is not None:
            _require_column(frame, col, key, path)
    for f in features:
        _require_column(frame, f, "features", path)
    y = encode_target(frame[spec.target], spec.event_value, path=path)

    # one pass over the trees where the model can give both (LightGBM: the second predict is the cost)
    both = getattr(model, "predict_score_and_margin", None)
    raw_margin = None
    try:
        if both is not None:
            score, raw_margin = both(frame)
        else:
            score = model.predict_score(frame)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"the model failed to score the data: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            file=path,
            field="model",
            expected="columns with the types the model was trained on",
        ) from None
    score = np.asarray(score, dtype="float64")
    bad = ~np.isfinite(score)
    if bad.any():
        raise InputError(
            f"{int(bad.sum())} row(s) have a missing or non-finite score",
            file=path,
            field="score.column" if spec.score.column else "model",
            expected="a finite score for every row",
        )
    kind = _score_kind(spec, model, score)
    thr = spec.score.threshold
    if check_threshold and not (score.min() <= thr <= score.max()):
        raise InputError(
            f"score.threshold {thr:g} is outside the range of the scores "
            f"[{score.min():.6g}, {score.max():.6g}], "
            "so every applicant would get the same decision",
            file=_spec_src(spec),
            field="score.threshold",
            expected="a cut-off inside the score range",
        )
    riskier = spec.score.direction == "higher_is_riskier"
    adverse = score >= thr if riskier else score < thr
    risk = score if riskier else -score
    prob = None
    if kind == "probability":
        prob = score if riskier else 1.0 - score
    elif kind == "log_odds":
        z = score if riskier else -score
        prob = 1.0 / (1.0 + np.exp(-z))
    if raw_margin is not None:
        margin = raw_margin
    else:
        margin = model.predict_margin(frame) if not isinstance(model, ScoreColumn) else None
    if margin is not None and not riskier:
        margin = -np.asarray(margin)

    weight = None
    if spec.weight_column:
        w = pd.to_numeric(frame[spec.weight_column], errors="coerce").to_numpy(dtype="float64")
        if (~np.isfinite(w)).any() or (w < 0).any():
            raise InputError(
                f"weight column '{spec.weight_column}' has missing, non-numeric or negative values",
                file=path,
                field="weight_column",
                expected="non-negative numbers on every row",
            )
        weight = w
    dates = None
    if spec.date_column:
        d = parse_dates(frame[spec.date_column], column=spec.date_column, source=path)
        dates = d.to_numpy(dtype="datetime64[ns]")
    protected = {
        p.name: build_protected(
            frame, p, path=path, known_groups=(known_groups or {}).get(p.name) if known_groups else None
        )
        for p in spec.protected
    }
    split = Split(
        name=name,
        frame=frame,
        y=y,
        score=score,
        risk=risk,
        prob=prob,
        margin=margin,
        adverse=np.asarray(adverse, dtype=bool),
        weight=weight,
        protected=protected,
        dates=dates,
    )
    return split, kind


def default_features(spec: AuditSpec, frame: pd.DataFrame) -> list[str]:
    """Without a model or explicit features: every column except target, ids, weights, dates, protected."""
    skip = {spec.target, spec.id_column, spec.weight_column, spec.date_column, spec.score.column}
    skip |= {p.column for p in spec.protected if p.column}
    skip |= {c for p in spec.protected if p.bisg for c in (p.bisg.surname, p.bisg.geography)}
    return [str(c) for c in frame.columns if c not in skip]


def prepare(
    spec: AuditSpec,
    *,
    allow_pickle: bool = False,
    progress: Callable[[str], None] | None = None,
    oot_after: str | None = None,
) -> PreparedInputs:
    """Load and validate every input the spec names and build the context."""
    say = progress or (lambda _m: None)
    say("loading dataset")
    ds_path = spec.resolve(spec.dataset)
    assert ds_path is not None
    ds = read_dataset(ds_path, dtypes=spec.dtypes, label="dataset")
    oot_ds = None
    if spec.oot_dataset:
        say("loading out-of-time dataset")
        oot_path = spec.resolve(spec.oot_dataset)
        assert oot_path is not None
        oot_ds = read_dataset(oot_path, dtypes=spec.dtypes, label="oot_dataset")
    model_path = None
    if spec.model:
        say("loading model")
        mp = spec.resolve(spec.model)
        assert mp is not None
        model_path = str(mp)
        model: ScoreModel = load_model(
            mp, features=spec.features, event_value=spec.event_value, allow_pickle=allow_pickle
        )
        features = list(model.features)
    else:
        assert spec.score.column is not None
        _require_column(ds.frame, spec.score.column, "score.column", str(ds.path))
        features = spec.features or default_features(spec, ds.frame)
        model = ScoreColumn(spec.score.column, features)

    cutoff = oot_after or (spec.temporal.oot_after.isoformat() if spec.temporal.oot_after else None)
    if cutoff is not None:
        if oot_ds is not None:
            raise InputError(
                "both oot_dataset and an out-of-time cut-off date were given",
                file=_spec_src(spec),
                field="temporal.oot_after",
                expected="one way of defining the out-of-time sample",
            )
        if not spec.date_column:
            raise InputError(
                "an out-of-time cut-off needs a date column",
                file=_spec_src(spec),
                field="date_column",
                expected="the column holding each row's date",
            )
        ds, oot_ds = _split_by_date(ds, spec, cutoff)

    say("scoring development data")
    dev, kind = _make_split("dev", ds, spec, model, features, check_threshold=True)
    oot = None
    if oot_ds is not None:
        say("scoring out-of-time data")
        known = {k: v.groups for k, v in dev.protected.items() if not v.estimated}
        oot, _ = _make_split("oot", oot_ds, spec, model, features, check_threshold=False, known_groups=known)
    ctx = AuditContext(spec=spec, model=model, features=features, dev=dev, oot=oot, score_kind=kind)
    if progress:
        ctx.progress = progress
    return PreparedInputs(ctx, ds, oot_ds, model_path)


def _split_by_date(ds: LoadedDataset, spec: AuditSpec, cutoff: str) -> tuple[LoadedDataset, LoadedDataset]:
    assert spec.date_column is not None
    try:
        when = pd.Timestamp(cutoff)
    except (ValueError, TypeError):
        raise InputError(
            f"cannot parse the out-of-time cut-off {cutoff!r}",
            field="--oot-after",
            expected="a date like 2007-01-01",
        ) from None
    _require_column(ds.frame, spec.date_column, "date_column", str(ds.path))
    d = parse_dates(ds.frame[spec.date_column], column=spec.date_column, source=str(ds.path))
    late = (d > when).to_numpy()
    if late.all() or not late.any():
        raise InputError(
            f"the cut-off {cutoff} leaves one side empty ({int(late.sum())} rows after it of {late.size})",
            file=str(ds.path),
            field="--oot-after",
            expected="a date inside the data's date range",
        )
    a = ds.frame.loc[~late].reset_index(drop=True)
    b = ds.frame.loc[late].reset_index(drop=True)
    return (
        LoadedDataset(ds.path, a, ds.sha256, ds.format, ds.delimiter),
        LoadedDataset(ds.path, b, ds.sha256, ds.format, ds.delimiter),
    )


__all__ = ["PreparedInputs", "build_protected", "default_features", "encode_target", "prepare"]
