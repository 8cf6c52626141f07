"""The output stage with both kinds of frame editor, on real decoded and encoded files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mediagen import make_video, probe_output, read_frames
from vedit.config import Settings
from vedit.media.frames import YuvFrame
from vedit.media.limits import MediaLimits, OutputPolicy
from vedit.media.probe import probe_video
from vedit.media.video import plan_output, render

S = OutputPolicy.of(Settings())


class Invert:
    """An RGB editor: the photographic negative."""

    pixel_format = "rgb24"

    def __call__(self, frame: np.ndarray, index: int) -> np.ndarray:
        return 255 - frame


class GreyOut:
    """A YUV editor: every pixel mid-grey."""

    pixel_format = "yuv420p"

    def __call__(self, frame: YuvFrame, index: int) -> None:
        frame.y[...] = 126
        frame.u[...] = 128
        frame.v[...] = 128


def _spec(src: Path):
    return plan_output(
        probe_video(src, MediaLimits.of(Settings())),
        resolution="720P",
        watermark=False,
        audio_setting="origin",
        policy=S,
        metadata={"comment": "test"},
    )


def test_an_rgb_editor_sees_and_changes_rgb_frames(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", width=640, height=360, fps=30, seconds=3.2)
    spec = _spec(src)
    plain = render(src, tmp_path / "plain.mp4", spec, None, S)
    stats = render(src, tmp_path / "neg.mp4", spec, Invert(), S)
    assert stats.frames == plain.frames == 77 and stats.source_frames_edited == 77
    a = read_frames(tmp_path / "plain.mp4", [40])[0].astype(int)
    b = read_frames(tmp_path / "neg.mp4", [40])[0].astype(int)
    assert np.abs((255 - a) - b).mean() < 4  # the negative, up to encoding loss


def test_a_yuv_editor_changes_the_planes_in_place(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", width=1280, height=720, fps=25, seconds=3.2)
    render(src, tmp_path / "grey.mp4", _spec(src), GreyOut(), S)
    frame = read_frames(tmp_path / "grey.mp4", [10])[0].astype(int)
    assert np.abs(frame - 128).max() <= 4
    info = probe_output(tmp_path / "grey.mp4")
    assert (info["width"], info["height"], info["frames"]) == (1280, 720, 77)


def test_low_frame_rates_are_filled_to_24_fps(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", width=640, height=360, fps=10, seconds=4)
    render(src, tmp_path / "out.mp4", _spec(src), None, S)
    info = probe_output(tmp_path / "out.mp4")
    assert info["fps"] == 24 and info["frames"] == 96 and len(info["pts_steps"]) == 1
