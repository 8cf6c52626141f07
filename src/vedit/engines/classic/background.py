"""Background replacement: the person stays, everything behind them becomes the reference.

The person mask joins two models: the selfie segmenter (``segment.py``) on
every other frame, its mask carried along the person's motion in between
(``segment.Motion``: the optical flow of corners inside the person), and the
pose model's body mask (``pose.py``) every ``POSE_EVERY`` frames, on a thread
of its own (``pose.PoseAhead``: started on one frame, taken on the next), held
in between and carried along the person's motion too. A person is where both see one (their
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
bars) and converted once to the video's YUV planes (and once blurred, for the
light wrap). The camera's own motion is measured on the old background
(optical flow of corners outside the person, in the same flow call as the
person's) and the new background moves with it, inside the margin, so a pan
in the source is a pan in the edit. The person is harmonised with the new
scene so they do not look pasted in: a small luma shift toward its brightness
(at most ``MAX_LIGHT_SHIFT`` levels) and chroma shift toward its colour (at
most ``MAX_CAST``), and the scene's blurred light spilling over their edge (a
light wrap, ``WRAP`` at the very edge, fading within ``WRAP_BAND`` of the
short side). Deterministic (the pose thread is always waited for at the same
frame); the seed changes nothing.

Cost, a 720p frame of the person scene on 2 shared cores (issue 20's speed
measure, ``BENCHMARKS.md``): the pose model ~14 ms every third frame (off the
main thread), the selfie model ~2-4 ms every other frame, the motion ~1.5 ms,
the edge matte ~3.5 ms, its refinement at full size ~1.8 ms, the light wrap
~1.5 ms (it blurred the scene's box on every frame: ~5 ms), the blend ~2 ms.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vedit.engines.base import PersonTally
from vedit.engines.classic.matte import EdgeMatte
from vedit.engines.classic.people import People
from vedit.engines.classic.pose import Pose, PoseAhead, PoseTracker, working_size
from vedit.engines.classic.segment import Motion, PersonSegmenter, agreement
from vedit.media.frames import PlanesByMatrix, YuvFrame

POSE_EVERY = 3  # the pose model costs ~14-25 ms a frame; its mask is carried between runs
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
        self.pose = PoseAhead(self.tracker)  # the pose model on its own thread
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
        self._scene_light: dict[str, tuple[np.ndarray, ...]] = {}  # the scene blurred (wrap)
        self.motion = Motion()  # the camera's and the person's, at the selfie model's size
        self._behind: np.ndarray | None = None  # the last frame's "not a person", model size
        self._camera = (0.0, 0.0)  # the camera's motion since the last frame, model size
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
        small_y = np.ascontiguousarray(small[..., 0])
        behind = self._behind if self._behind is not None else np.ones(small_y.shape, np.float32)
        camera, moved = self.motion(small_y, behind)
        self._camera = (0.0, 0.0) if camera is None or np.hypot(*camera) < STILL else camera
        selfie = None
        main = np.zeros((self.height // 2, self.width // 2), np.float32)
        if self.whole_frame:
            selfie, main = self._main_person(frame, index, small, moved)
        person = main
        if self.people is not None:
            others = self.people(frame, index, main if self.whole_frame else None)
            if others is not None:
                person = np.maximum(main, self.segmenter.feathered(others))
        self._behind = 1.0 - cv2.resize(person, size, interpolation=cv2.INTER_LINEAR)
        return small, selfie, person, main

    def _main_person(
        self, frame: YuvFrame, index: int, small: np.ndarray, moved: tuple[float, float] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The whole frame's selfie mask, and the person the pose and selfie models agree on;
        ``moved``: the person's motion since the last frame (model pixels), None: unknown."""
        # The selfie model runs on every other frame; in between its mask is carried along
        # the person's motion (where that is known; else the model runs).
        selfie = self.segmenter.alternate_half(small, frame.matrix, moved)
        # 1. The pose model's run started on an earlier frame, taken now.
        if self.pose.pending:
            self._take_pose(*self.pose.result())
        # 2. Its body mask, of an earlier frame, carried along the person's motion since.
        if moved is not None and self._near is not None:
            scale = self.width / 2 / self.segmenter.input_size[0]
            shift = np.float32([[1, 0, moved[0] * scale], [0, 1, moved[1] * scale]])
            size = (self.width // 2, self.height // 2)
            if self._body is not None:
                self._body = cv2.warpAffine(self._body, shift, size, flags=cv2.INTER_LINEAR)
            self._near = cv2.warpAffine(self._near, shift, size, flags=cv2.INTER_LINEAR)
        # 3. A new run, on its own thread beside the rest of this frame's work and the next
        #    frame's decoding; waited for at once where there is no body to carry meanwhile
        #    (the first frame, a person lost).
        if index % POSE_EVERY == 0:
            self.pose.start(frame.small_rgb(*self.pose_size), selfie)
            if self._near is None:
                self._take_pose(*self.pose.result())
        # With no person near, nothing of the selfie mask counts: all new background.
        if self._near is None:
            return selfie, np.zeros_like(selfie)
        return selfie, self.segmenter.feathered(selfie, also=self._body, within=self._near)

    def _take_pose(self, found: Pose | None, selfie: object) -> None:
        """The pose model's body mask, where the selfie mask of the same frame (``selfie``)
        agrees: held (and carried) until the next run."""
        half = (self.width // 2, self.height // 2)
        body = None
        if found is not None:
            body = cv2.resize(found.mask, half, interpolation=cv2.INTER_LINEAR)
        # A person is where both models see one: the pose model alone also finds one in
        # a cat's face or a cup going by, and the selfie model in half a cup.
        assert isinstance(selfie, np.ndarray)
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

    def __call__(self, frame: YuvFrame, index: int) -> None:
        small, selfie, person_c, main = self._see(frame, index)
        behind = self._behind
        assert behind is not None
        small_y = np.ascontiguousarray(small[..., 0])
        (sy, su, sv), light = self._follow_camera(frame.matrix)
        # The person's light: a small shift toward the new scene's brightness, judged on
        # small copies (the model's size) of the old background and the new one.
        weight = float(behind.sum())
        old = float((small_y * behind).sum()) / weight if weight > 1 else float(small_y.mean())
        gap = cv2.mean(sy)[0] - old
        shift = int(np.clip(round(LIGHT_MATCH * gap), -MAX_LIGHT_SHIFT, MAX_LIGHT_SHIFT))
        # And its colour: a small cast toward the new scene's, judged the same way.
        casts = [self._cast(small[..., i], scene, behind) for i, scene in ((1, su), (2, sv))]
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
        y, u, v = self._light_wrap(alpha, (y, u, v), (light[0][ys], light[1][cs], light[2][cs]))
        self.last_alpha = (ys, alpha_y)
        blend = cv2.blendLinear(y, np.ascontiguousarray(sy[ys]), alpha_y, 1.0 - alpha_y)
        frame.y[ys] = cv2.add(blend, fix_y, dtype=cv2.CV_8U)
        keep = 1.0 - alpha
        for i, (source, plane, scene) in enumerate(((u, frame.u, su), (v, frame.v, sv))):
            blend = cv2.blendLinear(source, np.ascontiguousarray(scene[cs]), alpha, keep)
            plane[cs] = cv2.add(blend, np.ascontiguousarray(fix[..., i + 1]), dtype=cv2.CV_8U)

    @staticmethod
    def _cast(plane: np.ndarray, scene: np.ndarray, behind: np.ndarray) -> int:
        """The shift of a chroma plane that moves the person a little toward the new scene's
        colour: :data:`CAST_MATCH` of the gap between the old background's mean (``plane``
        at the models' size, weighted by ``behind``) and the new one's, at most
        :data:`MAX_CAST` levels."""
        weight = float(behind.sum())
        if weight > 1:
            old = float(np.vdot(plane.astype(np.float32), behind)) / weight
        else:
            old = float(cv2.mean(plane)[0])
        gap = cv2.mean(scene)[0] - old
        return int(np.clip(round(CAST_MATCH * gap), -MAX_CAST, MAX_CAST))

    def _light_wrap(
        self,
        alpha: np.ndarray,
        person: tuple[np.ndarray, np.ndarray, np.ndarray],
        light: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The person's planes with the new scene's light spilling over their edge (a light
        wrap): within :data:`WRAP_BAND` of the short side inside their outline, up to
        :data:`WRAP` of the scene, blurred (``light``: the scene's planes blurred, cut to
        the person's box), is mixed in, fading toward the inside; ``alpha`` is the person's
        matte at chroma size."""
        radius = self._wrap_radius()
        outside = cv2.GaussianBlur(1.0 - alpha, (0, 0), radius)
        edge = np.clip(outside * 2.0, 0.0, 1.0) * alpha * WRAP
        out = []
        for plane, lit in zip(person, light, strict=True):
            shape = (plane.shape[1], plane.shape[0])
            weight = edge if shape == (alpha.shape[1], alpha.shape[0]) else cv2.resize(edge, shape)
            out.append(cv2.blendLinear(np.ascontiguousarray(lit), plane, weight, 1.0 - weight))
        return out[0], out[1], out[2]

    def _wrap_radius(self) -> float:
        """The light wrap's reach, chroma pixels (:data:`WRAP_BAND` of the short side)."""
        return max(1.0, WRAP_BAND * min(self.width, self.height) / 2)

    def _follow_camera(
        self, matrix: str
    ) -> tuple[
        tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]
    ]:
        """The frame-sized window of the new background, moved as the camera moved, and the
        same window of the scene blurred for the light wrap (blurred once, whole)."""
        dx, dy = self._camera
        scale = self.width / self.segmenter.input_size[0]
        mx, my = self.margin
        # The scene moved by (dx, dy) in the frame: the window moves the other way.
        self.offset[0] = min(2 * mx, max(0.0, self.offset[0] - dx * scale))
        self.offset[1] = min(2 * my, max(0.0, self.offset[1] - dy * scale))
        x, y = (2 * round(v / 2) for v in self.offset)
        planes = self.scene(matrix)
        light = self._scene_light.get(matrix)
        if light is None:
            sigma = 2 * self._wrap_radius()
            light = tuple(cv2.GaussianBlur(p, (0, 0), sigma) for p in planes)
            self._scene_light[matrix] = light
        w, h = self.width, self.height
        ys, cs = (
            (slice(y, y + h), slice(x, x + w)),
            (slice(y // 2, (y + h) // 2), slice(x // 2, (x + w) // 2)),
        )
        return (
            (planes[0][ys], planes[1][cs], planes[2][cs]),
            (light[0][ys], light[1][cs], light[2][cs]),
        )
