"""Upload throughput of a ~100 MB video on loopback against a plain ``cp`` of the same file,
and the API process's peak RSS during the uploads (it must stay flat: the body is streamed
to disk, never held in memory).

Usage: python bench/upload_throughput.py [--rounds 5] [--mb 95]

Each round copies the file with ``cp`` and uploads it with ``POST /v1/uploads`` (httpx,
streamed from the file), alternately, so both see the same machine. An upload's time is
the client's: from the first byte sent to the answer, so it includes receiving, writing,
sniffing and the media check (probe) of the file. Peak RSS is the API process's VmHWM
from /proc, read before the first upload and after the last.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
from _harness import machine, vedit_server


def noise_video(path: Path, target_mb: float) -> int:
    """A real, decodable MP4 of ``target_mb`` MB or a little less: lossless H.264 of noise."""
    rng = np.random.default_rng(7)
    frames = int(target_mb * 1e6 / (640 * 360 * 1.5 * 1.25))  # lossless noise: ~1.23x raw
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for _ in range(frames):
            img = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.stat().st_size


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def server_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmd and str(port).encode() in cmd:
                return int(proc.name)
    raise RuntimeError(f"no vedit serve on port {port}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mb", type=float, default=95.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vedit-upload-bench-"))
    clip = work / "clip.mp4"
    size = noise_video(clip, args.mb)
    print(f"machine: {machine()}")
    print(f"file: {size:,} bytes ({size / 1e6:.1f} MB), lossless H.264 noise, 640x360")
    with vedit_server(workers=0) as (base, key, data):
        pid = server_pid(int(base.rsplit(":", 1)[1]))
        before = peak_rss_mb(pid)
        cps, ups = [], []
        with httpx.Client(base_url=base, timeout=600) as client:
            for i in range(args.rounds):
                dest = data / f"cp-{i}.mp4"
                t = time.perf_counter()
                subprocess.run(["cp", str(clip), str(dest)], check=True)
                cps.append(time.perf_counter() - t)
                dest.unlink()
                with clip.open("rb") as f:
                    t = time.perf_counter()
                    r = client.post(
                        "/v1/uploads",
                        files={"file": ("clip.mp4", f, "video/mp4")},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    ups.append(time.perf_counter() - t)
                r.raise_for_status()
                assert r.json()["bytes"] == size, r.text
        after = peak_rss_mb(pid)
    mb = size / 1e6
    cp_s, up_s = statistics.median(cps), statistics.median(ups)
    print(f"cp:     median {cp_s * 1000:7.1f} ms  {mb / cp_s:8.1f} MB/s  (all: {_ms(cps)})")
    print(f"upload: median {up_s * 1000:7.1f} ms  {mb / up_s:8.1f} MB/s  (all: {_ms(ups)})")
    print(f"upload / cp time: {up_s / cp_s:.1f}x")
    print(f"API peak RSS (VmHWM): {before:.1f} MB before the uploads, {after:.1f} MB after")
    shutil.rmtree(work, ignore_errors=True)


def _ms(xs: list[float]) -> str:
    return ", ".join(f"{x * 1000:.0f}" for x in xs)


if __name__ == "__main__":
    main()
