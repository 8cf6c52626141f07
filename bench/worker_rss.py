"""Peak RSS of a worker process editing a 60 s 1080p input (1080P output, audio kept).

Usage: python bench/worker_rss.py [--prompt "replace the background with the image"]
       [--input person]
Reads the worker's VmHWM from /proc after the task succeeds: the real worker
process of ``vedit serve``, not a copy of its code. The default input (a panned
photograph with audio) has no person, so a background or clothing prompt falls back
to the look there; ``--input person`` edits the person scene of ``tests/mediagen.py``
instead (a person walking across a panned room, 60 s at 1080p, no audio), so the
person edits themselves are measured (the person models, the detector, the edge matte).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import av
import httpx
from _harness import edit_body, machine, media_server, vedit_server, wait_task

from mediagen import make_image, make_person_video, make_video


def recompressed(src: Path, dest: Path, crf: int = 23) -> None:
    """``src`` encoded again (H.264, ``crf``), frame for frame: a smaller file of the same clip."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        v = out.add_stream("libx264", rate=vin.average_rate)
        v.width, v.height, v.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        v.options = {"preset": "veryfast", "crf": str(crf)}
        for frame in inp.decode(vin):
            frame.pict_type = 0
            out.mux(v.encode(frame))
        out.mux(v.encode(None))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", default="look", help="the edit, as a prompt")
    ap.add_argument(
        "--input",
        choices=["photo", "person"],
        default="photo",
        help="photo: a panned photograph with audio (no person); person: the person scene "
        "(a person walking across a panned room, no audio), for the person edits",
    )
    args = ap.parse_args()
    media = Path(tempfile.mkdtemp(prefix="vedit-media-"))
    if args.input == "person":
        made = make_person_video(media / "made.mp4", width=1920, height=1080, fps=30, seconds=60)
        recompressed(made, media / "v.mp4")  # made near-lossless: 120 MB, over the 100 MB limit
        made.unlink()
    else:
        make_video(media / "v.mp4", width=1920, height=1080, fps=30, seconds=60)
    make_image(media / "i.jpg", kind="coffee")
    with (
        media_server(media) as host,
        vedit_server(workers=1, env={"VEDIT_MEDIA_ALLOW": host}) as (base, key, data),
    ):
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
        t = time.perf_counter()
        tid = client.post(
            "/v1/video/generations", json=edit_body(host, "1080P", prompt=args.prompt)
        ).json()["task_id"]
        d = wait_task(client, tid, poll_s=0.2)
        assert d["status"] == "SUCCESS", d
        took = time.perf_counter() - t
        with sqlite3.connect(data / "vedit.db") as db:
            worker = db.execute("select worker_id from tasks where id = ?", (tid,)).fetchone()[0]
        rss = peak_rss_mb(int(worker.rsplit(":", 1)[1]))
    print(f"machine: {machine()}")
    print(f"command: python bench/worker_rss.py --prompt {args.prompt!r} --input {args.input}")
    print(f"plan: {d['data']['output']['edit_plan']['operation']}")
    what = "the person scene, no audio" if args.input == "person" else "with audio"
    print(
        f"60 s 1920x1080 30 fps input ({what}) -> 1080P (15 s): worker peak RSS {rss:.0f} MB, "
        f"task took {took:.1f} s"
    )


if __name__ == "__main__":
    main()
