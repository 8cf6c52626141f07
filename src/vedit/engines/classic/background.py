"""Background replacement: the person stays, everything behind them becomes the reference.

The person mask joins two models: the selfie segmenter (``segment.py``) on
every frame, and the pose model's body mask (``pose.py``) every
``POSE_EVERY`` frames, held in between. A person is where both see one (their
masks overlap by ``MIN_AGREEMENT``): the pose model alone also finds one in a
cat's face or a cup going by, the selfie model in half a cup. Each finds
parts of a person that the other misses; the selfie mask counts only near the
body the pose model found. The mask is smoothed over time, its edge matted
from the colours (``matte.py``: no band of the old background around the
person) and refined at full size along the luma's edges (the chroma planes
follow it; the edge's colour fixes count only where the person is partly
there), and the planes are blended with it: the person from the source, the
rest from the reference. The last frame's alpha stays readable
(``last_alpha``) for the measures (``tests/measures.py``, ``bench/matte_error.py``).
Where no person is found (they left the shot), the selfie mask
still counts where they were last seen for ``LOST_HOLD`` pose runs (a brief
miss), and after that the frame shows only the new background.

The reference is scaled to cover the frame with a margin (centre crop, no
bars) and converted once to the video's YUV planes. The camera's own motion
is measured on the old background (optical flow of corners outside the
person) and the new background moves with it, inside the margin, so a pan
in the source is a pan in the edit. The person is harmonised with the new
scene so they do not look pasted in: a small luma shift toward its brightness
(at most ``MAX_LIGHT_SHIFT`` levels) and chroma shift toward its colour (at
most ``MAX_CAST``), and the scene's blurred light spilling over their edge (a
light wrap, ``WRAP`` at the very edge, fading within ``WRAP_BAND`` of the
short side). Deterministic; the seed changes
nothing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vedit.engines.base import PersonTally
from vedit.engines.classic.matte import EdgeMatte
from vedit.engines.classic.people import People
from vedit.engines.classic.pose import PoseTracker, working_size
from vedit.engines.classic.segment import PersonSegmenter, agreement
from vedit.media.frames import PlanesByMatrix, YuvFrame, yuv_to_rgb

POSE_EVERY = 3  # the pose model costs ~25 ms a frame; its mask is held between runs
MARGIN = 0.12  # the new background's room to move with the camera, a share of each side
STILL = 0.15  # camera motion below this (model-size pixels a frame) counts as none
NEAR = 0.04  # how far from the pose model's body the selfie model's mask still counts
LIGHT_MATCH = 0.25  # share of the scene's brightness difference the person takes on
MAX_LIGHT_SHIFT = 8  # luma levels, either way
CAST_MATCH = 0.2  # share of the scenes' colour difference (Cb, Cr) the person takes on
MAX_CAST = 5  # chroma levels, either way
WRAP = 0.25  # the most of the new scene's blurred light mixed in at the person's very edge
WRAP_BAND = 0.006  # the light wrap's reach inside the outline, a share of the short side
LOST_HOLD = 2  # pose runs a lost person's last place still counts (a brief miss)
MIN_AGREEMENT = 0.5  # the pose and selfie masks' intersection over union that makes a person
PARTLY = 1e-6  # an alpha above this and under 1 - this: the person partly there (edge fixes)


def cover(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` scaled to cover ``width`` x ``height`` and centre-cropped to it."""
    h, w = rgb.shape[:2]
    scale = max(width / w, height / h)
    sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(rgb, (sw, sh), interpolation=interpolation)
    x0, y0 = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])


def near(body: np.ndarray) -> np.ndarray:
    """A soft region around a body mask (``NEAR`` of the short side): where the selfie model
    may add what the pose model missed (hair, hands), and nowhere else."""
    radius = max(1, round(min(body.shape) * NEAR))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grown = cv2.dilate((body > 0.5).astype(np.uint8), disc).astype(np.float32)
    return cv2.GaussianBlur(grown, (2 * radius + 1, 2 * radius + 1), 0)


