"""Edits per minute through the whole service: local dispatch against Celery dispatch.

Usage: python bench/edit_throughput_dispatch.py [--tasks 12] [--rounds 2] [--workers 1,2]

Both dispatchers run on one PostgreSQL (durable, on loopback, as tests/servers.py starts
it) and the same generated clip (3 s, 640x360, no audio, edited to 720P with the look);
Celery's broker is a Redis on loopback. For each worker count and round, local
(`vedit serve --workers N`) and Celery (`vedit serve` plus `vedit worker --workers N`)
take turns: ``--tasks`` creates at once, timed from the first create to the last task's
end. Figures: completed edits per minute, and each round's figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _harness import ROOT, edit_body, free_port, machine, media_server, wait_task

from mediagen import make_image, make_video
from servers import PostgresServer, RedisServer

KEY = "vk-bench000000000000000000000000000000000000"


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    out = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vedit.cli", *args],
        env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def one_run(
    dispatch: str, workers: int, tasks: int, env: dict[str, str], host: str, tmp: Path
) -> float:
    """Edits per minute for ``tasks`` creates at once."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_workers = workers if dispatch == "local" else 0
    env = {**env, "VEDIT_DISPATCH": dispatch}
    with contextlib.ExitStack() as stack:
        if dispatch == "celery":
            log = tmp / f"worker-{workers}-{time.time_ns()}.log"
            w = stack.enter_context(running(["worker", "--workers", str(workers)], env, log))
            wait_until(lambda: re.search(rf"vedit-{w.pid}@\S+ ready", log.read_text()), "worker")
        log = tmp / f"serve-{dispatch}-{workers}-{time.time_ns()}.log"
        args = ["serve", "--port", str(port), "--workers", str(serve_workers)]
        stack.enter_context(running(args, env, log))
        wait_until(lambda: httpx.get(base + "/healthz").status_code == 200, "vedit serve")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}) as c:
            start = time.perf_counter()
            ids = [
                c.post("/v1/video/generations", json=edit_body(host, "720P")).json()["task_id"]
                for _ in range(tasks)
            ]
            ended = [wait_task(c, i, poll_s=0.2) for i in ids]
            elapsed = time.perf_counter() - start
        bad = [d for d in ended if d["status"] != "SUCCESS"]
        if bad:
            raise RuntimeError(f"{len(bad)} task(s) failed: {bad[0]['fail_reason']}")
    return tasks / elapsed * 60


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="vedit-bench-dispatch-"))
    media = tmp / "media"
    media.mkdir()
    make_video(media / "v.mp4", width=640, height=360, fps=24, seconds=3, audio=False)
    make_image(media / "i.jpg", kind="coffee")
    pg, redis = PostgresServer(durable=True), RedisServer()
    try:
        pg.start()
        redis.start()
        pg.execute("CREATE DATABASE bench")
        with media_server(media) as host:
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT / "src"),
                "VEDIT_DATA_DIR": str(tmp / "data"),
                "VEDIT_DATABASE_URL": pg.url("bench"),
                "VEDIT_BROKER_URL": redis.url,
                "VEDIT_API_KEY": KEY,
                "VEDIT_RATE_LIMIT_PER_S": "0",
                "VEDIT_MEDIA_ALLOW": host,
                "VEDIT_X264_THREADS": "1",  # one core per worker process: the workers scale
            }
            done = subprocess.run(
                [sys.executable, "-m", "vedit.cli", "db", "upgrade"], env=env, capture_output=True
            )
            assert done.returncode == 0, done.stderr
            print(f"machine: {machine()}")
            print(
                f"command: python bench/edit_throughput_dispatch.py --tasks {args.tasks} "
                f"--rounds {args.rounds} --workers {args.workers}"
            )
            print(
                "clip: 3 s, 640x360, 24 fps, no audio -> 720P, the look; x264 veryfast, "
                "1 thread; PostgreSQL 15 (durable) and Redis on loopback"
            )
            results: dict[tuple[str, int], list[float]] = {}
            for _ in range(args.rounds):
                for workers in counts:
                    for dispatch in ("local", "celery"):
                        rate = one_run(dispatch, workers, args.tasks, env, host, tmp)
                        results.setdefault((dispatch, workers), []).append(rate)
                        print(f"  {dispatch:6} {workers} worker(s): {rate:5.1f} edits/min")
            for (dispatch, workers), rates in sorted(results.items()):
                each = ", ".join(f"{r:.1f}" for r in rates)
                print(
                    f"{dispatch:6} {workers} worker(s): best {max(rates):.1f} edits/min "
                    f"(rounds: {each})"
                )
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
