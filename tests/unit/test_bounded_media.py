"""media/bounded.py on real files: headers read as Pillow reads them, PNGs shown whole as a
stream, damaged ones refused, and the decode budget's turns."""

from __future__ import annotations

import asyncio
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vedit.errors import MediaCorrupt
from vedit.media.bounded import DecodeBudget, read_header, verify_image

RNG = np.random.default_rng(3)
PHOTO = Image.fromarray(RNG.integers(0, 255, (333, 517, 3), dtype=np.uint8))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def hand_png(width: int, height: int, rows: bytes, interlace: int = 0) -> bytes:
    """An RGB PNG of the given filtered pixel stream, written by hand."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )  # fmt: skip


def adam7_stream(width: int, height: int) -> bytes:
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
              (1, 0, 2, 2), (0, 1, 1, 2))  # fmt: skip
    out = b""
    for x0, y0, dx, dy in passes:
        w = -(-(width - x0) // dx) if width > x0 else 0
        h = -(-(height - y0) // dy) if height > y0 else 0
        if w and h:
            out += (b"\x00" + bytes(range(256)) * (w * 3 // 256) + bytes(w * 3 % 256)) * h
    return out


@pytest.mark.parametrize(
    ("name", "save"),
    [
        ("rgb.png", {}),
        ("palette.png", {"mode": "P"}),
        ("bits1.png", {"mode": "1"}),
        ("grey-alpha.png", {"mode": "LA"}),
        ("rgba.png", {"mode": "RGBA"}),
        ("grey16.png", {"mode": "I;16"}),
        ("photo.jpg", {"format": "JPEG"}),
        ("progressive.jpg", {"format": "JPEG", "progressive": True}),
        ("cmyk.jpg", {"format": "JPEG", "mode": "CMYK"}),
        ("lossy.webp", {"format": "WEBP"}),
        ("lossless.webp", {"format": "WEBP", "lossless": True}),
        ("alpha.webp", {"format": "WEBP", "mode": "RGBA"}),
        ("photo.bmp", {"format": "BMP"}),
        ("palette.bmp", {"format": "BMP", "mode": "P"}),
    ],
)
def test_headers_read_as_pillow_reads_them_and_good_files_pass(tmp_path, name, save) -> None:
    path = tmp_path / name
    mode = save.pop("mode", None)
    (PHOTO.convert(mode) if mode else PHOTO).save(path, **save)
    header = read_header(path)
    assert header is not None
    with Image.open(path) as img:
        assert (header.format, header.width, header.height) == (img.format, *img.size)
    verify_image(path, header, name, "?")


def test_an_interlaced_png_is_counted_pass_by_pass(tmp_path) -> None:
    path = tmp_path / "adam7.png"
    path.write_bytes(hand_png(301, 303, adam7_stream(301, 303), interlace=1))
    with Image.open(path) as img:
        img.load()  # Pillow reads it: it is a valid PNG
    verify_image(path, read_header(path), "adam7", "?")  # type: ignore[arg-type]
    path.write_bytes(hand_png(301, 303, adam7_stream(301, 303)[:-5], interlace=1))
    with pytest.raises(MediaCorrupt, match=r"holds 274,173 of the 274,178 bytes its size needs"):
        verify_image(path, read_header(path), "adam7", "?")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("half", "the 'IDAT' chunk is cut short"),
        ("no IEND", "the file ends before its IEND chunk"),
        ("CRC", "the 'IDAT' chunk's CRC does not match"),
        ("filter", "a row has the unknown filter type 9"),
        ("short", "its pixel data holds 268,498 of the 270,300 bytes"),
        ("garbage", "its pixel data does not inflate"),
    ],
)
def test_a_damaged_png_is_refused_naming_the_damage(tmp_path, damage, words) -> None:
    rows = [b"\x00" + bytes(300 * 3)] * 300
    if damage == "filter":
        rows[7] = b"\x09" + rows[7][1:]
    stream = b"".join(rows[:-2] if damage == "short" else rows)
    data = hand_png(300, 300, stream)
    if damage == "half":
        data = data[: len(data) // 2]
    elif damage == "no IEND":
        data = data[:-12]
    elif damage == "CRC":
        at = len(data) - 13  # the IDAT chunk's CRC (IEND's 12 bytes follow it)
        data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
    elif damage == "garbage":
        data = data.replace(zlib.compress(stream), b"\x78\x9c" + b"\xff" * 40)
        at = data.index(b"IDAT")
        body = data[at + 4 : at + 4 + 42]
        data = data[: at - 4] + _chunk(b"IDAT", body) + data[at + 4 + 42 + 4 :]
    path = tmp_path / "damaged.png"
    path.write_bytes(data)
    with pytest.raises(MediaCorrupt, match="the PNG is damaged or cut short") as refused:
        verify_image(path, read_header(path), "png", "?")  # type: ignore[arg-type]
    assert words in refused.value.message


def test_the_decode_budget_takes_turns_in_arrival_order() -> None:
    async def run() -> list[str]:
        budget = DecodeBudget(100)
        order: list[str] = []

        async def decode(name: str, cost: int, hold_s: float) -> None:
            async with budget.hold(cost):
                order.append(f"{name}+")
                assert budget.held <= budget.capacity
                await asyncio.sleep(hold_s)
                order.append(f"{name}-")

        await asyncio.gather(
            decode("a", 60, 0.05),  # takes 60 of 100
            decode("b", 60, 0.0),  # waits for a
            decode("c", 10, 0.0),  # fits, but comes after b: waits its turn
            decode("huge", 500, 0.0),  # over the whole budget: runs alone
        )
        return order

    assert asyncio.run(run()) == ["a+", "a-", "b+", "c+", "b-", "c-", "huge+", "huge-"]


def test_the_decode_budgets_turns_go_round_the_owners() -> None:
    """One owner's queue delays another's decode by one turn, not by the whole queue."""

    async def run() -> list[str]:
        budget = DecodeBudget(100)
        order: list[str] = []

        async def decode(name: str, owner: str) -> None:
            async with budget.hold(100, owner=owner):
                order.append(name)
                await asyncio.sleep(0.01)

        first = [asyncio.create_task(decode(f"a{i}", "a")) for i in range(4)]
        await asyncio.sleep(0)  # a0 runs, a1-a3 wait
        await asyncio.gather(*first, decode("b0", "b"), decode("b1", "b"), decode("c0", "c"))
        return order

    assert asyncio.run(run()) == ["a0", "a1", "b0", "c0", "a2", "b1", "a3"]
