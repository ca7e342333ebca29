"""Shared test fixtures: the bundled fixture specs, prepared contexts, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
GERMAN_SPEC = FIXTURES / "german_credit" / "audit.yaml"
TAIWAN_SPEC = FIXTURES / "taiwan" / "audit.yaml"

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 600):
    """Run ``assay ARGS`` in a subprocess (as a user would) and return the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def german_spec():
    from service.config import load_spec

    return load_spec(GERMAN_SPEC)


@pytest.fixture(scope="session")
def taiwan_spec():
    from service.config import load_spec

    return load_spec(TAIWAN_SPEC)


@pytest.fixture(scope="session")
def german_ctx(german_spec):
    """Prepared context of the German-credit fixture (shared: audits must not mutate it)."""
    from service.inputs.prepare import prepare

    return prepare(german_spec).context


@pytest.fixture(scope="session")
def taiwan_ctx(taiwan_spec):
    from service.inputs.prepare import prepare

    return prepare(taiwan_spec).context
