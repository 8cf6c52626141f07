"""Checks of an uploaded image whose memory is known before a pixel is decoded.

An upload is checked where hostile clients can reach it (the API process), so a
small file that decodes to a huge picture (a one-colour 6000x6000 PNG is 117 KB;
Pillow holds it as 144 MB, a WEBP of it as 551 MB) must not be decoded blindly:

1. :func:`read_header` reads the size from the format's header (PNG ``IHDR``, JPEG
   ``SOFn``, WEBP ``VP8``/``VP8L``/``VP8X``, BMP ``BITMAPINFOHEADER``), and
   :func:`check_image_size` refuses a size outside the limits, without Pillow;
2. :func:`verify_image` then shows the file whole, with memory of known size:
   a PNG is inflated as a stream and its rows counted (about 1 MB, whatever its size),
   a JPEG is decoded at 1/8 scale (``Image.draft``); WEBP and BMP are decoded,
   and :func:`decode_cost` says how many bytes that holds, for :class:`DecodeBudget`
   (the API decodes under one budget for all uploads at once).

The worker checks a reference image with the same header functions, then decodes it no
larger than the output needs, with bounded memory too (``probe.load_image``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import struct
import warnings
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vedit.errors import MediaAspectRatio, MediaCorrupt, MediaResolution
from vedit.media.limits import MediaLimits

log = logging.getLogger("vedit.media")

# Bytes a decode holds per pixel of the picture, measured with Pillow 13 (peak RSS of the
# decode over the pixel count, rounded up): libwebp's animation decoder keeps two RGBA
# canvases beside Pillow's image (15.3 measured); a JPEG's coefficients are 2 bytes per
# component per pixel when its scans are not sequential (4 components: 8); a BMP is read
# whole and then unpacked.
COST_PER_PIXEL = {"WEBP": 16, "BMP": 8, "JPEG": 8, "PNG": 0}
JPEG_SCALE = 8  # ``draft`` decodes a JPEG at 1/8 of its size
READ_BYTES = 64 * 1024
INFLATE_STEP = 1024 * 1024  # a PNG's pixels are inflated this much at a time, then dropped
MMAP_THRESHOLD = 1024 * 1024  # see return_large_frees
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_MAX_SEGMENTS = 1024  # segments before the frame header (a real file has a dozen)
# PNG colour type -> channels, and the bit depths each allows.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
# Adam7: (x0, y0, dx, dy) of each pass.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))  # fmt: skip


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding a pixel."""

    format: str  # "PNG" | "JPEG" | "WEBP" | "BMP"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(path: Path) -> ImageHeader | None:
    """The format and size an image's header declares; None when there is no readable
    header of an accepted format (the caller says what the file is)."""
    with path.open("rb") as f:
        head = f.read(32)
        if head.startswith(_PNG_SIGNATURE):
            if len(head) < 24 or head[12:16] != b"IHDR":
                return None
            width, height = struct.unpack(">II", head[16:24])
            return ImageHeader("PNG", width, height)
        if head.startswith(b"\xff\xd8"):
            return _jpeg_header(f)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_header(head)
        if head[:2] == b"BM":
            return _bmp_header(head)
    return None


def _jpeg_header(f: BinaryIO) -> ImageHeader | None:
    f.seek(2)
    for _ in range(_JPEG_MAX_SEGMENTS):
        if f.read(1) != b"\xff":
            return None
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in _JPEG_STANDALONE:
            continue
        if code in (0xD9, 0xDA):  # the end, or a scan, before any frame header
            return None
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if length < 2:
            return None
        if code in _JPEG_SOF:
            frame = f.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return ImageHeader("JPEG", width, height)
        f.seek(length - 2, 1)
    return None


