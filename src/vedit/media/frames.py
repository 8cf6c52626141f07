"""Frames as engines see them, and the colour matrices that relate YUV to RGB.

The output stage hands an engine either a :class:`YuvFrame` (yuv420p, the
codec's own layout: no colour conversion at all, the cheapest way through) or
an RGB array, as the engine's editor asks with its ``pixel_format``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

# Y'CbCr from R'G'B' (limited range): Kr, Kb of each matrix.
_KRKB = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}
# The codes of each matrix in H.264 / FFmpeg (colour space, primaries, transfer).
MATRIX_TAGS = {"bt709": (1, 1, 1), "bt601": (6, 6, 6)}


def matrix_for(colorspace_code: int | None, height: int) -> str:
    """The YUV matrix of a source: its tag when it has one, else by size (HD is BT.709)."""
    if colorspace_code == 1:
        return "bt709"
    if colorspace_code in (5, 6):
        return "bt601"
    return "bt709" if height >= 720 else "bt601"


@functools.cache
def rgb_to_yuv_matrix(matrix: str) -> np.ndarray:
    """3x4 affine map from 8-bit RGB to limited-range 8-bit Y, Cb, Cr (read-only)."""
    kr, kb = _KRKB[matrix]
    kg = 1.0 - kr - kb
    m = np.array(
        [
            [kr, kg, kb],
            [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
            [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))],
        ]
    )
    scale = np.array([219.0, 224.0, 224.0])[:, None] / 255.0
    affine = np.hstack([m * scale, np.array([[16.0], [128.0], [128.0]])])
    affine.flags.writeable = False
    return affine


def rgb_to_yuv(rgb: np.ndarray, matrix: str) -> np.ndarray:
    """``(..., 3)`` float Y, Cb, Cr of 8-bit RGB pixels."""
    m = rgb_to_yuv_matrix(matrix)
    return rgb.astype(np.float64) @ m[:, :3].T + m[:, 3]


@dataclass
class YuvFrame:
    """One output-sized yuv420p frame as three writable planes.

    The planes may be views into the frame about to be encoded (with its row
    padding hidden), so an editor changes them in place. ``matrix`` names the
    YUV matrix the pixels are in (``bt709`` or ``bt601``).
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    matrix: str

    @property
    def width(self) -> int:
        return self.y.shape[1]

    @property
    def height(self) -> int:
        return self.y.shape[0]

    @classmethod
    def of_video_frame(cls, frame: object, matrix: str) -> YuvFrame:
        """Views of a PyAV yuv420p frame's planes (the frame must be ours to change)."""
        planes = []
        for plane in frame.planes:  # type: ignore[attr-defined]
            rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
            planes.append(rows[:, : plane.width])
        return cls(planes[0], planes[1], planes[2], matrix)

    def small_yuv(self, width: int, height: int) -> np.ndarray:
        """The frame at ``width`` x ``height`` as ``(height, width, 3)`` Y, Cb, Cr."""
        size = (width, height)
        y = self.y
        if width * 2 <= y.shape[1] and height * 2 <= y.shape[0]:
            # Halved first (INTER_AREA's fast path for a whole factor), then the rest.
            y = cv2.resize(y, (y.shape[1] // 2, y.shape[0] // 2), interpolation=cv2.INTER_AREA)
        y = cv2.resize(y, size, interpolation=cv2.INTER_AREA)
        # Chroma is half size and soft already: a linear resize is enough, and cheaper.
        u = cv2.resize(self.u, size, interpolation=cv2.INTER_LINEAR)
        v = cv2.resize(self.v, size, interpolation=cv2.INTER_LINEAR)
        return cv2.merge([y, u, v])

    def small_rgb(self, width: int, height: int) -> np.ndarray:
        """An RGB copy of the frame at ``width`` x ``height`` (for models that read small images)."""
        return yuv_to_rgb(self.small_yuv(width, height), self.matrix)

    def put_small_rgb(self, rgb: np.ndarray) -> None:
        """Replace the whole frame with ``rgb`` (any size), enlarged to the planes' sizes: the
        colour conversion at ``rgb``'s size, the enlargement of each plane after it."""
        yuv = cv2.transform(rgb, _rgb_to_yuv_f32(self.matrix))  # rounded, saturated
        y, u, v = cv2.split(yuv)
        self.y[:] = cv2.resize(y, self.y.shape[::-1], interpolation=cv2.INTER_CUBIC)
        # the chroma is half size and soft: a linear enlargement is enough, and cheaper
        self.u[:] = cv2.resize(u, self.u.shape[::-1], interpolation=cv2.INTER_LINEAR)
        self.v[:] = cv2.resize(v, self.v.shape[::-1], interpolation=cv2.INTER_LINEAR)

    @classmethod
    def of_rgb(cls, rgb: np.ndarray, matrix: str = "bt709") -> YuvFrame:
        """A yuv420p frame of an RGB image of even size."""
        return cls(*yuv_planes(rgb, matrix), matrix)

    def to_rgb(self) -> np.ndarray:
        """The frame as RGB at its full size (the chroma enlarged), converted exactly (in
        float64, the chroma centred first: a neutral pixel is exactly grey)."""
        size = (self.width, self.height)
        u = cv2.resize(self.u, size, interpolation=cv2.INTER_LINEAR)
        v = cv2.resize(self.v, size, interpolation=cv2.INTER_LINEAR)
        m = rgb_to_yuv_matrix(self.matrix)
        centred = cv2.merge([self.y, u, v]).astype(np.float64) - m[:, 3]
        rgb = centred @ np.linalg.inv(m[:, :3]).T
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def yuv_to_rgb(yuv: np.ndarray, matrix: str) -> np.ndarray:
    """8-bit RGB of ``(..., 3)`` limited-range 8-bit Y, Cb, Cr pixels."""
    return cv2.transform(yuv, _yuv_to_rgb_matrix(matrix))  # uint8 in: rounded, saturated


@functools.cache
def _rgb_to_yuv_f32(matrix: str) -> np.ndarray:
    return rgb_to_yuv_matrix(matrix).astype(np.float32)


@functools.cache
def _yuv_to_rgb_matrix(matrix: str) -> np.ndarray:
    m = rgb_to_yuv_matrix(matrix)
    inverse = np.linalg.inv(m[:, :3])
    return np.hstack([inverse, -inverse @ m[:, 3:]]).astype(np.float32)


def yuv_planes(rgb: np.ndarray, matrix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """yuv420p planes (uint8 Y, and Cb, Cr at half size) of an RGB image of even size."""
    yuv = np.clip(rgb_to_yuv(rgb, matrix) + 0.5, 0, 255).astype(np.uint8)
    h, w = yuv.shape[:2]
    half = cv2.resize(yuv[..., 1:], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return (
        np.ascontiguousarray(yuv[..., 0]),
        np.ascontiguousarray(half[..., 0]),
        np.ascontiguousarray(half[..., 1]),
    )


class PlanesByMatrix:
    """An RGB image's yuv420p planes, made once for each YUV matrix a video asks for."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self._planes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __call__(self, matrix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        planes = self._planes.get(matrix)
        if planes is None:
            planes = self._planes[matrix] = yuv_planes(self.rgb, matrix)
        return planes
