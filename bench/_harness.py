"""Bench helpers: a vedit server in a temp folder, a loopback media server, machine facts."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def media_server(folder: Path) -> Iterator[str]:
    """Serves ``folder`` on a loopback port; yields its ``host:port``."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def edit_body(host: str, resolution: str, seed: int | None = None, prompt: str = "look") -> dict:
    """A create body for ``v.mp4`` and ``i.jpg`` on the media server ``host``."""
    params: dict = {"resolution": resolution}
    if seed is not None:
        params["seed"] = seed
    return {
        "model": "happyhorse-1.0-video-edit",
        "input": {
            "prompt": prompt,
            "media": [
                {"type": "video", "url": f"http://{host}/v.mp4"},
                {"type": "reference_image", "url": f"http://{host}/i.jpg"},
            ],
        },
        "parameters": params,
    }


def wait_task(client: httpx.Client, task_id: str, poll_s: float = 0.05) -> dict:
    """Polls until the task ends; returns ``data`` of the query answer."""
    while True:
        d = client.get(f"/v1/video/generations/{task_id}").json()["data"]
        if d["status"] in ("SUCCESS", "FAILURE"):
            return d
        time.sleep(poll_s)


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The ``src`` folder of commit ``ref``, checked out in a temporary git worktree."""
    where = Path(tempfile.mkdtemp(prefix="vedit-baseline-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(where), ref], cwd=ROOT, check=True
    )
    try:
        yield where / "src"
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, check=False)


@contextlib.contextmanager
def vedit_server(
    workers: int, env: dict[str, str] | None = None, src: Path | None = None
) -> Iterator[tuple[str, str, Path]]:
    """Yields (base URL, API key, data dir) of a fresh ``vedit serve``; ``src``: run the
    package in that source folder instead (a baseline checked out elsewhere)."""
    data = Path(tempfile.mkdtemp(prefix="vedit-bench-"))
    port = free_port()
    key = "vk-bench000000000000000000000000000000000000"
    full_env = {**os.environ, "VEDIT_DATA_DIR": str(data), "VEDIT_API_KEY": key, **(env or {})}
    if src is not None:
        full_env["PYTHONPATH"] = str(src)
    log = (data / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vedit.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        yield base, key, data
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
