"""``vedit edit``: local files edited in-process, with no server, through the service's path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mediagen import make_image, make_person_video, probe_output
from vedit.engines.person.check import missing_person_models
from vedit.engines.plan import plan_in_words


def vedit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEDIT_")}
    return subprocess.run(
        [sys.executable, "-m", "vedit.cli", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=env,
    )  # fmt: skip


def test_edit_writes_the_same_output_and_prints_the_plan(media_dir, tmp_path) -> None:
    out = tmp_path / "out" / "edited.mp4"
    run = vedit(
        "edit", str(media_dir / "wide.mp4"), str(media_dir / "coffee.jpg"),
        "-p", "make it look like the reference photo", "-o", str(out),
        "--resolution", "720P", "--seed", "7", "--no-watermark", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "plan: Give the video the look (colours and light) of the reference" in run.stdout
    assert f"wrote {out} (1280x720, 5.0 s, seed 7)" in run.stdout
    got = probe_output(out)
    assert (got["codec"], got["width"], got["height"], got["fps"]) == ("h264", 1280, 720, 24.0)
    assert got["frames"] == 120 and got["audio"] is not None
    # No server, no data folder: nothing is left behind where it ran.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("prompt", ["replace the background with the image", "wear the sweater"])
def test_a_person_edit_prints_only_vedit_s_own_lines(tmp_path, prompt) -> None:
    """The person models' runtime (TensorFlow Lite) writes its own lines to fd 2 ("INFO:
    Created TensorFlow Lite XNNPACK delegate for CPU."): none of them reach the user."""
    if missing := missing_person_models(None):
        pytest.skip(f"the person models are not installed: {missing}")
    clip = make_person_video(tmp_path / "walk.mp4", width=640, height=360, seconds=3)
    photo = make_image(tmp_path / "rocket.jpg", kind="rocket", fmt="JPEG")
    run = vedit("edit", str(clip), str(photo), "-p", prompt, "-o", "out.mp4", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert (
        len(lines) == 2 and lines[0].startswith("plan: ") and lines[1].startswith("wrote out.mp4")
    )
    assert "the person was edited in 100% of the frames" in lines[0]


def test_an_edit_not_made_as_asked_says_so_on_stderr(media_dir, tmp_path) -> None:
    """Moving shapes, no person: the background edit falls back to the look. The video is
    made (exit 0), and a warning line on stderr says the background was not replaced, and
    why: never a silent success."""
    if missing := missing_person_models(None):
        pytest.skip(f"the person models are not installed: {missing}")
    run = vedit(
        "edit", str(media_dir / "silent.mp4"), str(media_dir / "coffee.jpg"),
        "-p", "replace the background with the image", "-o", "out.mp4", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [
        "warning: the background replacement asked for was not made: the pose model and the "
        "person detector found no person in the 8 frames sampled from the clip, so the "
        "reference's look is applied"
    ]
    assert "(instead of replace background, which was not made)" in run.stdout
    assert (tmp_path / "out.mp4").is_file()


def test_edit_refuses_what_the_api_refuses(media_dir, tmp_path) -> None:
    clip, image = str(media_dir / "silent.mp4"), str(media_dir / "coffee.jpg")
    out = str(tmp_path / "o.mp4")
    run = vedit("edit", clip, clip, "-p", "look", "-o", out, cwd=tmp_path)
    assert run.returncode == 2 and "silent.mp4 is video/mp4; an image is needed" in run.stderr
    run = vedit("edit", str(media_dir / "short.mp4"), image, "-p", "look", "-o", out, cwd=tmp_path)
    assert run.returncode == 2 and "duration" in run.stderr
    run = vedit("edit", clip, image, "-p", "look", "-o", out, "--resolution", "4K", cwd=tmp_path)
    assert run.returncode == 2
    assert 'parameters.resolution must be "720P" or "1080P", got "4K"' in run.stderr
    run = vedit("edit", "missing.mp4", image, "-p", "look", "-o", out, cwd=tmp_path)
    assert run.returncode == 2 and "does not exist" in run.stderr
    assert not Path(out).exists()


def test_a_plan_in_words() -> None:
    plan = {
        "operation": "restyle_clothing", "style": None, "fallback_from": None,
        "because": "clothing word 'sweater'", "applied": True, "person_frame_share": 0.875,
    }  # fmt: skip
    assert plan_in_words(plan) == (
        "Restyle the upper-body clothing after the reference garment; the person was edited "
        "in 88% of the frames: clothing word 'sweater'."
    )
    stylized = {"operation": "stylize", "style": "watercolor", "because": "style word"}
    assert plan_in_words(stylized) == "Restyle the whole frame as watercolor: style word."
