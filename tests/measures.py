"""Measures of a video edit's look, shared by the tests and the benchmarks (issue 20's measures)."""

from __future__ import annotations

import cv2
import numpy as np


def flicker(frames: list[np.ndarray]) -> float:
    """The mean frame-to-frame change (levels)."""
    pairs = zip(frames, frames[1:], strict=False)
    return float(np.mean([np.abs(b.astype(int) - a).mean() for a, b in pairs]))


def detail(frames: list[np.ndarray]) -> float:
    """The mean absolute luma gradient (levels a pixel): how much detail there is to move."""
    total = 0.0
    for frame in frames:
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
        total += np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)).mean()
        total += np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1)).mean()
    return total / len(frames)


def gradient(rgb: np.ndarray) -> np.ndarray:
    """The luma's gradient magnitude at a slightly blurred scale: the scene's structure."""
    g = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.5)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
