"""Hostile media for the upload tests and bench: tiny files that decode to huge pictures.

Each is a valid file of its format, made here with constant memory where the format allows
(PNG, BMP RLE8 are written by hand); what a server that decodes it would hold is about
``width * height * 4`` bytes (Pillow keeps RGB as 4 bytes a pixel).
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, width: int = 6000, height: int = 6000, colour: int = 0x80) -> Path:
    """A one-colour RGB PNG (``6000x6000``: about 105 KB), written row by row."""
    row = b"\x00" + bytes([colour]) * (width * 3)  # filter byte "None", then the pixels
    z = zlib.compressobj(9)
    idat = bytearray()
    for _ in range(height):
        idat += z.compress(row)
    idat += z.flush()
    with path.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        for at in range(0, len(idat), 1 << 16):
            f.write(_chunk(b"IDAT", bytes(idat[at : at + (1 << 16)])))
        f.write(_chunk(b"IEND", b""))
    return path


def bmp_rle_bomb(path: Path, width: int = 6000, height: int = 6000) -> Path:
    """A one-colour 8-bit RLE BMP (``6000x6000``: about 300 KB)."""
    row = bytearray()
    left = width
    while left:
        run = min(255, left)
        row += bytes([run, 1])  # ``run`` pixels of palette entry 1
        left -= run
    row += b"\x00\x00"  # end of line
    pixels = bytes(row) * height + b"\x00\x01"  # end of bitmap
    palette = b"\x00\x00\x00\x00" + b"\x40\x80\xc0\x00" + b"\x00" * 4 * 254
    offset = 14 + 40 + len(palette)
    header = struct.pack(
        "<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0
    )
    with path.open("wb") as f:
        f.write(b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset))
        f.write(header + palette + pixels)
    return path


def pillow_bomb(
    path: Path, fmt: str, width: int = 6000, height: int = 6000, **save: object
) -> Path:
    """A one-colour image saved by Pillow (JPEG, WEBP...); making it takes ``width * height
    * 4`` bytes in this process for a moment."""
    from PIL import Image

    with Image.new("RGB", (width, height), (128, 128, 128)) as img:
        img.save(path, format=fmt, **save)
    return path


def video_bomb(path: Path, width: int = 8192, height: int = 8192, frames: int = 2) -> Path:
    """A short H.264 MP4 of ``width x height`` grey frames (a few KB a frame)."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=Fraction(25))
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"preset": "ultrafast", "threads": "1"}
        grey = np.full((height, width), 128, np.uint8)
        chroma = np.full((height // 2, width), 128, np.uint8)
        plane = np.vstack([grey, chroma])
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            frame.pts = i
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    return path
