"""A ``multipart/form-data`` reader that streams its one file part straight to disk.

Starlette's form parser spools a file to a temporary file and hands it over once
the body is complete; an upload would then be copied a second time. Here the
file part is written to its destination as the bytes arrive, its size is
checked as it grows (so an oversized upload is refused at the first byte over
its cap, not after it was stored), and text fields are capped in count and size.

A part's file name is any UTF-8 text: RFC 7578's raw UTF-8 in ``filename="..."`` (what
browsers, httpx and requests send), or RFC 5987's ``filename*=UTF-8''...``; it is metadata
only, never a path. With ``on_file``, the fields before the file part are handed over when
its headers arrive, before a byte of it is written (DashScope's upload form: its policy).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import (
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE,
    MAX_BOUNDARY_LENGTH,
    MultipartParser,
    parse_options_header,
)
from starlette.requests import Request

from vedit.errors import BodyTooLarge, InvalidRequest
from vedit.media.urls import escape_invisible

HEAD_BYTES = 64  # what the sniffer reads of a file
MAX_FIELDS = 32  # text parts of a form, each of its own name
MAX_FIELD_BYTES = 16 * 1024  # a DashScope policy is about 300 bytes
FORM_ALLOWANCE = MAX_FIELDS * MAX_FIELD_BYTES + 64 * 1024
"""What a form may hold besides its file: its text fields at their caps, part headers and
boundaries. The bytes before the file part are held to it (they are read before anything
of the request is checked in DashScope's flow, which has no key), and so is what follows
the file."""


@dataclass
class ReceivedFile:
    """The file part, written to ``path``."""

    filename: str
    declared_type: str  # what the client said; recorded, never trusted
    path: Path
    size: int = 0
    head: bytes = b""
    starts_at: int = 0  # where its first byte is in the body


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: ReceivedFile | None = None


OnFile = Callable[[dict[str, str], ReceivedFile], Awaitable[tuple[int, str] | None]]
"""Called when the file part's headers arrive, with the fields before it; may lower the
file's cap: ``(bytes, "the policy's ")`` makes the error "over the policy's N-byte limit"."""

# One parameter of a header: name, then a quoted string (backslash escapes) or a token.
_PARAM = re.compile(r';[ \t]*([^\s=;]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^;]*)')
_EXT_VALUE = re.compile(r"([A-Za-z0-9!#$&+^_`{}~-]*)'[^']*'(.*)", re.DOTALL)


def disposition(raw: bytes) -> dict[str, str]:
    """The parameters of a part's Content-Disposition (``name``, ``filename``), decoded.

    The header is UTF-8 as RFC 7578 says (Latin-1 when it is not valid UTF-8); an RFC 5987
    ``name*=charset'lang'percent-encoded`` value wins over the plain one. A Windows path
    sent whole (old browsers) keeps only its last part."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    plain: dict[str, str] = {}
    extended: dict[str, str] = {}
    for found in _PARAM.finditer(text):
        key, value = found.group(1).lower(), found.group(2).strip(" \t")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
        if key.endswith("*"):
            ext = _EXT_VALUE.fullmatch(value)
            if ext:
                charset = ext.group(1).lower() or "utf-8"
                try:
                    extended.setdefault(key[:-1], unquote(ext.group(2), charset, "replace"))
                except LookupError:  # a charset Python does not know: read it as UTF-8
                    extended.setdefault(key[:-1], unquote(ext.group(2), "utf-8", "replace"))
            continue
        plain.setdefault(key, value)
    params = {**plain, **extended}
    filename = params.get("filename")
    if filename is not None and (filename[1:3] == ":\\" or filename[:2] == "\\\\"):
        params["filename"] = filename.rsplit("\\", 1)[-1]
    return params


class _Reader:
    """The parser's callbacks: part headers, then the part's data to a field or the file.

    With a hook (``on_file``) the file's bytes that arrive with its headers are held until
    the hook has run (at most one network chunk): :meth:`resume` writes them."""

    def __init__(
        self,
        dest: Path,
        file_field: str,
        cap: int,
        limit_for: Callable[[bytes], int],
        hooked: bool = False,
    ) -> None:
        self.dest, self.file_field = dest, file_field
        self.cap, self.limit_for = cap, limit_for
        self.cap_name = ""
        self.hooked = hooked
        self.form = ReceivedForm()
        self.fed = 0  # bytes of the body given to the parser before the current chunk
        self._held: bytearray | None = None  # file bytes waiting for the hook
        self._held_end = False
        self._out: BinaryIO | None = None
        self._headers: dict[str, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._name: str | None = None
        self._value = bytearray()
        self._is_file = False
        self._names: set[str] = set()  # of the text parts so far
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
        self._headers[name] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        options = disposition(self._headers.get("content-disposition", b""))
        self._name = options.get("name")
        if self._name is None:
            raise InvalidRequest("a part of the multipart body has no name (Content-Disposition)")
        if self._name == self.file_field:
            if self.form.file is not None:
                raise InvalidRequest(f"the form has more than one {self.file_field!r} part")
            filename = options.get("filename", "")
            declared = self._headers.get("content-type", b"").decode("utf-8", "replace")
            self.form.file = ReceivedFile(filename, declared, self.dest)
            self._is_file = True
            if self.hooked:
                self._held = bytearray()
            else:
                self._out = self.dest.open("wb")
        elif self.hooked and self.form.file is not None:
            raise InvalidRequest(
                f"the form has a field {escape_invisible(self._name)[:64]!r} after its "
                f"{self.file_field!r} part; the file must be the last part of the form"
            )
        elif self._name in self._names:
            raise InvalidRequest(
                f"the form has more than one field {escape_invisible(self._name)[:64]!r}"
            )
        elif len(self._names) >= MAX_FIELDS:
            raise InvalidRequest(f"the form has more than {MAX_FIELDS} fields")
        else:
            self._names.add(self._name)

    @property
    def waiting(self) -> bool:
        """Whether the file part's headers arrived and the hook has not run yet."""
        return self._held is not None

    def resume(self, cap: tuple[int, str] | None) -> None:
        """After the hook: lower the cap, then write the bytes held meanwhile."""
        if cap is not None and cap[0] < self.cap:
            self.cap, self.cap_name = cap
        held, self._held = self._held, None
        self._out = self.dest.open("wb")
        if held:
            self._write(bytes(held))
        if self._held_end:
            self._end_file()

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
        file = self.form.file
        assert file is not None
        if self._held is not None:  # the hook has not run: nothing is written yet
            if not self._held and not file.size:
                file.starts_at = self.fed + start
            self._held += chunk
            return
        self._write(chunk)

    def _write(self, chunk: bytes) -> None:
        file, out = self.form.file, self._out
        assert file is not None and out is not None
        if len(file.head) < HEAD_BYTES:
            file.head += chunk[: HEAD_BYTES - len(file.head)]
            if len(file.head) == HEAD_BYTES:
                self.cap = min(self.cap, self.limit_for(file.head))
        file.size += len(chunk)
        if file.size > self.cap:
            raise BodyTooLarge(
                f"the file is over the {self.cap_name}{self.cap:,}-byte limit (received "
                f"{file.size:,} bytes so far)"
            )
        out.write(chunk)

    def on_part_end(self) -> None:
        if self._is_file:
            if self._held is not None:
                self._held_end = True
                return
            self._end_file()
        elif self._name is not None:
            self.form.fields[self._name] = self._value.decode("utf-8", "replace")

    def _end_file(self) -> None:
        self.close()
        file = self.form.file
        assert file is not None
        if len(file.head) < HEAD_BYTES and file.size > self.limit_for(file.head):
            raise BodyTooLarge(f"the file is over the {self.limit_for(file.head):,}-byte limit")

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
    on_file: OnFile | None = None,
) -> ReceivedForm:
    """Read the request's multipart body; its ``file_field`` part is written to ``dest``.

    ``cap`` bounds the file before its first bytes are seen; ``limit_for(head)`` bounds it
    once they are (the cap of the kind of file they show). ``on_file(fields, file)`` runs
    when the file part's headers have arrived, before any of its bytes is written, with the
    fields sent before it; a field after the file part is then refused. Raises :class:`InvalidRequest`
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
    reader = _Reader(dest, file_field, cap, limit_for, hooked=on_file is not None)
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
                raise _malformed(exc, reader.fed) from None
            reader.fed += len(chunk)
            _check_form_bytes(reader, file_field)
            if reader.waiting:
                file = reader.form.file
                assert file is not None and on_file is not None
                if not file.starts_at:  # its headers ended this chunk: it starts with the next
                    file.starts_at = reader.fed
                reader.resume(await on_file(dict(reader.form.fields), file))
        parser.finalize()
    finally:
        reader.close()
    if not reader.ended:
        raise InvalidRequest("the multipart body ended before its closing boundary")
    if reader.form.file is None:
        raise InvalidRequest(f"the form has no {file_field!r} part (the file to upload)")
    return reader.form


def _check_form_bytes(reader: _Reader, file_field: str) -> None:
    """Refuse a form whose bytes besides its file go past :data:`FORM_ALLOWANCE`: before the
    file part (a preamble, fields), or in all (what follows the file: a chunked body has no
    declared length to be refused by at its head)."""
    if reader.form.file is None and reader.fed > FORM_ALLOWANCE:
        raise BodyTooLarge(
            f"the form holds over {FORM_ALLOWANCE:,} bytes before its {file_field!r} part "
            f"(received {reader.fed:,}); at most {FORM_ALLOWANCE:,} are accepted for its "
            f"fields ({MAX_FIELDS} of at most {MAX_FIELD_BYTES:,} bytes) and part headers"
        )
    if reader.fed > reader.cap + FORM_ALLOWANCE:
        raise BodyTooLarge(
            f"the body is over {reader.cap + FORM_ALLOWANCE:,} bytes (received {reader.fed:,}): "
            f"the file's {reader.cap_name}{reader.cap:,}-byte limit and {FORM_ALLOWANCE:,} "
            "bytes of form"
        )


def _malformed(exc: Exception, fed: int) -> InvalidRequest:
    """The parser's complaint about a body, in vedit's words, with where it was found."""
    offset = getattr(exc, "offset", -1)
    where = (
        f" at byte {fed + offset:,} of the body" if isinstance(offset, int) and offset >= 0 else ""
    )
    text = str(exc)
    if isinstance(exc, MultipartParseError) and text.startswith("Maximum header count"):
        why = f"a part has more than {DEFAULT_MAX_HEADER_COUNT} header lines"
    elif isinstance(exc, MultipartParseError) and text.startswith("Maximum header size"):
        why = f"a part's header line is over {DEFAULT_MAX_HEADER_SIZE:,} bytes"
    else:
        why = (
            "it is not a form of the boundary that Content-Type names (each part: "
            "'--<boundary>' and CRLF, its header lines, an empty line, its data; the form "
            "ends with '--<boundary>--')"
        )
    return InvalidRequest(f"the multipart body is malformed{where}: {why}")
