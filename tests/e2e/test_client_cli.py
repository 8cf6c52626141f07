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

from conftest import free_port
from mediagen import probe_output

PROMPT = "make it look like the reference photo"


def vedit(*args: str, cwd: Path, server=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``vedit ARGS`` with no VEDIT_* from the test's environment but the server's address and
    key (as a user's shell would have them), stdout and stderr captured: not a terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEDIT_")}
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
    # Not a terminal: one line per status, no bar drawn.
    assert "\r" not in out.stderr and "━" not in out.stderr
    info = probe_output(tmp_path / "edited.mp4")
    assert info["codec"] == "h264" and info["frames"] == 84
    assert (info["width"], info["height"]) == (1280, 720)
    data = server.query(task_id).json()["data"]["data"]
    assert data["parameters"] == {
        "resolution": "720P", "watermark": False, "seed": 5, "audio_setting": "auto",
    }  # fmt: skip


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
    too_small = vedit("submit", media.url("wide.mp4"), str(media_dir / "tiny.png"), "-p", PROMPT,
                      cwd=tmp_path, server=server)  # fmt: skip
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
    assert text.returncode == 2 and "'notes.txt' is not a video (MP4 or MOV)" in text.stderr
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