class CameraMotion:
    """How far the background moved since the last frame, in the pixels of the frames given:
    the median optical flow of corners outside the person (the person's own motion is not
    the camera's)."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    def __call__(self, grey: np.ndarray, behind: np.ndarray) -> tuple[float, float]:
        previous, self._previous = self._previous, grey
        if previous is None:
            return 0.0, 0.0
        where = (behind > 0.9).astype(np.uint8)
        corners = cv2.goodFeaturesToTrack(previous, 150, 0.01, 4, mask=where)
        if corners is None or len(corners) < 8:
            return 0.0, 0.0
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            previous, grey, corners, None, winSize=(15, 15), maxLevel=2
        )
        ok = status[:, 0] == 1
        if ok.sum() < 8:
            return 0.0, 0.0
        dx, dy = np.median((moved - corners)[ok][:, 0], axis=0)
        if np.hypot(dx, dy) < STILL:
            return 0.0, 0.0
        return float(dx), float(dy)


class BackgroundEditor:
    """Replaces the background of every frame with the reference image."""

    pixel_format = "yuv420p"

    def __init__(
        self,
        reference: np.ndarray,
        width: int,
        height: int,
        *,
        models_dir: Path | None = None,
        tally: PersonTally | None = None,
    ) -> None:
        self.segmenter = PersonSegmenter(width, height, models_dir=models_dir)
        self.pose_size = working_size(width, height)
        self.tracker = PoseTracker(*self.pose_size, models_dir=models_dir)
        self.tally = tally if tally is not None else PersonTally()
        # People the detector finds and the whole-frame models miss (small, far, a second
        # person), segmented on crops: set by the engine once it has looked at the clip.
        self.people: People | None = None
        self.whole_frame = True  # False: the pose and selfie models do not read whole frames
        self._body: np.ndarray | None = None  # the pose model's body mask, half size
        self._near: np.ndarray | None = None  # where the selfie mask may add to it
        self._missed = 0  # pose runs since the pose model last found the person
        self.matte = EdgeMatte(width, height)
        self.width, self.height = width, height
        # The margin, even so that the chroma planes crop at the same place.
        self.margin = (2 * round(width * MARGIN / 2), 2 * round(height * MARGIN / 2))
        mx, my = self.margin
        self.scene = PlanesByMatrix(cover(reference, width + 2 * mx, height + 2 * my))
        self.camera = CameraMotion()
        self.offset = [float(mx), float(my)]  # where the frame sits in the new background
        # The last frame's matte, for measures: the luma-plane slices of the person's box and
        # the person's alpha there (0..1, float32; 0 everywhere else), or None (nobody).
        self.last_alpha: tuple[tuple[slice, slice], np.ndarray] | None = None

    def person(self, frame: YuvFrame, index: int) -> np.ndarray:
        """The person in ``frame`` (``index``: the frame's number in the edit), 0..1 at chroma
        size (half the frame's): what both models see, with what was seen before, and the
        people the detector found. Engine vace regenerates all but this."""
        return self._see(frame, index)[2]

    def _see(
        self, frame: YuvFrame, index: int
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
        """The frame at the selfie model's size (Y, Cb, Cr), its selfie mask (None where the
        whole-frame models are off), everyone to keep, and the main person alone."""
        size = self.segmenter.input_size
        small = frame.small_yuv(*size)
        selfie = None
        main = np.zeros((self.height // 2, self.width // 2), np.float32)
        if self.whole_frame:
            selfie, main = self._main_person(frame, index, small)
        person = main
        if self.people is not None:
            others = self.people(frame, index, main if self.whole_frame else None)
            if others is not None:
                person = np.maximum(main, self.segmenter.feathered(others))
        return small, selfie, person, main

    def _main_person(
        self, frame: YuvFrame, index: int, small: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The whole frame's selfie mask, and the person the pose and selfie models agree on."""
        rgb = yuv_to_rgb(small, frame.matrix)
        # The selfie model runs on every frame (its running mask stays current).
        selfie = self.segmenter.running_half(rgb)
        if index % POSE_EVERY == 0:
            found = self.tracker(frame.small_rgb(*self.pose_size))
            half = (self.width // 2, self.height // 2)
            body = None
            if found is not None:
                body = cv2.resize(found.mask, half, interpolation=cv2.INTER_LINEAR)
            # A person is where both models see one: the pose model alone also finds one in
            # a cat's face or a cup going by, and the selfie model in half a cup.
            if body is not None and agreement(body, selfie) < MIN_AGREEMENT:
                body = None
                self.tracker.reset()  # look afresh next time, not at the look-alike
            self._body = body
            if body is not None:
                self._near = near(body)
                self._missed = 0
            else:
                self._missed += 1
                if self._missed > LOST_HOLD:
                    self._near = None
        # With no person near, nothing of the selfie mask counts: all new background.
        if self._near is None:
            return selfie, np.zeros_like(selfie)
        return selfie, self.segmenter.feathered(selfie, also=self._body, within=self._near)

    def __call__(self, frame: YuvFrame, index: int) -> None:
        small, selfie, person_c, main = self._see(frame, index)
        size = self.segmenter.input_size
        behind = 1.0 - cv2.resize(person_c, size, interpolation=cv2.INTER_LINEAR)
        small_y = np.ascontiguousarray(small[..., 0])
        sy, su, sv = self._follow_camera(frame.matrix, small_y, behind)
        # The person's light: a small shift toward the new scene's brightness, judged on
        # small copies (the model's size) of the old background and the new one.
        weight = float(behind.sum())
        old = float((small_y * behind).sum()) / weight if weight > 1 else float(small_y.mean())
        gap = cv2.mean(sy)[0] - old
        shift = int(np.clip(round(LIGHT_MATCH * gap), -MAX_LIGHT_SHIFT, MAX_LIGHT_SHIFT))
        # And its colour: a small cast toward the new scene's, judged the same way.
        casts = [self._cast(plane, scene, behind, size) for plane, scene in
                 ((frame.u, su), (frame.v, sv))]  # fmt: skip
        # Only the person's box (and room around it for the edge's colours) is blended; the
        # rest of the frame is the new scene.
        rows = np.flatnonzero(person_c.max(axis=1) > 0.004)
        cols = np.flatnonzero(person_c.max(axis=0) > 0.004)
        self.tally.count(bool(len(rows)))
        if not len(rows):
            for plane, scene in ((frame.y, sy), (frame.u, su), (frame.v, sv)):
                np.copyto(plane, scene)
            self.matte.reset()
            self.last_alpha = None
            return
        ch, cw = person_c.shape
        pad = 2 * self.matte.band
        r0, r1 = max(0, rows[0] - pad), min(ch, rows[-1] + 1 + pad)
        c0, c1 = max(0, cols[0] - pad), min(cw, cols[-1] + 1 + pad)
        ys, cs = (slice(2 * r0, 2 * r1), slice(2 * c0, 2 * c1)), (slice(r0, r1), slice(c0, c1))
        y, u, v = frame.y[ys].copy(), frame.u[cs].copy(), frame.v[cs].copy()
        for plane, scene in ((frame.y, sy), (frame.u, su), (frame.v, sv)):
            np.copyto(plane, scene)
        for plane, by in ((y, shift), (u, casts[0]), (v, casts[1])):
            if by > 0:
                cv2.add(plane, by, dst=plane)
            elif by < 0:
                cv2.subtract(plane, -by, dst=plane)
        doubt = None
        if self._body is not None and selfie is not None:
            # Where only one model sees the person (a spoon by her hand, a hand the pose
            # model missed), the colours decide.
            both = cv2.min(selfie[cs], self._body[cs])
            doubt = (cv2.absdiff(both, main[cs]) > 0.5).view(np.uint8)
        alpha, fix = self.matte(y, u, v, person_c[cs], cs, small_y, doubt)
        # The edge at full size, along the person's own luma (before the light wrap).
        alpha_y = self.matte.full_size(alpha, y)
        if self.matte.refine:
            # The chroma planes follow the refined edge too; the edge's colour fixes count
            # only where the person is partly there (all new scene or all person: none).
            size_c = (alpha.shape[1], alpha.shape[0])
            alpha = cv2.resize(alpha_y, size_c, interpolation=cv2.INTER_AREA)
            fix *= (cv2.inRange(alpha, PARTLY, 1.0 - PARTLY) > 0)[..., None]
        size_y = (y.shape[1], y.shape[0])
        fix_y = cv2.resize(fix[..., 0], size_y, interpolation=cv2.INTER_LINEAR)
        if self.matte.refine:
            fix_y = cv2.bitwise_and(fix_y, fix_y, mask=cv2.inRange(alpha_y, PARTLY, 1.0 - PARTLY))
        y, u, v = self._light_wrap(alpha, (y, u, v), (sy[ys], su[cs], sv[cs]))
        self.last_alpha = (ys, alpha_y)
        blend = cv2.blendLinear(y, np.ascontiguousarray(sy[ys]), alpha_y, 1.0 - alpha_y)
        frame.y[ys] = cv2.add(blend, fix_y, dtype=cv2.CV_8U)
        keep = 1.0 - alpha
        for i, (source, plane, scene) in enumerate(((u, frame.u, su), (v, frame.v, sv))):
            blend = cv2.blendLinear(source, np.ascontiguousarray(scene[cs]), alpha, keep)
            plane[cs] = cv2.add(blend, np.ascontiguousarray(fix[..., i + 1]), dtype=cv2.CV_8U)

    @staticmethod
    def _cast(plane: np.ndarray, scene: np.ndarray, behind: np.ndarray, size: tuple) -> int:
        """The shift of a chroma plane that moves the person a little toward the new scene's
        colour: :data:`CAST_MATCH` of the gap between the old background's mean and the new
        one's, at most :data:`MAX_CAST` levels."""
        old_plane = cv2.resize(plane, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        weight = float(behind.sum())
        old = float((old_plane * behind).sum()) / weight if weight > 1 else float(old_plane.mean())
        gap = cv2.mean(scene)[0] - old
        return int(np.clip(round(CAST_MATCH * gap), -MAX_CAST, MAX_CAST))

    def _light_wrap(
        self,
        alpha: np.ndarray,
        person: tuple[np.ndarray, np.ndarray, np.ndarray],
        scene: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The person's planes with the new scene's light spilling over their edge (a light
        wrap): within :data:`WRAP_BAND` of the short side inside their outline, up to
        :data:`WRAP` of the scene, blurred, is mixed in, fading toward the inside; ``alpha``
        is the person's matte at chroma size."""
        radius = max(1.0, WRAP_BAND * min(self.width, self.height) / 2)  # chroma pixels
        outside = cv2.GaussianBlur(1.0 - alpha, (0, 0), radius)
        edge = np.clip(outside * 2.0, 0.0, 1.0) * alpha * WRAP
        out = []
        for plane, lit in zip(person, scene, strict=True):
            shape = (plane.shape[1], plane.shape[0])
            weight = edge if shape == (alpha.shape[1], alpha.shape[0]) else cv2.resize(edge, shape)
            light = cv2.GaussianBlur(np.ascontiguousarray(lit), (0, 0), 2 * radius)
            out.append(cv2.blendLinear(light, plane, weight, 1.0 - weight))
        return out[0], out[1], out[2]

    def _follow_camera(
        self, matrix: str, small_y: np.ndarray, behind: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The frame-sized window of the new background, moved as the camera moved."""
        dx, dy = self.camera(small_y, behind)
        scale = self.width / small_y.shape[1]
        mx, my = self.margin
        # The scene moved by (dx, dy) in the frame: the window moves the other way.
        self.offset[0] = min(2 * mx, max(0.0, self.offset[0] - dx * scale))
        self.offset[1] = min(2 * my, max(0.0, self.offset[1] - dy * scale))
        x, y = (2 * round(v / 2) for v in self.offset)
        sy, su, sv = self.scene(matrix)
        w, h = self.width, self.height
        return (
            sy[y : y + h, x : x + w],
            su[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2],
            sv[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2],
        )
