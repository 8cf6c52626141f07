"""The garment in the reference image: the clothing itself when the reference shows someone wearing it.

A clothing edit's reference is either a picture of the garment (a product shot, a
swatch of the fabric) or a photo of a person wearing it. From a product shot the
texture is the middle of the picture. From a photo of a person, the middle of the
picture is their face, skin and background as much as their clothes, and those
would be pasted onto the video's person; so the person's upper-body garment is cut
out first, with the same models the edit uses on the video: the pose model (the
person, their shoulders, elbows and hips) and the selfie model (their outline).
The garment is what lies inside both, between the shoulders and a little below the
hips, sleeves to the elbows, is not skin (the face's own colour, measured around the
nose, or a common skin range when the face is not seen), and has one of the garment's
main colours (what is held against the body, a collar under it, take little of it).
The texture is the largest square of garment alone; where there is none large
enough, the garment's bounding box with everything that is not garment filled in
from the garment's own colours (OpenCV's inpainting). Either way no skin, face or
background is left in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vedit.engines.person import pose as bp
from vedit.engines.person.pose import PoseTracker, working_size
from vedit.engines.person.segment import PersonSegmenter

TEXTURE_SHARE = 0.6  # a product shot: the middle of the picture is the garment (per side)
MIN_GARMENT = 0.03  # a worn garment smaller than this share of the picture is not taken
HEM = 0.25  # the garment's bottom below the hips' line, as a share of the torso's length
NECK = 0.15  # its top below the shoulders' line (a collar, a neck ring: not the fabric)
GROW = 0.15  # the torso's outline grown by this share of the shoulder width (loose cloth)
SKIN_DISTANCE = 14.0  # chroma distance (Cr, Cb levels) from the face's colour that is skin
COLOURS = 4  # the garment's colours, found by k-means
MINOR = 0.12  # a colour with less than this share of the garment is not the garment's
MIN_SQUARE = 0.1  # a square of garment alone this share of the short side is a texture
FILL_SIDE = 256  # the texture's gaps are filled at this size (inpainting is costly)


@dataclass(frozen=True)
class Garment:
    """The garment's colours and texture (``texture``: RGB, square) and where they came from:
    ``worn`` when cut from a person in the reference, with ``share`` of the picture."""

    texture: np.ndarray
    worn: bool
    share: float


def middle(reference: np.ndarray, side: int) -> np.ndarray:
    """The middle of the reference, square, ``side`` pixels: a product shot's garment."""
    h, w = reference.shape[:2]
    crop = round(min(h, w) * TEXTURE_SHARE)
    y0, x0 = (h - crop) // 2, (w - crop) // 2
    patch = reference[y0 : y0 + crop, x0 : x0 + crop]
    return cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)


def reference_garment(
    reference: np.ndarray, side: int = 512, *, models_dir: Path | None = None
) -> Garment:
    """The garment in ``reference`` (RGB): cut from the person wearing it, where the reference
    shows one with their upper body in view, else the middle of the picture."""
    mask = worn_garment(reference, models_dir=models_dir)
    share = float(mask.mean()) if mask is not None else 0.0
    if mask is None or share < MIN_GARMENT:
        return Garment(middle(reference, side), worn=False, share=0.0)
    patch = inscribed(reference, mask, side)
    texture = patch if patch is not None else filled(reference, mask, side)
    return Garment(texture, worn=True, share=round(share, 3))


