"""The garment in the reference: from a photo of a person, their clothes and never their skin.

The person photo is scikit-image's astronaut with her orange suit dyed green (hue
turned, her face, hair and the background left as they are), so the suit's colour
tells garment from everything else.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from mediagen import ASTRONAUT_CHEST, person_scene, striped_sweater
from vedit.engines.person.clothing import ClothingEditor
from vedit.engines.person.garment import middle, reference_garment
from vedit.media.frames import YuvFrame, yuv_planes, yuv_to_rgb

W, H = 1280, 720


def green_suit() -> np.ndarray:
    """The astronaut, her orange suit dyed green."""
    rgb = data.astronaut()
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    suit = (hsv[..., 0] >= 3) & (hsv[..., 0] <= 20) & (hsv[..., 1] >= 150)
    hsv[..., 0][suit] = 60  # OpenCV's hue is 0..180: 60 is green
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def skin_share(rgb: np.ndarray) -> float:
    """The share of pixels with the astronaut's face colour (Cr, Cb within 12 levels)."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    face = cv2.cvtColor(data.astronaut()[90:130, 170:220], cv2.COLOR_RGB2YCrCb).reshape(-1, 3)
    cr, cb = np.median(face[:, 1]), np.median(face[:, 2])
    near = (ycrcb[..., 1] - cr) ** 2 + (ycrcb[..., 2] - cb) ** 2 < 12**2
    return float(near.mean())


def greenness(rgb: np.ndarray) -> float:
    """The share of pixels whose green channel leads red and blue by 20 levels."""
    r, g, b = (rgb[..., c].astype(int) for c in range(3))
    return float(((g > r + 20) & (g > b + 20)).mean())


def test_a_photo_of_a_person_gives_their_garment_and_no_skin() -> None:
    reference = green_suit()
    garment = reference_garment(reference)
    assert garment.worn
    assert 0.05 <= garment.share <= 0.5, garment.share
    # The middle of the photo (what a product shot gives) holds her chin and neck...
    assert skin_share(middle(reference, 512)) > 0.02
    # ...the garment cut from her holds none of it, and is the suit's green.
    assert skin_share(garment.texture) < 0.002, skin_share(garment.texture)
    assert greenness(garment.texture) > 0.9, greenness(garment.texture)


def test_a_picture_of_the_garment_alone_is_taken_from_its_middle() -> None:
    for picture in (striped_sweater(), data.chelsea()):
        garment = reference_garment(picture)
        assert not garment.worn
        assert np.array_equal(garment.texture, middle(picture, 512))


def test_dressed_from_a_photo_of_a_person_the_chest_takes_the_garment_not_the_skin() -> None:
    """The person scene dressed after the green-suited astronaut: the chest turns green, and
    no more of it is skin-coloured than in the source."""
    frame, truth, where = person_scene(W, H, 12)
    editor = ClothingEditor(green_suit(), W, H)
    assert editor.garment_source.worn
    for index in range(3):  # the mask settles over a few frames
        yuv = YuvFrame(*yuv_planes(frame, "bt709"), "bt709")
        editor(yuv, index)
    full = [cv2.resize(p, (W, H)) for p in (yuv.u, yuv.v)]
    got = yuv_to_rgb(cv2.merge([yuv.y, *full]), "bt709")
    x0, y0, scale = where
    bx0, by0, bx1, by1 = (round(v * scale) for v in ASTRONAUT_CHEST)
    chest = np.zeros((H, W), bool)
    chest[y0 + by0 : y0 + by1, x0 + bx0 : x0 + bx1] = True
    chest &= truth
    assert greenness(got[chest][None]) > 0.5, greenness(got[chest][None])
    assert skin_share(got[chest][None]) <= skin_share(frame[chest][None]) + 0.01
