"""Whole-frame styles on the CPU, tinted by the reference image.

Each style is a deterministic function of one frame; the editor around it
(:class:`StyleEditor`) first brings the frame to a standard exposure, so that a
style reads the same on a dark, flat or over-exposed scene as on a lit one, and
afterwards brings the result back to the scene's brightness, lays it on its
medium (paper, canvas, film: fixed for the video) and tints it toward the
reference image's average colour (black-and-white stays neutral). The only
state carried from frame to frame is a few running statistics (exposure,
average colour), smoothed so that nothing flickers. The edge-preserving
smoothers run at a quarter of the output's width and height, the rest at half
or full size.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

TINT = 0.35  # how far a colour style's average colour moves toward the reference's
SMOOTHING = 0.1  # weight of each new frame in the running exposure and tint statistics
WORK_SHARE = 4  # the edge-preserving smoothers run at a quarter of the output's width and height
MAX_GAIN = 3.0  # the most the exposure normalisation stretches the frame's range
STROKE = 90  # the level the darkest 2 % of a pencil sketch's strokes reach
MID_GREY = 0.45  # where the normalisation puts the frame's mean luma (0..1)
_LUMA = np.array([0.299, 0.587, 0.114])  # the weights of luma in R, G, B


def _levels(step: int) -> np.ndarray:
    """The lookup table that rounds each level down to a multiple of ``step`` and centres it."""
    return np.minimum(np.arange(256) // step * step + step // 2, 255).astype(np.uint8)


_WASHES = _levels(32)  # watercolour's flat washes: 8 levels a channel
_CELS = _levels(48)  # cartoon's cel colours: 6 levels a channel


def _shrink(rgb: np.ndarray, share: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, w // share), max(1, h // share)), interpolation=cv2.INTER_AREA)


def _half(rgb: np.ndarray) -> np.ndarray:
    return _shrink(rgb, 2)


def _full(small: np.ndarray, like: np.ndarray) -> np.ndarray:
    return cv2.resize(small, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_LINEAR)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _smooth(rgb: np.ndarray, share: int, sigma_colour: float, like: np.ndarray) -> np.ndarray:
    """Edge-preserving smoothing of ``rgb`` shrunk ``share`` times (the working size), brought
    to the size of ``like``: the costly filter runs on few pixels, the washes it makes are
    broad anyway."""
    work = cv2.bilateralFilter(_shrink(rgb, share), 5, sigma_colour, 5)
    return _full(work, like)


def watercolor(rgb: np.ndarray) -> np.ndarray:
    """Soft washes of flat colour that bleed a little, on textured paper."""
    small = _half(rgb)
    soft = _smooth(rgb, WORK_SHARE, 50, small)
    small = cv2.addWeighted(soft, 0.45, cv2.LUT(soft, _WASHES), 0.55, 0)
    return _full(cv2.GaussianBlur(small, (3, 3), 0), rgb)


def oil_painting(rgb: np.ndarray) -> np.ndarray:
    """Thick strokes: colours pooled in patches, edges kept, a canvas weave."""
    small = cv2.medianBlur(_half(rgb), 5)
    small = _smooth(small, WORK_SHARE // 2, 60, small)
    small = cv2.addWeighted(small, 1.4, cv2.GaussianBlur(small, (0, 0), 1), -0.4, 0)
    return _full(small, rgb)


def pencil_sketch(rgb: np.ndarray) -> np.ndarray:
    """Graphite lines on paper: the luma 'colour-dodged' by its own blurred negative, with the
    pressure set so that the strongest strokes are dark whatever the scene's contrast."""
    grey = _luma(rgb)
    blur = cv2.GaussianBlur(255 - grey, (0, 0), max(2.0, rgb.shape[0] / 240))
    sketch = cv2.divide(grey, 255 - blur, scale=256)
    strongest = max(1.0, float(np.percentile(sketch[::4, ::4], 2)))
    pressure = np.log(STROKE / 255) / np.log(min(strongest, 254.0) / 255)
    pressure = float(np.clip(np.round(pressure * 20) / 20, 1.0, 4.0))  # quantised: no flicker
    return cv2.cvtColor(cv2.LUT(sketch, _power_lut(pressure)), cv2.COLOR_GRAY2RGB)


