"""Keeping a painted video steady: key frames painted afresh, the frames between carried by flow.

A style network paints each frame on its own, and its strokes land somewhere else in
the next frame: painted frame by frame, a video shimmers (1.5-6 times the source's own
frame-to-frame change on real footage). Here only every ``EVERY``-th frame (a key
frame) is painted afresh. Every frame is the last key frame's painting carried to it
in one step along the source's motion: OpenCV's DIS optical flow from this frame back
to the last one, found at half size, each textured place's own and each flat place its
textured neighbours' (or none), composed with the last frame's way back to the key frame
(one small step a frame: DIS follows a fast or small thing far better so than over ten
frames at once); kept where it explains the picture better than standing still does, and
none where it is under a pixel's jitter. To that is added the source's own change that
the motion does not explain (light that changed, a mouth that opened): ``CARRY`` of it
where the motion is trusted, all of it where not. A key frame keeps ``KEEP`` of the
carried painting where the motion is trusted (the key frame's source, carried the same
way, matches this one) and the picture moved, all of it where it stood still, and takes
the rest from its fresh painting; where the motion is not trusted (something came into
view) the fresh painting is taken. A frame that much of the motion does not explain (fast
motion, things coming into view) is a key frame before its turn, and one that it hardly
explains at all (a cut) starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

EVERY = 10  # a key frame painted afresh every this many frames
KEEP = 0.9  # a key frame's share of the carried painting, where the motion is trusted
CARRY = 0.3  # the share of the source's own change (off the carried frame) added back
TOLERANCE = 25.0  # levels of mismatch at which the motion is not trusted at all
FLOW_FILL = 15  # a flat place (at half size) takes the flow of its neighbours this many pixels
# square (see _trusted_flow)
OWN_WEIGHT = 0.5  # the texture weight from which a place's own flow is taken whole
# Two-way texture (cv2.cornerMinEigenVal at half size, the grey blurred by 1 px, 5x5 blocks): a
# flat frame's sensor noise stays under NOISE_TEXTURE; NOISE_TEXTURE + TEXTURE is fully trusted.
NOISE_TEXTURE = 8e-6
TEXTURE = 4e-5
MIN_WEIGHT = 0.1  # a neighbourhood's mean weight under which its flow fades to none
STILL = 0.005  # a key frame whose fresh painting would weigh less than this on average is
# not painted (a still, trusted picture keeps its carried painting whole anyway)
JITTER = 0.7  # pixels of flow (at the working size) under which a place counts as still (see
# _flow_to_key): DIS finds 0.1-0.3 px of motion on a still, noisy picture, and an ink line carried
# along it shimmers
STILL_MARGIN = 0.25  # a textured place moves where its motion explains the picture at least
# this share better than standing still does (see _flow_to_key)
REFRESH = 12.0  # levels of mean mismatch at which a key frame is painted before its turn
CUT = 0.3  # below this mean trust (1 - mean mismatch / TOLERANCE), a frame starts a new shot


class Coherence:
    """Paints a stream of frames (RGB, one size) with ``paint``, steadily over time.

    Every frame between two key frames is the last key frame's painting carried to it in
    one step (where each pixel was in the key frame: the flow to the last frame composed
    with that frame's way back, at half size), so the painting is resampled once per key
    frame, not once per frame, and stays sharp.
    """

    def __init__(self, paint: Callable[[np.ndarray], np.ndarray]) -> None:
        self.paint = paint
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._key: _Key | None = None
        self._previous: np.ndarray | None = None  # the last frame's grey at half size
        self._to_key: np.ndarray | None = None  # (h, w, 2): where the last frame's pixels were
        # in the key frame
        self._count = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        small = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), _half(frame))
        key = self._count % EVERY == 0
        self._count += 1
        if self._key is None:
            out, key = self.paint(frame), True
        else:
            flow = self._flow_to_key(small)
            positions = cv2.add(_grid(frame.shape), flow)
            source, painted = self._key.carry(positions)
            change = cv2.blur(cv2.subtract(frame, source, dtype=cv2.CV_32F), (5, 5))
            mismatch = cv2.norm(change, cv2.NORM_L1) / change.size
            if mismatch > (1.0 - CUT) * TOLERANCE:
                # a new shot (the motion explains little of it): painted afresh, as it is
                out, key, self._count = self.paint(frame), True, 1
            else:
                if mismatch > REFRESH and not key:
                    # much of the picture unexplained (fast motion, things coming into view):
                    # a key frame now, not at its turn
                    key, self._count = True, 1
                # The painting carried, and what the motion does not explain: CARRY of it where
                # the motion is trusted, all of it where it is not (an eye that moved shows
                # where it is now, not smeared, until the next key frame paints it).
                trust = _trust(change)
                share = 1.0 - (1.0 - CARRY) * trust
                follow = cv2.add(
                    painted, cv2.multiply(change, cv2.merge([share] * 3)), dtype=cv2.CV_32F
                )
                if key:
                    # Still and trusted: kept as it is (nothing to refresh, and a fresh
                    # painting of the same pixels differs in its noise); moved: KEEP of it.
                    moved = np.minimum(np.hypot(flow[..., 0], flow[..., 1]), 1.0)
                    weight = (trust * (1.0 - (1.0 - KEEP) * moved))[..., None]
                    if float(weight.mean()) < 1.0 - STILL:  # else nothing to refresh: no painting
                        follow = weight * follow + (1.0 - weight) * self.paint(frame)
                out = cv2.convertScaleAbs(follow)  # rounded, saturated (never negative)
        if key:
            self._key = _Key(frame, small, out)
            self._to_key = None
        self._previous = small
        return out

    def _flow_to_key(self, small: np.ndarray) -> np.ndarray:
        """Where each pixel of this frame was in the key frame (h, w, 2, as a displacement), at
        full size: the motion from the last frame composed with the last frame's to the key
        frame (a small step each frame, which the flow follows far better than the whole way
        at once), kept where it explains the picture."""
        assert self._key is not None and self._previous is not None
        flow, textured = _trusted_flow(self._flow.calc(small, self._previous, None), small)
        grid = _grid(small.shape)
        back = cv2.add(grid, flow)  # where this frame's pixels were in the last frame
        if self._to_key is not None:  # ... and where those were in the key frame
            back = cv2.remap(
                self._to_key, back, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        self._to_key = back
        flow = cv2.subtract(back, grid)
        # A textured place is moved only where the motion explains this frame (from the key
        # frame) better than standing still does: the flow of a fast thing spills onto the
        # still ground beside it, and the flow's jitter adds up from frame to frame.
        moved = cv2.remap(
            self._key.small, back, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        err_moved = cv2.blur(cv2.absdiff(small, moved), (5, 5)).astype(np.float32)
        err_still = cv2.blur(cv2.absdiff(small, self._key.small), (5, 5)).astype(np.float32)
        better = cv2.divide(
            cv2.subtract(err_still, err_moved), cv2.max(err_still * STILL_MARGIN, 0.5)
        )
        keep = np.maximum(np.clip(better, 0.0, 1.0), 1.0 - textured)
        flow = cv2.multiply(flow, cv2.merge([keep, keep]))
        h, w = self._key.source.shape[:2]
        scale = np.float32(w / small.shape[1])
        if JITTER > 0:
            # The flow's jitter on a still picture moves nothing: under JITTER / 2 none, over
            # 1.5 JITTER all of it (a moving place is carried exactly, with no lag). Worked
            # out at the flow's own (half) size, in full-size pixels, on the whole way to the
            # key frame (a slow motion adds up and is carried; the jitter mostly cancels out).
            length = cv2.magnitude(flow[..., 0], flow[..., 1]) * scale
            gate = np.clip((length - JITTER / 2) / JITTER, 0.0, 1.0)
            flow = cv2.multiply(flow, cv2.merge([gate, gate]))
        return cv2.resize(flow, (w, h)) * scale


class _Key:
    """The last key frame: its source (RGB), its grey at half size, its painting."""

    def __init__(self, source: np.ndarray, small: np.ndarray, painted: np.ndarray) -> None:
        self.source, self.small, self.painted = source, small, painted

    def carry(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The key frame's source and painting, each pixel taken from ``positions`` (h, w, 2:
        where it was in the key frame), as uint8 RGB."""
        # Fixed-point maps: whole pixels and the fractions' interpolation table, made once for
        # both remaps (faster than two remaps from floating-point positions).
        whole, fraction = cv2.convertMaps(positions, None, cv2.CV_16SC2)

        def carried(image: np.ndarray) -> np.ndarray:
            return cv2.remap(
                image, whole, fraction, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )

        return carried(self.source), carried(self.painted)


_GRIDS: dict[tuple[int, int], np.ndarray] = {}


def _grid(shape: tuple[int, ...]) -> np.ndarray:
    """(h, w, 2): each pixel's own position (x, y), for an image of ``shape``."""
    h, w = shape[:2]
    if (h, w) not in _GRIDS:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        _GRIDS[(h, w)] = np.dstack([xs, ys])
    return _GRIDS[(h, w)]


def _half(frame: np.ndarray) -> tuple[int, int]:
    return max(8, frame.shape[1] // 2), max(8, frame.shape[0] // 2)


def _trust(change: np.ndarray) -> np.ndarray:
    """How far the motion is trusted at each pixel (0..1), from the source's change that it
    does not explain (averaged over 5x5 pixels: the sensor's noise cancels out)."""
    mismatch = cv2.transform(np.abs(change), np.full((1, 3), 1 / (3 * TOLERANCE), np.float32))
    return np.clip(1.0 - mismatch, 0.0, 1.0)


def _trusted_flow(flow: np.ndarray, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flow where the picture shows it, and how textured each place is (0..1). Where the
    picture has no texture in two directions (a wall, the sky, a smooth gradient) the optical
    flow is a guess — spread from moving things nearby, or following the sensor's noise — and
    a painting carried by it shimmers. So a textured place (its two-way texture: the
    structure tensor's smaller eigenvalue) keeps its own motion (a small walker is not held
    back by the street around them), and a flat one takes its textured neighbours' (their
    motion averaged over ``FLOW_FILL`` pixels square, weighted by texture), fading to none
    where it has none."""
    smooth = cv2.GaussianBlur(grey, (0, 0), 1)
    corner = cv2.cornerMinEigenVal(smooth, 5, 3)
    weight = np.clip((corner - NOISE_TEXTURE) / TEXTURE, 0.0, 1.0)
    around = cv2.blur(weight, (FLOW_FILL, FLOW_FILL))
    filled = cv2.divide(
        cv2.blur(cv2.multiply(flow, cv2.merge([weight, weight])), (FLOW_FILL, FLOW_FILL)),
        cv2.merge([np.maximum(around, MIN_WEIGHT)] * 2),
    )
    textured = np.minimum(weight * (1.0 / OWN_WEIGHT), 1.0)  # how far a place's own flow counts
    flow = cv2.add(filled, cv2.multiply(cv2.subtract(flow, filled), cv2.merge([textured] * 2)))
    return flow, textured
