"""A ``multipart/form-data`` reader that streams its one file part straight to disk.

Starlette's form parser spools a file to a temporary file and hands it over once
the body is complete; an upload would then be copied a second time. Here the
file part is written to its destination as the bytes arrive, its size is
checked as it grows (so an oversized upload is refused at the first byte over
its cap, not after it was stored), and text fields are capped in count and size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MAX_BOUNDARY_LENGTH, MultipartParser, parse_options_header
from starlette.requests import Request

from vedit.errors import BodyTooLarge, InvalidRequest
from vedit.media.urls import escape_invisible

HEAD_BYTES = 64  # what the sniffer reads of a file
MAX_FIELDS = 32
MAX_FIELD_BYTES = 16 * 1024  # a DashScope policy is about 300 bytes


@dataclass
class ReceivedFile:
    """The file part, written to ``path``."""

    filename: str
    declared_type: str  # what the client said; recorded, never trusted
    path: Path
    size: int = 0
    head: bytes = b""


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: ReceivedFile | None = None


class _Reader:
    """The parser's callbacks: part headers, then the part's data to a field or the file."""

    def __init__(
        self, dest: Path, file_field: str, cap: int, limit_for: Callable[[bytes], int]
    ) -> None:
        self.dest, self.file_field = dest, file_field
        self.cap, self.limit_for = cap, limit_for
        self.form = ReceivedForm()
        self._out: BinaryIO | None = None
        self._headers: dict[str, str] = {}
        self._header_name = b""
        self._header_value = b""
        self._name: str | None = None
        self._value = bytearray()
        self._is_file = False
        self.ended = False

    # headers of a part
    def on_part_begin(self) -> None:
        self._headers, self._name, self._value, self._is_file = {}, None, bytearray(), False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        name = self._header_name.decode("latin-1").lower()
        self._headers[name] = self._header_value.decode("utf-8", "replace")
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = options.get(b"name")
        if name is None:
            raise InvalidRequest("a part of the multipart body has no name (Content-Disposition)")
        self._name = name.decode("utf-8", "replace")
        if self._name == self.file_field:
            if self.form.file is not None:
                raise InvalidRequest(f"the form has more than one {self.file_field!r} part")
            filename = options.get(b"filename", b"").decode("utf-8", "replace")
            declared = self._headers.get("content-type", "")
            self.form.file = ReceivedFile(filename, declared, self.dest)
            self._out = self.dest.open("wb")
            self._is_file = True
        elif len(self.form.fields) >= MAX_FIELDS:
            raise InvalidRequest(f"the form has more than {MAX_FIELDS} fields")

    # data of a part
    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if not self._is_file:
            self._value += chunk
            if len(self._value) > MAX_FIELD_BYTES:
                raise InvalidRequest(
                    f"form field {escape_invisible(self._name or '')[:64]!r} is over "
                    f"{MAX_FIELD_BYTES:,} bytes"
                )
            return
        file, out = self.form.file, self._out
        assert file is not None and out is not None
        if len(file.head) < HEAD_BYTES:
            file.head += chunk[: HEAD_BYTES - len(file.head)]
            if len(file.head) == HEAD_BYTES:
                self.cap = min(self.cap, self.limit_for(file.head))
        file.size += len(chunk)
        if file.size > self.cap:
            raise BodyTooLarge(
                f"the file is over the {self.cap:,}-byte limit (received {file.size:,} bytes so "
                "far)"
            )
        out.write(chunk)

    def on_part_end(self) -> None:
        if self._is_file:
            self.close()
            file = self.form.file
            assert file is not None
            if len(file.head) < HEAD_BYTES and file.size > self.limit_for(file.head):
                raise BodyTooLarge(f"the file is over the {self.limit_for(file.head):,}-byte limit")
        elif self._name is not None:
            self.form.fields[self._name] = self._value.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


async def receive_form(
    request: Request,
    dest: Path,
    *,
    file_field: str = "file",
    cap: int,
    limit_for: Callable[[bytes], int],
) -> ReceivedForm:
    """Read the request's multipart body; its ``file_field`` part is written to ``dest``.

    ``cap`` bounds the file before its first bytes are seen; ``limit_for(head)`` bounds it
    once they are (the cap of the kind of file they show). Raises :class:`InvalidRequest`
    for a body that is not a form, :class:`BodyTooLarge` over the limit. The caller removes
    ``dest`` when it does not keep it.
    """
    sent = request.headers.get("content-type", "")
    mime, options = parse_options_header(sent)
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            "the body must be multipart/form-data with a boundary and a 'file' part; "
            f"Content-Type is {escape_invisible(sent)[:100]!r}"
        )
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise InvalidRequest(
            f"the multipart boundary of Content-Type is {len(boundary):,} bytes long; at most "
            f"{MAX_BOUNDARY_LENGTH} are accepted (RFC 2046 asks for 1 to 70)"
        )
    reader = _Reader(dest, file_field, cap, limit_for)
    try:
        parser = MultipartParser(
            boundary,
            callbacks={  # type: ignore[arg-type]
                "on_part_begin": reader.on_part_begin,
                "on_header_field": reader.on_header_field,
                "on_header_value": reader.on_header_value,
                "on_header_end": reader.on_header_end,
                "on_headers_finished": reader.on_headers_finished,
                "on_part_data": reader.on_part_data,
                "on_part_end": reader.on_part_end,
                "on_end": reader.on_end,
            },
        )
    except Exception:  # whatever else the parser refuses of a boundary: the client's input
        raise InvalidRequest(
            f"the multipart boundary of Content-Type {escape_invisible(sent)[:100]!r} cannot "
            "be used; send one of 1 to 70 characters"
        ) from None
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except (InvalidRequest, BodyTooLarge):
                raise
            except Exception as exc:  # the parser's own errors: a malformed body
                raise InvalidRequest(f"the multipart body is malformed: {exc}") from None
        parser.finalize()
    finally:
        reader.close()
    if not reader.ended:
        raise InvalidRequest("the multipart body ended before its closing boundary")
    if reader.form.file is None:
        raise InvalidRequest(f"the form has no {file_field!r} part (the file to upload)")
    return reader.form
