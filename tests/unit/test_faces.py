"""Faces: found by the face detector, and painted at a face's scale by the painted styles."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from measures import gradient
from vedit.engines.classic.faces import FaceDetector, face_detector
from vedit.engines.classic.styles import StyleEditor

NAMED = ("watercolor", "oil_painting", "pencil_sketch", "cartoon")


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """The astronaut at 720 lines: a face about 130 px across, as in a close shot at 720p."""
    return cv2.resize(data.astronaut(), (720, 720), interpolation=cv2.INTER_CUBIC)[:, 40:680]


def test_the_detector_finds_a_face_where_it_is(portrait: np.ndarray) -> None:
    faces = FaceDetector()(portrait)
    assert len(faces) == 1, faces
    face = faces[0]
    # Her face in scikit-image's photo: about x 170-250, y 60-150 of 512 (eyes at y ~ 100).
    cx, cy = (face.x + face.w / 2) / 640, (face.y + face.h / 2) / 720
    assert 0.34 < cx < 0.52 and 0.18 < cy < 0.32, face
    assert 100 < face.w < 180 and face.score > 0.8, face
    assert FaceDetector()(data.coffee()) == []  # a cup of coffee has none


def test_a_painted_face_keeps_its_features(portrait: np.ndarray) -> None:
    """Painted at the frame's working size, a face's eyes, nose and mouth melt into a few
    strokes; painted again at a face's scale they stay drawn: the painting's structure in the
    face's box follows the source's more closely (gradient correlation) in every named style,
    by 0.04 on average (measured 0.02-0.11, 0.07 on average)."""
    face = face_detector()(portrait)[0]
    x0, y0 = int(face.x), int(face.y)
    x1, y1 = int(face.x + face.w), int(face.y + face.h)
    source = gradient(portrait)[y0:y1, x0:x1].ravel()
    gains = []
    for style in NAMED:
        structure = []
        for with_faces in (False, True):
            editor = StyleEditor(style, data.coffee(), 640, 720, 3)
            assert editor.painter is not None and editor.painter.faces is not None
            if not with_faces:
                editor.painter.faces = None
            out = editor(portrait, 0)
            painted = gradient(out)[y0:y1, x0:x1].ravel()
            structure.append(float(np.corrcoef(painted, source)[0, 1]))
        gains.append(structure[1] - structure[0])
        assert structure[1] >= structure[0] - 0.01, (style, structure)
    assert float(np.mean(gains)) >= 0.04, gains
