"""The client commands as scripts meet them: real subprocesses against a live server, real
edits probed, and every exit code (0, 1, 2, 3, 4, 5)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import free_port
from mediagen import make_video, probe_output

PROMPT = "make it look like the reference photo"


def vedit(
    *args: str, cwd: Path, server=None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``vedit ARGS`` with no VEDIT_* from the test's environment but the server's address and
    key (as a user's shell would have them) and ``env``, stdout and stderr captured: not a
    terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEDIT_")} | (env or {})
    if server is not None:
        env |= {"VEDIT_BASE_URL": server.base, "VEDIT_API_KEY": server.key}
    return subprocess.run(
        [sys.executable, "-m", "vedit.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_help_of_the_client_commands_is_plain(tmp_path) -> None:
    for command in ("submit", "status", "wait", "download", "cancel"):
        out = vedit(command, "--help", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert not re.search(r"<(bool|str|int|float|path)[^>]*>|\{[A-Z]+\}", out.stdout), out.stdout
        assert "--server URL" in out.stdout and "--key KEY" in out.stdout
    assert "-p, --prompt PROMPT" in vedit("submit", "--help", cwd=tmp_path).stdout


def test_submit_wait_uploads_local_files_and_saves_the_video(server, media_dir, tmp_path) -> None:
    out = vedit(
        "submit", str(media_dir / "silent.mp4"), str(media_dir / "coffee.jpg"), "-p", PROMPT,
        "--resolution", "720P", "--seed", "5", "--no-watermark", "--wait", "-o", "edited.mp4",
        cwd=tmp_path, server=server,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    task_id, path = out.stdout.split()
    assert task_id.startswith("asyntask_") and path == "edited.mp4"
    assert "uploaded" in out.stderr and f"{task_id} SUCCESS 100%" in out.stderr
    assert "plan: Give the video the look (colours and light) of the reference" in out.stderr
    assert "warning" not in out.stderr  # made as asked
    # Not a terminal: one line per status, no bar drawn.
    assert "\r" not in out.stderr and "━" not in out.stderr
    info = probe_output(tmp_path / "edited.mp4")
    assert info["codec"] == "h264" and info["frames"] == 84
    assert (info["width"], info["height"]) == (1280, 720)
    data = server.query(task_id).json()["data"]["data"]
    assert data["parameters"] == {
        "resolution": "720P", "watermark": False, "seed": 5, "audio_setting": "auto",
    }  # fmt: skip


def test_an_edit_not_made_as_asked_is_a_warning_line(server, media_dir, tmp_path) -> None:
    """Moving shapes, no person: the background edit falls back to the look. The task
    succeeds and the video is saved (exit 0), and stderr says in one line that the background
    was not replaced, and why; stdout is still what scripts read."""
    out = vedit(
        "submit", str(media_dir / "silent.mp4"), str(media_dir / "coffee.jpg"),
        "-p", "replace the background with the image", "--resolution", "720P", "--wait",
        "-o", "edited.mp4", cwd=tmp_path, server=server,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    task_id, path = out.stdout.split()
    assert path == "edited.mp4" and (tmp_path / path).is_file()
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: the background replacement asked for was not made: the pose model and the "
        "person detector found no person in the 8 frames sampled from the clip, so the "
        "reference's look is applied"
    ]
    plan = server.query(task_id).json()["data"]["data"]["output"]["edit_plan"]
    assert plan["applied"] is False and plan["fallback_from"] == "replace_background"


def test_submit_urls_then_status_wait_and_download(server, media, tmp_path) -> None:
    out = vedit(
        "submit", media.url("silent.mp4"), media.url("chelsea.webp"), "-p", "watercolor",
        "--resolution", "720P", "--audio", "origin", "--json", cwd=tmp_path, server=server,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    task_id = created["task_id"]
    assert created["status"] == "queued" and "uploaded" not in out.stderr

    # --server and --key work as well as the environment.
    shown = vedit("status", task_id, "--json", "--server", server.base, "--key", server.key,
                  cwd=tmp_path)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["data"]["task_id"] == task_id

    waited = vedit("wait", task_id, "--timeout", "100", cwd=tmp_path, server=server)
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.strip() == f"{task_id}.mp4" and (tmp_path / f"{task_id}.mp4").is_file()

    done = vedit("status", task_id, cwd=tmp_path, server=server)
    assert done.returncode == 0
    assert done.stdout.startswith(f"{task_id} SUCCESS (SUCCEEDED) 100%")
    assert "video: http://127.0.0.1" in done.stdout and "usage: 720P" in done.stdout
    final = json.loads(vedit("status", task_id, "--json", cwd=tmp_path, server=server).stdout)
    assert final["data"]["status"] == "SUCCESS" and final["data"]["result_url"]

    got = vedit("download", task_id, "-o", "again.mp4", cwd=tmp_path, server=server)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / f"{task_id}.mp4").read_bytes()
    assert probe_output(tmp_path / "again.mp4")["codec"] == "h264"


def test_a_failed_task_exits_4_with_its_code_and_message(server, media, tmp_path) -> None:
    out = vedit(
        "submit", media.url("short.mp4"), media.url("coffee.jpg"), "-p", PROMPT, "--wait",
        cwd=tmp_path, server=server,
    )  # fmt: skip
    assert out.returncode == 4, out.stderr
    task_id = out.stdout.split()[0]
    assert f"task {task_id} FAILED: InvalidFile.Duration: media[0] (video): duration is 2.0" in (
        out.stderr
    )
    assert not list(tmp_path.iterdir())  # nothing saved
    # The same task: wait says it again, download too, status reports it and exits 0.
    assert vedit("wait", task_id, cwd=tmp_path, server=server).returncode == 4
    assert vedit("download", task_id, cwd=tmp_path, server=server).returncode == 4
    shown = vedit("status", task_id, cwd=tmp_path, server=server)
    assert shown.returncode == 0 and "failure: InvalidFile.Duration: " in shown.stdout


def test_api_errors_exit_3_with_status_code_and_message(server, media, media_dir, tmp_path) -> None:
    args = ("submit", media.url("wide.mp4"), media.url("coffee.jpg"), "-p", PROMPT)
    bad_key = vedit(*args, "--key", "vk-wrong", cwd=tmp_path, server=server)
    assert bad_key.returncode == 3 and "HTTP 401 invalid_api_key" in bad_key.stderr
    empty = vedit("submit", media.url("wide.mp4"), media.url("coffee.jpg"), "-p", " ",
                  cwd=tmp_path, server=server)  # fmt: skip
    assert empty.returncode == 3, empty.stderr
    assert "HTTP 400 invalid_request" in empty.stderr and "input.prompt" in empty.stderr
    # A value the CLI knows to be wrong is a usage error, before anything is uploaded.
    bad_tier = vedit(*args, "--resolution", "4K", cwd=tmp_path, server=server)
    assert bad_tier.returncode == 2 and "'4K' is not 720P or 1080P" in bad_tier.stderr
    unknown = vedit("status", "asyntask_nosuchtask", cwd=tmp_path, server=server)
    assert unknown.returncode == 3 and "HTTP 404 task_not_exist" in unknown.stderr
    # A file this shell's limits let through (VEDIT_IMAGE_MIN_SIDE) is still the server's to
    # refuse, by its own limits.
    too_small = vedit("submit", media.url("wide.mp4"), str(media_dir / "tiny.png"), "-p", PROMPT,
                      cwd=tmp_path, server=server, env={"VEDIT_IMAGE_MIN_SIDE": "100"})  # fmt: skip
    assert too_small.returncode == 3 and too_small.stdout == ""
    assert "HTTP 400 invalid_file: upload of tiny.png: " in too_small.stderr
    assert "size is 280x280; width and height must be at least 300 px" in too_small.stderr
    down = f"http://127.0.0.1:{free_port()}"
    refused = vedit("status", "x", "--server", down, "--key", "k", cwd=tmp_path)
    assert refused.returncode == 3
    assert refused.stderr.startswith(f"vedit: cannot reach {down} (")
    assert "is `vedit serve` running?" in refused.stderr and "Traceback" not in refused.stderr


def test_usage_errors_exit_2(server, media, media_dir, tmp_path) -> None:
    no_prompt = vedit("submit", media.url("wide.mp4"), media.url("coffee.jpg"), cwd=tmp_path,
                      server=server)  # fmt: skip
    assert no_prompt.returncode == 2 and "--prompt" in no_prompt.stderr
    no_file = vedit("submit", "nope.mp4", media.url("coffee.jpg"), "-p", PROMPT, cwd=tmp_path,
                    server=server)  # fmt: skip
    assert no_file.returncode == 2
    assert "'nope.mp4' is neither an http(s) URL nor a file" in no_file.stderr
    # Swapped or wrong files are told apart by their bytes, before anything is uploaded.
    clip, image = str(media_dir / "wide.mp4"), str(media_dir / "coffee.jpg")
    swapped = vedit("submit", image, clip, "-p", PROMPT, cwd=tmp_path, server=server)
    assert swapped.returncode == 2 and "uploaded" not in swapped.stderr
    assert "is an image (image/jpeg), not a video: the clip comes first" in swapped.stderr
    (tmp_path / "notes.txt").write_text("not a medium")
    text = vedit("submit", clip, "notes.txt", "-p", PROMPT, cwd=tmp_path, server=server)
    assert text.returncode == 2 and text.stderr == (
        "vedit: notes.txt (REF) is not an image vedit can read (JPEG, PNG, BMP or WEBP); it "
        "holds 12 bytes of text\n"
    )
    no_key = vedit("status", "x", cwd=tmp_path)
    assert no_key.returncode == 2 and "pass --key or set VEDIT_API_KEY" in no_key.stderr
    bad_seed = vedit("submit", "a", "b", "-p", "x", "--seed", "many", cwd=tmp_path, server=server)
    assert bad_seed.returncode == 2 and "Usage: " in bad_seed.stderr
    assert "{" not in bad_seed.stderr.splitlines()[0]


def test_timeout_exits_5_and_cancel_ends_a_queued_task(api_server, media_dir, tmp_path) -> None:
    """On a server with no workers a task stays queued."""
    out = vedit(
        "submit", str(media_dir / "silent.mp4"), str(media_dir / "coffee.jpg"), "-p", PROMPT,
        "--wait", "--timeout", "1", cwd=tmp_path, server=api_server,
    )  # fmt: skip
    assert out.returncode == 5, out.stderr
    task_id = out.stdout.split()[0]
    assert f"task {task_id} is still QUEUED (0%) after 1 s" in out.stderr
    assert f"{task_id} QUEUED 0%" in out.stderr

    early = vedit("download", task_id, cwd=tmp_path, server=api_server)
    assert early.returncode == 1 and "no result yet" in early.stderr

    gone = vedit("cancel", task_id, cwd=tmp_path, server=api_server)
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.strip() == f"{task_id} CANCELED"
    again = vedit("cancel", task_id, "--json", cwd=tmp_path, server=api_server)
    assert again.returncode == 3 and "HTTP 400 task_not_cancelable" in again.stderr
    assert again.stdout == ""
    shown = json.loads(vedit("status", task_id, "--json", cwd=tmp_path, server=api_server).stdout)
    assert shown["data"]["data"]["output"]["task_status"] == "CANCELED"


@pytest.mark.parametrize("as_json", [True, False])
def test_wait_timeout_with_json_prints_the_last_answer(api_server, tmp_path, as_json) -> None:
    created = api_server.submit("https://example.com/v.mp4", "https://example.com/i.jpg")
    args = ["wait", created, "--timeout", "0.3", *(["--json"] if as_json else [])]
    out = vedit(*args, cwd=tmp_path, server=api_server)
    assert out.returncode == 5
    if as_json:
        assert json.loads(out.stdout)["data"]["status"] == "QUEUED"
    else:
        assert out.stdout == ""
    api_server.client.post(f"/v1/video/generations/{created}/cancel", headers=api_server.headers())


def test_ctrl_c_while_waiting_says_the_task_goes_on(api_server, tmp_path) -> None:
    task_id = api_server.submit("https://example.com/v.mp4", "https://example.com/i.jpg")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEDIT_")}
    env |= {"VEDIT_BASE_URL": api_server.base, "VEDIT_API_KEY": api_server.key}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vedit.cli", "wait", task_id], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    first = proc.stderr.readline()  # the first poll's line: it is waiting now
    assert first.startswith(f"{task_id} QUEUED 0%"), first
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert f"stopped waiting; task {task_id} goes on" in stderr and "Traceback" not in stderr
    assert api_server.query(task_id).json()["data"]["status"] == "QUEUED"


# --- local files: checked before anything is sent; --convert; vedit convert -----------------


def test_submit_checks_every_local_file_before_the_first_byte_is_sent(
    api_server, media_dir, tmp_path
) -> None:
    """Each file is checked from its headers against the media limits — kind, order, format,
    bytes, duration, frame rate, size, aspect — and a refused one is one line naming the file,
    the limit and the value seen, exit 2, with nothing uploaded."""
    clip, photo = str(media_dir / "wide.mp4"), str(media_dir / "coffee.jpg")
    refused = [
        ((str(media_dir / "short.mp4"), photo), {},
         "short.mp4 (VIDEO): duration is 2.00 s; it must be within 3-60 s"),
        ((str(media_dir / "long.mp4"), photo), {"VEDIT_VIDEO_MAX_DURATION_S": "15"},
         "long.mp4 (VIDEO): duration is 20.00 s; it must be within 3-15 s"),
        ((str(media_dir / "lowfps.mp4"), photo), {},
         "lowfps.mp4 (VIDEO): frame rate is 6.00 fps; it must be above 8 fps"),
        ((str(media_dir / "small.mp4"), photo), {},
         "small.mp4 (VIDEO): size is 480x270; the short side must be at least 360 px"),
        ((str(media_dir / "sliver.mp4"), photo), {},
         "sliver.mp4 (VIDEO): aspect ratio is 3200:384 (8.33:1); it must be within 1:8 to 8:1"),
        ((clip, photo), {"VEDIT_VIDEO_MAX_BYTES": "100000"},
         f"wide.mp4 (VIDEO): the file is {(media_dir / 'wide.mp4').stat().st_size:,} bytes; a "
         "video is at most 100,000 bytes (VEDIT_VIDEO_MAX_BYTES)"),
        ((clip, str(media_dir / "tiny.png")), {},
         "tiny.png (REF): size is 280x280; width and height must be at least 300 px"),
        ((clip, str(media_dir / "strip.png")), {},
         "strip.png (REF): aspect ratio is 900:320 (2.81:1); it must be within 1:2.5 to 2.5:1"),
        ((clip, str(media_dir / "garbage.mp4")), {},
         "garbage.mp4 (REF) is not an image vedit can read (JPEG, PNG, BMP or WEBP); it holds "
         "50,000 bytes of data starting with "),
        ((photo, clip), {},
         "coffee.jpg (VIDEO) is an image (image/jpeg), not a video: the clip comes first"),
    ]  # fmt: skip
    uploads = api_server.db("select count(*) from uploads")[0][0]
    for args, env, said in refused:
        out = vedit("submit", *args, "-p", PROMPT, cwd=tmp_path, server=api_server, env=env)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stdout == "" and len(out.stderr.splitlines()) == 1, out.stderr
        assert out.stderr.startswith("vedit: ") and said in out.stderr, (said, out.stderr)
    assert api_server.db("select count(*) from uploads")[0][0] == uploads  # not one byte sent


def test_a_refused_format_says_what_is_taken_and_convert_makes_it_so(
    server, media_dir, tmp_path
) -> None:
    """An AVI and a GIF: refused with what they are, what is accepted and the two ways to
    convert; --convert converts them here (PyAV, Pillow) and the edit runs; `vedit convert`
    writes an H.264 MP4 that the API takes."""
    make_video(tmp_path / "clip.avi", container="avi", codec="mpeg4", seconds=4)
    gif = tmp_path / "look.gif"
    Image.open(media_dir / "coffee.jpg").save(gif)
    out = vedit("submit", "clip.avi", "look.gif", "-p", PROMPT, cwd=tmp_path, server=server)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (
        "vedit: clip.avi (VIDEO) is an AVI video (avi); a video must be MP4 or MOV (H.264 "
        "recommended): convert it into an H.264 MP4 on this machine (no ffmpeg needed) with "
        "--convert here, or first with `vedit convert clip.avi clip.mp4`\n"
    )
    mkv = vedit("submit", str(media_dir / "clip.mkv"), "look.gif", "-p", PROMPT, cwd=tmp_path,
                server=server)  # fmt: skip
    assert mkv.returncode == 2 and "is a Matroska / WebM video (matroska,webm)" in mkv.stderr
    image = vedit("submit", str(media_dir / "wide.mp4"), "look.gif", "-p", PROMPT, cwd=tmp_path,
                  server=server)  # fmt: skip
    assert image.returncode == 2 and image.stderr == (
        "vedit: look.gif (REF) is a GIF image; an image must be JPEG, PNG, BMP or WEBP: convert "
        "it into a PNG on this machine (no ffmpeg needed) with --convert here, or first with "
        "`vedit convert look.gif look.png`\n"
    )

    done = vedit("submit", "clip.avi", "look.gif", "-p", PROMPT, "--convert", "--resolution",
                 "720P", "--wait", "-o", "edited.mp4", cwd=tmp_path, server=server)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "converting clip.avi, an AVI video (avi), into an H.264 MP4" in done.stderr
    assert "converted clip.avi: 100 frames of 640x360, with its sound (" in done.stderr
    assert "converting look.gif, a GIF image, into a PNG" in done.stderr
    assert "uploaded clip.avi (" in done.stderr and "uploaded look.gif (" in done.stderr
    task_id = done.stdout.split()[0]
    media = server.query(task_id).json()["data"]["data"]
    assert media["usage"]["input_video_duration"] == 4
    result = probe_output(tmp_path / "edited.mp4")
    assert (result["codec"], result["frames"], result["audio"] is not None) == ("h264", 96, True)

    made = vedit("convert", "clip.avi", "clip.mp4", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout == "clip.mp4\n"
    assert made.stderr.startswith("wrote clip.mp4: 100 frames of 640x360, with its sound (")
    mp4 = probe_output(tmp_path / "clip.mp4")
    assert (mp4["codec"], mp4["width"], mp4["height"], mp4["frames"]) == ("h264", 640, 360, 100)
    assert mp4["fps"] == 25 and mp4["audio"]["codec"] == "aac"
    assert vedit("convert", "look.gif", "look.png", cwd=tmp_path).returncode == 0
    assert Image.open(tmp_path / "look.png").format == "PNG"
    # Converted, but still outside a limit: said, as a note.
    short = make_video(tmp_path / "short.avi", container="avi", codec="mpeg4", seconds=2)
    note = vedit("convert", str(short), "short.mp4", cwd=tmp_path)
    assert note.returncode == 0 and "vedit: note: the API will refuse it as it is: " in note.stderr
    assert "duration is 2.00 s; it must be within 3-60 s" in note.stderr
    bad = vedit("convert", "clip.avi", "clip.txt", cwd=tmp_path)
    assert bad.returncode == 2 and "OUT ends in .mp4 or .mov (a video)" in bad.stderr
