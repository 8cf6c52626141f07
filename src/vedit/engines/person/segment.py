"""Person segmentation on the CPU with MediaPipe's selfie-segmentation models.

The models are the ``.tflite`` files that the ``mediapipe`` wheel ships
(Apache-2.0); they are read from a folder (``VEDIT_MODELS_DIR``) or found
inside the installed wheel without importing it (a normal install of
mediapipe drags in packages vedit does not want, so it is installed with
``--no-deps``). ``ai-edge-litert`` runs them. Nothing is downloaded at run time.

Pre- and post-processing are ours: the frame is resized to the model's input
(256x144 for landscape frames, 256x256 otherwise), the mask is resized back,
smoothed over time (no flicker) and feathered at the edges.

The model costs ~4 ms a 720p frame; an editor may run it on every other frame
and, in between, carry the last mask along the person's own motion
(:class:`Motion`: the median optical flow of corners inside the person, at the
model's size; :meth:`PersonSegmenter.carried_half`). Where that motion is not
known (too few corners, a first frame) the model runs. :class:`Motion` also says
how far the person's corners strayed from their common motion (``spread``): where
they all moved as one (:func:`rigid`: a slide, a walk seen whole), a mask carried
along it is as good as a new one, and an editor may run the pose model less often.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from vedit.media.frames import yuv_to_rgb

MODELS = {
    "landscape": "selfie_segmentation/selfie_segmentation_landscape.tflite",
    "general": "selfie_segmentation/selfie_segmentation.tflite",
}


class ModelUnavailable(RuntimeError):
    """A model file or the runtime that runs it is not installed."""


def find_model(relative: str, models_dir: Path | None = None) -> Path:
    """The path of ``relative`` (e.g. ``selfie_segmentation/x.tflite``) in the models folder
    or in the installed ``mediapipe`` wheel's ``modules/``; mediapipe is not imported."""
    candidates = []
    if models_dir is not None:
        candidates += [models_dir / relative, models_dir / Path(relative).name]
    spec = importlib.util.find_spec("mediapipe")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidates.append(Path(root) / "modules" / relative)
    for path in candidates:
        if path.is_file():
            return path
    raise ModelUnavailable(
        f"model {relative} not found (looked in {', '.join(str(c) for c in candidates) or 'nothing'}); "
        "install it with: pip install --no-deps mediapipe==0.10.21"
    )


def interpreter(path: Path, threads: int) -> object:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - a dependency of vedit
        raise ModelUnavailable(f"ai-edge-litert is not installed: {exc}") from exc
    from vedit.engines.quiet import native_chatter_dropped

    with native_chatter_dropped():  # "INFO: Created TensorFlow Lite XNNPACK delegate…"
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


