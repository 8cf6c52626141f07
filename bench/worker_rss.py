"""Peak RSS of a worker process editing a 60 s 1080p input (1080P output, audio kept).

Usage: python bench/worker_rss.py
Reads the worker's VmHWM from /proc after the task succeeds: the real worker
process of ``vedit serve``, not a copy of its code.
"""

from __future__ import annotations

import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from _harness import machine, vedit_server

from mediagen import make_image, make_video


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    media = Path(tempfile.mkdtemp(prefix="vedit-media-"))
    make_video(media / "v.mp4", width=1920, height=1080, fps=30, seconds=60)
    make_image(media / "i.jpg", kind="coffee")
    handler = partial(SimpleHTTPRequestHandler, directory=str(media))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{httpd.server_address[1]}"
    with vedit_server(workers=1, env={"VEDIT_MEDIA_ALLOW": host}) as (base, key, data):
        import sqlite3

        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
        body = {
            "model": "happyhorse-1.0-video-edit",
            "input": {
                "prompt": "look",
                "media": [
                    {"type": "video", "url": f"http://{host}/v.mp4"},
                    {"type": "reference_image", "url": f"http://{host}/i.jpg"},
                ],
            },
            "parameters": {"resolution": "1080P"},
        }
        tid = client.post("/v1/video/generations", json=body).json()["task_id"]
        t = time.perf_counter()
        while True:
            d = client.get(f"/v1/video/generations/{tid}").json()["data"]
            if d["status"] in ("SUCCESS", "FAILURE"):
                break
            time.sleep(0.2)
        assert d["status"] == "SUCCESS", d
        with sqlite3.connect(data / "vedit.db") as db:
            worker = db.execute("select worker_id from tasks where id = ?", (tid,)).fetchone()[0]
        rss = peak_rss_mb(int(worker.rsplit(":", 1)[1]))
        took = time.perf_counter() - t
    httpd.shutdown()
    print(f"machine: {machine()}")
    print("command: python bench/worker_rss.py")
    print(
        f"60 s 1920x1080 30 fps input with audio -> 1080P (15 s): worker peak RSS {rss:.0f} MB, "
        f"task took {took:.1f} s"
    )


if __name__ == "__main__":
    main()
