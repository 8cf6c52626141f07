"""A 5 s 720P task from submit to SUCCESS through a real server (2 workers), media on loopback.

Usage: python bench/submit_to_success.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _harness import edit_body, machine, media_server, vedit_server, wait_task

from mediagen import make_image, make_video


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    media = Path(tempfile.mkdtemp(prefix="vedit-media-"))
    make_video(media / "v.mp4", width=1280, height=720, fps=30, seconds=5)
    make_image(media / "i.jpg", kind="coffee")
    times = []
    with (
        media_server(media) as host,
        vedit_server(workers=2, env={"VEDIT_MEDIA_ALLOW": host}) as (base, key, _),
    ):
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
        for i in range(args.runs):
            t = time.perf_counter()
            tid = client.post("/v1/video/generations", json=edit_body(host, "720P", i)).json()
            d = wait_task(client, tid["task_id"])
            assert d["status"] == "SUCCESS", d
            times.append(time.perf_counter() - t)
    print(f"machine: {machine()}")
    print(f"command: python bench/submit_to_success.py --runs {args.runs}")
    print(
        f"5 s 720P task, submit to SUCCESS: median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s over {len(times)} runs"
    )


if __name__ == "__main__":
    main()
