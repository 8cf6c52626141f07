"""Clothing from the reference: the upper-body garment takes the reference's colours and texture.

The garment region is where three things agree: the person's outline (the
pose model's body mask, ``pose.py``, cut to the selfie model's, ``segment.py``,
which runs on every frame), the upper body drawn from the landmarks (the band
between the shoulder line and the hip line, sleeves included, less the head),
and not skin (the face's own colour when the face is seen, a fixed skin range
otherwise) nor a hand the pose model sees. The outline's edge is matted from
the colours (``matte.py``), so the garment ends where the person does.

The texture is the garment in the reference (``garment.py``: cut from the person
wearing it where the reference is a photo of one, else the middle of the picture),
pinned to the shoulders: one square of it covers the garment (its top edge just above
the shoulder line, centred, 1.9 shoulder widths a side: never tiled; a bulkier garment
takes its mirror image beyond it), so it moves, turns and scales with the body, and it
stays put while the person stands still (landmark jitter would make a fine texture
shimmer). The source keeps its light and folds: the new luma is the texture's times the
source's light (its luma blurred, over the garment's mean, within ``LIGHT_RANGE``: a white
shirt under a dark jacket is not light) plus its folds (the luma off that light, softly
limited); the chroma is the texture's, and the texture's own light is taken out first
(``delit``: a garment cut from a photo of a person loses their folds too). A much lighter
second garment at the neckline (a white shirt under a dark jacket: ``shirt_front``) is left
as it is, as under a new jacket. A hand is kept out of the garment only where it is
skin-coloured (the pose model guesses hands it cannot see), and a skeleton the pose model
lays across the picture is not dressed. The pose model runs on every third
frame (every twelfth while the person moves as one, ``segment.rigid``, once it
has placed the garment on ``POSE_SETTLE`` runs in a row), on a thread of its own
(``pose.PoseAhead``: started on one frame, its result taken on the next); the
garment mask, the pose's body mask and the texture's pins are carried along the
person's motion in between (``segment.Motion``; the masks from the run's own,
in one warp) and the mask smoothed over time. The selfie model runs on
every other frame, its mask carried the same way in between. The source's
light (its luma blurred over ``LIGHT_BLUR`` of the shoulder width) is worked
out at a quarter of the size or less (:func:`_blurred`: ~0.3 ms a 720p frame
instead of ~5 ms). A frame without a person (found, or fading out where last
seen) is left as it is. Deterministic (the pose thread is always waited for at
the same frame); the seed changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vedit.engines.base import PersonTally
from vedit.engines.person import pose as bp
from vedit.engines.person.garment import reference_garment
from vedit.engines.person.matte import EdgeMatte
from vedit.engines.person.people import People, Track
from vedit.engines.person.pose import THREADS, OneEuro, Pose, PoseAhead, PoseTracker, working_size
from vedit.engines.person.segment import Motion, PersonSegmenter, rigid
from vedit.media.frames import PlanesByMatrix, YuvFrame

POSE_EVERY = 3  # the pose model (~25 ms a 720p frame) runs on every third frame, held between
POSE_RIGID_EVERY = 12  # ... and while the person moves as one (segment.rigid), this seldom
POSE_SETTLE = 16  # ... once this many runs in a row placed the garment (see background.py)
SHADING = 0.85  # how much of the source's folds (luma off its light) the garment keeps
LIGHT_BLUR = 0.12  # the source's light: its luma blurred over this share of the shoulder width
LIGHT_RANGE = (0.45, 1.25)  # the most the light darkens or brightens the texture (times)
FOLD = 24.0  # levels at which a fold's luma is softly limited (a shirt's edge is not a fold)
NECKLINE = 0.1  # the garment's top above the shoulder line, as a share of the shoulder width
HEAD = 0.9  # radius of the head's disc (no garment) as a share of the ear-to-ear distance
UPRIGHT = 60  # the most a torso may lean from upright (degrees) to be dressed
MIN_TORSO = 1.5  # shortest torso (shoulder line to hip line) as a share of the shoulder width
HEM = 0.15  # the garment's bottom below the hip joints' line (over the hips, not past them),
# as a share of the shoulder width
COVER = 1.9  # the texture's square, in shoulder widths: the torso, the arms beside it, the hem
HOLD = 0.02  # the texture stays put until a shoulder moves this share of the shoulder width
SKIN_CHROMA = 10.0  # chroma distance (8-bit levels) from the face's colour that counts as skin
HAND = 1.4  # radius of a hand's disc (no garment) as a share of the wrist-to-knuckles distance
MAX_HAND = 0.35  # ... and at most this share of the shoulder width
DELIGHT = 0.12  # the reference's light (see delit): its luma blurred over this share of its side
DELIGHT_WORN = 0.03  # ... a garment cut from a photo of a person: their folds taken out too
SHIRT_CONTRAST = 60  # levels of luma by which a shirt at the neckline is lighter (shirt_front)
MAX_SHIRT = 0.35  # ... and the most of the garment it may be
HAND_SKIN = 0.25  # the least share of a hand's disc that is skin-coloured for it to be one
ALONE_MARGIN = 0.04  # the room left around a person on their crop, as a share of its side
TORSO_GROW = 0.3  # a person on a crop: their torso hull grown by this share of the shoulder
# width is where their garment may be
SELFIE_SMOOTHING = 1.0  # weight of each frame's selfie mask in the running one: 1, each
# frame's own (a running mean would trail a walking person, and the garment with it)
STILL = 0.15  # the person's motion below this (model-size pixels a frame) counts as none


class ClothingEditor:
    """Dresses the main person's upper body in the reference's garment."""

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
        self.width, self.height = width, height
        # The garment itself where the reference shows someone wearing it (garment.py): cut
        # first, so that the models it reads the reference with are gone (their memory free
        # for the editor's own) before the editor's are loaded.
        self.garment_source = reference_garment(reference, models_dir=models_dir)
        self.pose_size = working_size(width, height)
        self.tracker = PoseTracker(*self.pose_size, models_dir=models_dir)
        self.pose = PoseAhead(self.tracker)  # the pose model on its own thread
        self.motion = Motion()  # the person's, at the selfie model's size
        self._behind: np.ndarray | None = None  # the last frame's "not the person", model size
        self.segmenter = PersonSegmenter(
            width, height, models_dir=models_dir, smoothing=SELFIE_SMOOTHING, threads=THREADS
        )
        self.tally = tally if tally is not None else PersonTally()
        # Lit by the video's light, not the photo's: a garment cut from a person wearing it
        # loses their folds too (the video's person has their own).
        blur = DELIGHT_WORN if self.garment_source.worn else DELIGHT
        self.texture = PlanesByMatrix(delit(self.garment_source.texture, blur))
        self._target: np.ndarray | None = None  # the garment mask the pose last gave, chroma size
        self._since_pose = POSE_RIGID_EVERY  # frames since the last pose run (a run at once)
        # That run's garment and body mask as it left them, and the person's motion since
        # (chroma pixels): carried from there, not from frame to frame.
        self._taken: tuple[np.ndarray, np.ndarray | None] = (np.zeros((1, 1), np.float32), None)
        self._carried = [0.0, 0.0]
        self._rigid = False  # the person has moved as one since that run
        self._settled = 0  # runs in a row that placed the garment
        self._anchor: np.ndarray | None = None  # the shoulders the texture is pinned to
        self._running: np.ndarray | None = None  # the garment mask, at chroma size
        self._body: np.ndarray | None = None
        self._person: np.ndarray | None = None
        self.matte = EdgeMatte(width, height)
        # People the detector finds and the whole-frame models miss, each dressed on a crop
        # around them where the pose model places the garment there: set by the engine.
        self.people: People | None = None
        self.whole_frame = True  # False: the pose and selfie models do not read whole frames
        self.models_dir = models_dir
        self._crop_pose: PoseTracker | None = None  # the pose model on people's crops

    def garment(self, frame: YuvFrame, index: int) -> np.ndarray | None:
        """The garment in ``frame`` (``index``: the frame's number in the edit), 0..1 at
        chroma size (half the frame's), cut to the person's outline; None where there is no
        person. Engine vace regenerates this."""
        seen = self._see(frame, index)
        return None if seen is None else seen[0]

    def __call__(self, frame: YuvFrame, index: int) -> None:
        seen = self._see(frame, index) if self.whole_frame else None
        others = None
        if self.people is not None:  # looked for before any garment is drawn
            others = self.people(frame, index, self._person if seen is not None else None)
        dressed = False
        if seen is None:
            self.matte.reset()
        else:
            garment_c, grey = seen
            assert self._anchor is not None
            dressed = self._dress(frame, self._anchor * 2, garment_c, grey)
        if others is not None and self.people is not None:
            for track in self.people.tracks:
                if track.state.get("seen") == index:
                    dressed = self._dress_one(frame, track) or dressed
        self.tally.count(dressed)

    def _dress_one(self, frame: YuvFrame, track: Track) -> bool:
        """Dress a person the detector found, from the pose model run on their crop (every
        ``POSE_EVERY``-th of their crops, its landmarks held and smoothed in between) and
        their outline in the crop; False where the pose model cannot place the garment."""
        state = track.state
        x0, y0, x1, y1 = state["crop"]  # type: ignore[misc]
        outline: np.ndarray = state["outline"]  # type: ignore[assignment]
        origin = np.float32([x0 // 2, y0 // 2])
        state["calls"] = calls = int(state.get("calls", -1)) + 1  # type: ignore[call-overload]
        if calls % POSE_EVERY == 0 or "points" not in state:
            if self._crop_pose is None:
                side = 256
                self._crop_pose = PoseTracker(side, side, models_dir=self.models_dir)
            self._crop_pose.reset()  # each crop afresh: crops move with their person
            pose = self._crop_pose(alone(state["rgb"], outline))  # type: ignore[arg-type]
            if pose is None or not upright(pose.points):
                state.pop("points", None)
                return False
            to_chroma = (x1 - x0) / 2 / self._crop_pose.width
            smooth = state.setdefault("filter", OneEuro())
            state["points"] = smooth(pose.points * to_chroma + origin)  # type: ignore[operator]
            state["visibility"] = pose.visibility
        points = np.asarray(state["points"]) - origin  # in the crop, at chroma size
        shape = outline.shape
        ys, xs = slice(y0 // 2, y0 // 2 + shape[0]), slice(x0 // 2, x0 // 2 + shape[1])
        upper = upper_body(points, shape)
        skin = skin_mask(frame.u[ys, xs], frame.v[ys, xs], points)
        hands = hand_mask(points, np.asarray(state["visibility"]), shape, skin)
        body = torso_hull(points, shape)  # the crop's outline may hold a neighbour too
        local = outline * upper * body * (1.0 - np.maximum(skin, hands))
        if float(local.max()) < 0.05:
            return False
        pins = points[[bp.RIGHT_SHOULDER, bp.LEFT_SHOULDER, bp.RIGHT_HIP, bp.LEFT_HIP]]
        state["anchor"] = anchor = pinned(state.get("anchor"), pins + origin)  # type: ignore[arg-type]
        garment_c = np.zeros(frame.u.shape, np.float32)
        garment_c[ys, xs] = local
        return self._dress(frame, anchor * 2, garment_c, None)

    def _see(self, frame: YuvFrame, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The garment (chroma size) and the luma at the selfie model's size, or None where
        there is no person."""
        ch, cw = frame.u.shape
        # The selfie model on every other frame: the person's outline as it is now, which the
        # garment never leaves (the pose model's mask is wider, and held between its runs);
        # in between, its mask carried along the person's motion (where that is known).
        size = self.segmenter.input_size
        small = frame.small_yuv(*size)
        grey = np.ascontiguousarray(small[..., 0])
        behind = self._behind if self._behind is not None else np.ones(grey.shape, np.float32)
        _, moved = self.motion(grey, behind)
        outline = self.segmenter.alternate_half(small, frame.matrix, moved)
        # Where the garment is: worked out from the pose model's run, which runs on its own
        # thread from one pose frame to the next frame (waited for at once on the first).
        if self.pose.pending:
            self._take_pose(*self.pose.result())
        if moved is not None and np.hypot(*moved) >= STILL and self._target is not None:
            # That run's garment and pins are of an earlier frame: carried along the
            # person's motion since.
            self._carry(moved)
        # A new run every POSE_EVERY frames, or POSE_RIGID_EVERY while the person has moved
        # as one since the last (the garment carried along is then as good as a new one),
        # once POSE_SETTLE runs in a row placed the garment (the pose's mask has settled).
        self._since_pose += 1
        self._rigid = self._rigid and rigid(self.motion.spread)
        seldom = self._rigid and self._settled >= POSE_SETTLE
        if self._since_pose >= (POSE_RIGID_EVERY if seldom else POSE_EVERY) or (
            self._target is None
        ):
            self._since_pose, self._rigid = 0, True
            y_c = cv2.resize(frame.y, frame.u.shape[::-1], interpolation=cv2.INTER_AREA)
            self.pose.start(
                frame.small_rgb(*self.pose_size), (y_c, frame.u.copy(), frame.v.copy(), outline)
            )
            if self._target is None:
                self._take_pose(*self.pose.result())
        # Smoothed over time, so the edge does not flicker between pose runs.
        if self._running is None:
            self._running = self._target.copy()
        else:
            self._running += 0.5 * (self._target - self._running)
        garment_c = cv2.GaussianBlur(self._running, (0, 0), max(1.0, ch / 300))
        np.minimum(garment_c, outline, out=garment_c)
        self._person = outline if self._body is None else np.minimum(outline, self._body)
        self._behind = 1.0 - cv2.resize(self._person, size, interpolation=cv2.INTER_LINEAR)
        # A person who left fades out where they were last seen.
        if self._anchor is None or float(garment_c.max()) < 0.05:
            return None
        return garment_c, grey

    def _take_pose(self, pose: Pose | None, context: object) -> None:
        """The garment's place from the pose of an earlier frame; ``context``: that frame's
        chroma planes and selfie mask. Where it is older than this frame (a run taken a
        frame late), it is carried along the person's motion since by the caller."""
        ch, cw = self.height // 2, self.width // 2
        y, u, v, outline = context  # type: ignore[misc]
        self._target = np.zeros((ch, cw), np.float32)
        self._body = None
        self._taken, self._carried = (self._target, None), [0.0, 0.0]
        if pose is None or not upright(pose.points):
            self._settled = 0
            return  # nobody, or a skeleton laid across the picture: no garment on a guess
        to_chroma = np.float32([cw / self.pose_size[0], ch / self.pose_size[1]])
        points = pose.points * to_chroma
        self._pin(points)
        body = cv2.resize(pose.mask, (cw, ch), interpolation=cv2.INTER_LINEAR)
        self._body = body
        upper = upper_body(points, (ch, cw))
        skin = skin_mask(u, v, points)
        hands = hand_mask(points, pose.visibility, (ch, cw), skin)
        self._target = np.minimum(body, outline) * upper * (1.0 - np.maximum(skin, hands))
        self._target *= 1.0 - shirt_front(y, self._target)
        self._taken, self._carried = (self._target, body), [0.0, 0.0]
        self._settled += 1

    def _carry(self, moved: tuple[float, float]) -> None:
        """The garment's place, the pose's body mask and the texture's pins moved by ``moved``
        (the person's motion since the last frame, model pixels)."""
        scale = self.width / 2 / self.segmenter.input_size[0]
        dx, dy = moved[0] * scale, moved[1] * scale
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        size = (self.width // 2, self.height // 2)
        if self._running is not None:
            self._running = cv2.warpAffine(self._running, shift, size, flags=cv2.INTER_LINEAR)
        # The pose run's garment and body mask: moved from where that run left them by the
        # motion's sum since (one warp: no blur piles up over the frames between runs).
        self._carried[0] += dx
        self._carried[1] += dy
        since = np.float32([[1, 0, self._carried[0]], [0, 1, self._carried[1]]])
        target, body = self._taken
        self._target = cv2.warpAffine(target, since, size, flags=cv2.INTER_LINEAR)
        if body is not None:
            self._body = cv2.warpAffine(body, since, size, flags=cv2.INTER_LINEAR)
        if self._anchor is not None:
            self._anchor = self._anchor + np.float32([dx, dy])

    def _pin(self, points: np.ndarray) -> None:
        """Move the texture's pins (shoulders, hips) only when the body moved."""
        pins = points[[bp.RIGHT_SHOULDER, bp.LEFT_SHOULDER, bp.RIGHT_HIP, bp.LEFT_HIP]]
        self._anchor = pinned(self._anchor, pins)

    def _dress(
        self, frame: YuvFrame, pins: np.ndarray, garment_c: np.ndarray, grey: np.ndarray | None
    ) -> bool:
        """Blend the texture, pinned to the shoulders (``pins``: right and left shoulder,
        right and left hip, in luma pixels), into the garment, which ends where the person's
        colours do (``grey``: the source's luma at the models' size, for the edge matte of
        the main person; None: the garment's own edge, for a person on a crop); False when
        there was none."""
        ty, tu, tv = self.texture(frame.matrix)
        side = float(ty.shape[0])
        top_l, top_r = pins[0], pins[1]
        across = top_r - top_l
        down = np.float32([-across[1], across[0]])  # square to the shoulder line...
        hips = (pins[2] + pins[3]) / 2 - (top_l + top_r) / 2
        if float(down @ hips) < 0:  # ...and toward the hips (a person seen from the back)
            down = -down
        # One square of texture covers the garment, sleeves and hem included (no tile): its top edge a little above the shoulder line and centred on it, its side
        # COVER shoulder widths, so it turns and scales with the body (a garment wider than that, a
        # bulky suit, takes the square's mirror image beyond it).
        width = float(np.hypot(*across))
        unit_across, unit_down = across / max(width, 1e-6), down / max(width, 1e-6)
        # Only the garment's bounding box is touched.
        rows = np.flatnonzero(garment_c.max(axis=1) > 0.004)
        cols = np.flatnonzero(garment_c.max(axis=0) > 0.004)
        if not len(rows) or not len(cols):
            return False
        cy0, cy1, cx0, cx1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        span = COVER * width
        corner = (top_l + top_r) / 2 - unit_across * span / 2 - unit_down * NECKLINE * width
        to_frame = cv2.getAffineTransform(
            np.float32([[0, 0], [side, 0], [0, side]]),
            np.float32([corner, corner + unit_across * span, corner + unit_down * span]),
        )
        if grey is not None and self._person is not None:
            # The person's edge as their colours draw it, around the garment's box.
            ch, cw = garment_c.shape
            pad = 2 * self.matte.band
            r0, r1 = max(0, cy0 - pad), min(ch, cy1 + pad)
            c0, c1 = max(0, cx0 - pad), min(cw, cx1 + pad)
            box = (slice(r0, r1), slice(c0, c1))
            person = np.ascontiguousarray(self._person[box])
            planes = frame.y[2 * r0 : 2 * r1, 2 * c0 : 2 * c1], frame.u[box], frame.v[box]
            alpha, _ = self.matte(*planes, person, box, grey)
            garment_c = garment_c.copy()
            np.minimum(garment_c[box], alpha, out=garment_c[box])
        # The chroma planes (half size, texture and frame alike): the same map, its offset halved.
        half = to_frame.copy()
        half[:, 2] = half[:, 2] / 2 - (cx0, cy0)
        g_c = np.ascontiguousarray(garment_c[cy0:cy1, cx0:cx1])
        y = frame.y[2 * cy0 : 2 * cy1, 2 * cx0 : 2 * cx1]
        h, w = y.shape
        garment = cv2.resize(g_c, (w, h), interpolation=cv2.INTER_LINEAR)
        weight = float(garment.sum())
        source = y.astype(np.float32)
        # The garment's mean luma: one pass, no temporary, no BLAS (OpenBLAS's dot of a box
        # this size wakes its threads beside the encoder's).
        dot = float(np.einsum("ij,ij->", source, garment))
        mean = dot / weight if weight > 1 else float(y.mean())
        warp = {"flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_REFLECT}
        box = to_frame.copy()
        box[:, 2] -= (2 * cx0, 2 * cy0)
        new_y = cv2.warpAffine(ty, box, (w, h), **warp).astype(np.float32)
        new_y = _shaded(new_y, source, mean, LIGHT_BLUR * width)
        new_y = np.clip(new_y + 0.5, 0, 255).astype(np.uint8)
        np.copyto(y, cv2.blendLinear(new_y, y, garment, 1.0 - garment))
        u, v = frame.u[cy0:cy1, cx0:cx1], frame.v[cy0:cy1, cx0:cx1]
        keep = 1.0 - g_c
        new_u = cv2.warpAffine(tu, half, (cx1 - cx0, cy1 - cy0), **warp)
        new_v = cv2.warpAffine(tv, half, (cx1 - cx0, cy1 - cy0), **warp)
        np.copyto(u, cv2.blendLinear(new_u, np.ascontiguousarray(u), g_c, keep))
        np.copyto(v, cv2.blendLinear(new_v, np.ascontiguousarray(v), g_c, keep))
        return True


def _shaded(texture: np.ndarray, source: np.ndarray, mean: float, blur: float) -> np.ndarray:
    """The texture's luma (float, limited range; changed in place) lit as the source's garment is: multiplied by
    the source's light (its luma blurred over ``blur`` pixels, over the garment's ``mean``,
    kept within ``LIGHT_RANGE``: light and shadow, not a white shirt under a dark jacket), plus
    ``SHADING`` of its folds (the luma off that light, softly limited to ``FOLD`` levels)."""
    # In place, two buffers the size of the garment's box besides the inputs (at 1080p the
    # temporaries of the plain expressions were ~10 MB of the worker's peak).
    light = _blurred(source, max(1.0, blur))
    folds = source - light
    gain = light  # the light's own buffer: over the garment's mean, limited
    gain -= 16.0
    gain *= 1.0 / max(mean - 16.0, 8.0)
    np.clip(gain, *LIGHT_RANGE, out=gain)
    folds *= 1.0 / FOLD
    np.tanh(folds, out=folds)
    folds *= FOLD * SHADING
    out = texture  # the caller's warped texture, made for this call
    out -= 16.0
    out *= gain
    out += 16.0
    out += folds
    return out


def _blurred(plane: np.ndarray, sigma: float) -> np.ndarray:
    """``plane`` (float32) under a Gaussian blur of ``sigma`` pixels, worked out at a smaller
    size where the blur is wide (a step of a quarter of ``sigma``, at most 8) and enlarged
    back: within half a level of the full-size blur, at a twentieth of its cost."""
    step = int(np.clip(sigma // 4, 1, 8))
    if step == 1:
        return cv2.GaussianBlur(plane, (0, 0), sigma)
    h, w = plane.shape
    small = cv2.resize(plane, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / step)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def pinned(anchor: np.ndarray | None, pins: np.ndarray) -> np.ndarray:
    """Where the texture is pinned (shoulders, hips): ``anchor`` kept until a shoulder moved
    more than :data:`HOLD` of the shoulder width from it, else ``pins`` — landmark jitter of
    a person standing still would make a fine texture shimmer."""
    if anchor is not None:
        width = float(np.hypot(*(pins[1] - pins[0])))
        if float(np.abs(pins[:2] - anchor[:2]).max()) < max(0.75, HOLD * width):
            return anchor
    return pins.copy()


def upright(points: np.ndarray) -> bool:
    """Whether a skeleton can wear a garment as drawn: its hips below its shoulders (the
    torso within ``UPRIGHT`` degrees of straight down the picture) and its nose above them.
    The pose model sometimes lays a person standing in a dark street on their side."""
    top = (points[bp.LEFT_SHOULDER] + points[bp.RIGHT_SHOULDER]) / 2
    down = (points[bp.LEFT_HIP] + points[bp.RIGHT_HIP]) / 2 - top
    length = float(np.hypot(*down))
    if length < 1e-6 or float(down[1]) < np.cos(np.radians(UPRIGHT)) * length:
        return False
    return bool(points[bp.NOSE][1] < top[1])


def upper_body(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The band of the frame between the shoulder line (a little above it) and the hip line,
    less a disc around the head: where an upper-body garment can be, as a 0..1 mask."""
    ls, rs = points[bp.LEFT_SHOULDER], points[bp.RIGHT_SHOULDER]
    shoulder_width = float(np.hypot(*(ls - rs)))
    h, w = shape
    if shoulder_width < 2:
        return np.zeros(shape, np.float32)
    top = (ls + rs) / 2
    down = (points[bp.LEFT_HIP] + points[bp.RIGHT_HIP]) / 2 - top
    length = max(float(np.hypot(*down)), 1e-6)
    unit = down / length
    # Hips guessed too high (often when they are out of the frame): a torso's usual length.
    length = max(length, MIN_TORSO * shoulder_width)
    # The band as a polygon: the neckline and the hem, each drawn far past the frame's sides.
    across = np.float32([-unit[1], unit[0]]) * (h + w)
    neck = top - unit * NECKLINE * shoulder_width
    hem = top + unit * (length + HEM * shoulder_width)
    band = np.zeros(shape, np.uint8)
    corners = np.array([neck - across, neck + across, hem + across, hem - across])
    cv2.fillPoly(band, [np.round(corners).astype(np.int32)], 1)
    head = np.round(points[bp.NOSE]).astype(int)
    head_radius = HEAD * float(np.hypot(*(points[bp.LEFT_EAR] - points[bp.RIGHT_EAR])))
    cv2.circle(band, (int(head[0]), int(head[1])), round(head_radius), 0, -1)
    return band.astype(np.float32)


def alone(rgb: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """A crop (``rgb``) with all but the person on it (``outline``: their mask, any size)
    and a margin around them greyed out: the pose model follows the most prominent person
    in a picture, and a neighbour on the crop may be more prominent than they are."""
    h, w = rgb.shape[:2]
    near = cv2.resize((outline > 0.3).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    radius = max(1, round(ALONE_MARGIN * w))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    keep = cv2.GaussianBlur(cv2.dilate(near, disc).astype(np.float32), (0, 0), radius / 2)
    grey = np.float32(cv2.mean(rgb)[:3])
    out = rgb.astype(np.float32) * keep[..., None] + grey * (1.0 - keep[..., None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def torso_hull(points: np.ndarray, shape: tuple[int, int], grow: float = TORSO_GROW) -> np.ndarray:
    """The convex hull of the shoulders, elbows, wrists and hips, grown by ``grow`` of the
    shoulder width: this person's upper body and arms, not a neighbour's beside them."""
    joints = [bp.LEFT_SHOULDER, bp.RIGHT_SHOULDER, bp.LEFT_ELBOW, bp.RIGHT_ELBOW,
              bp.LEFT_WRIST, bp.RIGHT_WRIST, bp.LEFT_HIP, bp.RIGHT_HIP]  # fmt: skip
    hull = np.zeros(shape, np.uint8)
    corners = cv2.convexHull(np.round(points[joints]).astype(np.int32))
    cv2.fillConvexPoly(hull, corners, 1)
    width = float(np.hypot(*(points[bp.LEFT_SHOULDER] - points[bp.RIGHT_SHOULDER])))
    radius = max(1, round(grow * width))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(hull, disc).astype(np.float32)


def delit(rgb: np.ndarray, blur: float = 0.12) -> np.ndarray:
    """The texture with the reference's own light taken out: its luma divided by its luma
    blurred over ``blur`` of its side (what is larger than that: light, or a wearer's folds)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) + 1.0
    broad = cv2.GaussianBlur(grey, (0, 0), blur * max(rgb.shape[:2]))
    gain = float(grey.mean()) / broad
    return np.clip(rgb.astype(np.float32) * gain[..., None] + 0.5, 0, 255).astype(np.uint8)


def shirt_front(y: np.ndarray, garment: np.ndarray) -> np.ndarray:
    """A second, much lighter garment showing at the neckline (a white shirt under a dark
    jacket), 0..1, same shape as ``garment`` (``y``: the luma at its size): the garment's
    luma split in two (Otsu), and where the lighter part is ``SHIRT_CONTRAST`` levels or more
    above the rest, at most ``MAX_SHIRT`` of the garment, and mostly one piece in the middle
    of its upper part, that piece. It keeps its own look: a new jacket over the same shirt
    (dressing it too lays the new garment's colour over a white shirt's light: a pale V
    that reads as bare skin). Bold light stripes or a print are many pieces: not it."""
    inside = garment > 0.5
    none = np.zeros(garment.shape, np.float32)
    area = int(inside.sum())
    if area < 64:
        return none
    values = y[inside].reshape(-1, 1)
    split, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = inside & (y > split)
    lit, dark = values[values > split], values[values <= split]
    if not lit.size or not dark.size or float(lit.mean()) - float(dark.mean()) < SHIRT_CONTRAST:
        return none
    if int(light.sum()) > MAX_SHIRT * area:
        return none
    count, labels, stats, _ = cv2.connectedComponentsWithStats(light.astype(np.uint8), 8)
    if count < 2:
        return none
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    piece = stats[biggest]
    middle = piece[cv2.CC_STAT_LEFT] + piece[cv2.CC_STAT_WIDTH] / 2
    if (
        piece[cv2.CC_STAT_AREA] < 0.6 * light.sum()  # many pieces: stripes, a print
        or piece[cv2.CC_STAT_TOP] > rows[0] + 0.6 * (rows[-1] - rows[0])  # not up at the neck
        or abs(middle - (cols[0] + cols[-1]) / 2) > 0.25 * (cols[-1] - cols[0])  # off-centre
    ):
        return none
    front = (labels == biggest).astype(np.float32)
    return cv2.GaussianBlur(cv2.dilate(front, np.ones((3, 3), np.uint8)), (5, 5), 0)


def hand_mask(
    points: np.ndarray,
    visibility: np.ndarray,
    shape: tuple[int, int],
    skin: np.ndarray | None = None,
) -> np.ndarray:
    """Discs over the hands the pose model sees: a hand in front of the body (holding a glass,
    resting on the chest) stays as it is. The pose model also guesses hands it cannot see
    (below the frame, behind the body), often on the chest: with ``skin`` (the skin mask,
    same shape), a hand counts only where at least ``HAND_SKIN`` of its disc is skin-coloured,
    and a disc is never wider than ``MAX_HAND`` of the shoulder width."""
    hands = np.zeros(shape, np.uint8)
    shoulders = float(np.hypot(*(points[bp.LEFT_SHOULDER] - points[bp.RIGHT_SHOULDER])))
    for wrist, knuckles in ((bp.LEFT_WRIST, bp.LEFT_INDEX), (bp.RIGHT_WRIST, bp.RIGHT_INDEX)):
        if min(visibility[wrist], visibility[knuckles]) < 0.5:
            continue
        centre = (points[wrist] + points[knuckles]) / 2
        radius = HAND * float(np.hypot(*(points[knuckles] - points[wrist])))
        if shoulders > 2:  # the shoulders seen
            radius = min(radius, MAX_HAND * shoulders)
        radius = max(1, round(radius))
        x, y = (int(c) for c in np.round(centre))
        if skin is not None:
            disc = np.zeros(shape, np.uint8)
            cv2.circle(disc, (x, y), radius, 1, -1)
            area = int(disc.sum())
            if not area or float(skin[disc > 0].mean()) < HAND_SKIN:
                continue  # no hand there to keep: a guess
        cv2.circle(hands, (x, y), radius, 1, -1)
    return hands.astype(np.float32)


def skin_mask(u: np.ndarray, v: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where the chroma is skin: close to the face's own colour (sampled under the eyes, around
    the nose), or in a common skin range when the face is outside the frame."""
    h, w = u.shape
    nose = np.round(points[bp.NOSE]).astype(int)
    radius = max(1, round(float(np.hypot(*(points[bp.LEFT_EAR] - points[bp.RIGHT_EAR]))) * 0.12))
    x0, x1 = max(0, nose[0] - radius), min(w, nose[0] + radius + 1)
    y0, y1 = max(0, nose[1] - radius), min(h, nose[1] + radius + 1)
    uf, vf = u.astype(np.float32), v.astype(np.float32)
    if x1 - x0 > 1 and y1 - y0 > 1:
        cb, cr = float(np.median(u[y0:y1, x0:x1])), float(np.median(v[y0:y1, x0:x1]))
        near = ((uf - cb) ** 2 + (vf - cr) ** 2) < SKIN_CHROMA**2
    else:
        near = (uf > 77) & (uf < 127) & (vf > 137) & (vf < 170)
    return cv2.GaussianBlur(near.astype(np.float32), (5, 5), 0)