def worn_garment(reference: np.ndarray, *, models_dir: Path | None = None) -> np.ndarray | None:
    """Where the upper-body garment of the person in ``reference`` is (bool, the reference's
    size), or None where the pose model finds no person with both shoulders and hips."""
    h, w = reference.shape[:2]
    size = working_size(w, h)
    small = cv2.resize(reference, size, interpolation=cv2.INTER_AREA)
    pose = PoseTracker(*size, models_dir=models_dir)(small)
    if pose is None or not pose.visible(
        bp.LEFT_SHOULDER, bp.RIGHT_SHOULDER, bp.LEFT_HIP, bp.RIGHT_HIP, threshold=0.3
    ):
        return None
    outline = PersonSegmenter(*size, models_dir=models_dir)(small)
    person = np.minimum(pose.mask, outline) > 0.5
    garment = person & _torso(pose.points, pose.visibility, size) & ~_skin(small, pose.points)
    garment = _main_colours(small, garment)
    garment = cv2.morphologyEx(
        garment.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)
    ).astype(bool)
    return cv2.resize(garment.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0


def _main_colours(rgb: np.ndarray, garment: np.ndarray) -> np.ndarray:
    """``garment`` less the colours that take little of it: what is held against the body (a
    helmet, a bag, a cup), the collar of something under it, a badge. The garment's colours
    are found by k-means (k = :data:`COLOURS`, in Lab); a colour with under :data:`MINOR` of
    the garment's pixels is dropped (its place is filled from the rest)."""
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[garment].astype(np.float32)
    if len(pixels) < COLOURS * 10:
        return garment
    criteria = (cv2.TERM_CRITERIA_MAX_ITER + cv2.TERM_CRITERIA_EPS, 20, 1.0)
    cv2.setRNGSeed(0)  # the same garment for the same reference
    _, labels, _ = cv2.kmeans(pixels, COLOURS, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    shares = np.bincount(labels.ravel(), minlength=COLOURS) / len(labels)
    kept = garment.copy()
    kept[garment] = shares[labels.ravel()] >= MINOR
    return kept


def _torso(points: np.ndarray, visibility: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The torso (a little below the shoulders to a little below the hips) and the upper arms,
    grown a little."""
    ls, rs = points[bp.LEFT_SHOULDER], points[bp.RIGHT_SHOULDER]
    lh, rh = points[bp.LEFT_HIP], points[bp.RIGHT_HIP]
    down = (lh + rh) / 2 - (ls + rs) / 2
    corners = [ls + NECK * down, rs + NECK * down, rh + HEM * down, lh + HEM * down]
    for elbow in (bp.LEFT_ELBOW, bp.RIGHT_ELBOW):
        if visibility[elbow] >= 0.3:
            corners.append(points[elbow])
    hull = cv2.convexHull(np.round(np.array(corners)).astype(np.int32))
    torso = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(torso, hull, 1)
    grow = max(1, round(GROW * float(np.hypot(*(ls - rs)))))
    torso = cv2.dilate(torso, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    return torso.astype(bool)


def _skin(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where the colour is skin: near the face's own (around the nose), or in a common range."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    common = (cr > 135) & (cr < 175) & (cb > 80) & (cb < 130)
    h, w = cr.shape
    nose = np.round(points[bp.NOSE]).astype(int)
    radius = max(2, round(float(np.hypot(*(points[bp.LEFT_EAR] - points[bp.RIGHT_EAR]))) * 0.12))
    x0, x1 = max(0, nose[0] - radius), min(w, nose[0] + radius + 1)
    y0, y1 = max(0, nose[1] - radius), min(h, nose[1] + radius + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return common
    face_cr, face_cb = float(np.median(cr[y0:y1, x0:x1])), float(np.median(cb[y0:y1, x0:x1]))
    near = (cr - face_cr) ** 2 + (cb - face_cb) ** 2 < SKIN_DISTANCE**2
    return near | common


def inscribed(reference: np.ndarray, mask: np.ndarray, side: int) -> np.ndarray | None:
    """The largest square of garment alone (no gap to fill), ``side`` x ``side`` RGB; None
    where it would be under :data:`MIN_SQUARE` of the reference's short side."""
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    cy, cx = np.unravel_index(int(np.argmax(distance)), distance.shape)
    half = int(distance[cy, cx] / np.sqrt(2))
    if 2 * half < MIN_SQUARE * min(mask.shape):
        return None
    patch = reference[cy - half : cy + half, cx - half : cx + half]
    return cv2.resize(patch, (side, side), interpolation=cv2.INTER_CUBIC)


def filled(reference: np.ndarray, mask: np.ndarray, side: int) -> np.ndarray:
    """The garment's bounding box, square, with every pixel that is not garment filled in from
    the garment's own colours: ``side`` x ``side`` RGB."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    half = max(y1 - y0, x1 - x0) // 2
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    h, w = mask.shape
    y0, y1 = max(0, cy - half), min(h, cy + half)
    x0, x1 = max(0, cx - half), min(w, cx + half)
    patch = cv2.resize(
        reference[y0:y1, x0:x1], (FILL_SIDE, FILL_SIDE), interpolation=cv2.INTER_AREA
    )
    keep = cv2.resize(
        mask[y0:y1, x0:x1].astype(np.uint8), (FILL_SIDE, FILL_SIDE), interpolation=cv2.INTER_NEAREST
    )
    gaps = cv2.dilate((keep == 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    patch = cv2.inpaint(patch, gaps, 5, cv2.INPAINT_TELEA)
    return cv2.resize(patch, (side, side), interpolation=cv2.INTER_CUBIC)
