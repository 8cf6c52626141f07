"""Person segmentation with the selfie models from the mediapipe wheel (no network, no import)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data

from vedit.engines.person.segment import (
    MODELS,
    ModelUnavailable,
    Motion,
    PersonSegmenter,
    find_model,
    rigid,
)


def test_models_are_found_without_importing_mediapipe() -> None:
    code = (
        "import sys\n"
        "from vedit.engines.person.segment import find_model, MODELS\n"
        "for m in MODELS.values(): print(find_model(m))\n"
        "assert 'mediapipe' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.count(".tflite") == 2


def test_a_missing_model_names_the_fix(tmp_path) -> None:
    with pytest.raises(ModelUnavailable, match="pip install --no-deps mediapipe==0.10.21"):
        find_model("selfie_segmentation/nope.tflite", tmp_path)


def test_a_models_folder_comes_first(tmp_path) -> None:
    local = tmp_path / "selfie_segmentation_landscape.tflite"
    local.write_bytes(find_model(MODELS["landscape"]).read_bytes())
    assert find_model(MODELS["landscape"], tmp_path) == local


@pytest.mark.parametrize("size", [(512, 512), (1280, 720)])
def test_the_astronaut_is_found_and_the_backdrop_is_not(size) -> None:
    w, h = size
    photo = data.astronaut()  # 512 x 512, a person in front of a flag and a model rocket
    frame = cv2.resize(photo, (w, h))
    mask = PersonSegmenter(w, h)(frame)
    assert mask.shape == (h, w) and mask.dtype == np.float32
    sx, sy = w / 512, h / 512

    def region(x0, y0, x1, y1):
        return mask[int(y0 * sy) : int(y1 * sy), int(x0 * sx) : int(x1 * sx)].mean()

    assert region(180, 60, 280, 170) > 0.9  # face
    assert region(60, 300, 250, 500) > 0.9  # orange suit
    assert region(300, 0, 512, 40) < 0.1  # wall above the rocket


def test_masks_are_stable_over_time() -> None:
    frame = data.astronaut()
    seg = PersonSegmenter(512, 512)
    masks = [seg(frame) for _ in range(5)]
    # The same frame gives the same mask: nothing flickers.
    assert np.abs(masks[-1] - masks[-2]).max() < 1e-3
    # A one-frame glitch is damped, not copied.
    glitch = seg(np.zeros_like(frame))
    assert 0.4 * masks[-1].mean() < glitch.mean() < masks[-1].mean()


def _textured(seed: int) -> np.ndarray:
    """A grey picture with corners everywhere (smoothed noise), at the selfie model's size."""
    noise = np.random.default_rng(seed).integers(0, 256, (144, 256)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


def test_a_person_moving_as_one_is_rigid_and_one_moving_in_parts_is_not() -> None:
    room, person = _textured(1), _textured(2)
    behind = np.ones((144, 256), np.float32)
    # The person's place on the first frame, well inside their outline (as a feathered
    # mask's "surely the person" is): corners at the outline see the room too.
    behind[40:110, 100:160] = 0.0

    def motion(second: np.ndarray) -> Motion:
        first = room.copy()
        first[30:120, 90:170] = person[30:120, 90:170]
        moving = Motion()
        moving(first, behind)
        moving(second, behind)
        return moving

    # A slide: the whole person 3 pixels right, the room still.
    slid = room.copy()
    slid[30:120, 93:173] = person[30:120, 90:170]
    assert rigid(motion(slid).spread)
    # A wave: the top half 3 pixels right, the bottom half 3 pixels left.
    waved = room.copy()
    waved[30:75, 93:173] = person[30:75, 90:170]
    waved[75:120, 87:167] = person[75:120, 90:170]
    assert not rigid(motion(waved).spread)
    # No person to follow: not known, so not rigid.
    assert not rigid(Motion().spread)
