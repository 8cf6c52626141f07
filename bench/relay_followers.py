"""Upstream tasks one relay worker process follows at once, and its memory doing so.

Usage: python bench/relay_followers.py [--counts 1 100 500] [--baseline main]

For each count N: a real ``vedit serve`` with ONE worker and engine ``dashscope``,
relaying to the tests' fake DashScope upstream on loopback, which holds every
task (PENDING, then RUNNING) until N tasks were created there, then lets each
succeed with a 1 s 1280x720 video. N tasks are submitted through the API (a 1 s
640x360 input and a JPEG on a loopback media server; VEDIT_VIDEO_MIN_DURATION_S
is lowered to 0.5 for it). Measured: the most tasks in flight upstream at once
(created there, not yet ended), the time from the first create to the last
task's end, the worker's peak RSS (VmHWM) and CPU seconds from /proc, and its RSS
when ready (before any task).

``--baseline REF`` runs the same with REF's code (a git worktree), but with tasks
held 2 s each instead of until N were created (a worker that follows one task at
a time would wait forever for N), to show how many that code follows at once.
``--compare REF --repeat K`` runs each count the same way with REF's code and this
tree's, alternating, K times each (a refactor's check: within 5 % of before).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _harness import checkout, machine, media_server, vedit_server

from fake_upstream import FakeUpstream, Script
from mediagen import make_image, make_video


def proc_status(pid: int, field: str) -> float:
    """A ``kB`` field of /proc/<pid>/status, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def worker_pid(server_pid: int) -> int:
    """The one worker process of a ``vedit serve`` (its child that is not the tracker)."""
    for _ in range(100):
        for child in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split():
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmd:
                return int(child)
        time.sleep(0.1)
    raise RuntimeError("no worker process")


def run(n: int, clips: Path, src: Path | None, hold_s: float | None) -> dict:
    script = Script(result=clips / "made.mp4")
    if hold_s is None:
        script.hold_until_created = n
    else:
        script.hold_s = hold_s
    upstream = FakeUpstream(script)
    try:
        with media_server(clips) as host:
            env = {
                "VEDIT_ENGINE": "dashscope",
                "VEDIT_UPSTREAM_BASE_URL": upstream.base_url,
                "VEDIT_UPSTREAM_API_KEY": upstream.key,
                "VEDIT_UPSTREAM_POLL_S": "2",
                "VEDIT_UPSTREAM_POLL_MAX_S": "4",
                "VEDIT_MEDIA_ALLOW": f"{host},{upstream.hostport}",
                "VEDIT_VIDEO_MIN_DURATION_S": "0.5",
                "VEDIT_RATE_LIMIT_PER_S": "0",
            }
            with vedit_server(workers=1, env=env, src=src) as (base, key, data):
                server = _server_pid(data)
                worker = worker_pid(server)
                ready_rss = proc_status(worker, "VmRSS")
                client = httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
                )

                def submit(i: int) -> str:
                    body = {
                        "model": "happyhorse-1.0-video-edit",
                        "input": {
                            "prompt": f"edit {i}",
                            "media": [
                                {"type": "video", "url": f"http://{host}/one.mp4"},
                                {"type": "reference_image", "url": f"http://{host}/photo.jpg"},
                            ],
                        },
                        "parameters": {"resolution": "720P"},
                    }
                    r = client.post("/v1/video/generations", json=body)
                    r.raise_for_status()
                    return r.json()["task_id"]

                started = time.monotonic()
                with ThreadPoolExecutor(8) as pool:
                    ids = list(pool.map(submit, range(n)))
                db = sqlite3.connect(data / "vedit.db", timeout=30)
                marks = ",".join("?" * len(ids))
                while True:
                    left = db.execute(
                        f"select count(*) from tasks where id in ({marks}) "
                        "and status in ('queued', 'running')",
                        ids,
                    ).fetchone()[0]
                    if not left:
                        break
                    time.sleep(0.5)
                took = time.monotonic() - started
                ok = db.execute(
                    f"select count(*) from tasks where id in ({marks}) and status = 'succeeded'",
                    ids,
                ).fetchone()[0]
                return {
                    "n": n,
                    "succeeded": ok,
                    "at_once": upstream.seen.max_in_flight,
                    "seconds": took,
                    "ready_rss": ready_rss,
                    "peak_rss": proc_status(worker, "VmHWM"),
                    "cpu_s": cpu_seconds(worker),
                }
    finally:
        upstream.close()


def _server_pid(data: Path) -> int:
    """The ``vedit serve`` process that owns ``data`` (the harness does not hand it out)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"vedit.cli\0serve" in cmd and f"VEDIT_DATA_DIR={data}\0".encode() in environ:
            return int(proc.name)
    raise RuntimeError("no vedit serve process")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 100, 500])
    ap.add_argument("--baseline", default=None, help="a git ref to measure as well (e.g. main)")
    ap.add_argument("--compare", default=None, help="a git ref run the same way, alternating")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    clips = Path(tempfile.mkdtemp(prefix="vedit-clips-"))
    make_video(clips / "one.mp4", width=640, height=360, fps=24, seconds=1.0, audio=False)
    make_video(clips / "made.mp4", width=1280, height=720, fps=24, seconds=1.0, audio=False)
    make_image(clips / "photo.jpg", kind="coffee")
    rows = []
    if args.baseline:
        with checkout(args.baseline) as src:
            rows.append((args.baseline, run(4, clips, src, hold_s=2.0)))
    with checkout(args.compare) if args.compare else contextlib.nullcontext() as ref_src:
        for n in args.counts:
            for _ in range(args.repeat):
                if args.compare:
                    rows.append((args.compare, run(n, clips, ref_src, hold_s=None)))
                rows.append(("this tree", run(n, clips, None, hold_s=None)))
    print(f"machine: {machine()}")
    baseline = f" --baseline {args.baseline}" if args.baseline else ""
    if args.compare:
        baseline += f" --compare {args.compare} --repeat {args.repeat}"
    counts = " ".join(map(str, args.counts))
    print(f"command: python bench/relay_followers.py --counts {counts}{baseline}")
    print(
        "| code | tasks | succeeded | followed at once | time | worker RSS ready | "
        "worker peak RSS | worker CPU |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for code, r in rows:
        print(
            f"| {code} | {r['n']} | {r['succeeded']} | {r['at_once']} | {r['seconds']:.1f} s | "
            f"{r['ready_rss']:.0f} MB | {r['peak_rss']:.0f} MB | {r['cpu_s']:.1f} s |"
        )


if __name__ == "__main__":
    main()
