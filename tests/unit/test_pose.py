"""Upper-body pose with BlazePose from the mediapipe wheel, on real photographs (no network)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from vedit.engines.person import pose as bp
from vedit.engines.person.pose import OneEuro, PoseTracker, _anchors

PHOTO = data.astronaut()  # 512 x 512: face at about (230, 115), shoulders near y 250


def framed(width: int, height: int, dx: int = 0) -> np.ndarray:
    """The astronaut photo scaled to the frame's height, centred, moved ``dx`` to the right."""
    frame = np.full((height, width, 3), 60, np.uint8)
    photo = cv2.resize(PHOTO, (height, height), interpolation=cv2.INTER_AREA)
    x0 = (width - height) // 2 + dx
    frame[:, x0 : x0 + height] = photo
    return frame


def test_the_detector_has_its_2254_anchors_on_a_grid() -> None:
    anchors = _anchors()
    assert anchors.shape == (2254, 2)
    assert anchors.min() > 0 and anchors.max() < 1
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28])  # the finest grid comes first


@pytest.mark.parametrize("size", [(512, 512), (1280, 720), (360, 640)])
def test_landmarks_land_on_the_body(size) -> None:
    w, h = size
    if w < h:  # portrait: the photo fills the width
        frame = np.full((h, w, 3), 60, np.uint8)
        y0 = (h - w) // 2
        frame[y0 : y0 + w] = cv2.resize(PHOTO, (w, w), interpolation=cv2.INTER_AREA)
        scale, x0 = w / 512, 0
    else:
        frame = framed(w, h)
        scale, x0, y0 = h / 512, (w - h) // 2, 0
    pose = PoseTracker(w, h)(frame)
    assert pose is not None
    p = (pose.points - [x0, y0]) / scale  # back in the photo's pixels
    nose, ls, rs = p[bp.NOSE], p[bp.LEFT_SHOULDER], p[bp.RIGHT_SHOULDER]
    assert 180 < nose[0] < 270 and 90 < nose[1] < 160, nose
    # The person's right shoulder is on the image's left (she faces the camera).
    assert rs[0] < nose[0] < ls[0]
    assert 150 < rs[1] < 320 and 150 < ls[1] < 320, (rs, ls)
    assert pose.visible(bp.NOSE, bp.LEFT_SHOULDER, bp.RIGHT_SHOULDER)
    # The body mask: face and suit in, the wall above the rocket out.
    mask = pose.mask
    assert mask.shape == (h, w)

    def region(bx0: int, by0: int, bx1: int, by1: int) -> float:
        ys = slice(y0 + int(by0 * scale), y0 + int(by1 * scale))
        xs = slice(x0 + int(bx0 * scale), x0 + int(bx1 * scale))
        return float(mask[ys, xs].mean())

    assert region(180, 60, 280, 170) > 0.8  # face
    assert region(60, 320, 250, 500) > 0.8  # orange suit
    assert region(330, 0, 512, 40) < 0.1  # wall


def test_tracking_follows_the_person() -> None:
    tracker = PoseTracker(1280, 720)
    first = tracker(framed(1280, 720))
    assert first is not None
    moved = None
    for _ in range(12):  # the smoothing lets the landmarks settle on the new place
        moved = tracker(framed(1280, 720, dx=120))
    assert moved is not None
    shift = moved.points[bp.NOSE] - first.points[bp.NOSE]
    assert abs(shift[0] - 120) < 12 and abs(shift[1]) < 12, shift


def test_no_person_no_pose() -> None:
    tracker = PoseTracker(1280, 720)
    room = cv2.resize(data.coffee(), (1280, 720))
    assert tracker(room) is None
    assert tracker(np.zeros((720, 1280, 3), np.uint8)) is None


def test_a_frame_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="frame is 640x360, tracker is 1280x720"):
        PoseTracker(1280, 720)(np.zeros((360, 640, 3), np.uint8))


def test_one_euro_holds_still_points_and_follows_moving_ones() -> None:
    rng = np.random.default_rng(1)
    still = OneEuro()
    out = [
        still(np.float32([[100, 100]]) + rng.normal(0, 1.5, (1, 2)).astype(np.float32))
        for _ in range(60)
    ]
    steps = np.abs(np.diff(np.array(out)[30:, 0], axis=0)).max()
    assert steps < 1.0  # raw steps reach 5 px; the filtered ones stay under one
    moving = OneEuro()
    for t in range(60):
        got = moving(np.float32([[100 + 4 * t, 100]]))
    assert abs(float(got[0, 0]) - (100 + 4 * 59)) < 12  # a few frames behind at most
