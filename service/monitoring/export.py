"""evidently's HTML data-drift report for one window (``assay monitor run --evidently-html FILE``).

For data scientists who like evidently's interactive report. It re-reads the reference file (our own
numbers never do) and, above ``max_rows``, draws seeded random samples of both sides because
evidently's preset takes minutes at 1M rows (STACK-NOTES.md). Its default tests differ from ours
(normed Wasserstein / Jensen–Shannon on equal-width bins); the numbers Assay reports are in the window
result. evidently is imported lazily (``DO_NOT_TRACK=1``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from service.inputs.datasets import read_dataset


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    idx = np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False)
    return frame.iloc[np.sort(idx)].reset_index(drop=True)


def evidently_report(
    rt: Any, reference: Path, window: Path, out: Path, *, seed: int, max_rows: int = 100_000
) -> None:
    """Write evidently's DataDriftPreset HTML for the model features of ``window`` vs ``reference``."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from service.monitoring.profile import feature_kind

    ref = _sample(read_dataset(reference, label="reference").frame, max_rows, seed)
    cur = _sample(read_dataset(window, label="source").frame, max_rows, seed + 1)
    forced = set(rt.spec.categorical or [])
    num = [f for f in rt.features if f not in forced and feature_kind(ref[f]) == "numeric"]
    cat = [f for f in rt.features if f not in num]
    for c in cat:
        ref[c] = ref[c].astype(str)
        cur[c] = cur[c].astype(str)
    dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
    snap = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(cur[num + cat], data_definition=dd),
        reference_data=Dataset.from_pandas(ref[num + cat], data_definition=dd),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    snap.save_html(str(out))


__all__ = ["evidently_report"]
