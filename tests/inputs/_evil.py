"""Objects that leave a sentinel file behind if anything ever instantiates or unpickles them."""

from __future__ import annotations

import os
from pathlib import Path

SENTINEL_ENV = "ASSAY_TEST_SENTINEL"


class Evil:
    """skops would call __setstate__ when loading an instance: proof that code ran."""

    def __init__(self) -> None:
        self.payload = "x"

    def __setstate__(self, state: dict) -> None:
        Path(os.environ[SENTINEL_ENV]).write_text("code ran")
        self.__dict__.update(state)


class PickleBomb:
    """Unpickling calls Path.touch(sentinel)."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (Path(self.sentinel),))
