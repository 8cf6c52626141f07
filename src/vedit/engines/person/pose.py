"""Upper-body pose and a body mask on the CPU with MediaPipe's BlazePose models.

Two ``.tflite`` files from the ``mediapipe`` wheel (found like the selfie
models, see ``segment.py``): ``pose_detection`` finds a person and two
alignment points (hip centre, and a point that gives the body's size and
tilt); ``pose_landmark_full`` reads a square crop around them and gives 33
body landmarks, two alignment points for the next frame, and a person mask
of the crop. The pre- and post-processing are ours: letterboxing and SSD
anchors for the detector, the rotated crop, mapping landmarks and mask back
to the frame, tracking from frame to frame (the detector runs again only
when the person is lost), and smoothing over time (a 1-euro filter on the
landmarks, a running mean on the mask).

:class:`PoseAhead` runs the tracker on a thread of its own beside an editor's
other work (the model's ~14 ms a 720p frame off the frame's critical path):
started on one frame, its result taken on the next, always at the same frame,
so the output does not depend on the threads' timing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vedit.engines.person.segment import find_model, interpreter

DETECTOR = "pose_detection/pose_detection.tflite"
LANDMARKER = "pose_landmark/pose_landmark_full.tflite"

# Landmark indices (BlazePose topology).
NOSE, LEFT_EAR, RIGHT_EAR = 0, 7, 8
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_ELBOW, RIGHT_ELBOW = 13, 14
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_INDEX, RIGHT_INDEX = 19, 20
LEFT_HIP, RIGHT_HIP = 23, 24
_ALIGN_CENTRE, _ALIGN_SCALE = 33, 34  # the extra points that place the next crop

_DETECT_SIZE = 224
_LANDMARK_SIZE = 256
_MIN_DETECTION = 0.5  # detector score to accept a person
_MIN_PRESENCE = 0.5  # landmark model's "a person is in this crop"
THREADS = 2  # the landmark model is an edit's costliest step: two threads cut its wall time
_CROP_SCALE = 1.25  # the crop around the alignment points, as MediaPipe draws it


def _anchors() -> np.ndarray:
    """Centres of the detector's 2254 SSD anchors, in 0..1 of its 224x224 input.

    Strides 8, 16, 32, 32, 32 with two anchors per layer and cell; layers of the
    same stride share a feature map, so that map has two anchors per layer.
    """
    centres = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        side = _DETECT_SIZE // stride
        ys, xs = np.mgrid[0:side, 0:side]
        cells = np.stack([(xs + 0.5) / side, (ys + 0.5) / side], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


class OneEuro:
    """The 1-euro filter (Casiez et al., 2012) over arrays of points, one step per frame.

    Still points are smoothed hard (cut-off ``min_cutoff`` cycles a frame), moving ones
    lightly (the cut-off rises by ``beta`` per pixel a frame of speed), so landmarks
    neither jitter when a person stands still nor trail when they move.
    """

    def __init__(
        self, min_cutoff: float = 0.005, beta: float = 0.03, d_cutoff: float = 0.05
    ) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._x is None or self._dx is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x
        dx = x - self._x
        self._dx = self._dx + self._alpha(self.d_cutoff) * (dx - self._dx)
        speed = np.hypot(self._dx[..., 0], self._dx[..., 1])[..., None]
        a = self._alpha(self.min_cutoff + self.beta * speed)
        self._x = (self._x + a * dx).astype(np.float32)
        return self._x

    def reset(self) -> None:
        self._x = self._dx = None


def working_size(width: int, height: int, side: int = 640) -> tuple[int, int]:
    """The size of the frame copy the pose model reads: long side at most ``side``; the
    landmark model sees a 256-pixel crop of it anyway."""
    scale = min(1.0, side / max(width, height))
    return round(width * scale), round(height * scale)


@dataclass(frozen=True)
class Pose:
    """One frame's pose: landmarks in frame pixels, and the person mask."""

    points: np.ndarray  # (33, 2) float32 x, y in pixels
    visibility: np.ndarray  # (33,) 0..1: how likely each point is seen, not hidden or outside
    mask: np.ndarray  # (height, width) float32 0..1

    def visible(self, *indices: int, threshold: float = 0.5) -> bool:
        return bool(all(self.visibility[i] >= threshold for i in indices))


