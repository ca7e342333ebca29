"""The reason-engine cache: concurrent first requests for one spec build one engine (single flight)."""

from __future__ import annotations

import threading
import time

import pytest

from service.config import load_spec
from service.errors import InputError
from service.reasons import service
from tests.conftest import FIXTURES


def test_concurrent_first_calls_build_one_engine(monkeypatch):
    calls: list[int] = []

    def slow_build(*_a, **_k):
        calls.append(1)
        time.sleep(0.3)
        return object()

    monkeypatch.setattr(service, "_build", slow_build)
    service.clear_cache()
    spec = load_spec(FIXTURES / "german_credit" / "audit.yaml")
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(service.build_engine(spec))) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 12 and all(g is got[0] for g in got)
    # another spec is another engine; a cached spec is not rebuilt
    other = spec.model_copy(update={"seed": spec.seed + 1})
    assert service.build_engine(other) is not got[0] and len(calls) == 2
    assert service.build_engine(spec) is got[0] and len(calls) == 2
    assert not service._building
    service.clear_cache()


def test_a_failed_build_is_not_cached_and_frees_the_gate(monkeypatch):
    def bad_build(*_a, **_k):
        raise InputError("no", field="x")

    monkeypatch.setattr(service, "_build", bad_build)
    service.clear_cache()
    spec = load_spec(FIXTURES / "german_credit" / "audit.yaml")
    for _ in range(2):
        with pytest.raises(InputError, match="no"):
            service.build_engine(spec)
    assert not service._building and not service._cache


class _Cyclic:
    """A stand-in engine that only the cyclic garbage collector can free."""

    def __init__(self) -> None:
        self.me = self


def test_built_engines_are_frozen_and_an_evicted_one_is_freed(monkeypatch):
    import gc
    import weakref

    monkeypatch.setattr(service, "_build", lambda *_a, **_k: _Cyclic())
    service.clear_cache()
    spec = load_spec(FIXTURES / "german_credit" / "audit.yaml")
    first = weakref.ref(service.build_engine(spec))
    assert gc.get_freeze_count() > 0  # full collections no longer scan the engine (or the imports)
    for k in range(1, service.CACHE_SIZE + 1):  # the first engine is evicted by the last build
        service.build_engine(spec.model_copy(update={"seed": spec.seed + k}))
    assert len(service._cache) == service.CACHE_SIZE
    assert first() is None  # unfrozen and collected, not leaked
    service.clear_cache()
    assert gc.get_freeze_count() == 0
