"""Measures of a video edit's look, shared by the tests and the benchmarks (issue 20's measures).

The painted styles': :func:`flicker`, :func:`detail`, :func:`gradient`. The background
edit's, against a ground-truth matte (a person composited along a known outline,
``mediagen.person_scene``): :func:`matte_edge_error` (how far the editor's alpha is from
the truth in a band around the true outline) and :func:`halo` (how much of the old
background is left just outside it, read on the output alone). The clothing edit's, on
real footage against the same footage passed through unedited (item 3's measures):
:func:`changed_region` (what the edit changed: the garment, if it is right),
:func:`lowpass_luma_correlation` (whether the source's shading is kept inside it) and
:func:`new_skin` (whether skin appeared there that the source did not have).
"""

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


def edge_band(truth: np.ndarray, reach: int) -> np.ndarray:
    """The pixels within ``reach`` pixels of the true outline, either side (bool): ``truth``
    is the true alpha (bool or 0..1; the outline is where it crosses 0.5)."""
    inside = (np.asarray(truth) > 0.5).astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    away = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    return np.where(inside > 0, depth, away) <= reach


def matte_edge_error(alpha: np.ndarray, truth: np.ndarray, reach: int = 8) -> float:
    """The mean absolute alpha error within ``reach`` pixels of the true outline: 0 is a
    perfect matte; a matte whose edge lies ``d`` pixels off (``d`` < ``reach``) scores
    about ``d / (2 reach)``, a soft edge of width ``w`` about ``w / (8 reach)``. ``alpha``
    and ``truth``: the estimated and the true alpha, same size (0..1)."""
    band = edge_band(truth, reach)
    return float(np.abs(alpha.astype(np.float32) - np.asarray(truth, np.float32))[band].mean())


def halo(
    output: np.ndarray, background: np.ndarray, truth: np.ndarray, near: int = 1, far: int = 5
) -> float:
    """The mean colour distance (RGB, Euclidean, levels) of ``output`` from the new
    ``background`` (as the edit placed it) between ``near`` and ``far`` pixels outside the
    true outline: there the output should be the new background alone, and what is left of
    the old one (or of a blurred edge) is a halo. ``truth``: the true alpha (bool or 0..1)."""
    outside = (np.asarray(truth) <= 0.5).astype(np.uint8)
    away = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
    ring = (away > near) & (away <= far)
    diff = output.astype(np.float32) - background.astype(np.float32)
    return float(np.sqrt((diff * diff).sum(axis=2))[ring].mean())


# --- the clothing edit (issue 20, item 3) -----------------------------------------------------

CHANGED = 30.0  # RGB distance (levels) past which a pixel counts as changed by the edit
# (the encoder's own: on bikes' frames that no garment reached, ~10 pixels of 1.2 million pass it)


def changed_region(
    source: np.ndarray, output: np.ndarray, threshold: float = CHANGED
) -> np.ndarray:
    """The pixels whose colour the edit changed (bool): the Euclidean RGB distance between
    ``source`` and ``output`` (same size, RGB) over ``threshold`` levels. Its mean is the
    changed share of the frame (issue 20: 2-35 % on a close shot, the garment)."""
    diff = output.astype(np.float32) - source.astype(np.float32)
    return np.sqrt((diff * diff).sum(axis=2)) > threshold


def lowpass_luma_correlation(
    source: np.ndarray, output: np.ndarray, region: np.ndarray, sigma: float | None = None
) -> float:
    """The Pearson correlation, inside ``region`` (bool), between the source's and the
    output's luma, each blurred by a Gaussian of ``sigma`` pixels (default 1/60 of the
    short side): whether the output keeps the source's light and folds at a scale above the
    garment's fabric texture (issue 20: >= 0.35). Read only where the blur does not reach
    outside the region (it is eroded by 2 ``sigma``): next to a region's edge the blurred
    luma is mostly what lies beyond it (a white shirt left as it was beside a dark jacket
    that was dressed), which says nothing about the shading inside. NaN where under 16
    pixels remain or either side is flat in them."""
    sigma = sigma if sigma is not None else min(source.shape[:2]) / 60
    reach = max(1, round(2 * sigma))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    region = cv2.erode(region.astype(np.uint8), disc) > 0
    if int(region.sum()) < 16:
        return float("nan")
    lows = [
        cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), sigma)
        for rgb in (source, output)
    ]
    a, b = (low[region].astype(np.float64) for low in lows)
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 0 else float("nan")


def skin(rgb: np.ndarray) -> np.ndarray:
    """Skin-coloured pixels (bool) by Chai and Ngan's YCrCb rule (Cr 133-173, Cb 77-127),
    whatever the luma: a rule for any skin, not one person's."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    return (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)


def new_skin(source: np.ndarray, output: np.ndarray, region: np.ndarray) -> float:
    """The share of ``region``'s pixels (bool; the changed region) that are skin-coloured in
    ``output`` and were not in ``source`` (:func:`skin`): skin the edit brought, e.g. from a
    reference photo of a person (issue 20: none). 0 where the region is empty."""
    count = int(region.sum())
    if count == 0:
        return 0.0
    brought = skin(output) & ~skin(source) & region
    return float(brought.sum()) / count
