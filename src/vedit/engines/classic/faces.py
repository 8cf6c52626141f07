"""Faces in a frame: MediaPipe's short-range face detector (BlazeFace) under LiteRT.

The model (``face_detection/face_detection_short_range.tflite``, Apache-2.0) ships in the
``mediapipe`` wheel with the person models (``segment.find_model``). It reads a 128x128
picture (the frame letterboxed into a square) and answers 896 boxes, one for each of its
fixed anchors; here they are decoded, kept where the face score is at least
``MIN_SCORE``, and overlapping ones merged. It finds faces from about a twelfth of the
frame's short side up (a person within a few metres of the camera), not a crowd's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vedit.engines.person.segment import ModelUnavailable, find_model, interpreter

MODEL = "face_detection/face_detection_short_range.tflite"
SIDE = 128  # the model's input
MIN_SCORE = 0.6  # a face's score (0..1) from which it counts
OVERLAP = 0.3  # boxes overlapping more than this (intersection over union) are one face


@dataclass(frozen=True)
class Face:
    """A face's box in the frame's pixels (its left, top, width, height) and its score."""

    x: float
    y: float
    w: float
    h: float
    score: float


@functools.cache
def _anchors() -> np.ndarray:
    """The model's 896 anchor centres (x, y; 0..1): 2 a cell on a 16x16 grid, 6 on 8x8."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32)
        cells = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres)


class FaceDetector:
    """Finds faces in RGB frames of any size."""

    def __init__(self, models_dir: Path | None = None) -> None:
        self._model = interpreter(find_model(MODEL, models_dir), 1)
        self._input = self._model.get_input_details()[0]["index"]  # type: ignore[attr-defined]
        outputs = {o["name"]: o["index"] for o in self._model.get_output_details()}  # type: ignore[attr-defined]
        self._boxes, self._scores = outputs["regressors"], outputs["classificators"]

    def __call__(self, rgb: np.ndarray) -> list[Face]:
        """The faces in ``rgb``, the surest first."""
        h, w = rgb.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)  # letterboxed: the aspect kept
        square[:h, :w] = rgb
        small = cv2.resize(square, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        self._model.set_tensor(self._input, small[None].astype(np.float32) / 127.5 - 1.0)  # type: ignore[attr-defined]
        self._model.invoke()  # type: ignore[attr-defined]
        boxes = self._model.get_tensor(self._boxes)[0]  # type: ignore[attr-defined]
        logits = self._model.get_tensor(self._scores)[0, :, 0].astype(np.float64)  # type: ignore[attr-defined]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100, 100)))
        keep = np.flatnonzero(scores >= MIN_SCORE)
        if not len(keep):
            return []
        centre = boxes[keep, :2] / SIDE + _anchors()[keep]
        size = boxes[keep, 2:4] / SIDE
        corner = (centre - size / 2) * side
        found = [
            (float(s), (float(x), float(y), float(bw), float(bh)))
            for s, (x, y), (bw, bh) in zip(scores[keep], corner, size * side, strict=True)
        ]
        return [Face(*box, score) for score, box in _merged(found)]


Scored = tuple[float, tuple[float, float, float, float]]  # a score and its (left, top, w, h)


def _merged(found: list[Scored]) -> list[Scored]:
    """Greedy non-maximum suppression: the surest box of each overlapping group."""
    kept: list[Scored] = []
    for score, box in sorted(found, reverse=True):
        if all(_overlap(box, other) <= OVERLAP for _, other in kept):
            kept.append((score, box))
    return kept


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


@functools.cache
def face_detector(models_dir: Path | None = None) -> FaceDetector | None:
    """The process's face detector, loaded at its first use; None where the model or its
    runtime is not installed (faces are then painted with the rest)."""
    try:
        return FaceDetector(models_dir)
    except ModelUnavailable:
        return None
