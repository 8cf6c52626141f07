"""Whole-frame styles on the CPU: painted by a style network, or graded.

The painted styles (watercolour, oil painting, pencil sketch, cartoon, and "in the
style of the image") are painted by Magenta's arbitrary style network
(``neural.py``) after a picture: one made for vedit for each named style, or the
reference image itself. The painting is kept steady over time by ``coherence.py``
(key frames painted afresh, the frames between carried along the source's motion).
``strength`` moves the network's style between the scene's own and the picture's, so
the scene stays recognisable. A named style keeps a share of the scene's own colours
and is tinted toward the reference image's average colour; "in the style of the
image" takes the reference's palette as well as its brushwork.

Black-and-white and vintage film are grades, not brushwork: deterministic functions
of one frame.

Around either, :class:`StyleEditor` first brings the frame to a standard exposure,
so that a style reads the same on a dark, flat or over-exposed scene as on a lit one,
and afterwards brings the result back to the scene's brightness (where the medium
allows), tints it, and lays it on its medium (paper or film: fixed for the video).
The network paints at a working size (:func:`working_size`: ``WORK_LINES``), and so
does all that follows it, on the output stage's YUV planes: only the finished painting
is enlarged to the output's size (and a pencil's contour lines drawn at it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vedit.engines.classic.coherence import Coherence
from vedit.engines.classic.faces import Face, FaceDetector, face_detector
from vedit.engines.classic.neural import blended_style, named_style, style_network
from vedit.engines.plan import STYLE_STRENGTH
from vedit.media.frames import YuvFrame, rgb_to_yuv_matrix

TINT = 0.35  # how far a colour style's average colour moves toward the reference's
SMOOTHING = 0.1  # weight of each new frame in the running exposure and tint statistics
MAX_GAIN = 3.0  # the most the exposure normalisation stretches the frame's range
MID_GREY = 0.45  # where the normalisation puts the frame's mean luma (0..1)
PAINTED_RESTORE = 0.5  # a painting goes half the way back to a dark or bright scene's brightness
WORK_LINES = 256  # the network paints at this many lines (the short side), or fewer
DETAIL_SCALE = 3.0  # "fine detail": what a Gaussian of this sigma (working-size pixels) removes
DETAIL_FLOOR = 4.0  # levels of fine detail (local RMS) a painting may keep where the scene has none
DODGE_FLOOR = 12  # levels added to a pencil's grey and its blurred negative (see contours)
REFERENCE_STYLE = "reference"  # "in the style of the image": painted after the reference
_LUMA = np.array([0.299, 0.587, 0.114])  # the weights of luma in R, G, B
_IDENTITY = np.arange(256, dtype=np.uint8)
# A face is painted again on its own (Painter) when its box with the margin is at least
# MIN_FACE of the working frame's height, at FACE_SIDE pixels across (its crop enlarged at
# most MAX_FACE_ENLARGEMENT times from the full-size frame).
FACE_MARGIN = 1.5  # the crop around a face: this many times the face's box
FACE_SIDE = 192
MIN_FACE = 0.12
MAX_FACE_ENLARGEMENT = 2.0


@dataclass(frozen=True)
class Painted:
    """How a painted style is coloured (its strength is the plan's: ``EditPlan.style_strength``).

    - ``scene_colour``: the share of the scene's own colours kept (0: the picture's palette)
    - ``grey``: drawn in grey (a pencil on paper)
    - ``paper``: the share of the paper's white that shows through (transparent pigment)
    - ``soften``: the painting's finest strokes blurred away (a Gaussian's sigma, in pixels
      at the working size; 0: none)
    - ``detail``: the most fine detail the painting keeps, as a multiple of the scene's own
      there (plus ``DETAIL_FLOOR`` levels; 0: not limited): strokes and ink that the network
      adds over a flat wall, a sky or a blurred background move with the camera and are most
      of a painting's change from frame to frame; its lines along the scene's edges stay
    """

    scene_colour: float
    grey: bool = False
    paper: float = 0.0
    soften: float = 0.0
    detail: float = 0.0


PAINTED: dict[str, Painted] = {
    "watercolor": Painted(scene_colour=0.7, paper=0.25),
    "oil_painting": Painted(scene_colour=0.6),
    "pencil_sketch": Painted(scene_colour=0.0, grey=True, soften=0.7, detail=0.7),
    "cartoon": Painted(scene_colour=0.5, soften=0.7, detail=1.5),
    REFERENCE_STYLE: Painted(scene_colour=0.0),
}


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _smooth(image: np.ndarray) -> np.ndarray:
    """``image`` (float32) blurred by a Gaussian of ``DETAIL_SCALE``: at half size (a quarter
    of the work), enlarged."""
    h, w = image.shape[:2]
    half = cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(half, (0, 0), DETAIL_SCALE / 2)
    return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)


def _local_rms(fine: np.ndarray) -> np.ndarray:
    """The local RMS of ``fine`` (one channel, float32) over twice ``DETAIL_SCALE``, worked out
    at half size (it is smooth) and enlarged."""
    h, w = fine.shape
    half = cv2.resize(
        cv2.multiply(fine, fine), (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA
    )
    blurred = cv2.GaussianBlur(half, (0, 0), DETAIL_SCALE)
    return cv2.sqrt(cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR))


def _simplified(painted: np.ndarray, scene: np.ndarray, look: Painted) -> np.ndarray:
    """``painted`` (RGB, of ``scene``) with its finest strokes softened (``look.soften``) and
    its fine detail (what a Gaussian of ``DETAIL_SCALE`` removes; its local RMS) limited to
    ``look.detail`` times the scene's own plus ``DETAIL_FLOOR``. A grey look's painting is
    made grey first (it is drawn in grey anyway: a third of the work)."""
    if look.grey:
        painted = _luma(painted)
    if look.soften > 0:
        painted = cv2.GaussianBlur(painted, (0, 0), look.soften)
    if look.detail > 0:
        colour = painted.astype(np.float32)
        base = _smooth(colour)
        fine = cv2.subtract(colour, base)
        grey = _luma(scene).astype(np.float32)
        scene_fine = cv2.subtract(grey, _smooth(grey))
        allowed = _local_rms(scene_fine) * np.float32(look.detail) + np.float32(DETAIL_FLOOR)
        has = _local_rms(fine if look.grey else cv2.cvtColor(fine, cv2.COLOR_RGB2GRAY))
        gain = cv2.min(cv2.divide(allowed, cv2.max(has, 1e-3)), 1.0)
        if not look.grey:
            gain = cv2.merge([gain] * 3)
        painted = cv2.convertScaleAbs(cv2.add(base, cv2.multiply(fine, gain)))
    return cv2.cvtColor(painted, cv2.COLOR_GRAY2RGB) if look.grey else painted


def working_size(width: int, height: int) -> tuple[int, int]:
    """The size the network paints at: ``WORK_LINES`` on the short side (or the output's own,
    when smaller), the aspect kept, both sides multiples of 4 (the network halves twice)."""
    scale = min(1.0, WORK_LINES / min(width, height))
    return max(4, round(width * scale / 4) * 4), max(4, round(height * scale / 4) * 4)


class Painter:
    """Paints frames at the working size in one style, steadily over time (one per video).

    ``target`` is the style to paint in (the style network's vector of a picture); the
    scene's own style (learnt from the first frame) is blended in by ``1 - strength``.
    With a ``faces`` detector, each face
    big enough to matter is painted again on its own, from the full-size frame enlarged to
    ``FACE_SIDE`` pixels across, and laid over the painting within a soft ellipse: its
    strokes are then a face's size, not a wall's, and the eyes, nose and mouth stay drawn
    (painted with the rest, at the working size, a face's features melt into a few strokes).
    """

    def __init__(
        self,
        target: np.ndarray,
        look: Painted,
        strength: float,
        faces: FaceDetector | None = None,
    ) -> None:
        self.network = style_network()
        self.target = target
        self.look, self.strength = look, strength
        self.style: np.ndarray | None = None
        self.faces = faces
        self.coherence = Coherence(self._paint)
        self._full: tuple[YuvFrame, np.ndarray] | None = None  # this frame, full size, and
        # the exposure curve it takes (see __call__)

    def _paint(self, rgb: np.ndarray) -> np.ndarray:
        if self.style is None:
            own = self.network.style_of(rgb)
            self.style = blended_style(self.target, own, self.strength)
        painted = _simplified(self.network.paint(rgb, self.style), rgb, self.look)
        if self.faces is not None and self._full is not None:
            for face in self.faces(rgb):
                self._paint_face(painted, face)
        return self._coloured(painted, rgb)

    def _paint_face(self, painted: np.ndarray, face: Face) -> None:
        """``face`` (a box in ``painted``'s pixels) painted again from the full-size frame, at
        ``FACE_SIDE`` pixels across, and laid over ``painted`` (in place) in a soft ellipse."""
        assert self._full is not None and self.style is not None
        full, curve = self._full
        h, w = painted.shape[:2]
        side = FACE_MARGIN * max(face.w, face.h)
        if side < MIN_FACE * h or side * full.height / h < FACE_SIDE / MAX_FACE_ENLARGEMENT:
            return  # too small to have features to keep, or too blurry at full size
        cx, cy = face.x + face.w / 2, face.y + face.h / 2
        x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
        x1, y1 = min(w, round(cx + side / 2)), min(h, round(cy + side / 2))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return
        # The same place in the full-size planes (chroma at half size: even corners).
        scale = full.height / h
        fx0, fy0 = int(x0 * scale) // 2 * 2, int(y0 * scale) // 2 * 2
        fx1, fy1 = int(x1 * scale) // 2 * 2, int(y1 * scale) // 2 * 2
        crop = YuvFrame(
            full.y[fy0:fy1, fx0:fx1],
            full.u[fy0 // 2 : fy1 // 2, fx0 // 2 : fx1 // 2],
            full.v[fy0 // 2 : fy1 // 2, fx0 // 2 : fx1 // 2],
            full.matrix,
        )
        across = FACE_SIDE / max(x1 - x0, y1 - y0)
        size = (
            max(4, round((x1 - x0) * across / 4) * 4),
            max(4, round((y1 - y0) * across / 4) * 4),
        )
        scene = cv2.LUT(crop.small_rgb(*size), curve)
        fine = _simplified(self.network.paint(scene, self.style), scene, self.look)
        fine = cv2.resize(fine, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        # A soft ellipse around the face (its box a little taller than wide: the chin, the hair).
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        r = np.hypot((xx - cx) / (0.62 * face.w), (yy - cy) / (0.75 * face.h))
        weight = np.clip((1.25 - r) / 0.5, 0.0, 1.0)[..., None]
        box = painted[y0:y1, x0:x1]
        box[:] = np.rint(weight * fine + (1.0 - weight) * box).astype(np.uint8)

    def _coloured(self, painted: np.ndarray, source: np.ndarray) -> np.ndarray:
        """The painting's light, with ``scene_colour`` of the source's colours (in Lab), and
        ``paper`` of the paper's white showing through."""
        if self.look.grey:
            return cv2.cvtColor(_luma(painted), cv2.COLOR_GRAY2RGB)
        if self.look.scene_colour > 0:
            lab = cv2.cvtColor(painted, cv2.COLOR_RGB2LAB)
            scene = cv2.cvtColor(source, cv2.COLOR_RGB2LAB)
            share = self.look.scene_colour
            lab[..., 1:] = cv2.addWeighted(scene[..., 1:], share, lab[..., 1:], 1 - share, 0)
            painted = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
        if self.look.paper > 0:
            painted = cv2.addWeighted(
                painted, 1 - self.look.paper, painted, 0, 255 * self.look.paper
            )
        return painted

    def __call__(
        self, frame: np.ndarray, full: YuvFrame | None = None, curve: np.ndarray = _IDENTITY
    ) -> np.ndarray:
        """``frame`` (at the working size, its exposure standardised by ``curve``) painted;
        ``full``: the same frame at full size, as it came (where faces are painted from)."""
        self._full = None if full is None else (full, curve)
        try:
            out = self.coherence(frame)
            if self.look.grey:  # the source's change carried with it is in colour
                out = cv2.cvtColor(_luma(out), cv2.COLOR_GRAY2RGB)
            return out
        finally:
            self._full = None


BW_CONTRAST = 1.15  # black and white: the grey's contrast around its mean
_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
# Vintage film, in RGB: faded sepia-leaning colour (55 % sepia) with lifted blacks.
VINTAGE_MIX = 0.55 * _SEPIA + 0.45 * np.eye(3)
VINTAGE_FADE, VINTAGE_LIFT = 0.85, 22.0  # rgb * FADE + LIFT


def _vintage_map(matrix: str, gains: np.ndarray) -> np.ndarray:
    """Vintage film's colour map on Y, Cb, Cr (3x4): the RGB one (the sepia mix, the fade,
    the lifted black) and the tint's R, G, B ``gains``, moved into the planes' own matrix."""
    yuv = rgb_to_yuv_matrix(matrix)
    a, offset = yuv[:, :3], yuv[:, 3]
    scale = np.diag(gains)
    linear = a @ scale @ (VINTAGE_FADE * VINTAGE_MIX) @ np.linalg.inv(a)
    shift = a @ (scale @ np.full(3, VINTAGE_LIFT)) + offset - linear @ offset
    return np.hstack([linear, shift[:, None]]).astype(np.float32)


def contours(grey: np.ndarray) -> np.ndarray:
    """A pencil's contour lines from a grey frame, at its full size (grey, white paper): the
    grey 'colour-dodged' by its own blurred negative, so edges come out as graphite lines
    and flat areas as paper."""
    sigma = max(1.5, grey.shape[0] / 360)
    h, w = grey.shape
    # The blur is smooth: worked out at half size (a quarter of the work) and enlarged.
    half = cv2.resize(255 - grey, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    blur = cv2.resize(
        cv2.GaussianBlur(half, (0, 0), sigma / 2), (w, h), interpolation=cv2.INTER_LINEAR
    )
    # Both lifted by DODGE_FLOOR: a flat black region is 0 / 0 otherwise, a black blot.
    lit = cv2.add(grey, DODGE_FLOOR, dtype=cv2.CV_16U)
    return cv2.divide(
        lit, cv2.add(255 - blur, DODGE_FLOOR, dtype=cv2.CV_16U), scale=256, dtype=cv2.CV_8U
    )


def _darken(plane: np.ndarray, lines: np.ndarray, black: int) -> None:
    """``plane`` (a Y, Cb or Cr plane, in place) multiplied by ``lines`` (255: unchanged) as
    RGB would be: toward ``black``, the plane's zero (16 for Y, 128 for chroma)."""
    if black == 16:  # luma: never under its black (saturating uint8 arithmetic is enough)
        cv2.add(cv2.multiply(cv2.subtract(plane, 16), lines, scale=1 / 255), 16, dst=plane)
        return
    offset = plane.astype(np.int16) - black
    plane[:] = np.clip(offset * (lines.astype(np.float32) / 255) + black + 0.5, 0, 255)


GRADES = ("black_and_white", "vintage_film")  # functions of each frame's colours, no brushwork
STYLES = (*PAINTED, *GRADES)  # every style the editor draws
TINTED = {"watercolor", "oil_painting", "pencil_sketch", "cartoon", "vintage_film"}
ON_A_SURFACE = {"watercolor", "pencil_sketch", "vintage_film"}


def surface(style: str, width: int, height: int, seed: int) -> np.ndarray:
    """The medium under a style, fixed for the whole video: paper or film (RGB, 0..255).

    Fixed, so that it never flickers; drawn from the task's seed, so a seed
    gives the same video again.
    """
    rng = np.random.default_rng(seed)
    flat = np.full((height, width), 255.0, np.float32)
    if style in ("watercolor", "pencil_sketch"):
        grain = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1)).astype(np.float32)
        grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_CUBIC)
        flat = 255 - 10 * np.abs(grain)
    elif style == "vintage_film":
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        r = np.hypot((x - width / 2) / (width / 2), (y - height / 2) / (height / 2))
        vignette = np.clip(1.0 - 0.35 * np.maximum(r - 0.45, 0) ** 1.5, 0.55, 1.0)
        grain = rng.normal(0, 5, (height, width)).astype(np.float32)
        flat = 255 * vignette + grain
    return np.repeat(np.clip(flat, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


# The styles brought back to the scene's brightness, and the level each keeps as its black
# (vintage film's blacks are lifted: that is part of it). Watercolour and pencil are on paper:
# light whatever the scene.
RESTORED = {
    "oil_painting": 0,
    "cartoon": 0,
    REFERENCE_STYLE: 0,
    "black_and_white": 0,
    "vintage_film": 22,
}

# Limited-range luma (16..235, the planes' Y) to full range (0..255, as RGB's grey is).
_FULL_RANGE = np.clip(np.rint((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.intp)
_LIMITED = np.rint(16 + np.arange(256) * 219 / 255).astype(np.uint8)  # ... and back


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

    def normalise(self, rgb: np.ndarray, step: int = 8) -> np.ndarray:
        """The 256-level curve (for ``cv2.LUT`` on every channel) that standardises ``rgb``."""
        luma = _luma(np.ascontiguousarray(rgb[::step, ::step])).astype(np.float64) / 255
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

    def restore(
        self, styled: np.ndarray, floor: int = 0, share: float = 1.0, step: int = 8
    ) -> np.ndarray:
        """The curve that brings ``styled`` back to the scene's mean brightness (``share`` of
        the way from the standard exposure's): a power curve between ``floor`` (the style's
        black, kept) and white (kept)."""
        luma = _luma(np.ascontiguousarray(styled[::step, ::step])).astype(np.float64)
        span = 255.0 - floor
        x = np.clip((luma - floor) / span, 0, 1)
        mean = share * self.mean + (1.0 - share) * MID_GREY
        want = float(np.clip((mean * 255 - floor) / span, 1e-3, 0.999))
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
    then painted (at the working size, steadily over time) or graded; then, where the style
    allows (not a pencil sketch: that is lines on white paper), brought back to the scene's
    own brightness and tinted; then laid on its medium. For ``style`` "reference" the
    reference image is the picture the video is painted after (it is needed), and is not
    tinted toward: its palette is already the painting's.

    Both work on the output stage's YUV planes (``pixel_format`` "yuv420p"), with no
    full-size colour conversion at all. A painted style does everything but the pencil's
    contour lines at the working size, in RGB, and only the finished painting is enlarged
    into the planes. A grade is look-up tables on luma and an affine colour map (vintage
    film's sepia mix, fade and tint, moved into the planes' matrix) on the chroma planes,
    its chroma terms on luma worked out at chroma size; the exposure and the brightness
    curves apply to luma, and are measured on a small RGB copy. Either may also be called
    with an RGB frame, and answers one (tests and benches look at RGB).
    """

    def __init__(
        self,
        style: str,
        reference: np.ndarray | None,
        width: int,
        height: int,
        seed: int,
        strength: float | None = None,
        models_dir: Path | None = None,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
        self.style, self.width, self.height = style, width, height
        self.painter: Painter | None = None
        size = (width, height)
        if style in PAINTED:
            if style == REFERENCE_STYLE:
                if reference is None:
                    raise ValueError("the style 'reference' is painted after a reference image")
                target, reference = style_network().style_of(reference), None
            else:
                target = named_style(style)
            look = PAINTED[style]
            self.strength = STYLE_STRENGTH[style] if strength is None else strength
            self.painter = Painter(target, look, self.strength, face_detector(models_dir))
            size = working_size(width, height)
        self.pixel_format = "yuv420p"
        self.paper = surface(style, *size, seed)  # the medium, at the size it is laid on
        if self.painter is None:  # a grade's film as factors (0..1) for the luma plane
            self._film = self.paper[..., 0].astype(np.float32) / 255
        self.exposure = Exposure()
        # No reference: no tint.
        self.reference_mean = None if reference is None else reference.reshape(-1, 3).mean(axis=0)
        self._mean: np.ndarray | None = None  # running average colour of the styled frames

    def __call__(self, frame: YuvFrame | np.ndarray, index: int) -> np.ndarray | None:
        planes = frame if isinstance(frame, YuvFrame) else YuvFrame.of_rgb(frame)
        if self.painter is None:
            self._grade(planes)
        else:
            self._paint(planes)
        # An RGB frame (tests, benches) went through the planes as the engine's does.
        return None if isinstance(frame, YuvFrame) else planes.to_rgb()

    def _grade(self, frame: YuvFrame) -> None:
        """Grades ``frame``'s planes in place: look-up tables on luma, an affine colour map on
        the chroma planes (and its chroma terms on luma, at chroma size), the film's surface."""
        h, w = frame.u.shape
        # The statistics, on a small copy (an eighth of the frame's side, every other pixel).
        small = frame.small_rgb(max(8, w // 4), max(8, h // 4))
        curve = self.exposure.normalise(small, step=2)  # the standard exposure (on luma)
        if self.style == "black_and_white":
            grey = cv2.LUT(_luma(small), curve)
            mean = float(grey.mean())
            contrast = np.clip(np.rint(BW_CONTRAST * _IDENTITY - (BW_CONTRAST - 1) * mean), 0, 255)
            bw = cv2.LUT(grey, contrast.astype(np.uint8))
            restore = self.exposure.restore(cv2.cvtColor(bw, cv2.COLOR_GRAY2RGB), 0, 1.0, step=2)
            full = restore[contrast.astype(np.uint8)[curve[_FULL_RANGE]]]
            cv2.LUT(frame.y, _LIMITED[full], dst=frame.y)
            frame.u[:] = 128
            frame.v[:] = 128
            return
        # Vintage film. Its statistics on the small RGB copy: the graded colours, the curve that
        # brings them back to the scene's brightness (above the lifted black), the tint.
        fade = np.hstack([VINTAGE_FADE * VINTAGE_MIX, np.full((3, 1), VINTAGE_LIFT)])
        graded = cv2.transform(cv2.LUT(small, curve), fade.astype(np.float32))
        restore = self.exposure.restore(graded, RESTORED[self.style], 1.0, step=2)
        gains = np.ones(3)
        if self.reference_mean is not None:
            gains = self._tint(cv2.LUT(graded, restore))
        # The planes: the exposure on luma, then the fade and the tint as one affine map.
        cv2.LUT(frame.y, _LIMITED[curve[_FULL_RANGE]], dst=frame.y)
        affine = _vintage_map(frame.matrix, gains)
        y_half = cv2.resize(frame.y, (w, h), interpolation=cv2.INTER_AREA)
        # Luma: its own term at full size; the chroma's terms and the offset at chroma size
        # (from the chroma as it came), enlarged; then the film (vignette, grain: toward black,
        # as on RGB; the chroma is left as it is, a little more colour in the darkened corners
        # than multiplying RGB would leave) and the scene's brightness back.
        (t_y, t_u, t_v, shift) = (float(c) for c in affine[0])
        rest = cv2.addWeighted(frame.u, t_u, frame.v, t_v, shift - 16.0, dtype=cv2.CV_32F)
        rest = cv2.resize(rest, frame.y.shape[::-1], interpolation=cv2.INTER_LINEAR)
        # Chroma at its own size (rounded, saturated), from luma at that size.
        chroma = cv2.transform(cv2.merge([y_half, frame.u, frame.v]), affine[1:])
        frame.u[:], frame.v[:] = cv2.split(chroma)
        y = cv2.multiply(
            cv2.addWeighted(frame.y, t_y, rest, 1.0, 0.0, dtype=cv2.CV_32F), self._film
        )
        cv2.LUT(cv2.convertScaleAbs(y, beta=16), _LIMITED[restore[_FULL_RANGE]], dst=frame.y)

    def _paint(self, frame: YuvFrame) -> None:
        """Paints ``frame``'s planes in place: a standard exposure, the painting and its
        finish at the working size, enlarged; a pencil's contours drawn at full size."""
        assert self.painter is not None
        small = frame.small_rgb(*working_size(self.width, self.height))
        curve = self.exposure.normalise(small)
        lines = None
        if self.style == "pencil_sketch":  # the scene's own contours, under the hatching
            lines = contours(cv2.LUT(frame.y, curve[_FULL_RANGE]))
        frame.put_small_rgb(self._finished(self.painter(cv2.LUT(small, curve), frame, curve)))
        if lines is not None:  # graphite: on luma only (the paper's faint tint stays)
            _darken(frame.y, lines, 16)

    def _finished(self, out: np.ndarray) -> np.ndarray:
        """A styled frame (RGB) brought back to the scene's brightness, tinted and laid on
        its medium."""
        # The scene's brightness back and the tint, in one lookup table per channel.
        curve = _IDENTITY
        if self.style in RESTORED:
            share = PAINTED_RESTORE if self.style in PAINTED else 1.0
            curve = self.exposure.restore(out, RESTORED[self.style], share)
        if self.style in TINTED and self.reference_mean is not None:
            curves = curve[:, None] * self._tint(
                cv2.LUT(np.ascontiguousarray(out[::8, ::8]), curve)
            )
            out = cv2.LUT(out, np.clip(np.rint(curves), 0, 255).astype(np.uint8)[:, None, :])
        elif curve is not _IDENTITY:
            out = cv2.LUT(out, curve)
        # The medium.
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
