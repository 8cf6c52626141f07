#!/usr/bin/env python3
"""The clean path, before any test: what a newcomer gets from the README's first command.

1. A fresh copy of the repository (tracked and new files, no virtualenv, no data).
2. Quickstart command 1, exactly as README.md writes it (a fresh virtualenv, the plain
   install with no extras, then ``vedit serve``), on a free loopback port
   (``VEDIT_PORT``) with one worker.
3. A generated clip and image uploaded (``POST /v1/uploads``, as the Quickstart does;
   the server allows no media host).
4. One task created from the uploads' URLs and polled with a client that uses only
   the standard library, with the API key the server printed.
5. The MP4 downloaded and probed (H.264, 24 fps, the 720P size, the audio kept).

Exits non-zero, with the server's log, when any step fails. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from quickstart import quickstart_command

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 1200  # the install downloads and builds the whole dependency tree
EDIT_TIMEOUT_S = 300


class SmokeFailed(Exception):
    pass


def fresh_copy(dest: Path) -> None:
    """The repository's tracked and untracked-but-not-ignored files, nothing else."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(
    method: str,
    url: str,
    key: str,
    body: dict[str, Any] | None = None,
    *,
    upload: Path | None = None,
) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    content_type = "application/json"
    if upload is not None:  # multipart/form-data with one part, "file"
        boundary = "vedit-smoke-boundary"
        data = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{upload.name}"\r\n\r\n'.encode()
            + upload.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        content_type = f"multipart/form-data; boundary={boundary}"
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        raise SmokeFailed(f"{method} {url} -> {exc.code}: {exc.read()[:500]!r}") from None


def wait_until_serving(proc: subprocess.Popen[bytes], base: str, log: Path) -> str:
    """The API key the server printed, once ``/healthz`` answers 200."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SmokeFailed(f"Quickstart command 1 exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
                if resp.status == 200:
                    found = re.search(r"API key \(shown once\): (\S+)", log.read_text())
                    if not found:
                        raise SmokeFailed("the server did not print an API key")
                    return found.group(1)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise SmokeFailed(f"the server did not answer /healthz within {START_TIMEOUT_S} s")


def run(work: Path) -> None:
    clone, media, data = work / "vedit", work / "media", work / "data"
    clone.mkdir()
    media.mkdir()
    fresh_copy(clone)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEDIT_", "PYTHON"))}
    env.update(
        VEDIT_PORT=str(port), VEDIT_DATA_DIR=str(data), VEDIT_WORKERS="1",
    )  # fmt: skip
    command = quickstart_command(1)
    log = work / "serve.log"
    started = time.monotonic()
    print(f"smoke: {command}", flush=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", command], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        key = wait_until_serving(proc, base, log)
        print(f"smoke: installed and serving in {time.monotonic() - started:.0f} s", flush=True)
        python = str(clone / ".venv" / "bin" / "python")
        tool = str(ROOT / ".ci" / "media.py")
        subprocess.run([python, tool, "make", str(media)], check=True)

        # A real edit of uploaded files, with nothing but the standard library.
        video = call("POST", f"{base}/v1/uploads", key, upload=media / "clip.mp4")["url"]
        image = call("POST", f"{base}/v1/uploads", key, upload=media / "look.png")["url"]
        created = call("POST", f"{base}/v1/video/generations", key, {
            "model": "happyhorse-1.0-video-edit",
            "input": {"prompt": "make it look like the reference photo", "media": [
                {"type": "video", "url": video}, {"type": "reference_image", "url": image}]},
            "parameters": {"resolution": "720P", "watermark": True, "seed": 7},
        })  # fmt: skip
        task_id = created["task_id"]
        deadline = time.monotonic() + EDIT_TIMEOUT_S
        while True:
            task = call("GET", f"{base}/v1/video/generations/{task_id}", key)["data"]
            if task["status"] == "SUCCESS":
                break
            if task["status"] == "FAILURE":
                raise SmokeFailed(f"task {task_id} failed: {task['fail_reason']}")
            if time.monotonic() > deadline:
                raise SmokeFailed(f"task {task_id} still {task['status']} {task['progress']}")
            time.sleep(1)
        result = work / "out.mp4"
        with urllib.request.urlopen(task["result_url"], timeout=60) as resp:
            result.write_bytes(resp.read())
        facts = json.loads(
            subprocess.run([python, tool, "probe", str(result)], check=True,
                           capture_output=True).stdout
        )  # fmt: skip
        expected = {"codec": "h264", "width": 1280, "height": 720, "fps": 24.0, "frames": 96,
                    "audio": True}  # fmt: skip
        wrong = {k: facts.get(k) for k, v in expected.items() if facts.get(k) != v}
        if wrong:
            raise SmokeFailed(f"the result is not as the contract says: {wrong} (all: {facts})")
        print(f"smoke: task {task_id} edited: {facts}", flush=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="vedit-smoke-"))
    try:
        run(work)
    except (SmokeFailed, subprocess.CalledProcessError) as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        log = work / "serve.log"
        if log.exists():
            print(log.read_text(errors="replace")[-6000:], file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("smoke: the Quickstart's plain install serves and edits", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
