"""The reference's look on every frame: the default edit of the ``classic`` engine.

Frame statistics are smoothed over time (an exponential moving average), so
the grade is stable from frame to frame yet follows the scene. It edits the
decoded YUV planes in place — one lookup table on luma, one 2x3 map on chroma —
so it costs little next to decoding and encoding. Deterministic: no
randomness is used, so the seed changes nothing here.
"""

from __future__ import annotations

import cv2
import numpy as np

from vedit.engines.classic.colour import ColourStats, chroma_matrix, luma_lut
from vedit.media.frames import YuvFrame, rgb_to_yuv

SMOOTHING = 0.08  # weight of each new frame in the running source statistics
STRENGTH = 0.85  # how far toward the reference the colours move


class LookEditor:
    """The per-task state of a classic edit: the reference's statistics and the running ones."""

    pixel_format = "yuv420p"

    def __init__(self, reference: np.ndarray) -> None:
        self.reference_rgb = reference
        self.reference: dict[str, ColourStats] = {}
        self.running: ColourStats | None = None

    def __call__(self, frame: YuvFrame, index: int) -> None:
        ref = self.reference.get(frame.matrix)
        if ref is None:
            ref = ColourStats.of_yuv_pixels(rgb_to_yuv(_small(self.reference_rgb), frame.matrix))
            self.reference[frame.matrix] = ref
        y, u, v = frame.y, frame.u, frame.v
        stats = ColourStats.of_planes(y, u, v)
        if self.running is not None:
            stats = self.running.blend(stats, SMOOTHING)
        self.running = stats

        cv2.LUT(y, luma_lut(stats, ref, STRENGTH), dst=y)
        uv = cv2.transform(cv2.merge([u, v]), chroma_matrix(stats, ref, STRENGTH))
        np.copyto(u, uv[..., 0])
        np.copyto(v, uv[..., 1])


def _small(rgb: np.ndarray, side: int = 256) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
