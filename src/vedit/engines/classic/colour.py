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


def luma_lut(src: ColourStats, ref: ColourStats, strength: float) -> np.ndarray:
    """The uint8 lookup table that maps the source's luma histogram onto the reference's."""
    src_cdf = np.cumsum(src.luma_hist)
    ref_cdf = np.cumsum(ref.luma_hist)
    # Each level goes to the reference level at the same quantile (centre of its bin).
    quantile = src_cdf - src.luma_hist / 2
    matched = np.interp(quantile, ref_cdf - ref.luma_hist / 2, _LEVELS)
    out = strength * matched + (1.0 - strength) * _LEVELS
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


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
