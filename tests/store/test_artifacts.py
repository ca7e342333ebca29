"""The content-addressed artifact folder: sha256 paths, dedup, size limits, atomic and streamed writes."""

from __future__ import annotations

import hashlib
import io
import tracemalloc

import pytest

from service.errors import InputError, PayloadTooLarge
from service.store.artifacts import ArtifactStore


class _Zeros(io.RawIOBase):
    """A readable stream of ``n`` pseudo-random-looking bytes generated on the fly (never whole in memory)."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.h = hashlib.sha256()
        self.block = bytes(range(256)) * 4096  # 1 MiB

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        k = min(len(b), self.left, len(self.block))
        b[:k] = self.block[:k]
        self.h.update(self.block[:k])
        self.left -= k
        return k


def _files(store: ArtifactStore) -> list:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


def test_bytes_live_under_their_sha256(tmp_path):
    store = ArtifactStore(tmp_path / "a")
    data = b"label,score\n1,0.2\n"
    sha = store.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.path(sha) == tmp_path / "a" / sha[:2] / sha
    assert store.read_bytes(sha) == data and store.exists(sha)
    assert store.put_bytes(data) == sha  # the same bytes are stored once
    assert _files(store) == [store.path(sha)]


def test_size_limit_stops_the_stream_and_leaves_nothing(tmp_path):
    store = ArtifactStore(tmp_path / "a")
    with pytest.raises(PayloadTooLarge, match="size limit of 1000 bytes"):
        store.put_stream(io.BytesIO(b"x" * 1001), limit=1000)
    assert _files(store) == []
    sha, size = store.put_stream(io.BytesIO(b"x" * 1000), limit=1000)  # exactly at the limit is fine
    assert size == 1000 and sha == hashlib.sha256(b"x" * 1000).hexdigest()


def test_a_failed_stream_leaves_no_partial_file(tmp_path):
    store = ArtifactStore(tmp_path / "a")

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[override]
            raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put_stream(Broken())
    assert _files(store) == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 64, "0" * 63, "g" * 64, ""])
def test_paths_are_only_digests(tmp_path, bad):
    with pytest.raises(InputError, match="not a sha256 digest"):
        ArtifactStore(tmp_path).path(bad)


def test_streamed_write_uses_flat_memory(tmp_path):
    """64 MiB through put_stream: traced Python allocations stay near one chunk, not the file size."""
    store = ArtifactStore(tmp_path / "a")
    src = _Zeros(64 * 2**20)
    tracemalloc.start()
    try:
        sha, size = store.put_stream(io.BufferedReader(src, buffer_size=1 << 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 64 * 2**20 and sha == src.h.hexdigest()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
