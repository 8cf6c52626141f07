"""Colour transfer from a reference image, in the video's own YUV.

Two parts, each the statistically right tool for its channels:

- luma: histogram matching — the frame's brightness distribution is mapped
  onto the reference's through a 256-entry lookup table (one ``cv2.LUT``);
- chroma: the linear Monge-Kantorovich map (Pitié & Kokaram, 2007) that moves
  the frame's Cb/Cr Gaussian (mean and covariance) onto the reference's with
  the least change — Reinhard's statistics matching, with the correlation
  between the two chroma channels — applied at chroma resolution.

Both work on YUV 4:2:0 planes as decoded, so the edit adds no colour
conversion to the transcode. Statistics are taken on every n-th pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATS_SIDE = 96  # statistics are taken on planes shrunk to about this many pixels a side
_LEVELS = np.arange(256, dtype=np.float64)
# The luma curve's slope (output levels per input level, before ``strength``) is kept in these
# bounds wherever the source has pixels: steeper makes bands of a smooth gradient, flatter
# makes texture into flat blotches.
MAX_SLOPE = 2.0
MIN_SLOPE = 0.4


@dataclass(frozen=True)
class ColourStats:
    """Luma histogram (256,), chroma mean (2,) and chroma covariance (2, 2)."""

    luma_hist: np.ndarray
    chroma_mean: np.ndarray
    chroma_cov: np.ndarray

    @classmethod
    def of_planes(cls, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> ColourStats:
        """Statistics of a frame's planes (any sizes; they are shrunk first)."""
        ys, us, vs = (_shrink(p) for p in (y, u, v))
        hist = np.bincount(ys.reshape(-1), minlength=256).astype(np.float64)
        uv = np.stack([us.reshape(-1), vs.reshape(-1)], axis=1).astype(np.float64)
        return cls(hist / hist.sum(), *_mean_cov(uv))

    @classmethod
    def of_yuv_pixels(cls, yuv: np.ndarray) -> ColourStats:
        """Statistics of float Y, Cb, Cr pixels ``(..., 3)`` (the reference image)."""
        px = yuv.reshape(-1, 3)
        luma = np.clip(np.rint(px[:, 0]), 0, 255).astype(np.int64)
        hist = np.bincount(luma, minlength=256).astype(np.float64)
        return cls(hist / hist.sum(), *_mean_cov(px[:, 1:]))

    def blend(self, other: ColourStats, weight: float) -> ColourStats:
        """``self`` moved ``weight`` of the way toward ``other`` (temporal smoothing)."""
        return ColourStats(
            self.luma_hist + weight * (other.luma_hist - self.luma_hist),
            self.chroma_mean + weight * (other.chroma_mean - self.chroma_mean),
            self.chroma_cov + weight * (other.chroma_cov - self.chroma_cov),
        )


def _shrink(plane: np.ndarray) -> np.ndarray:
    """Every n-th pixel in both directions: plenty for statistics, and nearly free."""
    step = max(1, -(-max(plane.shape) // STATS_SIDE))
    return np.ascontiguousarray(plane[::step, ::step])


def _mean_cov(px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = px.mean(axis=0)
    centred = px - mean
    # einsum without BLAS: the same sums in the same order on every run.
    cov = np.einsum("ij,ik->jk", centred, centred, optimize=False) / max(1, len(px) - 1)
    return mean, cov + np.eye(2) * 2.0


def luma_lut(
    src: ColourStats,
    ref: ColourStats,
    strength: float,
    max_slope: float = MAX_SLOPE,
    min_slope: float = MIN_SLOPE,
) -> np.ndarray:
    """The uint8 lookup table that maps the source's luma histogram onto the reference's.

    Plain histogram matching is as steep as the two histograms make it: where the
    reference has more range than the source (a dark scene, a bright reference) one
    level of the source becomes ten or twenty, and a smooth gradient becomes bands;
    where the reference piles its pixels on a few levels, many of the source's become
    one, and texture becomes a flat blotch. So the mapping's slope is held within
    ``[min_slope, max_slope]`` at every level the source uses: the rise cut from a steep
    part is spread over the gentler levels the source's pixels sit on (weighted by how
    many do, as in contrast-limited equalisation), and the curve is placed so that the
    source's mean level lands where the plain match puts it. The result is the matched
    look as far as a curve without new contours allows.
    """
    src_cdf = np.cumsum(src.luma_hist)
    ref_cdf = np.cumsum(ref.luma_hist)
    # Each level goes to the reference level at the same quantile (centre of its bin).
    quantile = src_cdf - src.luma_hist / 2
    matched = np.interp(quantile, ref_cdf - ref.luma_hist / 2, _LEVELS)
    curve = _slope_limited(matched, src.luma_hist, max_slope, min_slope)
    out = strength * curve + (1.0 - strength) * _LEVELS
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _slope_limited(
    curve: np.ndarray, hist: np.ndarray, max_slope: float, min_slope: float
) -> np.ndarray:
    """``curve`` (256 levels) with its slope held within the bounds where ``hist`` has
    pixels, its total rise kept where it can be, and the histogram's mean level kept."""
    # The levels that matter: those the source uses, and a little around them.
    used = (
        np.convolve(hist, np.ones(5) / 5, mode="same")[1:]
        + np.convolve(hist, np.ones(5) / 5, mode="same")[:-1]
    )
    weight = used / max(float(used.sum()), 1e-12)
    slope = np.diff(curve)
    rise = float(slope.sum())
    for _ in range(8):  # a few rounds settle it: each moves less than the last
        slope = np.clip(slope, min_slope, max_slope)
        missing = rise - float(slope.sum())
        if abs(missing) < 0.5:
            break
        room = (max_slope - slope) if missing > 0 else (slope - min_slope)
        share = weight * (room > 1e-6)
        if share.sum() <= 1e-12:
            break
        slope = slope + missing * share / share.sum()
    slope = np.clip(slope, min_slope, max_slope)
    limited = np.concatenate([[0.0], np.cumsum(slope)])
    # Placed so that the source's mean level maps where the plain match maps it.
    hist_w = hist / max(float(hist.sum()), 1e-12)
    limited += float((hist_w * curve).sum()) - float((hist_w * limited).sum())
    return limited


def _sqrtm(m: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(m)
    return (vectors * np.sqrt(np.clip(values, 1e-9, None))) @ vectors.T


def chroma_matrix(
    src: ColourStats, ref: ColourStats, strength: float, max_gain: float = 3.0
) -> np.ndarray:
    """The 2x3 affine map (for ``cv2.transform``) taking the source's Cb/Cr toward the reference's."""
    s_half = _sqrtm(src.chroma_cov)
    s_half_inv = np.linalg.inv(s_half)
    t = s_half_inv @ _sqrtm(s_half @ ref.chroma_cov @ s_half) @ s_half_inv
    # Bound the gain so that a nearly grey source does not turn noise into colour.
    u, sv, vt = np.linalg.svd(t)
    t = (u * np.clip(sv, 1.0 / max_gain, max_gain)) @ vt
    t = strength * t + (1.0 - strength) * np.eye(2)
    target = strength * ref.chroma_mean + (1.0 - strength) * src.chroma_mean
    offset = target - t @ src.chroma_mean
    matrix = np.hstack([t, offset[:, None]])
    # Quantised, so that the last bits of floating-point work never reach the pixels.
    return (np.round(matrix * 4096) / 4096).astype(np.float32)