def _webp_header(head: bytes) -> ImageHeader | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return ImageHeader("WEBP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        (bits,) = struct.unpack("<I", head[21:25])
        return ImageHeader("WEBP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return ImageHeader("WEBP", width, height)
    return None


def _bmp_header(head: bytes) -> ImageHeader | None:
    if len(head) < 26:
        return None
    (dib,) = struct.unpack("<I", head[14:18])
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", head[18:22])
    elif dib >= 16:
        width, height = struct.unpack("<ii", head[18:26])
    else:
        return None
    return ImageHeader("BMP", width, abs(height))


def check_image_size(width: int, height: int, limits: MediaLimits, label: str) -> None:
    """Refuse a size outside the image limits (pixels, smallest side, aspect ratio), each
    named with the value seen."""
    s = limits
    if width <= 0 or height <= 0:
        raise MediaCorrupt(f"{label}: the image header declares a size of {width}x{height}")
    if width * height > s.image_max_pixels:
        raise MediaResolution(
            f"{label}: size is {width}x{height} ({width * height:,} pixels); at most "
            f"{s.image_max_pixels:,} pixels are accepted"
        )
    if min(width, height) < s.image_min_side:
        raise MediaResolution(
            f"{label}: size is {width}x{height}; width and height must be at least "
            f"{s.image_min_side} px"
        )
    ratio = max(width, height) / min(width, height)
    if ratio > s.image_max_aspect + 1e-9:
        raise MediaAspectRatio(
            f"{label}: aspect ratio is {width}:{height} ({ratio:.2f}:1); it must be within "
            f"1:{s.image_max_aspect:g} to {s.image_max_aspect:g}:1"
        )


def decode_cost(header: ImageHeader, file_bytes: int) -> int:
    """Bytes :func:`verify_image` may hold for this image, beyond its fixed ~1 MB: its
    pixels' cost, and for Pillow's formats the file (Pillow reads a WEBP whole, and keeps a
    JPEG's APP segments)."""
    if header.format == "PNG":
        return 0
    return COST_PER_PIXEL[header.format] * header.pixels + file_bytes


def budget_bytes(limits: MediaLimits) -> int:
    """What one image of the largest size allowed costs to verify (a WEBP of
    ``image_max_pixels``, ``image_max_bytes`` long): the decode budget of an API process."""
    return max(COST_PER_PIXEL.values()) * limits.image_max_pixels + limits.image_max_bytes


def verify_image(path: Path, header: ImageHeader, label: str, received: str) -> None:
    """Show that the image is whole and that it is what its header said, holding at most
    :func:`decode_cost` bytes; raises :class:`MediaCorrupt`. ``received``: what the file
    is, for the message (``probe.what_was_received``).

    A PNG is never given to Pillow here (its text and ICC chunks alone may take 64 MB
    there): :func:`_verify_png` reads it as a stream."""
    if header.format == "PNG":
        _verify_png(path, header, label, received)
        return
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path, formats=[header.format]) as img:
                if img.size != (header.width, header.height):
                    raise MediaCorrupt(
                        f"{label}: the image's header declares {header.width}x{header.height}, "
                        f"its data {img.size[0]}x{img.size[1]}"
                    )
                if header.format == "JPEG":
                    scaled = (-(-header.width // JPEG_SCALE), -(-header.height // JPEG_SCALE))
                    img.draft(None, scaled)
                img.load()
    except MediaCorrupt:
        raise
    except (OSError, ValueError, SyntaxError, struct.error, Image.DecompressionBombError) as exc:
        log.info("%s: Pillow cannot read the image: %s", label, str(exc).split(" '/")[0])
        raise MediaCorrupt(
            f"{label}: the image cannot be decoded (the file is damaged or cut short); "
            f"received {received}"
        ) from None


def _png_passes(
    header: ImageHeader, depth: int, colour: int, interlaced: bool
) -> list[tuple[int, int]]:
    """Each pass of the image's pixel stream (one, or Adam7's seven): its rows, and the
    bytes of a row (its filter byte included)."""
    bits = depth * _PNG_CHANNELS[colour]
    passes = []
    for x0, y0, dx, dy in _ADAM7 if interlaced else ((0, 0, 1, 1),):
        width = -(-(header.width - x0) // dx) if header.width > x0 else 0
        height = -(-(header.height - y0) // dy) if header.height > y0 else 0
        if width and height:
            passes.append((height, 1 + -(-(width * bits) // 8)))
    return passes


def _verify_png(path: Path, header: ImageHeader, label: str, received: str) -> None:
    """Walk the PNG's chunks (checking each CRC) and inflate its pixel stream a step at a
    time, checking each row's filter byte and that the stream holds every row."""

    def corrupt(why: str) -> MediaCorrupt:
        return MediaCorrupt(
            f"{label}: the PNG is damaged or cut short ({why}); received {received}"
        )

    with path.open("rb") as f:
        f.seek(len(_PNG_SIGNATURE))
        head = f.read(8 + 13 + 4)
        if len(head) < 25 or head[4:8] != b"IHDR" or struct.unpack(">I", head[:4])[0] != 13:
            raise corrupt("no IHDR chunk")
        if zlib.crc32(head[4:21]) != struct.unpack(">I", head[21:25])[0]:
            raise corrupt("the IHDR chunk's CRC does not match")
        depth, colour, compression, filtering, interlace = head[16:21]
        if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
            raise corrupt(f"bit depth {depth} with colour type {colour} is not a PNG format")
        passes = _png_passes(header, depth, colour, bool(interlace))
        expected = sum(rows * length for rows, length in passes)
        inflate = zlib.decompressobj()
        seen = 0  # bytes of the pixel stream inflated so far
        row_starts = _row_starts(passes)
        next_row = next(row_starts, None)
        idat_done = in_idat = palette = False
        while True:
            chunk_head = f.read(8)
            if len(chunk_head) < 8:
                raise corrupt("the file ends before its IEND chunk")
            length, kind = struct.unpack(">I4s", chunk_head)
            if length > 0x7FFFFFFF:
                raise corrupt(f"a chunk declares {length:,} bytes")
            crc = zlib.crc32(kind)
            if kind == b"PLTE":
                palette = True
            if kind == b"IDAT" and colour == 3 and not palette:
                raise corrupt("colour type 3 without a PLTE chunk before its pixels")
            if kind == b"IDAT" and idat_done:
                raise corrupt("its IDAT chunks are not consecutive")
            if in_idat and kind != b"IDAT":
                idat_done = True
            in_idat = kind == b"IDAT"
            left = length
            while left:
                data = f.read(min(left, READ_BYTES))
                if not data:
                    raise corrupt(f"the {kind.decode('latin-1')!r} chunk is cut short")
                left -= len(data)
                crc = zlib.crc32(data, crc)
                if in_idat and seen < expected:
                    pending = data
                    while pending and seen < expected:
                        try:
                            out = inflate.decompress(pending, INFLATE_STEP)
                        except zlib.error as exc:
                            raise corrupt(f"its pixel data does not inflate: {exc}") from None
                        pending = inflate.unconsumed_tail
                        while next_row is not None and next_row < seen + len(out):
                            if out[next_row - seen] > 4:
                                raise corrupt(
                                    f"a row has the unknown filter type {out[next_row - seen]}"
                                )
                            next_row = next(row_starts, None)
                        seen += len(out)
                        if not out and not pending:
                            break
            tail = f.read(4)
            if len(tail) < 4 or struct.unpack(">I", tail)[0] != crc:
                raise corrupt(f"the {kind.decode('latin-1')!r} chunk's CRC does not match")
            if kind == b"IEND":
                break
        if seen < expected:
            raise corrupt(f"its pixel data holds {seen:,} of the {expected:,} bytes its size needs")


def _row_starts(passes: list[tuple[int, int]]) -> collections.abc.Iterator[int]:
    """Offsets in the pixel stream where each row (its filter byte) begins."""
    at = 0
    for rows, length in passes:
        for _ in range(rows):
            yield at
            at += length


class DecodeBudget:
    """Bytes that decodes of uploads may hold at once in this process. A decode waits until
    its cost fits; one costing more than the whole budget runs alone. Turns go round the
    owners (API keys) waiting, one decode each, and each owner's decodes in arrival order:
    a key that sends a hundred costly files at once delays another key's file by one
    decode, not a hundred. Waiting is on the event loop, so waiting uploads hold no thread."""

    def __init__(self, capacity: int) -> None:
        return_large_frees()
        self.capacity = capacity
        self.held = 0
        self._owners: collections.deque[object] = collections.deque()  # whose turn is next
        self._turns: dict[object, collections.deque[object]] = {}  # each owner's, in order
        self._changed = asyncio.Condition()

    def _next(self) -> object | None:
        return self._turns[self._owners[0]][0] if self._owners else None

    @contextlib.asynccontextmanager
    async def hold(self, cost: int, owner: object = None) -> AsyncIterator[None]:
        cost = min(max(cost, 0), self.capacity)
        turn = object()
        async with self._changed:
            if owner not in self._turns:
                self._turns[owner] = collections.deque()
                self._owners.append(owner)
            self._turns[owner].append(turn)
            served = False
            try:
                await self._changed.wait_for(
                    lambda: self._next() is turn and self.held + cost <= self.capacity
                )
                served = True
            finally:
                mine = self._turns[owner]
                mine.remove(turn)
                if not mine:
                    del self._turns[owner]
                    self._owners.remove(owner)
                elif served:  # its next decode waits until the other owners had a turn
                    self._owners.remove(owner)
                    self._owners.append(owner)
                self._changed.notify_all()
            self.held += cost
        try:
            yield
        finally:
            async with self._changed:
                self.held -= cost
                self._changed.notify_all()


def return_large_frees() -> bool:
    """Make glibc's malloc serve blocks of 1 MiB and more by mmap, always, so that a decode's
    memory goes back to the system when it is freed. (By default the threshold rises to the
    largest block freed, up to 32 MiB, and such blocks then stay in the arena of the thread
    that freed them: decodes taking turns on the API's threads would then hold ~150 MB more
    than the budget, measured with 16 WEBP decodes.) False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


def video_cost(limits: MediaLimits) -> int:
    """Bytes a probe of an uploaded video may hold: PyAV opens it and decodes its first
    frame on one thread, refusing frames over ``video_max_long_side`` squared
    (``probe.probe_video``); about 4 bytes a pixel of that frame (measured: 2.8)."""
    return 4 * limits.video_max_long_side**2
