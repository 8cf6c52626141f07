"""The background edit's matte against a composited ground truth (issue 20, item 4).

``mediagen.person_scene`` composites scikit-image's astronaut along a known outline over
a room photo, so each frame's true alpha is known. Frames at 720p go through the real
``BackgroundEditor`` (as yuv420p planes, the way the output stage hands them over), and
from frame 6 on (the running masks settled) its own alpha and its output are judged with
``measures.matte_edge_error`` and ``measures.halo`` (bench/matte_error.py prints the same
figures, before and after the edge refinement).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from measures import halo, matte_edge_error
from mediagen import bright_wall, person_scene
from vedit.engines.person.background import BackgroundEditor
from vedit.engines.person.matte import EdgeTiles, guided_coefficients, guided_upsample, refined
from vedit.media.frames import YuvFrame, yuv_planes, yuv_to_rgb

W, H, FPS, MATRIX = 1280, 720, 24, "bt709"
FRAMES, SETTLE = 24, 6
# Thresholds, from bench/matte_error.py --frames 24 on these scenes (2-core Xeon, Dec 2026):
# the mean alpha error within 8 px of the true outline and the halo (the output's mean RGB
# distance from the new background 1-5 px outside the outline, levels). The matte at
# chroma size (before the full-size refinement): dark room 0.189 and 35.7, coffee room
# 0.249 and 24.1; refined: 0.115 and 11.7, 0.197 and 17.7. The limits sit between,
# nearer the refined figures with about 15 % to spare, so the old matte fails all four.
DARK_ALPHA_ERROR, DARK_HALO = 0.14, 18.0
COFFEE_ALPHA_ERROR, COFFEE_HALO = 0.22, 21.0


def rgb_of(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    size = (y.shape[1], y.shape[0])
    up = [cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in (u, v)]
    return yuv_to_rgb(cv2.merge([y, *up]), MATRIX)


def matte_and_halo(scene: dict, reference: np.ndarray) -> tuple[float, float]:
    """The person scene (``scene``: person_scene's keywords) with its background replaced by
    ``reference``: the mean alpha error at the edge and the mean halo over the frames."""
    editor = BackgroundEditor(reference, W, H)
    errors, halos = [], []
    for i in range(FRAMES):
        source, truth, _ = person_scene(W, H, i, FPS, **scene)
        frame = YuvFrame(*yuv_planes(source, MATRIX), MATRIX)
        editor(frame, i)
        if i < SETTLE:
            continue
        assert editor.last_alpha is not None  # she is in every frame
        alpha = np.zeros((H, W), np.float32)
        box, a = editor.last_alpha
        alpha[box] = a
        # The new background as the editor placed it (it follows the camera's pan).
        x, y = (2 * round(o / 2) for o in editor.offset)
        sy, su, sv = editor.scene(MATRIX)
        placed = rgb_of(
            sy[y : y + H, x : x + W],
            su[y // 2 : (y + H) // 2, x // 2 : (x + W) // 2],
            sv[y // 2 : (y + H) // 2, x // 2 : (x + W) // 2],
        )
        errors.append(matte_edge_error(alpha, truth))
        halos.append(halo(rgb_of(frame.y, frame.u, frame.v), placed, truth))
    return float(np.mean(errors)), float(np.mean(halos))


@pytest.mark.parametrize(
    ("scene", "reference", "most_error", "most_halo"),
    [
        ({"camera": "static", "room": "dark"}, bright_wall(), DARK_ALPHA_ERROR, DARK_HALO),
        ({}, data.rocket(), COFFEE_ALPHA_ERROR, COFFEE_HALO),
    ],
    ids=["dark-room-to-bright-wall", "panning-coffee-room-to-rocket"],
)
def test_the_matte_edge_follows_the_true_outline_with_no_halo(
    scene: dict, reference: np.ndarray, most_error: float, most_halo: float
) -> None:
    error, band = matte_and_halo(scene, reference)
    print(f"alpha error at the edge {error:.3f}, halo {band:.1f} levels")  # pytest -s
    assert error <= most_error, error
    assert band <= most_halo, band


def test_the_edge_tiles_refine_the_matte_as_the_whole_box_does() -> None:
    """The editor refines the matte at full size only in the tiles the edge crosses
    (EdgeTiles); there it is what refining the whole box gives, and elsewhere all 0 or 1."""
    h, w = 90, 134  # chroma pixels: not a whole number of tiles
    rows, cols = np.mgrid[0:h, 0:w]
    hard = ((rows - 45) ** 2 / 35**2 + (cols - 60) ** 2 / 45**2 < 1).astype(np.float32)
    alpha = cv2.GaussianBlur(hard, (5, 5), 0)  # a soft-edged person
    noise = np.random.default_rng(0).integers(0, 40, (2 * h, 2 * w))
    luma = (np.kron(hard, np.ones((2, 2))) * 120 + 40 + noise).astype(np.uint8)
    whole = guided_upsample(alpha, luma)

    tiles = EdgeTiles(alpha.shape)
    padded = tiles.padded(alpha)
    at = np.nonzero(tiles.unsure(padded))
    assert 0 < len(at[0]) < tiles.rows * tiles.cols // 2  # the edge's tiles, not the box
    a, b = guided_coefficients(alpha, luma)
    fitted = tiles.enlarged(tiles.padded(cv2.merge([a, b, alpha]), halo=1), at)
    edge = refined(*cv2.split(fitted), tiles.gathered(tiles.padded(luma, 2), at))
    full = cv2.resize(padded, (2 * padded.shape[1], 2 * padded.shape[0]))
    tiles.scatter(full, at, edge)
    assert np.abs(full[: 2 * h, : 2 * w] - whole).max() < 1e-5
