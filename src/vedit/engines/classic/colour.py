"""Colour transfer from a reference image: linear Monge-Kantorovich (MKL) mapping in RGB.

The source's colour distribution (mean and covariance) is mapped onto the
reference's by the affine map that moves one Gaussian onto the other with the
least change (Pitié & Kokaram, 2007) — Reinhard's mean/std matching, but with
the channels' correlations. One affine map per frame is one ``cv2.transform``
pass, so the edit costs little next to decoding and encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

STATS_SIDE = 96  # statistics are taken on a frame shrunk to about this many pixels a side


@dataclass(frozen=True)
class ColourStats:
    """Mean (3,) and covariance (3, 3) of RGB values in 0..255."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, rgb: np.ndarray) -> ColourStats:
        h, w = rgb.shape[:2]
        scale = STATS_SIDE / max(h, w)
        if scale < 1:
            rgb = cv2.resize(
                rgb,
                (max(1, round(w * scale)), max(1, round(h * scale))),
                interpolation=cv2.INTER_AREA,
            )
        px = rgb.reshape(-1, 3).astype(np.float64)
        mean = px.mean(axis=0)
        centred = px - mean
        # einsum without BLAS: the same sums in the same order on every run and thread count.
        cov = np.einsum("ij,ik->jk", centred, centred, optimize=False) / max(1, len(px) - 1)
        return cls(mean, cov + np.eye(3) * 4.0)

    def blend(self, other: ColourStats, weight: float) -> ColourStats:
        """``self`` moved ``weight`` of the way toward ``other`` (temporal smoothing)."""
        return ColourStats(
            self.mean + weight * (other.mean - self.mean),
            self.cov + weight * (other.cov - self.cov),
        )


def _sqrtm(m: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(m)
    return (vectors * np.sqrt(np.clip(values, 1e-9, None))) @ vectors.T


def transfer_matrix(
    src: ColourStats, ref: ColourStats, strength: float = 1.0, max_gain: float = 3.0
) -> np.ndarray:
    """The 3x4 affine map (for ``cv2.transform``) taking ``src``'s colours toward ``ref``'s."""
    s_half = _sqrtm(src.cov)
    s_half_inv = np.linalg.inv(s_half)
    t = s_half_inv @ _sqrtm(s_half @ ref.cov @ s_half) @ s_half_inv
    # Bound the gain so that a nearly flat source channel does not turn noise into colour.
    u, sv, vt = np.linalg.svd(t)
    t = (u * np.clip(sv, 1.0 / max_gain, max_gain)) @ vt
    t = strength * t + (1.0 - strength) * np.eye(3)
    offset = strength * ref.mean + (1.0 - strength) * src.mean - t @ src.mean
    # Quantised, so that the last bits of floating-point work never reach the pixels.
    return np.round(np.hstack([t, offset[:, None]]) * 4096).astype(np.float32) / 4096


def apply_matrix(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``matrix`` applied to every pixel, saturated to uint8."""
    return cv2.transform(rgb, matrix)
