"""Whole-frame styles on the CPU, tinted by the reference image.

Each style is a deterministic function of the frame alone (no state carried
from frame to frame, so nothing drifts or flickers); the heavy filters run at
half resolution. Colour styles are then tinted toward the reference image's
average colour; black-and-white stays neutral.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

TINT = 0.35  # how far a colour style's average colour moves toward the reference's


def _half(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _full(small: np.ndarray, like: np.ndarray) -> np.ndarray:
    return cv2.resize(small, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_LINEAR)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def watercolor(rgb: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Soft washes of flat colour that bleed a little, on textured paper."""
    small = cv2.bilateralFilter(_half(rgb), 7, 50, 7)
    washes = (small // 32) * 32 + 16
    small = cv2.addWeighted(small, 0.45, washes.astype(np.uint8), 0.55, 0)
    out = _full(cv2.GaussianBlur(small, (3, 3), 0), rgb)
    return cv2.multiply(out, paper, scale=1 / 255)


def oil_painting(rgb: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Thick strokes: colours pooled in patches, edges kept, a canvas weave."""
    small = cv2.medianBlur(_half(rgb), 7)
    small = cv2.bilateralFilter(small, 7, 60, 7)
    out = _full(small, rgb)
    detail = cv2.addWeighted(out, 1.4, cv2.GaussianBlur(out, (0, 0), 2), -0.4, 0)
    return cv2.multiply(detail, paper, scale=1 / 255)


def pencil_sketch(rgb: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Graphite lines on paper: the luma 'colour-dodged' by its own blurred negative."""
    grey = _luma(rgb)
    blur = cv2.GaussianBlur(255 - grey, (0, 0), max(2.0, rgb.shape[0] / 240))
    sketch = cv2.divide(grey, 255 - blur, scale=256)
    sketch = cv2.cvtColor(sketch, cv2.COLOR_GRAY2RGB)
    return cv2.multiply(sketch, paper, scale=1 / 255)


def cartoon(rgb: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Flat cel colours with dark ink outlines."""
    small = cv2.bilateralFilter(_half(rgb), 7, 70, 7)
    flat = (small // 48) * 48 + 24
    grey = cv2.medianBlur(_luma(small), 5)
    block = max(3, (min(small.shape[:2]) // 60) | 1)
    edges = cv2.adaptiveThreshold(
        grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 4
    )
    ink = cv2.bitwise_and(flat.astype(np.uint8), cv2.cvtColor(edges, cv2.COLOR_GRAY2RGB))
    return _full(ink, rgb)


def black_and_white(rgb: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Neutral monochrome with a little more contrast."""
    grey = _luma(rgb)
    grey = cv2.convertScaleAbs(grey, alpha=1.15, beta=-0.15 * float(grey.mean()))
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


def vintage_film(rgb: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Faded sepia-leaning colour, lifted blacks, a vignette and grain."""
    sepia = cv2.transform(rgb, (0.55 * _SEPIA + 0.45 * np.eye(3)).astype(np.float32))
    faded = cv2.convertScaleAbs(sepia, alpha=0.85, beta=22)
    return cv2.multiply(faded, paper, scale=1 / 255)


STYLES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "watercolor": watercolor,
    "oil_painting": oil_painting,
    "pencil_sketch": pencil_sketch,
    "cartoon": cartoon,
    "black_and_white": black_and_white,
    "vintage_film": vintage_film,
}
TINTED = {"watercolor", "oil_painting", "pencil_sketch", "cartoon", "vintage_film"}


def surface(style: str, width: int, height: int, seed: int) -> np.ndarray:
    """The medium under a style, fixed for the whole video: paper, canvas or film (RGB, 0..255).

    Fixed, so that it never flickers; drawn from the task's seed, so a seed
    gives the same video again.
    """
    rng = np.random.default_rng(seed)
    flat = np.full((height, width), 255.0, np.float32)
    if style in ("watercolor", "pencil_sketch"):
        grain = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1)).astype(np.float32)
        grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_CUBIC)
        flat = 255 - 10 * np.abs(grain)
    elif style == "oil_painting":
        y, x = np.mgrid[0:height, 0:width]
        weave = np.sin(x * 1.3) * np.sin(y * 1.3)
        flat = 247 + 8 * weave.astype(np.float32)
    elif style == "vintage_film":
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        r = np.hypot((x - width / 2) / (width / 2), (y - height / 2) / (height / 2))
        vignette = np.clip(1.0 - 0.35 * np.maximum(r - 0.45, 0) ** 1.5, 0.55, 1.0)
        grain = rng.normal(0, 5, (height, width)).astype(np.float32)
        flat = 255 * vignette + grain
    return np.repeat(np.clip(flat, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


class StyleEditor:
    """Turns every frame into ``style``, tinted by the reference image (if there is one)."""

    pixel_format = "rgb24"

    def __init__(
        self, style: str, reference: np.ndarray | None, width: int, height: int, seed: int
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
        self.style = style
        self.apply = STYLES[style]
        self.paper = surface(style, width, height, seed)
        # No reference: no tint.
        self.reference_mean = None if reference is None else reference.reshape(-1, 3).mean(axis=0)
        self._mean: np.ndarray | None = None  # running average colour of the styled frames

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        out = self.apply(frame, self.paper)
        if self.style not in TINTED or self.reference_mean is None:
            return out
        mean = out[::8, ::8].reshape(-1, 3).mean(axis=0)
        self._mean = mean if self._mean is None else self._mean + 0.1 * (mean - self._mean)
        gains = 1.0 + TINT * ((self.reference_mean + 1.0) / (self._mean + 1.0) - 1.0)
        gains = np.clip(np.round(gains * 1024) / 1024, 0.5, 2.0)  # quantised: deterministic
        return cv2.transform(out, np.diag(gains).astype(np.float32))
