"""The ``vedit`` command as a newcomer meets it: version, help, read-only commands, serve flags."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import TEST_KEY, body, free_port
from vedit import __version__


def vedit(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VEDIT_")}
    return subprocess.run(
        [sys.executable, "-m", "vedit.cli", *args],
        cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_version(tmp_path) -> None:
    out = vedit("--version", cwd=tmp_path)
    assert (
        out.returncode == 0
        and out.stdout.strip() == f"vedit {__version__} (happyhorse-1.0-video-edit)"
    )


def test_help_has_no_type_placeholders(tmp_path) -> None:
    for args in (
        [],
        ["serve"],
        ["worker"],
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
    ):
        out = vedit(*args, "--help", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert not re.search(r"<(bool|str|int|float|path)[^>]*>|\{[A-Z]+\}", out.stdout), out.stdout
    assert "--data-dir DIR" in vedit("serve", "--help", cwd=tmp_path).stdout
    assert "--media-allow HOST:PORT" in vedit("serve", "--help", cwd=tmp_path).stdout


def test_commands_that_only_read_never_create_a_data_folder(tmp_path) -> None:
    out = vedit("keys", "list", cwd=tmp_path)
    assert out.returncode == 0 and "no keys" in out.stdout
    out = vedit("keys", "revoke", "nobody", cwd=tmp_path)
    assert out.returncode == 1 and "no active key matches" in out.stderr
    assert list(tmp_path.iterdir()) == []
    # --data-dir names the folder for the keys commands as for serve.
    made = vedit("keys", "create", "--name", "app", "--data-dir", "elsewhere", cwd=tmp_path)
    assert made.returncode == 0 and made.stdout.startswith("vk-")
    listed = vedit("keys", "list", "--data-dir", "elsewhere", cwd=tmp_path)
    assert "app" in listed.stdout and (tmp_path / "elsewhere" / "vedit.db").is_file()
    assert not (tmp_path / "data").exists()


def test_serve_takes_its_data_dir_and_media_allow_list_as_flags(tmp_path, media) -> None:
    port = free_port()
    data = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEDIT_")}
    env["VEDIT_API_KEY"] = TEST_KEY
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vedit.cli", "serve", "--port", str(port), "--workers", "1",
         "--data-dir", str(data), "--media-allow", media.hostport],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {TEST_KEY}"}
        payload = body(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
        tid = client.post("/v1/video/generations", json=payload, headers=headers).json()["task_id"]
        while time.monotonic() < deadline:
            d = client.get(f"/v1/video/generations/{tid}", headers=headers).json()["data"]
            if d["status"] in ("SUCCESS", "FAILURE"):
                break
            time.sleep(0.3)
        assert d["status"] == "SUCCESS", d["fail_reason"]
        assert (data / "vedit.db").is_file() and (data / "results" / f"{tid}.mp4").is_file()
        assert not (tmp_path / "data").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
