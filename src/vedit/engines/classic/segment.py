"""Person segmentation on the CPU with MediaPipe's selfie-segmentation models.

The models are the ``.tflite`` files that the ``mediapipe`` wheel ships
(Apache-2.0); they are read from a folder (``VEDIT_MODELS_DIR``) or found
inside the installed wheel without importing it (a normal install of
mediapipe drags in packages vedit does not want, so it is installed with
``--no-deps``). ``ai-edge-litert`` runs them. Nothing is downloaded at run time.

Pre- and post-processing are ours: the frame is resized to the model's input
(256x144 for landscape frames, 256x256 otherwise), the mask is resized back,
smoothed over time (no flicker) and feathered at the edges.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

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


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """How well two person masks of one frame agree: the intersection over the union of
    their halves above 0.5 (0 when both are empty)."""
    x, y = a > 0.5, b > 0.5
    union = int(np.count_nonzero(x | y))
    return int(np.count_nonzero(x & y)) / union if union else 0.0
