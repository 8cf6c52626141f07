"""Peak RSS of a worker decoding the largest reference images allowed (issue 19).

Usage: python bench/reference_rss.py [--baseline REF] [--e2e png,webp]

Decode: each reference of 36,000,000 pixels (the limit; every file under 1 MB, so within
``VEDIT_IMAGE_MAX_BYTES``) is decoded by ``probe.load_image`` in a fresh Python process, as
the worker decodes it for a 1080P output: 16:9 (1920x1080, the common case) and 8:1
(4032x504, the widest output: nothing to spare). The figure is VmHWM over VmRSS just before
the call (``/proc/self/clear_refs`` resets the peak after the imports).

``--e2e KINDS``: also a real ``vedit serve --workers 1`` per reference kind and code, one
task each (a 5 s 1920x1080 clip edited at 1080P with the look, the reference beside it on
a loopback media server), and the worker process's VmHWM after SUCCESS.

``--baseline REF``: the same with the code of commit REF (a git worktree), in the same run;
``--src DIR``: the code measured after (default: this tree's ``src``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _harness import ROOT, checkout, machine, media_server, vedit_server, wait_task

sys.path.insert(0, str(ROOT / "tests"))
from hostile_media import bmp_rle_bomb, pillow_bomb, png_bomb  # noqa: E402
from mediagen import make_video  # noqa: E402

OUTPUTS = {"16:9": (1920, 1080), "8:1": (4032, 504)}

MEASURE = """
import inspect, json, re, sys
from pathlib import Path
from vedit.config import Settings
from vedit.media.limits import MediaLimits
from vedit.media.probe import load_image

def kib(field):
    return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

import cv2, numpy, PIL.Image, PIL.JpegImagePlugin, PIL.PngImagePlugin, PIL.WebPImagePlugin
path, width, height = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
kwargs = {}
if "cover" in inspect.signature(load_image).parameters:
    from vedit.engines.base import reference_cover
    kwargs["cover"] = reference_cover(width, height)
Path("/proc/self/clear_refs").write_text("5")
before = kib("VmRSS")
rgb = load_image(path, MediaLimits.of(Settings()), **kwargs)
print(json.dumps({"shape": list(rgb.shape), "peak_mb": (kib("VmHWM") - before) / 1024}))
"""


def references(folder: Path) -> dict[str, Path]:
    """The largest references allowed, one of each kind (6000x6000, one colour)."""
    from PIL import Image

    alpha = folder / "alpha.webp"
    with Image.new("RGBA", (6000, 6000), (128, 100, 50, 200)) as img:
        img.save(alpha, format="WEBP", lossless=True)
    return {
        "png": png_bomb(folder / "bomb.png"),
        "jpeg": pillow_bomb(folder / "bomb.jpg", "JPEG", quality=90),
        "jpeg-progressive-444": pillow_bomb(
            folder / "bomb-progressive.jpg", "JPEG", quality=90, progressive=True, subsampling=0
        ),
        "webp": pillow_bomb(folder / "bomb.webp", "WEBP", quality=80),
        "webp-alpha": alpha,
        "bmp-rle8": bmp_rle_bomb(folder / "bomb.bmp"),
    }


def decode_peak(src: Path, path: Path, size: tuple[int, int]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), *map(str, size)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker_peak(src: Path, media: Path, reference: Path) -> float:
    """The worker's VmHWM (MB) after one task with ``reference``, on a fresh server."""
    with (
        media_server(media) as host,
        vedit_server(workers=1, env={"VEDIT_MEDIA_ALLOW": host}, src=src) as (base, key, data),
    ):
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        body = {
            "model": "happyhorse-1.0-video-edit",
            "input": {
                "prompt": "look",
                "media": [
                    {"type": "video", "url": f"http://{host}/v.mp4"},
                    {"type": "reference_image", "url": f"http://{host}/{reference.name}"},
                ],
            },
            "parameters": {"resolution": "1080P"},
        }
        tid = client.post("/v1/video/generations", json=body).json()["task_id"]
        d = wait_task(client, tid, poll_s=0.2)
        assert d["status"] == "SUCCESS", d
        with sqlite3.connect(data / "vedit.db") as db:
            worker = db.execute("select worker_id from tasks where id = ?", (tid,)).fetchone()[0]
        status = Path(f"/proc/{worker.rsplit(':', 1)[1]}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if "VmHWM" in line) / 1024


@contextlib.contextmanager
def codes(baseline: str | None, src: Path) -> Iterator[list[tuple[str, Path]]]:
    with contextlib.ExitStack() as stack:
        found = []
        if baseline:
            found.append((f"before ({baseline})", stack.enter_context(checkout(baseline))))
        found.append((f"after ({src})", src))
        yield found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="also measure the code of this commit (git worktree)")
    ap.add_argument("--e2e", default="", help="reference kinds to run through a real worker")
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the code measured after")
    args = ap.parse_args()
    media = Path(tempfile.mkdtemp(prefix="vedit-refs-"))
    refs = references(media)
    print(f"machine: {machine()}")
    print(f"command: python bench/reference_rss.py {' '.join(sys.argv[1:])}".rstrip())
    with codes(args.baseline, args.src) as trees:
        print("\ndecode: peak RSS over the RSS before the call (MB), decoded size")
        for kind, path in refs.items():
            for label, src in trees:
                cells = []
                for name, size in OUTPUTS.items():
                    seen = decode_peak(src, path, size)
                    shape = "x".join(map(str, seen["shape"][1::-1]))
                    cells.append(f"{name} output: +{seen['peak_mb']:.0f} MB ({shape})")
                print(f"{kind:22} {path.stat().st_size:>9,} B  {label:20} " + "; ".join(cells))
        kinds = [k for k in args.e2e.split(",") if k]
        if kinds:
            make_video(media / "v.mp4", width=1920, height=1080, fps=30, seconds=5)
            print("\nworker: VmHWM after one 1080P task (5 s 1920x1080 clip, the look)")
            for kind in kinds:
                for label, src in trees:
                    t = time.perf_counter()
                    peak = worker_peak(src, media, refs[kind])
                    took = time.perf_counter() - t
                    print(f"{kind:22} {label:20} {peak:.0f} MB ({took:.0f} s)")


if __name__ == "__main__":
    main()