def _crop_corners(centre: np.ndarray, top: np.ndarray) -> np.ndarray:
    """The rotated square crop MediaPipe reads for the landmarks: centred on ``centre``, its
    up axis toward ``top``, sides 2.5 x their distance. Corners TL, TR, BL in pixels."""
    up = top - centre
    length = float(np.hypot(*up))
    up = up / max(length, 1e-6)
    right = np.array([-up[1], up[0]], dtype=np.float32)
    half = length * _CROP_SCALE  # half of 2 * length * scale
    return np.stack(
        [
            centre - right * half + up * half,
            centre + right * half + up * half,
            centre - right * half - up * half,
        ]
    ).astype(np.float32)


class PoseTracker:
    """The pose of the main person in each frame of one video (``width`` x ``height``)."""

    def __init__(
        self,
        width: int,
        height: int,
        *,
        models_dir: Path | None = None,
        threads: int = THREADS,
        smoothing: float = 0.5,
    ) -> None:
        self.width, self.height = width, height
        self._detector = interpreter(find_model(DETECTOR, models_dir), threads)
        self._landmarker = interpreter(find_model(LANDMARKER, models_dir), threads)
        self._anchors = _anchors()
        self.smoothing = smoothing
        self._align: tuple[np.ndarray, np.ndarray] | None = None  # where to crop next
        self._filter = OneEuro()
        self._mask: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the person followed so far: the next frame is looked at afresh, detector
        first, with nothing smoothed from before."""
        self._align = None
        self._filter.reset()
        self._mask = None

    # --- the detector -------------------------------------------------------------

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The best person's alignment points (hip centre, size/tilt point) in pixels, or None."""
        h, w = rgb.shape[:2]
        scale = _DETECT_SIZE / max(h, w)
        nw, nh = round(w * scale), round(h * scale)
        px, py = (_DETECT_SIZE - nw) // 2, (_DETECT_SIZE - nh) // 2
        board = np.zeros((_DETECT_SIZE, _DETECT_SIZE, 3), np.float32)
        small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        board[py : py + nh, px : px + nw] = small.astype(np.float32) / 127.5 - 1.0
        det = self._detector
        det.set_tensor(det.get_input_details()[0]["index"], board[None])  # type: ignore[attr-defined]
        det.invoke()  # type: ignore[attr-defined]
        outputs = {o["name"]: det.get_tensor(o["index"])[0] for o in det.get_output_details()}  # type: ignore[attr-defined]
        boxes, scores = outputs["Identity"], outputs["Identity_1"][:, 0]
        best = int(np.argmax(scores))
        if 1.0 / (1.0 + np.exp(-np.clip(scores[best], -100, 100))) < _MIN_DETECTION:
            return None
        raw = boxes[best]
        anchor = self._anchors[best]
        points = raw[4:8].reshape(2, 2) / _DETECT_SIZE + anchor  # 0..1 of the letterboxed input
        points = (points * _DETECT_SIZE - [px, py]) / scale
        return points[0].astype(np.float32), points[1].astype(np.float32)

    # --- the landmarks ------------------------------------------------------------

    def _landmarks(
        self, rgb: np.ndarray, centre: np.ndarray, top: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        corners = _crop_corners(centre, top)
        s = float(_LANDMARK_SIZE)
        to_crop = cv2.getAffineTransform(corners, np.float32([[0, 0], [s, 0], [0, s]]))
        crop = cv2.warpAffine(
            rgb, to_crop, (_LANDMARK_SIZE, _LANDMARK_SIZE), flags=cv2.INTER_LINEAR
        )
        lm = self._landmarker
        lm.set_tensor(lm.get_input_details()[0]["index"], (crop.astype(np.float32) / 255.0)[None])  # type: ignore[attr-defined]
        lm.invoke()  # type: ignore[attr-defined]
        out = {o["name"]: lm.get_tensor(o["index"])[0] for o in lm.get_output_details()}  # type: ignore[attr-defined]
        raw = out["Identity"].reshape(39, 5)
        presence = float(out["Identity_1"][0])
        to_frame = cv2.invertAffineTransform(to_crop)
        xy = raw[:, :2] @ to_frame[:, :2].T + to_frame[:, 2]
        visibility = 1.0 / (1.0 + np.exp(-np.clip(raw[:, 3], -50, 50)))
        logits = out["Identity_2"][:, :, 0]
        crop_mask = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
        mask = cv2.warpAffine(
            crop_mask.astype(np.float32),
            to_frame,
            (self.width, self.height),
            flags=cv2.INTER_LINEAR,
        )
        return xy.astype(np.float32), visibility.astype(np.float32), mask, presence

    def __call__(self, rgb: np.ndarray) -> Pose | None:
        """The next frame's pose, or None when there is no person (the mask is then empty)."""
        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"frame is {rgb.shape[1]}x{rgb.shape[0]}, tracker is {self.width}x{self.height}"
            )
        found = None
        for attempt in ("track", "detect"):
            if attempt == "track" and self._align is None:
                continue
            align = self._align if attempt == "track" else self.detect(rgb)
            if align is None:
                break
            xy, visibility, mask, presence = self._landmarks(rgb, *align)
            if presence >= _MIN_PRESENCE:
                found = (xy, visibility, mask)
                break
            self._align = None
        if found is None:
            self._align = None
            self._filter.reset()
            self._mask = None if self._mask is None else self._mask * (1.0 - self.smoothing)
            return None
        xy, visibility, mask = found
        xy = self._filter(xy)
        if self._mask is not None:
            mask = self._mask + self.smoothing * (mask - self._mask)
        self._mask = mask
        self._align = (xy[_ALIGN_CENTRE].copy(), xy[_ALIGN_SCALE].copy())
        return Pose(points=xy[:33].copy(), visibility=visibility[:33], mask=mask)