def cartoon(rgb: np.ndarray) -> np.ndarray:
    """Flat cel colours with dark ink outlines."""
    small = _half(rgb)
    flat = cv2.LUT(_smooth(rgb, WORK_SHARE, 70, small), _CELS)
    grey = cv2.medianBlur(_luma(small), 5)
    block = max(3, (min(small.shape[:2]) // 60) | 1)
    edges = cv2.adaptiveThreshold(
        grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 4
    )
    ink = cv2.bitwise_and(flat, cv2.cvtColor(edges, cv2.COLOR_GRAY2RGB))
    return _full(ink, rgb)


def black_and_white(rgb: np.ndarray) -> np.ndarray:
    """Neutral monochrome with a little more contrast."""
    grey = _luma(rgb)
    grey = cv2.convertScaleAbs(grey, alpha=1.15, beta=-0.15 * float(grey.mean()))
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


def vintage_film(rgb: np.ndarray) -> np.ndarray:
    """Faded sepia-leaning colour, lifted blacks, a vignette and grain."""
    sepia = cv2.transform(rgb, (0.55 * _SEPIA + 0.45 * np.eye(3)).astype(np.float32))
    return cv2.convertScaleAbs(sepia, alpha=0.85, beta=22)


STYLES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "watercolor": watercolor,
    "oil_painting": oil_painting,
    "pencil_sketch": pencil_sketch,
    "cartoon": cartoon,
    "black_and_white": black_and_white,
    "vintage_film": vintage_film,
}
TINTED = {"watercolor", "oil_painting", "pencil_sketch", "cartoon", "vintage_film"}
ON_A_SURFACE = {"watercolor", "oil_painting", "pencil_sketch", "vintage_film"}


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


# The styles brought back to the scene's brightness, and the level each keeps as its black
# (vintage film's blacks are lifted: that is part of it).
RESTORED = {
    "watercolor": 0,
    "oil_painting": 0,
    "cartoon": 0,
    "black_and_white": 0,
    "vintage_film": 22,
}


_IDENTITY = np.arange(256, dtype=np.uint8)


def _power_lut(gamma: float) -> np.ndarray:
    return np.clip(np.rint(255 * (np.arange(256) / 255) ** gamma), 0, 255).astype(np.uint8)


class Exposure:
    """The scene's exposure, followed over time: the curve that brings a frame to a standard
    one (its range stretched, its mean at mid-grey) and the one that brings a styled frame
    back to the scene's brightness.

    Statistics are taken on every 8th pixel and smoothed over time, as the look's are, so the
    curves follow the scene without flicker. A well-exposed frame is left nearly as it is.
    """

    def __init__(self) -> None:
        self.low = self.high = self.mean = -1.0  # luma, 0..1; < 0: no frame yet
        self.restore_gamma = -1.0  # < 0: no frame yet

    def normalise(self, rgb: np.ndarray) -> np.ndarray:
        """The 256-level curve (for ``cv2.LUT`` on every channel) that standardises ``rgb``."""
        luma = _luma(np.ascontiguousarray(rgb[::8, ::8])).astype(np.float64) / 255
        low, high = np.percentile(luma, [1, 99])
        mean = float(luma.mean())
        if self.mean < 0:
            self.low, self.high, self.mean = float(low), float(high), mean
        else:
            self.low += SMOOTHING * (low - self.low)
            self.high += SMOOTHING * (high - self.high)
            self.mean += SMOOTHING * (mean - self.mean)
        gain = min(0.92 / max(self.high - self.low, 1e-3), MAX_GAIN)
        centre = (self.low + self.high) / 2

        def stretch(x: np.ndarray | float) -> np.ndarray:
            return np.clip((np.asarray(x) - centre) * gain + 0.5, 1e-4, 1.0)

        gamma = float(np.clip(np.log(MID_GREY) / np.log(stretch(self.mean)), 0.4, 2.5))
        curve = 255 * stretch(np.arange(256) / 255) ** gamma
        return np.clip(np.rint(curve), 0, 255).astype(np.uint8)

    def restore(self, styled: np.ndarray, floor: int = 0) -> np.ndarray:
        """The curve that brings ``styled`` back to the scene's mean brightness: a power curve
        between ``floor`` (the style's black, kept) and white (kept)."""
        luma = _luma(np.ascontiguousarray(styled[::8, ::8])).astype(np.float64)
        span = 255.0 - floor
        x = np.clip((luma - floor) / span, 0, 1)
        want = float(np.clip((self.mean * 255 - floor) / span, 1e-3, 0.999))
        gamma = 1.0
        for _ in range(4):  # a few Newton-like steps on the sample: the mean of x**g, not x
            now = float(np.clip(np.mean(x**gamma), 1e-3, 0.999))
            gamma = float(np.clip(gamma * np.log(want) / np.log(now), 0.4, 3.0))
        if self.restore_gamma < 0:
            self.restore_gamma = gamma
        self.restore_gamma += SMOOTHING * (gamma - self.restore_gamma)
        gamma = round(self.restore_gamma * 64) / 64  # quantised: deterministic
        x = np.clip((np.arange(256) - floor) / span, 0, 1)
        curve = np.where(np.arange(256) < floor, np.arange(256), floor + span * x**gamma)
        return np.clip(np.rint(curve), 0, 255).astype(np.uint8)


class StyleEditor:
    """Turns every frame into ``style``, tinted by the reference image (if there is one).

    Each frame is first brought to a standard exposure (its range stretched, its mean at
    mid-grey), so a style reads the same on a dark, flat or bright scene as on a lit one;
    then styled; then, where the style allows (not a pencil sketch: that is lines on white
    paper), brought back to the scene's own brightness and tinted; then laid on its medium.
    """

    pixel_format = "rgb24"

    def __init__(
        self, style: str, reference: np.ndarray | None, width: int, height: int, seed: int
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
        self.style = style
        self.apply = STYLES[style]
        self.paper = surface(style, width, height, seed)
        self.exposure = Exposure()
        # No reference: no tint.
        self.reference_mean = None if reference is None else reference.reshape(-1, 3).mean(axis=0)
        self._mean: np.ndarray | None = None  # running average colour of the styled frames

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        # 1. A standard exposure; 2. the style.
        out = self.apply(cv2.LUT(frame, self.exposure.normalise(frame)))
        # 3. The scene's brightness back and the tint, in one lookup table per channel.
        curve = _IDENTITY
        if self.style in RESTORED:
            curve = self.exposure.restore(out, RESTORED[self.style])
        if self.style in TINTED and self.reference_mean is not None:
            curves = curve[:, None] * self._tint(
                cv2.LUT(np.ascontiguousarray(out[::8, ::8]), curve)
            )
            out = cv2.LUT(out, np.clip(np.rint(curves), 0, 255).astype(np.uint8)[:, None, :])
        elif curve is not _IDENTITY:
            out = cv2.LUT(out, curve)
        # 4. The medium.
        if self.style in ON_A_SURFACE:
            out = cv2.multiply(out, self.paper, scale=1 / 255)
        return out

    def _tint(self, sample: np.ndarray) -> np.ndarray:
        """The R, G, B gains that move the running average colour toward the reference's, at
        the same luma (``sample``: the styled frame's pixels, a few of them)."""
        assert self.reference_mean is not None
        mean = sample.reshape(-1, 3).mean(axis=0)
        self._mean = mean if self._mean is None else self._mean + SMOOTHING * (mean - self._mean)
        gains = 1.0 + TINT * ((self.reference_mean + 1.0) / (self._mean + 1.0) - 1.0)
        gains *= (_LUMA @ self._mean + 1.0) / (_LUMA @ (gains * self._mean) + 1.0)
        return np.clip(np.round(gains * 1024) / 1024, 0.5, 2.0)  # quantised: deterministic
