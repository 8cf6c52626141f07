"""Engine vace's parts that need no model: windows, sizes, frame times, the model folder's
check, the prompt, the conditions of a whole-frame plan, and how a clip's frames reach the
output stage."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mediagen import frame_number, make_counting_video
from vedit.config import Settings
from vedit.engines.base import ClipFrame
from vedit.engines.clip import ClipFrames
from vedit.engines.plan import plan_edit
from vedit.engines.vace.conditions import Conditioner, describe, person_frame_size
from vedit.engines.vace.engine import AREAS, working_area, working_size
from vedit.engines.vace.weights import ModelFolderUnusable, check_model_dir
from vedit.engines.vace.windows import (
    WindowSettingInvalid,
    check_window,
    crossfade,
    plan_windows,
    runnable,
)
from vedit.media.frames import YuvFrame, yuv_planes
from vedit.media.video import OutputSpec, clip_index, clip_length, clip_source

# --- windows ---------------------------------------------------------------------------


@pytest.mark.parametrize("window", [5, 9, 17, 81])
@pytest.mark.parametrize("count", [1, 2, 5, 9, 16, 17, 18, 48, 81, 82, 161, 240])
def test_windows_cover_the_clip_in_runnable_lengths(count: int, window: int) -> None:
    overlap = min(4, window - 5)
    windows = plan_windows(count, window, overlap)
    assert windows[0].start == 0 and windows[0].shared == 0 and windows[-1].stop == count
    for w in windows:
        assert (w.length - 1) % 4 == 0 and w.stop - w.start <= w.length <= window
        assert w.length == runnable(w.stop - w.start), "no longer than needed"
    for before, after in zip(windows, windows[1:], strict=False):
        assert after.start == before.stop - overlap and after.shared == overlap
        assert after.stop > before.stop, "each window makes frames of its own"


def test_a_five_second_clip_at_16_fps_is_one_window_and_fifteen_seconds_four() -> None:
    assert [(w.start, w.stop, w.length) for w in plan_windows(80, 81, 16)] == [(0, 80, 81)]
    assert [(w.start, w.stop, w.shared, w.length) for w in plan_windows(240, 81, 16)] == [
        (0, 81, 0, 81),
        (65, 146, 16, 81),
        (130, 211, 16, 81),
        (195, 240, 16, 45),
    ]


@pytest.mark.parametrize(
    ("window", "overlap", "said"),
    [
        (80, 16, "VEDIT_VACE_WINDOW is 80; it must be 4k+1"),
        (0, 0, "VEDIT_VACE_WINDOW is 0"),
        (17, 13, "VEDIT_VACE_OVERLAP is 13; with VEDIT_VACE_WINDOW=17 it must be 0 to 12"),
        (5, 1, "VEDIT_VACE_OVERLAP is 1; with VEDIT_VACE_WINDOW=5 it must be 0 to 0"),
    ],
)
def test_window_settings_that_cannot_work_are_named(window: int, overlap: int, said: str) -> None:
    with pytest.raises(WindowSettingInvalid, match=re.escape(said)):
        check_window(window, overlap)


def test_shared_frames_crossfade_from_the_earlier_window_to_the_later() -> None:
    earlier, later = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 200, np.uint8)
    steps = [int(crossfade(earlier, later, k, 4)[0, 0, 0]) for k in range(4)]
    assert steps == [40, 80, 120, 160]


# --- sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "size", "expected"),
    [
        ((1280, 720), "480p", (832, 480)),
        ((720, 1280), "480p", (480, 832)),
        ((960, 960), "480p", (624, 624)),
        ((1088, 832), "480p", (704, 560)),
        ((1920, 1080), "720p", (1280, 720)),
        ((1280, 720), "128x80", (128, 80)),
        ((1280, 720), "64x64", (80, 48)),
    ],
)
def test_the_working_size_is_the_models_area_at_the_sources_shape(source, size, expected) -> None:
    w, h = working_size(*source, working_area(size))
    assert (w, h) == expected and w % 16 == 0 and h % 16 == 0
    assert w * h <= working_area(size) * 1.05


@pytest.mark.parametrize("size", ["1080p", "832*480", "8x8", ""])
def test_a_working_size_that_is_not_one_is_named(size: str) -> None:
    said = f"VEDIT_VACE_SIZE is {size!r}; it must be 480p, 720p"
    with pytest.raises(ValueError, match=re.escape(said)):
        working_area(size)


def test_small_model_sizes_still_give_the_person_models_360_px() -> None:
    assert person_frame_size(128, 80) == (576, 360)
    assert person_frame_size(80, 128) == (360, 576)
    assert person_frame_size(832, 480) == (832, 480)
    assert AREAS["480p"] == 832 * 480


def test_engine_vace_runs_one_worker_unless_asked() -> None:
    assert Settings(engine="vace").workers == 1
    assert Settings(engine="vace", workers=3).workers == 3
    assert Settings(engine="classic", workers=2).workers == 2


# --- frame times -----------------------------------------------------------------------


def test_output_frames_show_the_clip_frame_nearest_in_time() -> None:
    assert [clip_index(i, 24, 16) for i in range(7)] == [0, 1, 1, 2, 3, 3, 4]
    assert clip_length(120, 24, 16) == 80  # 5 s
    assert clip_length(360, 24, 16) == 240  # 15 s
    assert clip_length(1, 24, 16) == 1


def test_the_clip_source_gives_the_frame_shown_at_each_16_fps_time(tmp_path: Path) -> None:
    video = make_counting_video(tmp_path / "count.mp4", frames=70, fps=25, size=64)
    frames = list(clip_source(video, fps=16, count=40, width=32, height=32))
    assert len(frames) == 40 and frames[0].y.shape == (32, 32)
    numbers = [frame_number(f.y) for f in frames]
    assert numbers == [int(j * 25 / 16 + 1e-9) for j in range(40)]
    # A video that ends early holds its last frame (69, from 16 fps frame 45 on).
    held = list(clip_source(video, fps=16, count=50, width=32, height=32))
    assert [frame_number(f.y) for f in held[40:]] == [62, 64, 65, 67, 68] + [69] * 5


# --- the model folder ------------------------------------------------------------------


def _model_folder(root: Path) -> Path:
    (root / "model_index.json").write_text(json.dumps({"_class_name": "WanVACEPipeline"}))
    for part in ("transformer", "vae", "text_encoder"):
        (root / part).mkdir()
        (root / part / "config.json").write_text("{}")
        (root / part / "model.safetensors").write_bytes(b"\0" * 2048)
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text("{}")
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "spiece.model").write_bytes(b"x")
    return root


def test_a_whole_model_folder_passes(tmp_path: Path) -> None:
    assert check_model_dir(_model_folder(tmp_path)) == tmp_path.resolve()


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (lambda d: (d / "model_index.json").unlink(), "no model_index.json"),
        (
            lambda d: (d / "model_index.json").write_text('{"_class_name": "WanPipeline"}'),
            "names 'WanPipeline', not WanVACEPipeline",
        ),
        (lambda d: (d / "model_index.json").write_text("{"), "model_index.json cannot be read"),
        (lambda d: (d / "vae" / "config.json").unlink(), "missing vae/config.json"),
        (
            lambda d: (d / "tokenizer" / "spiece.model").unlink(),
            "missing tokenizer/ (tokenizer.json or spiece.model)",
        ),
        (
            lambda d: (d / "text_encoder" / "model.safetensors").write_bytes(
                b"version https://git-lfs.github.com/spec/v1\n"
            ),
            "text_encoder/model.safetensors's contents (a git-lfs pointer",
        ),
    ],
)
def test_a_wrong_model_folder_is_named_with_what_it_lacks(
    tmp_path: Path, spoil: Callable[[Path], object], said: str
) -> None:
    spoil(_model_folder(tmp_path))
    with pytest.raises(ModelFolderUnusable) as refused:
        check_model_dir(tmp_path)
    assert f"VEDIT_VACE_MODEL_DIR={tmp_path.resolve()}: " in str(refused.value)
    assert said in str(refused.value)


def test_no_model_folder_at_all_says_which_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderUnusable, match="engine vace needs VEDIT_VACE_MODEL_DIR"):
        check_model_dir(None)
    with pytest.raises(ModelFolderUnusable, match="no such folder"):
        check_model_dir(tmp_path / "absent")
    # Several things missing: all of them named at once.
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanVACEPipeline"}))
    with pytest.raises(ModelFolderUnusable) as refused:
        check_model_dir(tmp_path)
    for part in ("transformer/config.json", "vae/ weights", "scheduler/", "tokenizer/"):
        assert part in str(refused.value)


# --- the prompt and the conditions ----------------------------------------------------


def test_the_prompt_describes_the_video_and_keeps_the_users_words() -> None:
    prompt = "make the character wear the striped sweater in the image"
    text = describe(plan_edit(prompt), prompt)
    assert text.startswith("The person wears the garment shown in the reference image")
    assert text.endswith(prompt)
    chinese = "让角色穿上图片中的条纹毛衣"
    assert describe(plan_edit(chinese), chinese) == (
        "人物穿着参考图中的服装，颜色、图案和面料与参考图一致；人物的面部、发型、身体、姿势、"
        "动作以及周围的一切保持不变。" + chinese
    )
    style = describe(plan_edit("watercolor please"), "watercolor please")
    assert "a watercolour painting" in style and "in the colours of the reference" in style
    background = describe(plan_edit("换成图片中的背景"), "换成图片中的背景")
    assert background.startswith("同一个人物") and background.endswith("换成图片中的背景")


def _yuv(rgb: np.ndarray) -> YuvFrame:
    return YuvFrame(*yuv_planes(rgb, "bt709"), "bt709")


def test_a_whole_frame_plan_gives_the_clip_in_grey_and_no_region() -> None:
    rgb = np.zeros((80, 128, 3), np.uint8)
    rgb[:, :64] = (200, 40, 40)
    condition = Conditioner(plan_edit("vintage film"), [], 128, 80)(_yuv(rgb), 0)
    assert condition.region is None and condition.control.shape == (80, 128, 3)
    c = condition.control.astype(int)
    assert np.abs(c[..., 0] - c[..., 1]).max() <= 1 and np.abs(c[..., 1] - c[..., 2]).max() <= 1
    assert c[:, :60].mean() > c[:, 70:].mean() + 40, "the shapes stay"


# --- from the clip's frames to the output stage's ------------------------------------


class _Painter:
    """A clip editor for the adapter's sake: each frame flat white, its left half the region
    (or the whole frame), counting what it was given."""

    fps, width, height = 16, 64, 32

    def __init__(self, whole: bool) -> None:
        self.whole, self.given = whole, 0

    def __call__(
        self, frames: Iterator[YuvFrame], count: int, progress: Callable[[float], None]
    ) -> Iterator[ClipFrame]:
        for j, _frame in enumerate(frames):
            self.given += 1
            region = None
            if not self.whole:
                region = np.zeros((32, 64), np.float32)
                region[:, :32] = 1.0
            progress((j + 1) / count)
            yield ClipFrame(np.full((32, 64, 3), 255, np.uint8), region)


@pytest.mark.parametrize("whole", [True, False])
def test_a_clips_frames_reach_the_output_at_its_size_and_rate(tmp_path: Path, whole: bool) -> None:
    video = make_counting_video(tmp_path / "count.mp4", frames=80, fps=25, size=64)
    spec = OutputSpec(128, 64, 24, 72, watermark=False, keep_audio=False, metadata={})
    painter = _Painter(whole)
    seen: list[float] = []
    frames = ClipFrames(painter, video, spec, seen.append)
    source = np.full((64, 128, 3), 30, np.uint8)
    outs = [frames(source, i) for i in range(72)]
    assert painter.given == clip_length(72, 24, 16) == 48 and seen[-1] == 1.0
    out = outs[-1]
    assert out.shape == (64, 128, 3)
    if whole:
        assert (out == 255).all()
    else:  # the region's half is the clip's, the rest the source's own pixels
        assert (out[:, :56] == 255).all() and (out[:, 72:] == 30).all()
