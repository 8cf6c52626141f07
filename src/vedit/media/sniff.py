"""What a file is, from its first bytes: the accepted media (:func:`sniff`) and the formats
people send that the API refuses (:func:`refused_format`). Nothing is decoded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SNIFF_BYTES = 64
# Atoms a QuickTime file may open with when it has no ftyp.
_QT_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "video" | "image"
    content_type: str


def sniff(head: bytes) -> Sniffed | None:
    """What the first bytes of a file show it to be, among the accepted media."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "image/webp")
    if head.startswith(b"BM") and len(head) >= 26:
        return Sniffed("image", "image/bmp")
    if head[4:8] == b"ftyp":
        return Sniffed("video", "video/quicktime" if head[8:12] == b"qt  " else "video/mp4")
    if head[4:8] in _QT_ATOMS:
        return Sniffed("video", "video/quicktime")
    return None


# Formats people send that the API refuses, by their first bytes: (prefix test, what it is).
_REFUSED: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (lambda h: h[:4] == b"RIFF" and h[8:12] == b"AVI ", "an AVI video"),
    (lambda h: h.startswith(b"\x1aE\xdf\xa3"), "a Matroska or WebM video"),
    (lambda h: h.startswith(b"FLV"), "an FLV video"),
    (lambda h: h.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"), "a WMV or ASF video"),
    (lambda h: h.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")), "an MPEG video"),
    (lambda h: h.startswith((b"GIF87a", b"GIF89a")), "a GIF image"),
    (lambda h: h.startswith((b"II*\x00", b"MM\x00*")), "a TIFF image"),
)


def refused_format(head: bytes) -> str | None:
    """What a file the API refuses is, from its first bytes (``an AVI video``), if known."""
    for test, name in _REFUSED:
        if test(head):
            return name
    return None


def shown(head: bytes) -> str:
    text = head[:16]
    if text and all(32 <= b < 127 for b in text):
        return repr(text.decode())
    return text.hex(" ") or "nothing (empty)"
