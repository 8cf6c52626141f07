"""Peak RSS of the API process under concurrent hostile uploads (issue 19): small files that
decode to huge pictures, sent at once to ``POST /v1/uploads`` (bearer key) and to DashScope's
``POST /api/v1/uploads`` (a policy each).

Usage: python bench/upload_hostile_rss.py [--concurrent 8] [--baseline REF] [--only png,webp]

The files (``tests/hostile_media.py``): 6000x6000 one-colour PNG (~117 KB), baseline and
progressive JPEG, lossless WEBP, 8-bit RLE BMP, and an 8192x8192 H.264 MP4, cycled over the
``--concurrent`` uploads of each route (``--only``: those kinds alone, by suffix). Peak RSS is the API process's VmHWM from /proc: after a
warm-up (one ordinary image and one ordinary video upload, so that PyAV and Pillow are loaded)
and after the hostile uploads. ``--baseline REF`` runs the same against the code of commit REF
(a git worktree) first, on the same machine, in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _harness import ROOT, checkout, machine, vedit_server
from upload_throughput import peak_rss_mb, server_pid

sys.path.insert(0, str(ROOT / "tests"))
from hostile_media import bmp_rle_bomb, pillow_bomb, png_bomb, video_bomb  # noqa: E402
from mediagen import make_image, make_video  # noqa: E402

MODEL = "happyhorse-1.0-video-edit"


def hostile_files(folder: Path) -> list[Path]:
    return [
        png_bomb(folder / "bomb.png"),
        pillow_bomb(folder / "bomb.jpg", "JPEG", quality=50),
        pillow_bomb(folder / "bomb-progressive.jpg", "JPEG", quality=50, progressive=True),
        pillow_bomb(folder / "bomb.webp", "WEBP", lossless=True),
        bmp_rle_bomb(folder / "bomb.bmp"),
        video_bomb(folder / "bomb.mp4"),
    ]


def keyed(base: str, key: str, path: Path) -> int:
    with path.open("rb") as f:
        r = httpx.post(
            base + "/v1/uploads",
            files={"file": (path.name, f)},
            headers={"Authorization": f"Bearer {key}"},
            timeout=600,
        )
    return r.status_code


def under_policy(base: str, key: str, path: Path) -> int:
    cert = httpx.get(
        base + "/api/v1/uploads",
        params={"action": "getPolicy", "model": MODEL},
        headers={"Authorization": f"Bearer {key}"},
    ).json()["data"]
    form = {
        "OSSAccessKeyId": cert["oss_access_key_id"],
        "Signature": cert["signature"],
        "policy": cert["policy"],
        "key": f"{cert['upload_dir']}/{path.name}",
        "x-oss-forbid-overwrite": "true",
    }
    with path.open("rb") as f:
        r = httpx.post(cert["upload_host"], data=form, files={"file": f}, timeout=600)
    return r.status_code


def run(src: Path | None, files: list[Path], warm: list[Path], n: int) -> tuple[float, float, str]:
    with vedit_server(workers=0, src=src) as (base, key, _data):
        pid = server_pid(int(base.rsplit(":", 1)[1]))
        for path in warm:
            assert keyed(base, key, path) == 200
        before = peak_rss_mb(pid)
        jobs = [(keyed, files[i % len(files)]) for i in range(n)]
        jobs += [(under_policy, files[i % len(files)]) for i in range(n)]
        with ThreadPoolExecutor(len(jobs)) as pool:
            codes = list(pool.map(lambda job: job[0](base, key, job[1]), jobs))
        after = peak_rss_mb(pid)
    shown = ", ".join(f"{f.name}: {c}" for (_, f), c in zip(jobs, codes, strict=True))
    return before, after, shown


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrent", type=int, default=8, help="uploads per route, all at once")
    ap.add_argument("--baseline", help="a git ref to measure first (e.g. the commit before)")
    ap.add_argument("--only", help="file kinds to send, by suffix: png,jpg,webp,bmp,mp4")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vedit-hostile-"))
    files = hostile_files(folder)
    if args.only:
        files = [f for f in files if f.suffix.lstrip(".") in args.only.split(",")]
    warm = [
        make_image(folder / "coffee.jpg", kind="coffee"),
        make_video(folder / "clip.mp4", seconds=3.5, audio=False),
    ]
    print(f"machine: {machine()}")
    print("files: " + ", ".join(f"{f.name} {f.stat().st_size / 1000:.0f} KB" for f in files))
    print(f"{args.concurrent} uploads to each route at once ({2 * args.concurrent} in all)")
    runs: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline:
        with checkout(args.baseline) as src:
            before, after, shown = run(src, files, warm, args.concurrent)
            print(f"baseline {args.baseline}: peak RSS {before:.0f} MB after warm-up, "
                  f"{after:.0f} MB after the hostile uploads (+{after - before:.0f} MB)")  # fmt: skip
            print(f"  answers: {shown}")
    for label, src in runs:
        before, after, shown = run(src, files, warm, args.concurrent)
        print(f"{label}: peak RSS {before:.0f} MB after warm-up, {after:.0f} MB after the "
              f"hostile uploads (+{after - before:.0f} MB)")  # fmt: skip
        print(f"  answers: {shown}")


if __name__ == "__main__":
    main()
