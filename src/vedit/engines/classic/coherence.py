"""Keeping a painted video steady: key frames painted afresh, the frames between carried by flow.

A style network paints each frame on its own, and its strokes land somewhere else in
the next frame: painted frame by frame, a video shimmers (3-5 times the source's own
frame-to-frame change on real footage). Here only every ``every``-th frame is painted
afresh; each frame is the previous painted frame carried along the source's motion
(OpenCV's DIS optical flow, from this frame back to the previous one), with a share
(``carry``) of the source's own change where the carried frame does not fit (light
that changed, a mouth that opened). Where the motion is trusted — the previous source
frame, carried the same way, matches this one — a key frame keeps ``keep`` of the
carried painting and takes the rest from the fresh one, so strokes stay put; where
it is not (something came into view, a cut), the fresh painting is taken as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

EVERY = 4  # a key frame painted afresh every this many frames
KEEP = 0.8  # a key frame's share of the carried painting, where the motion is trusted
CARRY = 0.5  # the share of the source's own change (off the carried frame) added back
TOLERANCE = 20.0  # levels of mismatch at which the motion is not trusted at all
CUT = 0.3  # below this mean trust, the frame starts a new shot: painted afresh, as it is


class Coherence:
    """Paints a stream of frames (RGB, one size) with ``paint``, steadily over time."""

    def __init__(self, paint: Callable[[np.ndarray], np.ndarray], every: int | None = None) -> None:
        self.paint = paint
        self.every = every or EVERY
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # src, grey, out
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self._count = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        key = self._count % self.every == 0
        self._count += 1
        if self._previous is None:
            out = self.paint(frame)
        else:
            carried, change, trust = self._carried(frame, grey)
            if float(trust.mean()) < CUT:
                out = self.paint(frame)
                self._count = 1  # the next key frame counts from this one
            else:
                follow = carried + CARRY * change
                if key:
                    weight = (KEEP * trust)[..., None]
                    follow = weight * follow + (1.0 - weight) * self.paint(frame)
                out = np.clip(follow + 0.5, 0, 255).astype(np.uint8)
        self._previous = (frame, grey, out)
        return out

    def _carried(
        self, frame: np.ndarray, grey: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The previous painted frame carried to this one, the source's change that the motion
        does not explain, and how far the motion is trusted at each pixel (0..1)."""
        assert self._previous is not None
        source, previous_grey, painted = self._previous
        h, w = grey.shape
        if self._grid is None or self._grid[0].shape != (h, w):
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
            self._grid = (xs, ys)
        flow = self._flow.calc(grey, previous_grey, None)
        map_x, map_y = self._grid[0] + flow[..., 0], self._grid[1] + flow[..., 1]

        def carry(image: np.ndarray) -> np.ndarray:
            return cv2.remap(
                image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            ).astype(np.float32)

        change = frame.astype(np.float32) - carry(source)
        mismatch = cv2.blur(np.abs(change).mean(axis=2), (5, 5))
        trust = np.clip(1.0 - mismatch / TOLERANCE, 0.0, 1.0)
        return carry(painted), change, trust
