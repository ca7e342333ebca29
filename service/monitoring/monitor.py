"""Monitors: the monitor file (SPEC.md §3), reference profiling, one window per run, history, labels.

A run takes the **oldest** file matching ``source`` (by modification time, then name) whose sha256
is not yet in the monitor's history, compares it with the stored reference profile
(:mod:`service.monitoring.window`), stores the window result and the per-row scores (for labels that
arrive later), and hands any alerts to :mod:`service.monitoring.alerts` in the background.
Parquet windows are streamed in ``chunk_rows`` batches (flat memory); CSV windows are read whole.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.audits._stats import _f
from service.config import AuditSpec, _format_validation_error, load_spec, parse_spec, read_mapping
from service.errors import InputError, NotFound
from service.inputs.datasets import read_dataset, sha256_file
from service.inputs.models import ScoreColumn, ScoreModel, load_model
from service.inputs.prepare import build_protected, encode_target
from service.monitoring import store
from service.monitoring.profile import ReferenceProfile, build_profile, load_profile
from service.monitoring.window import (
    CONVENTIONS,
    WindowAccumulator,
    WindowPerformance,
    WindowResult,
    fairness_as_dict,
    window_alerts,
)
from service.result import Finding

log = logging.getLogger("assay.monitoring")


class AlertSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhook: str
    headers: dict[str, str] | None = None
    retries: int = Field(default=4, ge=0, le=10)
    backoff: float = Field(default=1.0, ge=0.0, le=60.0)

    @field_validator("webhook")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"webhook must be an http(s) URL, got {v!r}")
        return v


class MonitorSpec(BaseModel):
    """The monitor file. ``audit`` is a path to an audit spec (or, through the API, the spec itself)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    audit: str | dict[str, Any]
    reference: str
    source: str | None = None
    schedule: str | None = None
    alerts: list[AlertSpec] = []
    categorical: list[str] | None = None
    trend_windows: int = Field(default=8, ge=2, le=200)
    chunk_rows: int = Field(default=500_000, ge=1000)
    exact_max_rows: int = Field(default=200_000, ge=0)
    bootstrap: int | None = Field(default=None, ge=0, le=100_000)

    base_dir: Path = Field(default=Path("."), exclude=True)
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from service.monitoring.scheduler import cron_trigger

        try:
            cron_trigger(v)
        except ValueError as exc:
            raise ValueError(f"not a 5-field cron expression ({exc}): {v!r}") from None
        return v

    def resolve(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else (self.base_dir / q).resolve()

    def config(self) -> dict[str, Any]:
        """JSON to store with the monitor (paths made absolute so the scheduler can run it anywhere)."""
        d = self.model_dump(mode="json")
        d["base_dir"] = str(self.base_dir)
        return d


def parse_monitor(data: Any, *, source: str = "monitor", base_dir: Path | None = None) -> MonitorSpec:
    if not isinstance(data, dict):
        raise InputError(
            f"the monitor file must be a mapping of keys to values, got {type(data).__name__}",
            file=source,
            expected="a YAML/JSON object with name, audit, reference, source, schedule, alerts (SPEC.md §3)",
        )
    try:
        spec = MonitorSpec.model_validate(data)
    except ValidationError as err:
        e = _format_validation_error(err, source)
        raise InputError(
            e.message.replace("SPEC.md §3", "SPEC.md §3 (monitor file)"),
            file=source,
            field=e.field,
            expected=e.expected and e.expected.replace("§3", "§3 monitor file"),
        ) from None
    spec.base_dir = (base_dir or Path(".")).resolve()
    return spec


def load_monitor(path: str | Path) -> MonitorSpec:
    p = Path(path).resolve()
    spec = parse_monitor(read_mapping(p), source=str(path), base_dir=p.parent)
    spec.path = p
    return spec


def monitor_from_config(config: dict[str, Any]) -> MonitorSpec:
    cfg = dict(config)
    base = Path(cfg.pop("base_dir", "."))
    return parse_monitor(cfg, source="stored monitor", base_dir=base)


# --------------------------------------------------------------------------- runtime


@dataclass
class Runtime:
    spec: MonitorSpec
    audit: AuditSpec
    model: ScoreModel
    features: list[str]


def load_audit(mspec: MonitorSpec) -> AuditSpec:
    """The monitor's audit spec (a file next to the monitor file, or inline through the API)."""
    if isinstance(mspec.audit, dict):
        return parse_spec(mspec.audit, source=f"{mspec.name}: audit", base_dir=mspec.base_dir)
    return load_spec(mspec.resolve(mspec.audit))


def profile_key(mspec: MonitorSpec, audit: AuditSpec) -> str:
    """Hash of everything a reference profile depends on besides the reference file itself.

    The model file's bytes, the score convention, features, protected attributes, target, weights,
    column kinds and the profile version: when any changes the stored profile is stale.
    """
    import hashlib
    import json

    from service.monitoring.profile import PROFILE_VERSION

    model_path = audit.resolve(audit.model) if audit.model else None
    body = {
        "profile_version": PROFILE_VERSION,
        "model_sha256": sha256_file(model_path) if model_path and model_path.is_file() else None,
        "score": audit.score.model_dump(mode="json"),
        "features": audit.features,
        "protected": [p.model_dump(mode="json") for p in audit.protected],
        "target": audit.target,
        "event_value": str(audit.event_value),
        "weight_column": audit.weight_column,
        "dtypes": audit.dtypes,
        "categorical": mspec.categorical,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def load_runtime(mspec: MonitorSpec) -> Runtime:
    audit = load_audit(mspec)
    if audit.model:
        mp = audit.resolve(audit.model)
        assert mp is not None
        model: ScoreModel = load_model(mp, features=audit.features, event_value=audit.event_value)
        features = list(model.features)
    else:
        assert audit.score.column is not None
        if not audit.features:
            raise InputError(
                "a monitor on a score column needs the audit spec's 'features' list",
                file=str(audit.spec_path or "audit"),
                field="features",
                expected="the feature columns to monitor",
            )
        features = list(audit.features)
        model = ScoreColumn(audit.score.column, features)
    return Runtime(mspec, audit, model, features)


def _scores(rt: Runtime, frame: pd.DataFrame, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(raw score, adverse decision, P(event) or None) for a chunk."""
    for f in rt.features + ([rt.audit.score.column] if rt.audit.score.column else []):
        if f not in frame.columns:
            raise InputError(
                f"column '{f}' is missing from the window",
                file=path,
                field="features",
                expected="the model's feature columns in every window file",
            )
    try:
        score = np.asarray(rt.model.predict_score(frame), dtype="float64")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"the model failed to score the data: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            file=path,
            field="model",
            expected="columns with the types the model was trained on",
        ) from None
    riskier = rt.audit.score.direction == "higher_is_riskier"
    thr = rt.audit.score.threshold
    adverse = score >= thr if riskier else score < thr
    finite = score[np.isfinite(score)]
    prob = None
    kind = rt.audit.score.kind
    if kind == "probability" or (kind == "auto" and finite.size and finite.min() >= 0 and finite.max() <= 1):
        prob = score if riskier else 1.0 - score
    elif kind == "log_odds":
        prob = 1.0 / (1.0 + np.exp(-(score if riskier else -score)))
    return score, adverse, prob


def _kinds(rt: Runtime) -> dict[str, str]:
    dtypes = rt.audit.dtypes or {}
    kinds: dict[str, str] = {c: k for c, k in dtypes.items() if k in ("numeric", "categorical")}
    for c in rt.spec.categorical or []:
        kinds[c] = "categorical"
    return kinds


def build_reference_profile(rt: Runtime, *, label: str | None = None) -> tuple[ReferenceProfile, str]:
    """Profile the monitor's reference file; returns (profile, reference sha256).

    ``label`` names the reference in the profile (an API dataset id rather than the server path).
    """
    path = rt.spec.resolve(rt.spec.reference)
    ds = read_dataset(path, label="reference")
    frame = ds.frame
    score, adverse, _ = _scores(rt, frame, str(path))
    protected = {p.name: build_protected(frame, p, path=str(path)) for p in rt.audit.protected}
    y = None
    if rt.audit.target in frame.columns:
        y = encode_target(frame[rt.audit.target], rt.audit.event_value, path=str(path))
    w = None
    if rt.audit.weight_column and rt.audit.weight_column in frame.columns:
        w = pd.to_numeric(frame[rt.audit.weight_column], errors="coerce").to_numpy(dtype="float64")
    for c in rt.spec.categorical or []:
        if c not in rt.features:
            raise InputError(
                f"'{c}' is not a model feature",
                file=str(rt.spec.path or rt.spec.name),
                field="categorical",
                expected=f"some of: {', '.join(rt.features[:20])}",
            )
    prof = build_profile(
        frame,
        rt.features,
        score=score,
        adverse=adverse,
        y=y,
        protected=protected,
        sample_weight=w,
        kinds=_kinds(rt),
        source={
            "path": label or rt.spec.reference,
            "sha256": ds.sha256,
            "rows": ds.rows,
            "size": path.stat().st_size,
            "mtime_ns": path.stat().st_mtime_ns,
            "model_sha256": rt.model.sha256,
            "key": profile_key(rt.spec, rt.audit),
        },
    )
    return prof, ds.sha256


def ensure_monitor(
    session: Session,
    mspec: MonitorSpec,
    *,
    org_id: str | None = None,
    notes: list[str] | None = None,
    reference_label: str | None = None,
) -> store.Monitor:
    """Create or update the monitor row; (re)build the profile only when it is stale.

    Stale = no stored profile, the reference file's content changed (re-hashed only when its size or
    modification time changed), or :func:`profile_key` changed (model file, score convention,
    features, protected attributes). Once a profile is stored the reference file is not needed:
    if it has gone, the stored profile is used as long as nothing it depends on has changed.
    ``notes`` collects what happened, for the CLI to print; ``reference_label`` names the reference
    in the profile (the API's dataset id).
    """
    import json

    notes = notes if notes is not None else []
    row = store.find_monitor(session, org_id, mspec.name)
    ref_path = mspec.resolve(mspec.reference)
    stored: dict[str, Any] = json.loads(row.profile).get("source", {}) if row and row.profile else {}
    key = profile_key(mspec, load_audit(mspec))
    if not ref_path.is_file():
        if row is None or row.profile is None:
            raise InputError(
                "reference file not found",
                file=str(ref_path),
                field="reference",
                expected="the development data file to profile",
            )
        if stored.get("key") != key:
            raise InputError(
                "reference file not found, and the model or the audit spec changed since the stored "
                "profile was built, so the profile cannot be reused",
                file=str(ref_path),
                field="reference",
                expected="the reference file back in place to rebuild the profile",
            )
        notes.append(
            f"reference file {ref_path.name} not found: using the stored profile {row.profile_sha256}"
        )
        row.config = mspec.config()
        row.updated_at = dt.datetime.now(dt.UTC)
        session.flush()
        return row
    st = ref_path.stat()
    same_file = stored.get("size") == st.st_size and stored.get("mtime_ns") == st.st_mtime_ns
    ref_sha = row.reference_sha256 if row is not None and same_file else sha256_file(ref_path)
    if row is None:
        row = store.Monitor(id=store.new_id("mon"), org_id=org_id, name=mspec.name, config=mspec.config())
        session.add(row)
    else:
        row.config = mspec.config()
    why = (
        "no stored profile"
        if row.profile is None
        else "the reference file changed"
        if row.reference_sha256 != ref_sha
        else "the model or the audit spec changed"
        if stored.get("key") != key
        else None
    )
    if why:
        rt = load_runtime(mspec)
        prof, sha = build_reference_profile(rt, label=reference_label)
        row.profile = prof.model_dump_json()
        row.profile_sha256 = prof.sha256
        row.reference_sha256 = sha
        notes.append(f"profiled {ref_path.name} ({prof.n_rows:,} rows; {why}): profile {prof.sha256}")
    row.updated_at = dt.datetime.now(dt.UTC)
    session.flush()
    return row


def pick_source(mspec: MonitorSpec, processed: set[str]) -> tuple[Path, str] | None:
    """The oldest file matching ``source`` not yet processed: (path, sha256), or None."""
    if not mspec.source:
        return None
    pattern = str(mspec.resolve(mspec.source))
    files = [Path(p) for p in glob.glob(pattern) if Path(p).is_file()]
    files.sort(key=lambda p: (p.stat().st_mtime, p.name))
    for p in files:
        sha = sha256_file(p)
        if sha not in processed:
            return p, sha
    return None


def iter_frames(path: Path, chunk_rows: int) -> tuple[int | None, Iterator[pd.DataFrame]]:
    """(row count if known, chunks). Parquet is streamed with ``iter_batches``; CSV is read whole."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        import pyarrow.parquet as pq

        try:
            # pre_buffer=False: with pre-buffering pyarrow keeps every row group's buffers alive
            # while iterating (RSS grew ~125 MB per 500k-row batch here); unbuffered stays flat.
            pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        except Exception as exc:
            raise InputError(f"not a readable Parquet file ({exc})", file=str(path), field="source") from None

        def gen() -> Iterator[pd.DataFrame]:
            for batch in pf.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()

        return int(pf.metadata.num_rows), gen()
    frame = read_dataset(path, label="source").frame
    return len(frame), iter([frame])


def compute_window(
    rt: Runtime,
    profile: ReferenceProfile,
    path: Path,
    *,
    rng: np.random.Generator,
    n_boot: int,
    scores_path: Path | None = None,
) -> tuple[dict[str, Any], int]:
    """Compare one file with the profile; returns (partial window result, rows of scores written).

    With ``scores_path`` the per-row scores (for labels that arrive later) are appended to that
    Parquet file batch by batch, so a streamed window stays in flat memory. Only a window that
    carries its own outcomes keeps its scores in memory (for AUC and calibration at the end).
    """
    rows, chunks = iter_frames(path, rt.spec.chunk_rows)
    exact = rows is not None and rows <= rt.spec.exact_max_rows
    acc = WindowAccumulator(profile, keep_values=exact)
    known = {name: list(ap.groups) for name, ap in profile.fairness.items()}
    parts: list[pd.DataFrame] = []
    ys: list[np.ndarray] = []
    has_target = True
    writer: Any = None
    written = 0
    try:  # the scores file is closed whatever happens (the caller removes it on failure)
        for frame in chunks:
            score, adverse, prob = _scores(rt, frame, str(path))
            codes = {}
            for p in rt.audit.protected:
                if p.name in profile.fairness:
                    codes[p.name] = build_protected(
                        frame, p, path=str(path), known_groups=known[p.name]
                    ).codes
            w = None
            if rt.audit.weight_column and rt.audit.weight_column in frame.columns:
                w = pd.to_numeric(frame[rt.audit.weight_column], errors="coerce").to_numpy(dtype="float64")
            acc.update(frame, score=score, adverse=adverse, codes=codes, sample_weight=w)
            if rt.audit.target in frame.columns and has_target:
                ys.append(_target(frame, rt))
            else:
                has_target = False
                ys, parts = [], []
            riskier = rt.audit.score.direction == "higher_is_riskier"
            part = pd.DataFrame(
                {
                    "risk": score if riskier else -score,
                    "prob": prob if prob is not None else np.full(score.size, np.nan),
                    "adverse": adverse,
                }
            )
            if rt.audit.id_column and rt.audit.id_column in frame.columns:
                part.insert(0, "id", frame[rt.audit.id_column].astype(str).to_numpy())
            if w is not None:
                part["weight"] = w
            if has_target:
                parts.append(part)
            if scores_path is not None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(part, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(scores_path, table.schema)
                writer.write_table(table.cast(writer.schema))
                written += len(part)
            del frame, part
    finally:
        if writer is not None:
            writer.close()
    policy = rt.audit.policy
    drift = acc.drift(policy)
    fair = acc.fairness(policy, n_boot=n_boot, rng=rng)
    result: dict[str, Any] = {
        "conventions": CONVENTIONS,
        "rows": acc.rows,
        "drift": drift.model_dump(mode="json"),
        "prediction": (pd_.model_dump(mode="json") if (pd_ := acc.prediction()) else None),
        "fairness": fairness_as_dict(fair),
        "performance": None,
        "alerts": [a.model_dump(mode="json") for a in window_alerts(drift, fair, policy)],
    }
    if has_target and ys and parts:
        y = np.concatenate(ys)
        scores = pd.concat(parts, ignore_index=True)
        result["performance"] = window_performance(y, scores, rt, rng=rng, n_boot=n_boot).model_dump(
            mode="json"
        )
    return result, written


def _target(frame: pd.DataFrame, rt: Runtime) -> np.ndarray:
    s = frame[rt.audit.target]
    if pd.api.types.is_numeric_dtype(s) and isinstance(rt.audit.event_value, int | float):
        return (s.to_numpy(dtype="float64") == float(rt.audit.event_value)).astype(np.int8)
    return (s.astype(str).str.strip() == str(rt.audit.event_value)).to_numpy().astype(np.int8)


def window_performance(
    y: np.ndarray, scores: pd.DataFrame, rt: Runtime, *, rng: np.random.Generator, n_boot: int
) -> WindowPerformance:
    """AUC (with CI), Gini, KS, Brier and calibration once outcomes are known (performance audit)."""
    from service.audits.performance import calibration, score_metrics

    risk = scores["risk"].to_numpy(dtype="float64")
    prob_col = scores["prob"].to_numpy(dtype="float64")
    prob = prob_col if np.isfinite(prob_col).all() else None
    w = scores["weight"].to_numpy(dtype="float64") if "weight" in scores.columns else None
    ww = np.ones(y.size) if w is None else w
    events = float((ww * y).sum())
    if y.min() == y.max():
        return WindowPerformance(
            n=int(y.size),
            events=events,
            event_rate=_f(events / ww.sum()),
            auc=None,
            auc_ci=None,
            gini=None,
            ks=None,
        )
    m = score_metrics(y, risk, prob, sample_weight=w, n_boot=n_boot, rng=rng)
    cal = calibration(y, prob, sample_weight=w).model_dump(mode="json") if prob is not None else None
    return WindowPerformance(
        n=int(y.size),
        events=events,
        event_rate=_f(events / ww.sum()),
        auc=m.get("auc"),  # type: ignore[arg-type]
        auc_ci=m.get("auc_ci"),  # type: ignore[arg-type]
        gini=m.get("gini"),  # type: ignore[arg-type]
        ks=m.get("ks"),  # type: ignore[arg-type]
        brier=m.get("brier"),  # type: ignore[arg-type]
        calibration=cal,
    )


# --------------------------------------------------------------------------- trend


def trend(
    history: list[dict[str, Any]], current: dict[str, Any], policy: Any, n: int
) -> tuple[dict[str, Any], list[Finding]]:
    """Series over the last ``n`` windows (this one included) of score PSI and AIR per group.

    ``air_slope`` is the least-squares slope of AIR per window; a finding is raised when AIR has been
    below ``air_min`` in each of the last three windows (persistent shortfall), whatever the p-values.
    """
    from service.findings import finding

    series = [*history[-(n - 1) :], current] if n > 1 else [current]
    out: dict[str, Any] = {"windows": len(series), "score_psi": [], "air": {}, "air_slope": {}}
    for r in series:
        out["score_psi"].append(((r.get("drift") or {}).get("score") or {}).get("psi"))
    attrs = (current.get("fairness") or {}).get("attributes", {})
    findings: list[Finding] = []
    for attr, aw in attrs.items():
        out["air"][attr] = {}
        out["air_slope"][attr] = {}
        for g in aw["groups"]:
            vals = [
                ((((r.get("fairness") or {}).get("attributes") or {}).get(attr) or {}).get("groups") or {})
                .get(g, {})
                .get("air")
                for r in series
            ]
            out["air"][attr][g] = vals
            pts = [(i, v) for i, v in enumerate(vals) if v is not None]
            slope = None
            if len(pts) >= 3:
                xs, ys = np.array(pts, dtype="float64").T
                slope = _f(np.polyfit(xs, ys, 1)[0])
            out["air_slope"][attr][g] = slope
            last3 = vals[-3:]
            if len(last3) == 3 and all(v is not None and v < policy.air_min for v in last3):
                findings.append(
                    finding(
                        "fairness",
                        "high",
                        f"Persistent adverse impact ratio shortfall for {attr}={g}",
                        "AIR below the threshold in each of the last 3 windows "
                        f"({', '.join(f'{v:.3f}' for v in last3)})",
                        metric="air",
                        value=last3[-1],
                        policy=policy,
                        threshold_name="air_min",
                    )
                )
    return out, findings


# --------------------------------------------------------------------------- running


@dataclass
class WindowOutcome:
    monitor_id: str
    window_id: str | None
    seq: int | None
    result: dict[str, Any] | None
    message: str
    delivery: Any = None


def _scores_path(data_dir: Path, monitor_id: str, seq: int) -> Path:
    return data_dir / "monitoring" / monitor_id / f"window-{seq:05d}.parquet"


def run_window(
    sessions: sessionmaker[Session],
    monitor_id: str,
    *,
    data_dir: Path,
    path: Path | None = None,
    org_id: str | None = None,
    deliver_alerts: bool = True,
    source_label: str | None = None,
) -> WindowOutcome:
    """Process one window of a stored monitor (the oldest unprocessed source file unless ``path``)."""
    from service.monitoring import alerts as alerts_mod

    with sessions() as session:
        row = store.get_monitor(session, org_id, monitor_id)
        if row is None:
            raise NotFound(f"monitor {monitor_id!r} not found")
        mspec = monitor_from_config(row.config)
        assert row.profile is not None
        profile = load_profile(row.profile.encode(), source=f"monitor {row.name}: stored profile")
        done = store.processed_sources(session, row.id)
        retry = None
        if path is None:
            if not mspec.source:
                return WindowOutcome(
                    row.id, None, None, None, "the monitor has no 'source': give a file with --file"
                )
            picked = pick_source(mspec, done)
            if picked is None:
                return WindowOutcome(row.id, None, None, None, "no unprocessed file matches the source")
            path, sha = picked
        else:
            sha = sha256_file(path)
            prev = store.window_for_source(session, row.id, sha)
            if prev is not None and prev.status != "failed":
                what = "is being processed" if prev.status == "running" else "was already processed"
                shown = source_label or path.name
                return WindowOutcome(row.id, None, None, None, f"{shown} {what} (window {prev.seq})")
            retry = prev  # a file whose window failed is retried when named explicitly
        label = source_label or str(path)
        if retry is not None:
            # claim the failed window in place (same seq); the status guard stops a second runner
            claimed = session.execute(
                update(store.MonitorWindow)
                .where(store.MonitorWindow.id == retry.id, store.MonitorWindow.status == "failed")
                .values(status="running", error=None, source=label, created_at=dt.datetime.now(dt.UTC))
            )
            session.commit()
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                shown = source_label or path.name
                return WindowOutcome(row.id, None, None, None, f"{shown} is being processed by another run")
            win = retry
            seq = retry.seq
        else:
            seq = store.next_seq(session, row.id)
            win = store.MonitorWindow(
                id=store.new_id("win"),
                monitor_id=row.id,
                seq=seq,
                source=label,
                source_sha256=sha,
                status="running",
            )
            session.add(win)
            try:
                session.commit()  # claims the file: the unique (monitor, sha256) stops a second runner
            except Exception:
                session.rollback()
                return WindowOutcome(
                    row.id, None, None, None, f"{source_label or path.name} is being processed by another run"
                )
        history = [
            w.result
            for w in store.windows(session, row.id, limit=mspec.trend_windows, before_seq=seq)
            if w.result and w.status == "succeeded"
        ]
        win_id = win.id
        monitor_name = row.name
    rt = load_runtime(mspec)
    rng = np.random.default_rng([rt.audit.seed, seq])
    n_boot = mspec.bootstrap if mspec.bootstrap is not None else min(rt.audit.bootstrap, 500)
    spath = _scores_path(data_dir, row.id, seq)
    spath.parent.mkdir(parents=True, exist_ok=True)
    tmp_scores = spath.with_name(spath.name + ".tmp")
    try:
        partial, n_scores = compute_window(rt, profile, path, rng=rng, n_boot=n_boot, scores_path=tmp_scores)
        if n_scores:
            tmp_scores.replace(spath)
    except Exception as exc:
        tmp_scores.unlink(missing_ok=True)
        with sessions() as session:
            w = session.get(store.MonitorWindow, win_id)
            assert w is not None
            # named as the caller named the file (an API dataset id, never the server path)
            w.status, w.error = "failed", str(exc).replace(str(path), label)
            session.commit()
        raise
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    window_meta = {
        "id": win_id,
        "seq": seq,
        "source": source_label or str(path),
        "sha256": sha,
        "rows": partial["rows"],
        "created_at": created,
        "profile_sha256": profile.sha256,
    }
    tr, trend_findings = trend(history, partial, rt.audit.policy, mspec.trend_windows)
    partial["alerts"] += [f.model_dump(mode="json") for f in trend_findings]
    result = WindowResult.model_validate({"window": window_meta, **partial, "trend": tr})
    out = result.model_dump(mode="json")
    with sessions() as session:
        w = session.get(store.MonitorWindow, win_id)
        assert w is not None
        w.status, w.result, w.rows = "succeeded", out, int(partial["rows"])
        w.scores_path = str(spath) if n_scores else None
        w.alert_status = {"state": "pending" if out["alerts"] and mspec.alerts and deliver_alerts else "none"}
        session.commit()
    delivery = None
    if out["alerts"] and mspec.alerts and deliver_alerts:
        payload = alerts_mod.build_payload({"id": row.id, "name": monitor_name}, window_meta, out)

        def record(outcomes: list[dict[str, Any]]) -> None:
            with sessions() as s2:
                w2 = s2.get(store.MonitorWindow, win_id)
                if w2 is not None:
                    w2.alert_status = {
                        "state": "delivered" if all(o["ok"] for o in outcomes) else "failed",
                        "targets": outcomes,
                    }
                    s2.commit()

        delivery = alerts_mod.deliver([a.model_dump() for a in mspec.alerts], payload, on_done=record)
    msg = f"window {seq} ({path.name}): {partial['rows']} rows, {len(out['alerts'])} alert(s)"
    return WindowOutcome(row.id, win_id, seq, out, msg, delivery)


def post_labels(
    sessions: sessionmaker[Session],
    monitor_id: str,
    window_ref: str | int,
    labels: pd.DataFrame,
    *,
    org_id: str | None = None,
    source: str = "labels",
) -> dict[str, Any]:
    """Attach delayed outcomes to an earlier window and fill in its performance.

    Rows are matched on the audit spec's ``id_column`` when both sides have it, else by position
    (the labels file must then have exactly the window's row count, in the same order).
    """
    with sessions() as session:
        row = store.get_monitor(session, org_id, monitor_id)
        if row is None:
            raise NotFound(f"monitor {monitor_id!r} not found")
        win = store.get_window(session, row.id, window_ref)
        if win is None or win.status != "succeeded":
            ok = [str(w.seq) for w in store.windows(session, row.id) if w.status == "succeeded"]
            state = "not found" if win is None else f"{win.status}, not succeeded"
            raise NotFound(
                f"window {str(window_ref)!r} of monitor {row.name!r}: {state}; labels attach to a "
                f"succeeded window (by sequence number or id); succeeded windows: {', '.join(ok) or 'none'}"
            )
        mspec = monitor_from_config(row.config)
        rt = load_runtime(mspec)
        if not win.scores_path or not Path(win.scores_path).exists():
            raise InputError(
                "this window's scores were not kept, so labels cannot be matched", field="window"
            )
        scores = pd.read_parquet(win.scores_path)
        target = rt.audit.target
        if target not in labels.columns:
            raise InputError(
                f"the labels have no column '{target}'",
                file=source,
                field="target",
                expected=f"a column '{target}' (the audit spec's target) and ideally '{rt.audit.id_column}'",
            )
        idc = rt.audit.id_column
        if idc and idc in labels.columns and "id" in scores.columns:
            lab = labels[[idc, target]].copy()
            lab[idc] = lab[idc].astype(str)
            merged = scores.merge(lab, left_on="id", right_on=idc, how="inner")
            if merged.empty:
                raise InputError(
                    f"no label row matches a window row on '{idc}'",
                    file=source,
                    field=idc,
                    expected="the ids of the window's rows",
                )
        else:
            if len(labels) != len(scores):
                raise InputError(
                    f"{len(labels)} label rows for a window of {len(scores)} rows "
                    "and no id column to match on",
                    file=source,
                    field=idc or "id_column",
                    expected="one label per window row in the same order, or an id column",
                )
            merged = pd.concat(
                [scores.reset_index(drop=True), labels[[target]].reset_index(drop=True)], axis=1
            )
        y = encode_target(merged[target], rt.audit.event_value, path=source)
        rng = np.random.default_rng([rt.audit.seed, win.seq, 1])
        n_boot = mspec.bootstrap if mspec.bootstrap is not None else min(rt.audit.bootstrap, 500)
        perf = window_performance(y, merged, rt, rng=rng, n_boot=n_boot)
        now = dt.datetime.now(dt.UTC)
        perf.labels_received_at = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        result = dict(win.result or {})
        result["performance"] = perf.model_dump(mode="json")
        result.setdefault("window", {})["labelled_rows"] = int(len(merged))
        win.result = result
        win.labels_at = now
        session.commit()
        return result


def history(sessions: sessionmaker[Session], monitor_id: str, *, org_id: str | None = None) -> dict[str, Any]:
    """The monitor's time series: one point per window with the headline numbers."""
    with sessions() as session:
        row = store.get_monitor(session, org_id, monitor_id)
        if row is None:
            raise NotFound(f"monitor {monitor_id!r} not found")
        points = []
        for w in store.windows(session, row.id):
            r = w.result or {}
            drift = r.get("drift") or {}
            perf = r.get("performance") or {}
            air = {
                a: {g: gv.get("air") for g, gv in av["groups"].items()}
                for a, av in ((r.get("fairness") or {}).get("attributes") or {}).items()
            }
            points.append(
                {
                    "id": w.id,
                    "seq": w.seq,
                    "source": w.source,
                    "status": w.status,
                    "error": w.error,
                    "created_at": w.created_at.isoformat() if w.created_at else None,
                    "rows": w.rows,
                    "score_psi": (drift.get("score") or {}).get("psi"),
                    "max_psi": (drift.get("summary") or {}).get("max_psi"),
                    "max_psi_feature": (drift.get("summary") or {}).get("max_psi_feature"),
                    "n_red": (drift.get("summary") or {}).get("n_red"),
                    "n_amber": (drift.get("summary") or {}).get("n_amber"),
                    "feature_psi": {k: v.get("psi") for k, v in (drift.get("features") or {}).items()},
                    "adverse_rate": (r.get("prediction") or {}).get("adverse_rate"),
                    "air": air,
                    "air_ci": {
                        a: {g: gv.get("air_ci") for g, gv in av["groups"].items()}
                        for a, av in ((r.get("fairness") or {}).get("attributes") or {}).items()
                    },
                    "auc": perf.get("auc"),
                    "auc_ci": perf.get("auc_ci"),
                    "n_alerts": len(r.get("alerts") or []),
                    "alert_status": w.alert_status,
                    "labels_at": w.labels_at.isoformat() if w.labels_at else None,
                }
            )
        import json

        prof = json.loads(row.profile) if row.profile else {}
        src = prof.get("source") or {}
        return {
            "monitor": {
                "id": row.id,
                "name": row.name,
                "profile_sha256": row.profile_sha256,
                "profile_created_at": prof.get("created_at"),
                "reference": {
                    "path": src.get("path"),
                    "sha256": src.get("sha256"),
                    "rows": prof.get("n_rows"),
                    "model_sha256": src.get("model_sha256"),
                },
                "schedule": (row.config or {}).get("schedule"),
            },
            "windows": points,
        }


ProgressFn = Callable[[str], None]

__all__ = [
    "AlertSpec",
    "MonitorSpec",
    "Runtime",
    "WindowOutcome",
    "build_reference_profile",
    "compute_window",
    "ensure_monitor",
    "history",
    "iter_frames",
    "load_audit",
    "load_monitor",
    "load_runtime",
    "monitor_from_config",
    "parse_monitor",
    "pick_source",
    "post_labels",
    "profile_key",
    "run_window",
    "trend",
    "window_performance",
]
