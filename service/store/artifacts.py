"""Content-addressed artifact folder: bytes live at ``<root>/<sha[:2]>/<sha256>``.

Writes stream through a temporary file in the same folder while hashing, then ``os.replace`` it
into place, so a crash never leaves a half-written artifact under a real digest and the same bytes
are stored once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from service.errors import InputError, PayloadTooLarge

CHUNK = 1 << 20


@dataclass
class PendingWrite:
    """An in-progress streamed write: ``write(chunk)`` repeatedly, then ``commit()`` or ``abort()``."""

    store: ArtifactStore
    limit: int | None
    tmp: Path
    fh: BinaryIO
    size: int = 0

    def __post_init__(self) -> None:
        self._h = hashlib.sha256()
        self.created = False  # after commit: True when these bytes were new to the store

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            self.abort()
            raise PayloadTooLarge(
                f"the upload exceeds the size limit of {self.limit} bytes",
                field="file",
                expected=f"at most {self.limit} bytes (setting ASSAY_MAX_UPLOAD_BYTES)",
            )
        self._h.update(chunk)
        self.fh.write(chunk)

    def commit(self) -> tuple[str, int]:
        """Move the bytes to their content address; returns (sha256, size)."""
        self.fh.close()
        digest = self._h.hexdigest()
        dest = self.store.path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            self.tmp.unlink(missing_ok=True)
            self.created = False
        else:
            os.replace(self.tmp, dest)
            self.created = True
        return digest, self.size

    def abort(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.tmp.unlink(missing_ok=True)


class ArtifactStore:
    """Datasets, models, audit.json files and PDFs keyed by their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InputError(f"not a sha256 digest: {sha256!r}", expected="64 lowercase hex characters")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def open_write(self, *, limit: int | None = None) -> PendingWrite:
        fd, tmp = tempfile.mkstemp(prefix="upload.", suffix=".part", dir=self.root / "tmp")
        return PendingWrite(store=self, limit=limit, tmp=Path(tmp), fh=os.fdopen(fd, "wb"))

    def put_bytes(self, data: bytes) -> str:
        w = self.open_write()
        w.write(data)
        return w.commit()[0]

    def put_stream(self, src: BinaryIO, *, limit: int | None = None) -> tuple[str, int]:
        w = self.open_write(limit=limit)
        try:
            while chunk := src.read(CHUNK):
                w.write(chunk)
        except BaseException:
            w.abort()
            raise
        return w.commit()

    def put_file(self, path: Path) -> str:
        with Path(path).open("rb") as fh:
            return self.put_stream(fh)[0]

    def read_bytes(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()


__all__ = ["ArtifactStore", "PendingWrite"]