class PersonSegmenter:
    """Person masks for the frames of one video (``width`` x ``height``), stable over time.

    ``smoothing`` is the weight of each new mask in the running one; ``feather``
    the Gaussian radius of the edge, as a share of the frame's short side.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        models_dir: Path | None = None,
        threads: int = 1,
        smoothing: float = 0.5,
        feather: float = 0.006,
    ) -> None:
        kind = "landscape" if width > height * 1.2 else "general"
        self._model = interpreter(find_model(MODELS[kind], models_dir), threads)
        inp = self._model.get_input_details()[0]  # type: ignore[attr-defined]
        self._input_index = inp["index"]
        self._input_h, self._input_w = int(inp["shape"][1]), int(inp["shape"][2])
        self._output_index = self._model.get_output_details()[0]["index"]  # type: ignore[attr-defined]
        self.width, self.height = width, height
        self.smoothing = smoothing
        radius = max(1, round(min(width, height) * feather / 2))  # applied at half size
        self._blur = 2 * radius + 1
        self._running: np.ndarray | None = None
        self._carried = False  # the last mask was carried (alternate_half), not the model's

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (width, height): frames of this size skip a resize."""
        return self._input_w, self._input_h

    def raw(self, rgb: np.ndarray) -> np.ndarray:
        """The model's person probability at its own resolution (float32, 0..1)."""
        x = rgb
        if rgb.shape[:2] != (self._input_h, self._input_w):
            x = cv2.resize(rgb, (self._input_w, self._input_h), interpolation=cv2.INTER_AREA)
        self._model.set_tensor(self._input_index, (x.astype(np.float32) / 255.0)[None])  # type: ignore[attr-defined]
        self._model.invoke()  # type: ignore[attr-defined]
        return self._model.get_tensor(self._output_index)[0, :, :, 0].copy()  # type: ignore[attr-defined]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The person mask of the next frame: float32 ``height`` x ``width``, 0..1, feathered."""
        half = self.half_mask(rgb)
        return cv2.resize(half, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def running_half(self, rgb: np.ndarray) -> np.ndarray:
        """The next frame's selfie mask at half size (yuv420p's chroma planes), smoothed over
        time but not feathered: float32 0..1."""
        prob = self.raw(rgb)
        if self._running is None:
            self._running = prob
        else:
            self._running = self._running + self.smoothing * (prob - self._running)
        size = (self.width // 2, self.height // 2)
        return cv2.resize(self._running, size, interpolation=cv2.INTER_LINEAR)

    def alternate_half(
        self, small: np.ndarray, matrix: str, moved: tuple[float, float] | None
    ) -> np.ndarray:
        """The next frame's mask at half size: the model's (on ``small``, the frame as Y, Cb,
        Cr at the model's size, in ``matrix``) on every other frame, and in between the last
        one carried along ``moved`` (the person's motion since, model pixels); the model
        runs wherever the motion is not known (None)."""
        if self._carried or moved is None:
            self._carried = False
            return self.running_half(yuv_to_rgb(small, matrix))
        self._carried = True
        return self.carried_half(*moved)

    def carried_half(self, dx: float, dy: float) -> np.ndarray:
        """The running mask moved by ``dx``, ``dy`` (pixels at the model's size: the person's
        motion since the last frame), at half size as :meth:`running_half` gives it: the mask
        of a frame the model does not read."""
        if self._running is None:
            raise RuntimeError("no mask to carry: run the model first")
        if dx or dy:
            shift = np.float32([[1, 0, dx], [0, 1, dy]])
            size = (self._running.shape[1], self._running.shape[0])
            self._running = cv2.warpAffine(
                self._running, shift, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        size = (self.width // 2, self.height // 2)
        return cv2.resize(self._running, size, interpolation=cv2.INTER_LINEAR)

    def feathered(
        self, half: np.ndarray, also: np.ndarray | None = None, within: np.ndarray | None = None
    ) -> np.ndarray:
        """``half`` (a :meth:`running_half` mask) merged and feathered.

        ``also``: another person mask at half size (e.g. the pose model's), merged in
        (pixel-wise maximum) before the edge is feathered; ``within``: a half-size weight
        (0..1) that this model's own mask is multiplied by first (e.g. "near the body the
        pose model found", which drops look-alike objects elsewhere).
        """
        if within is not None:
            half = half * within
        if also is not None:
            half = np.maximum(half, also)
        return cv2.GaussianBlur(half, (self._blur, self._blur), 0)

    def half_mask(
        self, rgb: np.ndarray, also: np.ndarray | None = None, within: np.ndarray | None = None
    ) -> np.ndarray:
        """The next frame's mask at half size, merged and feathered (see :meth:`feathered`;
        editors upscale the part they need)."""
        return self.feathered(self.running_half(rgb), also, within)


class Motion:
    """How far the background and the person moved since the last frame, in the pixels of
    the (small) grey frames given: the median optical flow (pyramidal Lucas-Kanade) of
    corners of the last frame outside its person mask (the camera's motion) and inside it
    (the person's own, camera included). One flow call for both."""

    CORNERS = 80  # corners looked for outside the person (the median of 80 is as steady)
    PERSON_CORNERS = 60  # ... and inside
    MIN_POINTS = 8  # fewer corners tracked: the motion is not known
    SPREAD_AT = 0.9  # the share of the person's corners whose stray the spread bounds

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        # How far the person's corners strayed from their common motion on the last call
        # (model pixels; see __call__), None where it is not known.
        self.spread: float | None = None

    def __call__(
        self, grey: np.ndarray, behind: np.ndarray
    ) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        """The motion (dx, dy) of the background and of the person from the last frame to
        ``grey`` (uint8), each None where it is not known; ``behind``: the last frame's
        "not the person" weight (0..1) at ``grey``'s size."""
        previous, self._previous = self._previous, grey
        self.spread = None
        if previous is None or previous.shape != grey.shape:
            return None, None
        found = []
        for where, count, gap in (
            (behind > 0.9, self.CORNERS, 4),
            (behind < 0.1, self.PERSON_CORNERS, 3),
        ):
            corners = cv2.goodFeaturesToTrack(previous, count, 0.01, gap, mask=where.view(np.uint8))
            found.append(np.zeros((0, 1, 2), np.float32) if corners is None else corners)
        points = np.concatenate(found)
        if len(points) < self.MIN_POINTS:
            return None, None
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            previous, grey, points, None, winSize=(15, 15), maxLevel=2
        )
        flow, ok = (moved - points)[:, 0], status[:, 0] == 1
        split = len(found[0])
        out: list[tuple[float, float] | None] = []
        for part, good in ((flow[:split], ok[:split]), (flow[split:], ok[split:])):
            if good.sum() < self.MIN_POINTS:
                out.append(None)
            else:
                dx, dy = np.median(part[good], axis=0)
                out.append((float(dx), float(dy)))
        if out[1] is not None:
            # The person moved as one (a walk, a slide) or in parts (a waving arm, a turn):
            # how far their corners' own motion lies from the median, at SPREAD_AT of them.
            person = flow[split:][ok[split:]] - np.float32(out[1])
            self.spread = float(np.quantile(np.abs(person).max(axis=1), self.SPREAD_AT))
        return out[0], out[1]


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """How well two person masks of one frame agree: the intersection over the union of
    their halves above 0.5 (0 when both are empty)."""
    x, y = a > 0.5, b > 0.5
    union = int(np.count_nonzero(x | y))
    return int(np.count_nonzero(x & y)) / union if union else 0.0


RIGID = 0.25  # model pixels (1.25 luma pixels of a 1280-wide frame): see rigid


def rigid(spread: float | None) -> bool:
    """Whether a person moved as one since the last frame (``spread``: :attr:`Motion.spread`):
    their corners all moved within :data:`RIGID` of their common motion, so a mask of theirs
    carried along it is as good as a new one (a slide, a walk seen whole; not a waving arm
    or a turning head). Unknown motion is not rigid."""
    return spread is not None and spread < RIGID
