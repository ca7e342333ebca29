"""What the CLI (``assay reasons``) and the API (``POST /v1/reasons``) call.

``build_engine`` loads the spec's development data (the reference population), model and catalogue,
optionally runs the proxy screen (features it flags never become reasons), and returns a
:class:`ReasonEngine`. ``explain`` validates an applicants frame and returns SPEC.md §6a records.
Engines are cached by the content of the resolved spec (paths point to content-addressed files in
the API), so repeated requests pay only for the attribution.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pandas as pd

from service.config import AuditSpec
from service.errors import InputError
from service.reasons.build import catalogue_for, engine_from_context
from service.reasons.engine import ReasonEngine, allowed_columns, check_applicants

CACHE_SIZE = 8
_cache: OrderedDict[str, ReasonEngine] = OrderedDict()
_lock = threading.Lock()
_building: dict[str, threading.Lock] = {}  # spec key -> held while that engine is being built


def engine_key(spec: AuditSpec, proxy_screen: bool = True, blocked: list[str] | None = None) -> str:
    """The cache key of ``build_engine(spec, proxy_screen=..., blocked_features=...)``."""
    payload = spec.model_dump(mode="json", exclude={"base_dir", "spec_path"})
    payload["_base"] = str(spec.base_dir)
    payload["_proxy"] = proxy_screen
    payload["_blocked"] = blocked
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def build_engine(
    spec: AuditSpec,
    *,
    allow_pickle: bool = False,
    proxy_screen: bool = True,
    blocked_features: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    use_cache: bool = True,
    key: str | None = None,
) -> ReasonEngine:
    """A reason engine for ``spec`` (development data = reference population).

    Cached: concurrent calls for the same spec wait for one build (a build takes seconds of CPU,
    and a burst of first requests each building its own engine would starve the process). ``key``
    is :func:`engine_key` of the same arguments, for a caller that keeps it.
    """
    key = key or engine_key(spec, proxy_screen, blocked_features)
    if not use_cache:
        return _build(spec, allow_pickle, proxy_screen, blocked_features, progress)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        gate = _building.setdefault(key, threading.Lock())
    with gate:
        try:
            with _lock:
                if key in _cache:  # built while this call waited
                    _cache.move_to_end(key)
                    return _cache[key]
            engine = _build(spec, allow_pickle, proxy_screen, blocked_features, progress)
            with _lock:
                _cache[key] = engine
                evicted = False
                while len(_cache) > CACHE_SIZE:
                    _cache.popitem(last=False)
                    evicted = True
            _settle_heap(evicted)
            return engine
        finally:
            with _lock:
                _building.pop(key, None)


def _settle_heap(evicted: bool) -> None:
    """Move everything alive now (imports, the cached engines) out of the cyclic GC's reach.

    A full collection of a server's heap (~200k objects after the scientific imports, ~40k more per
    German-credit engine) takes 50-400 ms on this machine, and one happens every so many thousand
    requests: the whole tail of ``POST /v1/reasons`` latency. ``gc.freeze()`` after a build makes
    those collections scan only what requests allocate. Frozen objects that later become cyclic
    garbage are kept until unfrozen, so an eviction unfreezes (and the next full collection,
    here, frees the evicted engine) before freezing again. Once per build: seconds already.
    """
    if evicted:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


def _build(
    spec: AuditSpec,
    allow_pickle: bool,
    proxy_screen: bool,
    blocked_features: list[str] | None,
    progress: Callable[[str], None] | None,
) -> ReasonEngine:
    from service.inputs.prepare import prepare

    say = progress or (lambda _m: None)
    if spec.reason_codes is None:
        catalogue_for(spec, [])  # raises the "no reason catalogue" InputError before any loading
    ctx = prepare(spec, allow_pickle=allow_pickle, progress=progress).context
    catalogue = catalogue_for(spec, ctx.features)
    blocked = blocked_features
    if blocked is None and proxy_screen and spec.protected:
        from service.audits import proxies
        from service.reasons.build import blocked_from_results

        say("proxy screen of the model features")
        ctx.results["proxies"] = proxies.run(ctx).section.model_dump(mode="json")
        blocked = blocked_from_results(ctx)
    say("building the reference set")
    engine = engine_from_context(ctx, blocked_features=blocked or [], catalogue=catalogue)
    engine.known_columns = [str(c) for c in ctx.dev.frame.columns]
    return engine


def explain(
    engine: ReasonEngine, spec: AuditSpec, frame: pd.DataFrame, *, source: str
) -> list[dict[str, Any]]:
    """Validate the applicants and return one record per row (SPEC.md §6a).

    Accepted columns: the model features, the columns the spec names, and any column of the
    development dataset; anything else is an error naming it (a wrong or misspelt file).
    """
    required = list(dict.fromkeys(engine.features + [k.column for k in engine.catalogue.knockouts]))
    allowed = allowed_columns(spec, engine.features, engine.catalogue) + engine.known_columns
    check_applicants(frame, features=engine.features, allowed=allowed, required=required, source=source)
    try:
        return engine.explain(frame).records
    except ValueError as exc:  # the model refused the values (scikit-learn's input validation)
        text = str(exc)
        missing = [f for f in engine.features if frame[f].isna().any()]
        if missing and ("NaN" in text or "missing values" in text):
            raise InputError(
                f"the model cannot score missing values; {len(missing)} column(s) have empty values: "
                + ", ".join(missing[:10]),
                file=source,
                field=missing[0],
                expected="a value for every model feature the model has no imputer for",
            ) from None
        if "unknown categor" in text:
            raise InputError(
                f"the model refused a category it was not fitted on ({text})",
                file=source,
                field="applicants",
                expected="categories seen when the model was fitted (its encoder has handle_unknown='error')",
            ) from None
        raise


def explain_records(
    engine: ReasonEngine, spec: AuditSpec, applicants: list[dict[str, Any]], *, source: str
) -> list[dict[str, Any]]:
    """:func:`explain` for JSON objects (``POST /v1/reasons``): the same records, and errors.

    Plain requests to a compiled linear model skip the DataFrame altogether
    (:meth:`ReasonEngine.explain_records`); anything else goes through :func:`explain`.
    """
    allowed = set(allowed_columns(spec, engine.features, engine.catalogue) + engine.known_columns)
    fast = engine.explain_records(applicants, allowed=allowed)
    if fast is not None:
        return fast.records
    return explain(engine, spec, pd.DataFrame.from_records(applicants), source=source)


def records_to_csv(records: list[dict[str, Any]], max_reasons: int) -> str:
    """CSV columns: row, id, decision, score, reason_k_{code,statement,contribution}, ...

    then reference_version and model_sha256 (for record retention).
    """
    head = ["row", "id", "decision", "score"]
    for k in range(1, max_reasons + 1):
        head += [f"reason_{k}_code", f"reason_{k}_statement", f"reason_{k}_contribution"]
    head += ["reference_version", "model_sha256"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for r in records:
        line: list[Any] = [
            r["row"],
            "" if r["id"] is None else r["id"],
            r["decision"],
            repr(float(r["score"])),
        ]
        for k in range(max_reasons):
            if k < len(r["reasons"]):
                x = r["reasons"][k]
                c = x["contribution"]
                line += [x["code"], x["statement"], "" if c is None else repr(float(c))]
            else:
                line += ["", "", ""]
        line += [r["reference_version"], r["model_sha256"]]
        w.writerow(line)
    return buf.getvalue()


def clear_cache() -> None:
    with _lock:
        _cache.clear()
    gc.unfreeze()  # the dropped engines become collectable (see _settle_heap)


__all__ = ["build_engine", "clear_cache", "engine_key", "explain", "explain_records", "records_to_csv"]
