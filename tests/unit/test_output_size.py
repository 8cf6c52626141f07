"""Output geometry: pixel-area tiers with the source's aspect ratio (the Wan family's sizes)."""

from __future__ import annotations

import pytest

from vedit.media.probe import aspect_ratio_name
from vedit.media.video import output_size


@pytest.mark.parametrize(
    ("source", "tier", "size"),
    [
        ((1920, 1080), "720P", (1280, 720)),
        ((1920, 1080), "1080P", (1920, 1080)),
        ((640, 360), "1080P", (1920, 1080)),  # upscaled to the tier
        ((1080, 1920), "720P", (720, 1280)),
        ((1080, 1920), "1080P", (1080, 1920)),
        ((640, 480), "720P", (1088, 832)),
        ((480, 640), "720P", (832, 1088)),
        ((640, 480), "1080P", (1632, 1248)),
        ((500, 500), "720P", (960, 960)),
        ((500, 500), "1080P", (1440, 1440)),
    ],
)
def test_published_sizes(source, tier, size) -> None:
    assert output_size(*source, tier) == size


@pytest.mark.parametrize(
    "source", [(2560, 1080), (1000, 380), (400, 3000), (1366, 768), (720, 540)]
)
def test_any_ratio_keeps_the_area_and_aspect(source) -> None:
    w, h = output_size(*source, "720P")
    assert w % 16 == 0 and h % 16 == 0
    assert 0.8 <= (w * h) / (1280 * 720) <= 1.02
    assert abs((w / h) / (source[0] / source[1]) - 1) < 0.06
    big_w, big_h = output_size(*source, "1080P")
    assert (big_w, big_h) == (w * 3 // 2, h * 3 // 2)
    assert big_w % 2 == 0 and big_h % 2 == 0


@pytest.mark.parametrize(
    ("size", "name"),
    [
        ((1280, 720), "16:9"),
        ((720, 1280), "9:16"),
        ((960, 960), "1:1"),
        ((1088, 832), "4:3"),
        ((832, 1088), "3:4"),
        ((1472, 624), "21:9"),
        ((1000, 700), "10:7"),
    ],
)
def test_usage_ratio_names_the_shape(size, name) -> None:
    assert aspect_ratio_name(*size) == name
