"""Keeping a painted video steady: key frames painted afresh, the frames between carried by flow.

A style network paints each frame on its own, and its strokes land somewhere else in
the next frame: painted frame by frame, a video shimmers (3-5 times the source's own
frame-to-frame change on real footage). Here only every ``every``-th frame is painted
afresh; each frame is the previous painted frame carried along the source's motion
(OpenCV's DIS optical flow, from this frame back to the previous one), with a share
(``carry``) of the source's own change where the carried frame does not fit (light
that changed, a mouth that opened). Where the motion is trusted — the previous source
frame, carried the same way, matches this one — a key frame keeps ``keep`` of the
carried painting where the picture moved (and all of it where it stood still) and
takes the rest from the fresh one, so strokes stay put; where the motion is not
trusted (something came into view, a cut), the fresh painting is taken as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

EVERY = 4  # a key frame painted afresh every this many frames
KEEP = 0.9  # a key frame's share of the carried painting, where the motion is trusted
CARRY = 0.3  # the share of the source's own change (off the carried frame) added back
TOLERANCE = 25.0  # levels of mismatch at which the motion is not trusted at all
FLOW_SMOOTHING = 21  # the flow is averaged over this many pixels square, weighted by texture
# Two-way texture (cv2.cornerMinEigenVal of the grey frame blurred by 2 px, 7x7 blocks): a flat
# frame's sensor noise stays under NOISE_TEXTURE; NOISE_TEXTURE + TEXTURE is fully trusted.
NOISE_TEXTURE = 4e-6
TEXTURE = 2e-5
MIN_WEIGHT = 0.1  # a neighbourhood's mean weight under which its flow fades to none
CUT = 0.3  # below this mean trust, the frame starts a new shot: painted afresh, as it is


class Coherence:
    """Paints a stream of frames (RGB, one size) with ``paint``, steadily over time.

    Every frame between two key frames is the last key frame's painting carried to it in
    one step (the flow from this frame straight back to the key frame), so the painting
    is resampled once per key frame, not once per frame, and stays sharp.
    """

    def __init__(self, paint: Callable[[np.ndarray], np.ndarray], every: int | None = None) -> None:
        self.paint = paint
        self.every = every or EVERY
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._key: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # src, grey, painted
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self._count = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        key = self._count % self.every == 0
        self._count += 1
        if self._key is None:
            out = self.paint(frame)
            key = True
        else:
            carried, change, trust, moved = self._carried(frame, grey)
            if float(trust.mean()) < CUT:  # a new shot: painted afresh, the count restarted
                out, key, self._count = self.paint(frame), True, 1
            else:
                follow = carried + CARRY * change
                if key:
                    # Still and trusted: kept as it is (nothing to refresh, and a fresh painting
                    # of the same pixels differs in its noise); moved: KEEP of it.
                    weight = (trust * (1.0 - (1.0 - KEEP) * moved))[..., None]
                    follow = weight * follow + (1.0 - weight) * self.paint(frame)
                out = np.clip(follow + 0.5, 0, 255).astype(np.uint8)
        if key:
            self._key = (frame, grey, out)
        return out

    def _carried(
        self, frame: np.ndarray, grey: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The key frame's painting carried to this frame, the source's change that the motion
        does not explain, how far the motion is trusted at each pixel (0..1), and how far each
        pixel moved (0..1: a pixel or more)."""
        assert self._key is not None
        source, key_grey, painted = self._key
        h, w = grey.shape
        if self._grid is None or self._grid[0].shape != (h, w):
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
            self._grid = (xs, ys)
        flow = self._trusted_flow(self._flow.calc(grey, key_grey, None), grey)
        map_x, map_y = self._grid[0] + flow[..., 0], self._grid[1] + flow[..., 1]

        def carry(image: np.ndarray) -> np.ndarray:
            return cv2.remap(
                image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            ).astype(np.float32)

        # Averaged over 5x5 pixels: a change of the scene (a mouth that opens) is carried over,
        # the sensor's noise (new in every frame) is not.
        change = cv2.blur(frame.astype(np.float32) - carry(source), (5, 5))
        mismatch = np.abs(change).mean(axis=2)
        trust = np.clip(1.0 - mismatch / TOLERANCE, 0.0, 1.0)
        moved = np.minimum(np.hypot(flow[..., 0], flow[..., 1]), 1.0)
        return carry(painted), change, trust, moved

    @staticmethod
    def _trusted_flow(flow: np.ndarray, grey: np.ndarray) -> np.ndarray:
        """The flow where the picture shows it. Where the picture has no texture in two
        directions (a wall, the sky, a smooth gradient) the optical flow is a guess — spread
        from moving things nearby, or following the sensor's noise — and a painting carried
        by it shimmers. So the flow is averaged over a neighbourhood, weighted by each pixel's
        two-way texture (the structure tensor's smaller eigenvalue): a flat region takes its
        textured neighbours' motion, and fades to none where it has none."""
        smooth = cv2.GaussianBlur(grey, (0, 0), 2)
        corner = cv2.cornerMinEigenVal(smooth, 7, 3)
        weight = np.clip((corner - NOISE_TEXTURE) / TEXTURE, 0.0, 1.0)
        size = (FLOW_SMOOTHING, FLOW_SMOOTHING)
        spread = np.maximum(cv2.blur(weight, size), MIN_WEIGHT)
        return cv2.blur(flow * weight[..., None], size) / spread[..., None]
