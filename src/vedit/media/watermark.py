"""The visible AI-generated mark: a badge at the bottom right, scaled with the frame."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vedit.media.frames import YuvFrame, rgb_to_yuv

WATERMARK_TEXT = "AI-generated"


class Watermark:
    """A badge rendered once for a frame size and alpha-blended onto each frame."""

    def __init__(self, width: int, height: int, text: str = WATERMARK_TEXT) -> None:
        size = max(12, round(min(width, height) * 0.04))
        font = ImageFont.load_default(size=size)
        left, top, right, bottom = font.getbbox(text)
        pad = max(4, size // 3)
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        badge = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(badge)
        draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=pad, fill=(0, 0, 0, 110))
        draw.text((pad - left, pad - top), text, font=font, fill=(255, 255, 255, 235))
        rgba = np.asarray(badge, dtype=np.float32)
        self.alpha = rgba[..., 3:4] / 255.0
        self.premultiplied = rgba[..., :3] * self.alpha
        self._rgba = rgba
        self._yuv: dict[str, tuple[np.ndarray, ...]] = {}
        margin = max(8, round(min(width, height) * 0.025))
        self.x = max(0, width - w - margin)
        self.y = max(0, height - h - margin)
        self.w, self.h = min(w, width), min(h, height)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of the badge inside the frame."""
        return self.x, self.y, self.w, self.h

    def apply_yuv(self, frame: YuvFrame) -> None:
        """Blend the badge into a yuv420p frame in place (the same look as on RGB)."""
        if frame.matrix not in self._yuv:
            self._yuv[frame.matrix] = self._planes(frame.matrix)
        y_alpha, y_pre, c_alpha, u_pre, v_pre = self._yuv[frame.matrix]
        x, y, w, h = self.box
        _blend(frame.y[y : y + h, x : x + w], y_alpha, y_pre)
        cx, cy = x // 2, y // 2
        _blend(frame.u[cy : cy + h // 2, cx : cx + w // 2], c_alpha, u_pre)
        _blend(frame.v[cy : cy + h // 2, cx : cx + w // 2], c_alpha, v_pre)

    def _planes(self, matrix: str) -> tuple[np.ndarray, ...]:
        rgba = self._rgba[: self.h - self.h % 2, : self.w - self.w % 2]
        yuv = rgb_to_yuv(rgba[..., :3], matrix)
        alpha = rgba[..., 3] / 255.0

        # Chroma at half size: alpha-weighted averages of 2x2 blocks.
        def half(a: np.ndarray) -> np.ndarray:
            return (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4

        c_alpha = half(alpha)
        u_pre, v_pre = half(yuv[..., 1] * alpha), half(yuv[..., 2] * alpha)
        y_alpha = np.zeros((self.h, self.w))
        y_pre = np.zeros((self.h, self.w))
        y_alpha[: alpha.shape[0], : alpha.shape[1]] = alpha
        y_pre[: alpha.shape[0], : alpha.shape[1]] = yuv[..., 0] * alpha
        return y_alpha, y_pre, c_alpha, u_pre, v_pre

    def apply(self, frame: np.ndarray) -> None:
        """Blend the badge into ``frame`` (H x W x 3 uint8) in place."""
        roi = frame[self.y : self.y + self.h, self.x : self.x + self.w]
        a = self.alpha[: roi.shape[0], : roi.shape[1]]
        p = self.premultiplied[: roi.shape[0], : roi.shape[1]]
        roi[...] = (roi * (1.0 - a) + p + 0.5).astype(np.uint8)


def _blend(roi: np.ndarray, alpha: np.ndarray, premultiplied: np.ndarray) -> None:
    a = alpha[: roi.shape[0], : roi.shape[1]]
    p = premultiplied[: roi.shape[0], : roi.shape[1]]
    roi[...] = (roi * (1.0 - a) + p + 0.5).astype(np.uint8)
