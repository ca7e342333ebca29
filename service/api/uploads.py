"""Streamed uploads: the request body goes to the artifact store chunk by chunk (never whole in
memory), hashed on the way, refused with 413 as soon as it passes the size limit.

Accepted bodies: ``multipart/form-data`` with one file field named ``file`` (``curl -F file=@x.csv``)
or a raw body (``application/octet-stream``, ``curl --data-binary @x.csv``; name in ``?filename=``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import InputError, PayloadTooLarge
from service.store.artifacts import ArtifactStore, PendingWrite

# Room for multipart boundaries and part headers on top of the file itself.
_MULTIPART_OVERHEAD = 64 * 1024


@dataclass
class Uploaded:
    sha256: str
    size: int
    filename: str | None
    head: bytes  # first 64 KiB, for content sniffing
    tail: bytes  # last 8 bytes (Parquet footer magic)
    created: bool = False  # the bytes were new to the store (only then may a rejection delete them)


class _Sink:
    def __init__(self, writer: PendingWrite) -> None:
        self.w = writer
        self.head = bytearray()
        self.tail = b""

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.w.write(data)
        if len(self.head) < 65536:
            self.head += data[: 65536 - len(self.head)]
        self.tail = (self.tail + data)[-8:]


async def receive_upload(request: Request, store: ArtifactStore, limit: int) -> Uploaded:
    """Stream the request body into ``store``; returns digest, size, filename and the sniffing bytes."""
    declared = request.headers.get("content-length")
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    is_multipart = ctype == b"multipart/form-data"
    if (
        declared
        and declared.isdigit()
        and int(declared) > limit + (_MULTIPART_OVERHEAD if is_multipart else 0)
    ):
        raise PayloadTooLarge(
            f"the upload declares {int(declared)} bytes, over the limit of {limit} bytes",
            field="file",
            expected=f"at most {limit} bytes (setting ASSAY_MAX_UPLOAD_BYTES)",
        )
    writer = store.open_write(limit=limit)
    sink = _Sink(writer)
    filename: str | None = request.query_params.get("filename")
    try:
        if is_multipart:
            filename = await _multipart(request, params, sink) or filename
        else:
            async for chunk in request.stream():
                sink.write(chunk)
    except (InputError, PayloadTooLarge):
        writer.abort()
        raise
    except Exception as exc:
        writer.abort()
        raise InputError(
            f"the upload could not be read ({type(exc).__name__}: {exc})", field="file"
        ) from None
    if writer.size == 0:
        writer.abort()
        raise InputError("the uploaded file is empty", field="file", expected="a non-empty file")
    digest, size = writer.commit()
    return Uploaded(digest, size, clean_filename(filename), bytes(sink.head), sink.tail, writer.created)


def clean_filename(name: str | None) -> str | None:
    """The client's file name as a label: base name only, no control characters, at most 300 characters."""
    if name is None:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:300]
    return name or None


class _Parts:
    """Callbacks of the streaming multipart parser: bytes of the first part named ``file`` go to the sink."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.field = b""
        self.value = b""
        self.headers: dict[bytes, bytes] = {}
        self.in_file = False
        self.seen_file = False
        self.filename: str | None = None

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field = b""
        self.value = b""

    def on_headers_finished(self) -> None:
        _, disp = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        self.in_file = name == "file" and not self.seen_file
        if self.in_file:
            self.seen_file = True
            fn = disp.get(b"filename")
            self.filename = fn.decode("utf-8", "replace") if fn else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.sink.write(data[start:end])

    def on_part_end(self) -> None:
        self.in_file = False


async def _multipart(request: Request, params: dict[bytes, bytes], sink: _Sink) -> str | None:
    boundary = params.get(b"boundary")
    if not boundary:
        raise InputError(
            "multipart body without a boundary",
            field="file",
            expected="Content-Type: multipart/form-data; boundary=...",
        )
    parts = _Parts(sink)
    names = (
        "on_part_begin",
        "on_header_field",
        "on_header_value",
        "on_header_end",
        "on_headers_finished",
        "on_part_data",
        "on_part_end",
    )
    parser = MultipartParser(boundary, {n: getattr(parts, n) for n in names})  # type: ignore[arg-type]
    async for chunk in request.stream():
        parser.write(chunk)
    parser.finalize()
    if not parts.seen_file:
        raise InputError(
            "the multipart body has no part named 'file'", field="file", expected="curl -F file=@path/to/file"
        )
    return parts.filename


UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
