"""Background replacement: the person stays, everything behind them becomes the reference.

The person mask joins two models: the selfie segmenter (``segment.py``) on
every other frame, its mask carried along the person's motion in between
(``segment.Motion``: the optical flow of corners inside the person), and the
pose model's body mask (``pose.py``) every ``POSE_EVERY`` frames, on a thread
of its own (``pose.PoseAhead``: started on one frame, taken on the next), held
in between and carried along the person's motion too; every ``POSE_RIGID_EVERY``
frames while the person moves as one (``segment.rigid``: a slide, a walk seen
whole, where the carried mask is as good as a new one) once its mask has settled
(``POSE_SETTLE`` runs in a row found them). A person is where both see one (their
masks overlap by ``MIN_AGREEMENT``): the pose model alone also finds one in a
cat's face or a cup going by, the selfie model in half a cup. Each finds
parts of a person that the other misses; the selfie mask counts only near the
body the pose model found. The mask is smoothed over time, its edge matted
from the colours (``matte.py``: no band of the old background around the
person) and refined at full size along the luma's edges (the chroma planes
follow it; the edge's colour fixes count only where the person is partly
there), and the planes are blended with it: the person from the source, the
rest from the reference. The full-size work is done only in the tiles the edge
crosses (``matte.EdgeTiles``); elsewhere in the person's box the luma is the
person's or the scene's as it stands. The last frame's alpha stays readable
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
main thread; every twelfth while she slides across the room), the selfie model
~2-4 ms every other frame, the motion ~1.5 ms, the edge matte ~3.5 ms, the
refinement, the light wrap and the blend in the edge's tiles ~3 ms (over the
whole box: ~6 ms).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vedit.engines.base import PersonTally
from vedit.engines.person.matte import TILE, EdgeMatte, EdgeTiles, guided_coefficients, refined
from vedit.engines.person.people import People
from vedit.engines.person.pose import Pose, PoseAhead, PoseTracker, working_size
from vedit.engines.person.segment import Motion, PersonSegmenter, agreement, rigid
from vedit.media.frames import PlanesByMatrix, YuvFrame, rgb_to_yuv_matrix

POSE_EVERY = 3  # the pose model costs ~14-25 ms a frame; its mask is carried between runs
POSE_RIGID_EVERY = 12  # ... and while the person moves as one (segment.rigid), this seldom
POSE_SETTLE = 16  # ... once this many runs in a row found them (2 s: the mask, smoothed over
# its runs, still improves over the first 1-2 s at the first pace)
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


class ScenePlanes(PlanesByMatrix):
    """The new scene's yuv420p planes, made once for each YUV matrix a video asks for, in one
    float32 transform straight to 8 bits: the float64 conversion of a frame-sized picture
    held two copies of ~80 MB at 1080p (the worker's peak RSS on the first frame)."""

    def __call__(self, matrix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        planes = self._planes.get(matrix)
        if planes is None:
            m = rgb_to_yuv_matrix(matrix).astype(np.float32)
            yuv = cv2.transform(self.rgb, m)  # uint8 in and out: rounded, saturated
            h, w = yuv.shape[:2]
            cbcr = cv2.resize(yuv[..., 1:], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            planes = self._planes[matrix] = (
                np.ascontiguousarray(yuv[..., 0]),
                np.ascontiguousarray(cbcr[..., 0]),
                np.ascontiguousarray(cbcr[..., 1]),
            )
        return planes


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
        # The last run's body mask and near region as it gave them (None: nobody near), and
        # the person's motion since (chroma pixels): carried from there, not frame to frame.
        self._pose_masks: tuple[np.ndarray, np.ndarray] | None = None
        self._carried = [0.0, 0.0]
        self._found = False  # the last run found the person (else its body is not used)
        self._settled = 0  # runs in a row that found the person (their mask settles)
        self._since_pose = POSE_RIGID_EVERY  # frames since the last pose run (a run at once)
        self._rigid = False  # the person has moved as one since that run
        self.matte = EdgeMatte(width, height)
        self.width, self.height = width, height
        # The margin, even so that the chroma planes crop at the same place.
        self.margin = (2 * round(width * MARGIN / 2), 2 * round(height * MARGIN / 2))
        mx, my = self.margin
        self.scene = ScenePlanes(cover(reference, width + 2 * mx, height + 2 * my))
        self._scene_light: dict[str, tuple[np.ndarray, ...]] = {}  # the scene blurred (wrap)
        self.motion = Motion()  # the camera's and the person's, at the selfie model's size
        self._behind: np.ndarray | None = None  # the last frame's "not a person", model size
        self._camera = (0.0, 0.0)  # the camera's motion since the last frame, model size
        self.offset = [float(mx), float(my)]  # where the frame sits in the new background
        # The last frame's matte, as last_alpha puts it together for measures.
        self._last: tuple | None = None

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
        # 2. Its body mask, of an earlier frame, carried along the person's motion since
        #    (warped once from the run's own mask: no blur piles up over the frames).
        if moved is not None:
            scale = self.width / 2 / self.segmenter.input_size[0]
            self._carried[0] += moved[0] * scale
            self._carried[1] += moved[1] * scale
        if self._near is not None:
            self._body, self._near = self._carry_body()
        # 3. A new run, on its own thread beside the rest of this frame's work and the next
        #    frame's decoding; waited for at once where there is no body to carry meanwhile
        #    (the first frame, a person lost). Every POSE_EVERY frames, or POSE_RIGID_EVERY
        #    while the person has moved as one since the last run (their body mask carried
        #    along is then as good as a new one) once POSE_SETTLE runs in a row found them
        #    (the model's mask is smoothed over its runs: it settles at the first pace).
        self._since_pose += 1
        self._rigid = self._rigid and rigid(self.motion.spread)
        seldom = self._rigid and self._settled >= POSE_SETTLE
        if self._since_pose >= (POSE_RIGID_EVERY if seldom else POSE_EVERY):
            self._since_pose, self._rigid = 0, True
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
        if body is not None:
            self._pose_masks, self._carried = (body, near(body)), [0.0, 0.0]
            self._missed = 0
            self._settled += 1
        else:  # its last place still counts (carried on) for a brief miss
            self._missed, self._settled = self._missed + 1, 0
            if self._missed > LOST_HOLD:
                self._pose_masks = None
        self._found = body is not None
        self._body, self._near = self._carry_body()

    def _carry_body(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The last body mask the pose model found and its "near" region, moved by the
        person's motion since that run (:attr:`_carried`, chroma pixels); the body None where
        the last run found nobody, both None where nobody was found for too long."""
        if self._pose_masks is None:
            return None, None
        body, near_body = self._pose_masks
        dx, dy = self._carried
        if abs(dx) >= 1e-3 or abs(dy) >= 1e-3:
            shift = np.float32([[1, 0, dx], [0, 1, dy]])
            size = (self.width // 2, self.height // 2)
            near_body = cv2.warpAffine(near_body, shift, size, flags=cv2.INTER_LINEAR)
            if self._found:
                body = cv2.warpAffine(body, shift, size, flags=cv2.INTER_LINEAR)
        return (body if self._found else None), near_body

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
            self._last = None
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
        lit = (light[0][ys], light[1][cs], light[2][cs])
        if self.matte.refine:
            self._blend_edges(frame, (ys, cs), (y, u, v), (sy[ys], su[cs], sv[cs]), lit, alpha, fix)
        else:
            self._blend_box(frame, (ys, cs), (y, u, v), (sy[ys], su[cs], sv[cs]), lit, alpha, fix)

    def _blend_edges(
        self,
        frame: YuvFrame,
        box: tuple[tuple[slice, slice], tuple[slice, slice]],
        person: tuple[np.ndarray, np.ndarray, np.ndarray],
        scene: tuple[np.ndarray, np.ndarray, np.ndarray],
        light: tuple[np.ndarray, np.ndarray, np.ndarray],
        alpha: np.ndarray,
        fix: np.ndarray,
    ) -> None:
        """The person (``person``: their box's planes, the light and cast shifts made) laid
        over the new scene's box (``scene``, ``light``: the scene blurred) in ``frame``'s
        planes, along the matte ``alpha`` (chroma size) with its colour fixes ``fix``, the
        edge refined at full size along the person's luma (:func:`matte.guided_upsample`).

        The full-size work is done only in the tiles the edge crosses (``EdgeTiles``): where
        the matte's neighbourhood is all person, the luma is the person's, and where it is all
        scene, the scene's; the rest of the box costs a copy. The result is the same as doing
        it all over the box."""
        (ys, cs), (y, u, v) = box, person
        tiles = EdgeTiles(alpha.shape)
        ones = np.ones((3, 3), np.uint8)
        # 1. The tiles where the matte at full size is not sure: some alpha in a tile's
        #    neighbourhood is between 0 and 1 (the enlargement is read one pixel beyond).
        a_pad = tiles.padded(alpha)
        unsure = tiles.unsure(a_pad)
        edge_at = np.nonzero(unsure)
        # 2. There, the matte refined at full size along the luma; the chroma follows it.
        a, b = guided_coefficients(alpha, y)
        fitted = tiles.enlarged(tiles.padded(cv2.merge([a, b, alpha]), halo=1), edge_at)
        y_pad = tiles.padded(y, 2)
        alpha_edge = refined(*cv2.split(fitted), tiles.gathered(y_pad, edge_at))
        refined_c = a_pad.copy()
        n = len(edge_at[0])
        tiles.scatter(
            refined_c, edge_at,
            cv2.resize(alpha_edge, (TILE, n * TILE), interpolation=cv2.INTER_AREA),
        )  # fmt: skip
        alpha = refined_c[: alpha.shape[0], : alpha.shape[1]]
        self._last = (ys, tiles, a_pad, edge_at, alpha_edge)
        # The edge's colour fixes count only where the person is partly there (all new scene
        # or all person: none).
        fixes = cv2.split(cv2.bitwise_and(fix, fix, mask=cv2.inRange(alpha, PARTLY, 1.0 - PARTLY)))
        # 3. The chroma planes: the light wrap, then the blend (chroma size, the whole box).
        wrap = self._wrap_weight(alpha)
        keep = 1.0 - alpha
        for source, plane, behind, lit, fix_c in (
            (u, frame.u, scene[1], light[1], fixes[1]),
            (v, frame.v, scene[2], light[2], fixes[2]),
        ):
            source = cv2.blendLinear(np.ascontiguousarray(lit), source, wrap, 1.0 - wrap)
            blend = cv2.blendLinear(source, np.ascontiguousarray(behind), alpha, keep)
            plane[cs] = cv2.add(blend, fix_c, dtype=cv2.CV_8U)
        # 4. The luma: the box is the scene, and the person where the matte is all person
        #    (and no light wraps)...
        behind = tiles.padded(np.ascontiguousarray(scene[0]), 2)
        out = behind.copy()
        inside = cv2.resize(
            (a_pad > 0.5).view(np.uint8), (out.shape[1], out.shape[0]),
            interpolation=cv2.INTER_NEAREST,
        )  # fmt: skip
        cv2.copyTo(y_pad, inside, out)
        # ... and in the tiles the edge or the light wrap reaches, all of it at full size.
        wrap_pad = tiles.padded(wrap, halo=1)
        wrapped = tiles.per_tile(cv2.dilate(wrap_pad, ones)[1:-1, 1:-1]) > 0
        work = unsure | wrapped
        at = np.nonzero(work)
        count = len(at[0])
        if count:
            side = 2 * TILE
            # The matte there: refined where it was unsure, else all 0 or all 1 (a tile's mean).
            alpha_y = np.empty((count, side, side), np.float32)
            alpha_y[:] = tiles.per_tile(a_pad)[at][:, None, None]
            alpha_y[np.flatnonzero(unsure[at])] = alpha_edge.reshape(n, side, side)
            alpha_y = alpha_y.reshape(count * side, side)
            fix_haloed = tiles.padded(fixes[0], halo=1)
            fix_y = tiles.enlarged(fix_haloed, at)
            fix_y = cv2.bitwise_and(fix_y, fix_y, mask=cv2.inRange(alpha_y, PARTLY, 1.0 - PARTLY))
            weight = tiles.enlarged(wrap_pad, at)
            source = cv2.blendLinear(
                tiles.gathered(tiles.padded(np.ascontiguousarray(light[0]), 2), at),
                tiles.gathered(y_pad, at), weight, 1.0 - weight,
            )  # fmt: skip
            blend = cv2.blendLinear(source, tiles.gathered(behind, at), alpha_y, 1.0 - alpha_y)
            tiles.scatter(out, at, cv2.add(blend, fix_y, dtype=cv2.CV_8U))
        frame.y[ys] = out[: y.shape[0], : y.shape[1]]

    def _blend_box(
        self,
        frame: YuvFrame,
        box: tuple[tuple[slice, slice], tuple[slice, slice]],
        person: tuple[np.ndarray, np.ndarray, np.ndarray],
        scene: tuple[np.ndarray, np.ndarray, np.ndarray],
        light: tuple[np.ndarray, np.ndarray, np.ndarray],
        alpha: np.ndarray,
        fix: np.ndarray,
    ) -> None:
        """As :meth:`_blend_edges`, with the matte only scaled up (no refinement: the
        matte as before issue 20, item 4, for the benchmarks), over the whole box."""
        (ys, cs), (y, u, v) = box, person
        alpha_y = self.matte.full_size(alpha, y)
        fix_y = cv2.resize(fix[..., 0], (y.shape[1], y.shape[0]), interpolation=cv2.INTER_LINEAR)
        y, u, v = self._light_wrap(alpha, (y, u, v), light)
        self._last = (ys, alpha_y)
        blend = cv2.blendLinear(y, np.ascontiguousarray(scene[0]), alpha_y, 1.0 - alpha_y)
        frame.y[ys] = cv2.add(blend, fix_y, dtype=cv2.CV_8U)
        keep = 1.0 - alpha
        for i, (source, plane, behind) in enumerate(
            ((u, frame.u, scene[1]), (v, frame.v, scene[2]))
        ):
            blend = cv2.blendLinear(source, np.ascontiguousarray(behind), alpha, keep)
            plane[cs] = cv2.add(blend, np.ascontiguousarray(fix[..., i + 1]), dtype=cv2.CV_8U)

    @property
    def last_alpha(self) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """The last frame's matte, for measures: the luma-plane slices of the person's box and
        the person's alpha there at full size (0..1, float32; 0 everywhere else), or None
        (nobody). Put together when asked (the edit itself needs it only at the edge)."""
        if self._last is None or len(self._last) == 2:
            return self._last  # type: ignore[return-value]
        ys, tiles, a_pad, edge_at, alpha_edge = self._last
        full = cv2.resize(
            a_pad, (2 * a_pad.shape[1], 2 * a_pad.shape[0]), interpolation=cv2.INTER_LINEAR
        )
        if len(edge_at[0]):
            tiles.scatter(full, edge_at, alpha_edge)
        h, w = ys[0].stop - ys[0].start, ys[1].stop - ys[1].start
        self._last = (ys, np.ascontiguousarray(full[:h, :w]))
        return self._last  # type: ignore[return-value]

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
        edge = self._wrap_weight(alpha)
        out = []
        for plane, lit in zip(person, light, strict=True):
            shape = (plane.shape[1], plane.shape[0])
            weight = edge if shape == (alpha.shape[1], alpha.shape[0]) else cv2.resize(edge, shape)
            out.append(cv2.blendLinear(np.ascontiguousarray(lit), plane, weight, 1.0 - weight))
        return out[0], out[1], out[2]

    def _wrap_weight(self, alpha: np.ndarray) -> np.ndarray:
        """The light wrap's share of the scene's light at each pixel of the matte ``alpha``
        (chroma size): up to :data:`WRAP` at the very edge, fading within the wrap's reach;
        shares too small to change a level (under half a level of 255) are none."""
        outside = cv2.GaussianBlur(1.0 - alpha, (0, 0), self._wrap_radius())
        edge = np.clip(outside * 2.0, 0.0, 1.0) * alpha * WRAP
        cv2.threshold(edge, 0.5 / 255, 0.0, cv2.THRESH_TOZERO, dst=edge)
        return edge

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
