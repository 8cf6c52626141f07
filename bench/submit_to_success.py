"""A 5 s 720P task from submit to SUCCESS through a real server (2 workers), media on loopback.

Usage: python bench/submit_to_success.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from _harness import machine, vedit_server

from mediagen import make_image, make_video


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    media = Path(tempfile.mkdtemp(prefix="vedit-media-"))
    make_video(media / "v.mp4", width=1280, height=720, fps=30, seconds=5)
    make_image(media / "i.jpg", kind="coffee")
    handler = partial(SimpleHTTPRequestHandler, directory=str(media))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{httpd.server_address[1]}"
    times = []
    with vedit_server(workers=2, env={"VEDIT_MEDIA_ALLOW": host}) as (base, key, _):
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
        for i in range(args.runs):
            body = {
                "model": "happyhorse-1.0-video-edit",
                "input": {
                    "prompt": "look",
                    "media": [
                        {"type": "video", "url": f"http://{host}/v.mp4"},
                        {"type": "reference_image", "url": f"http://{host}/i.jpg"},
                    ],
                },
                "parameters": {"resolution": "720P", "seed": i},
            }
            t = time.perf_counter()
            tid = client.post("/v1/video/generations", json=body).json()["task_id"]
            while True:
                d = client.get(f"/v1/video/generations/{tid}").json()["data"]
                if d["status"] in ("SUCCESS", "FAILURE"):
                    break
                time.sleep(0.05)
            assert d["status"] == "SUCCESS", d
            times.append(time.perf_counter() - t)
    httpd.shutdown()
    print(f"machine: {machine()}")
    print(f"command: python bench/submit_to_success.py --runs {args.runs}")
    print(
        f"5 s 720P task, submit to SUCCESS: median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s over {len(times)} runs"
    )


if __name__ == "__main__":
    main()
