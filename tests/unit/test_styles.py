"""Whole-frame styles on real photographs and on real footage: each looks like what it names.

Each style's character is checked on a lit photograph, on a frame of Big Buck Bunny
(tests/corpus.py), and on that frame darkened and flattened (its exposure variants):
a style must read as itself whatever the exposure.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from corpus import EXPOSURES, Corpus
from mediagen import edit_video, make_video, read_frames
from vedit.engines.classic.styles import STYLES, StyleEditor

PHOTO = cv2.resize(data.astronaut(), (640, 640))
REFERENCE = data.coffee()  # warm browns and reds
SCENES = ["photo", "bunny", "bunny-dark", "bunny-flat"]


@pytest.fixture(scope="module")
def scenes(corpus: Corpus) -> dict[str, np.ndarray]:
    """The lit photo, and frame 40 of Big Buck Bunny (640x360) as it is, dark and flat."""
    bunny = read_frames(corpus.clip("bigbuckbunny"), [40])[0]
    bunny = cv2.resize(bunny, (640, 360), interpolation=cv2.INTER_AREA)
    return {
        "photo": PHOTO,
        "bunny": bunny,
        "bunny-dark": cv2.LUT(bunny, EXPOSURES["dark"].lut()),
        "bunny-flat": cv2.LUT(bunny, EXPOSURES["flat"].lut()),
    }


def styled(style: str, frame: np.ndarray = PHOTO, seed: int = 3) -> np.ndarray:
    h, w = frame.shape[:2]
    return StyleEditor(style, REFERENCE, w, h, seed)(frame, 0)


def sharpness(rgb: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def standard(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` with its luma range (1st to 99th percentile) stretched to the full range, one gain
    for all channels: flatness and colour counts are judged at full contrast, so that a dark or
    flat frame's few levels do not pass for a style's washes."""
    low, high = np.percentile(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), [1, 99])
    gain = 255 / max(1.0, float(high - low))
    return np.clip((rgb.astype(np.float32) - low) * gain, 0, 255).astype(np.uint8)


def colours(rgb: np.ndarray) -> int:
    small = cv2.resize(rgb, (160, 160), interpolation=cv2.INTER_NEAREST) // 8
    return len(np.unique(small.reshape(-1, 3), axis=0))


@pytest.mark.parametrize("scene", SCENES)
def test_black_and_white_has_no_colour(scenes, scene: str) -> None:
    out = styled("black_and_white", scenes[scene]).astype(int)
    assert (
        np.abs(out[..., 0] - out[..., 1]).max() == 0
        and np.abs(out[..., 1] - out[..., 2]).max() == 0
    )


@pytest.mark.parametrize("scene", SCENES)
def test_pencil_sketch_is_lines_on_light_paper(scenes, scene: str) -> None:
    out = styled("pencil_sketch", scenes[scene])
    grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    assert grey.mean() > 170  # mostly paper
    assert (grey < 100).mean() > 0.01  # with dark strokes
    hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
    assert hsv[..., 1].mean() < 60  # barely coloured


def flat_share(rgb: np.ndarray) -> float:
    """Share of pixels that match their neighbour two to the right within 2 levels."""
    step = np.abs(rgb[:, 2:].astype(int) - rgb[:, :-2]).max(axis=2)
    return float((step <= 2).mean())


@pytest.mark.parametrize("scene", SCENES)
def test_cartoon_has_flat_colours_and_ink_lines(scenes, scene: str) -> None:
    frame = scenes[scene]
    out = styled("cartoon", frame)
    assert flat_share(standard(out)) > min(0.95, 1.5 * flat_share(standard(frame)))
    assert (cv2.cvtColor(out, cv2.COLOR_RGB2GRAY) < 30).mean() > 0.02


@pytest.mark.parametrize("scene", SCENES)
@pytest.mark.parametrize("style", ["watercolor", "oil_painting"])
def test_painted_styles_trade_detail_for_washes(scenes, scene: str, style: str) -> None:
    frame = scenes[scene]
    out = styled(style, frame)
    # Fewer colours than the scene holds at full contrast (a dark or flat frame's own few
    # levels are not washes).
    assert colours(out) < 0.95 * colours(standard(frame))
    assert abs(float(out.mean()) - float(frame.mean())) < 40  # the picture is still there
    # Fine detail goes: measured on the photo's own structure, not on the paper or canvas.
    h, w = frame.shape[:2]
    plain = StyleEditor(style, REFERENCE, w, h, 3)
    plain.paper[...] = 255
    assert sharpness(plain(frame, 0)) < sharpness(frame) / 2


@pytest.mark.parametrize("scene", SCENES)
def test_vintage_film_is_warm_faded_and_vignetted(scenes, scene: str) -> None:
    frame = scenes[scene].astype(float)
    out = styled("vintage_film", scenes[scene]).astype(float)
    r, b = out[..., 0].mean(), out[..., 2].mean()
    assert r > b + 10
    assert out.min() >= 10  # lifted blacks
    # Darker toward the corners than the scene itself is: the vignette.
    h, w = out.shape[:2]
    mid = np.s_[h // 2 - 40 : h // 2 + 40, w // 2 - 40 : w // 2 + 40]
    centre = out[mid].mean() / (frame[mid].mean() + 1)
    corners = np.mean(
        [
            out[:40, :40].mean() / (frame[:40, :40].mean() + 1),
            out[-40:, -40:].mean() / (frame[-40:, -40:].mean() + 1),
        ]
    )
    assert corners < centre


def test_colour_styles_move_toward_the_reference_tint() -> None:
    ref_mean = REFERENCE.reshape(-1, 3).mean(0)
    grey_ref = np.full_like(REFERENCE, 128)
    for style in ("watercolor", "cartoon", "vintage_film"):
        tinted = StyleEditor(style, REFERENCE, 640, 640, 3)(PHOTO, 0).reshape(-1, 3).mean(0)
        neutral = StyleEditor(style, grey_ref, 640, 640, 3)(PHOTO, 0).reshape(-1, 3).mean(0)
        assert np.linalg.norm(tinted - ref_mean) < np.linalg.norm(neutral - ref_mean), style


def test_styles_are_deterministic_per_seed() -> None:
    for style in STYLES:
        assert np.array_equal(styled(style, seed=9), styled(style, seed=9)), style
    assert not np.array_equal(styled("vintage_film", seed=1), styled("vintage_film", seed=2))


@pytest.mark.parametrize("style", list(STYLES))
def test_styled_video_does_not_flicker(tmp_path: Path, style: str) -> None:
    src = make_video(
        tmp_path / "in.mp4", width=640, height=360, fps=24, seconds=3.2, audio=False, noise=3.0
    )
    edit_video(
        src,
        tmp_path / "out.mp4",
        lambda spec: StyleEditor(style, REFERENCE, spec.width, spec.height, 5),
    )
    a, b = read_frames(src, [40, 41])
    c, d = read_frames(tmp_path / "out.mp4", [40, 41])
    # Static: the lower left of the gradient, away from the moving shapes (scaled 2x).
    flicker_in = np.abs(a[270:, :60].astype(int) - b[270:, :60]).mean()
    flicker_out = np.abs(c[560:, :120].astype(int) - d[560:, :120]).mean()
    assert flicker_in > 0.5  # the camera's noise is there to begin with
    assert flicker_out <= 1.5 * flicker_in, (flicker_in, flicker_out)
