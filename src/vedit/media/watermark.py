"""The visible AI-generated mark: a badge at the bottom right, scaled with the frame."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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
        margin = max(8, round(min(width, height) * 0.025))
        self.x = max(0, width - w - margin)
        self.y = max(0, height - h - margin)
        self.w, self.h = min(w, width), min(h, height)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of the badge inside the frame."""
        return self.x, self.y, self.w, self.h

    def apply(self, frame: np.ndarray) -> None:
        """Blend the badge into ``frame`` (H x W x 3 uint8) in place."""
        roi = frame[self.y : self.y + self.h, self.x : self.x + self.w]
        a = self.alpha[: roi.shape[0], : roi.shape[1]]
        p = self.premultiplied[: roi.shape[0], : roi.shape[1]]
        roi[...] = (roi * (1.0 - a) + p + 0.5).astype(np.uint8)
