"""The reference's look on real footage: no new contours in smooth areas, nothing crushed.

The source is the darkened Big Buck Bunny (tests/corpus.py); the reference is a
bright, full-range photograph, so the plain histogram match would have to be
steep. Both the look and a plain transcode go through the real output stage
(x264 at the service's settings), and are compared frame for frame.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage import data

from corpus import Corpus
from mediagen import edit_video
from vedit.engines.classic.look import LookEditor

FRAMES = [15, 40, 65]


def lumas(path: Path, indices: list[int]) -> list[np.ndarray]:
    """The luma planes of the given frames, as int."""
    out: dict[int, np.ndarray] = {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in indices:
                out[i] = f.to_ndarray(format="yuv420p")[: f.height].astype(int)
    return [out[i] for i in indices]


def smooth_areas(luma: np.ndarray) -> np.ndarray:
    """Where the picture is smooth: a gentle gradient (under half a level a pixel, at the
    scale of a few pixels), away from any edge or texture by 2 px. ``(h - 1, w - 1)``."""
    blur = cv2.GaussianBlur(luma.astype(np.float32), (0, 0), 2.0)
    grad = np.hypot(cv2.Sobel(blur, cv2.CV_32F, 1, 0), cv2.Sobel(blur, cv2.CV_32F, 0, 1)) / 8
    smooth = cv2.erode((grad < 0.5).astype(np.uint8), np.ones((5, 5), np.uint8))
    return smooth[:-1, :-1] > 0


def new_steps(before: np.ndarray, after: np.ndarray, step: int = 6) -> np.ndarray:
    """Pixels where ``after`` jumps by ``step`` levels or more to its right or lower
    neighbour and ``before`` moved by at most one level there: a contour that was not
    in the picture. ``(h - 1, w - 1)``."""
    jumps = np.zeros(np.subtract(before.shape, 1), bool)
    for axis in (0, 1):
        was = np.abs(np.diff(before, axis=axis))
        now = np.abs(np.diff(after, axis=axis))
        cut = (slice(None, -1), slice(None)) if axis == 1 else (slice(None), slice(None, -1))
        jumps |= (now[cut] >= step) & (was[cut] <= 1)
    return jumps


@pytest.fixture(scope="module")
def dark_look(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The dark clip's plain transcode and its look after a bright reference."""
    src = corpus.variant("bigbuckbunny", "dark")
    folder = tmp_path_factory.mktemp("look")
    edit_video(src, folder / "plain.mp4", lambda spec: None)
    edit_video(src, folder / "look.mp4", lambda spec: LookEditor(data.rocket()))
    return folder / "plain.mp4", folder / "look.mp4"


def test_the_look_of_a_dark_scene_adds_no_contours_to_smooth_areas(dark_look) -> None:
    plain, look = dark_look
    for before, after in zip(lumas(plain, FRAMES), lumas(look, FRAMES), strict=True):
        smooth = smooth_areas(before)
        assert smooth.mean() > 0.15  # the sky, the rocks, the shadows: plenty to look at
        banded = new_steps(before, after)[smooth].mean()
        assert banded < 0.005, f"{banded:.2%} of the smooth areas' pixels are on a new contour"
        assert after.mean() > before.mean() + 10  # and the look did brighten the scene


def test_the_look_of_a_dark_scene_crushes_no_more_than_the_reference_asks(dark_look) -> None:
    plain, look = dark_look
    ref = cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2GRAY).astype(float) * 219 / 255 + 16
    for before, after in zip(lumas(plain, FRAMES), lumas(look, FRAMES), strict=True):
        for crushed in (lambda y: y <= 17, lambda y: y >= 234):
            asked = max(crushed(before).mean(), crushed(ref).mean())
            assert crushed(after).mean() <= asked + 0.005
        # Shadow detail stays: the darkest tenth of the scene keeps its distinct levels.
        dark = before <= np.percentile(before, 10)
        assert len(np.unique(after[dark])) >= len(np.unique(before[dark]))