class PoseAhead:
    """A :class:`PoseTracker` run on a thread beside the caller: :meth:`start` on one frame,
    :meth:`result` (which waits for it) on a later one. ``context``: whatever the caller
    wants back with the pose (e.g. that frame's other masks)."""

    def __init__(self, tracker: PoseTracker) -> None:
        self.tracker = tracker
        self._thread: threading.Thread | None = None
        self._outcome: tuple[Pose | None, BaseException | None] = (None, None)
        self._context: object = None

    @property
    def pending(self) -> bool:
        """Whether a run was started and its result not yet taken."""
        return self._thread is not None

    def start(self, rgb: np.ndarray, context: object = None) -> None:
        """Run the tracker on ``rgb`` (the caller's own copy: it is read on the thread)."""
        if self._thread is not None:
            raise RuntimeError("the last pose run's result was not taken")

        def run() -> None:
            try:
                self._outcome = (self.tracker(rgb), None)
            except BaseException as exc:  # handed to the caller by result()
                self._outcome = (None, exc)

        self._context = context
        self._thread = threading.Thread(target=run, name="vedit-pose", daemon=True)
        self._thread.start()

    def result(self) -> tuple[Pose | None, object]:
        """The pose of the frame given to :meth:`start` (None: no person) and its context."""
        if self._thread is None:
            raise RuntimeError("no pose run was started")
        self._thread.join()
        self._thread = None
        (pose, error), self._outcome = self._outcome, (None, None)
        if error is not None:
            raise error
        return pose, self._context
