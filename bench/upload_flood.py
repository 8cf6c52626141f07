"""Create latency while the upload routes are flooded with trickling bodies, against the same
server not flooded, in the same run (issue 19).

Usage: python bench/upload_flood.py [--uploads 1000] [--creates 300] [--again 1 0]
                                     [--baseline REF]

The server is ``vedit serve --workers 0`` with its default connection limits (1,000
connections, 100 per client address, 100 in uploads, uploads held to 64 KiB/s after 5 s)
and the rate limit lifted. The flood is a separate process holding ``--uploads`` upload
connections from ten loopback addresses (100 each, the per-client cap), half to
``POST /v1/uploads`` with a valid key and half to DashScope's keyless ``POST /api/v1/uploads``:
each sends a real multipart head and then a byte every second, the way a client holds a
slot; each connection the server answers (refused or timed out) is opened again after
``--again`` seconds: 1 s, as the 503's ``Retry-After`` asks, and 0, a flood that never
lets up. Meanwhile ``--creates`` creates are sent one after the other
from 127.0.0.2, each on a new connection (so that each must be admitted), and timed from
connect to the end of the answer. The same creates are timed before the flood starts.

``--baseline REF`` runs the same against the code of commit REF (a git worktree), first,
on the same machine, in the same run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _harness import checkout, machine, vedit_server

KEY_ENV = {"VEDIT_RATE_LIMIT_PER_S": "0"}
SOURCES = [f"127.0.0.{n}" for n in range(10, 20)]
CREATE = json.dumps(
    {
        "model": "happyhorse-1.0-video-edit",
        "input": {
            "prompt": "make it look like the reference photo",
            "media": [
                {"type": "video", "url": "https://example.com/source.mp4"},
                {"type": "reference_image", "url": "https://example.com/look.jpg"},
            ],
        },
    }
).encode()

FLOOD = r"""
import json, select, socket, sys, time

port, count, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sources, again_s = sys.argv[4].split(","), float(sys.argv[5])
B = "vedit-flood"

def head(n):
    path = "/v1/uploads" if n % 2 else "/api/v1/uploads"
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1",
             f"Content-Type: multipart/form-data; boundary={B}", "Content-Length: 50000000"]
    if path == "/v1/uploads":
        lines.append(f"Authorization: Bearer {key}")
    part = f'--{B}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
    return ("\r\n".join(lines) + "\r\n\r\n" + part).encode() + b"a" * 100

poller = select.epoll()
socks, opened, answers, later = {}, 0, {}, []

def open_one(n):
    global opened
    s = socket.socket()
    s.bind((sources[n % len(sources)], 0))
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    socks[s.fileno()] = (s, n, False)
    poller.register(s, select.EPOLLOUT | select.EPOLLIN)
    opened += 1

for n in range(count):
    open_one(n)
print("ready", flush=True)
last_trickle = time.monotonic()
while True:
    if select.select([sys.stdin], [], [], 0)[0]:
        break
    for fd, ev in poller.poll(0.1):
        s, n, sent = socks[fd]
        if ev & select.EPOLLOUT and not sent:
            try:
                s.send(head(n))
                socks[fd] = (s, n, True)
                poller.modify(s, select.EPOLLIN)
            except OSError:
                pass
            continue
        if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            try:
                got = s.recv(4096)
            except OSError:
                got = b""
            status = got[9:12].decode("latin-1") if got.startswith(b"HTTP/1.1 ") else "closed"
            answers[status] = answers.get(status, 0) + 1
            poller.unregister(s)
            del socks[fd]
            s.close()
            later.append((time.monotonic() + again_s, n))
    now = time.monotonic()
    while later and later[0][0] <= now:
        open_one(later.pop(0)[1])
    if time.monotonic() - last_trickle >= 1.0:
        last_trickle = time.monotonic()
        for s, _, sent in list(socks.values()):
            if sent:
                try:
                    s.send(b"a")
                except OSError:
                    pass
print(json.dumps({"opened": opened, "held_at_end": len(socks), "answers": answers}), flush=True)
"""


def timed_creates(base: str, key: str, count: int) -> dict:
    """``count`` creates, one after the other, each on a new connection from 127.0.0.2."""
    port = int(base.rsplit(":", 1)[1])
    times, statuses = [], {}
    for _ in range(count):
        start = time.perf_counter()
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=30, source_address=("127.0.0.2", 0)
        )
        try:
            conn.request(
                "POST",
                "/v1/video/generations",
                body=CREATE,
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/json",
                    "Connection": "close",
                },
            )
            answer = conn.getresponse()
            answer.read()
            status = str(answer.status)
        except OSError as exc:
            status = type(exc).__name__
        finally:
            conn.close()
        times.append((time.perf_counter() - start) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
    times.sort()
    return {
        "statuses": statuses,
        "p50_ms": statistics.median(times),
        "p95_ms": times[int(0.95 * (len(times) - 1))],
        "p99_ms": times[int(0.99 * (len(times) - 1))],
        "max_ms": times[-1],
    }


def run(label: str, uploads: int, creates: int, again_s: float, src: Path | None) -> None:
    with vedit_server(0, KEY_ENV, src=src) as (base, key, _data):
        quiet = timed_creates(base, key, creates)
        port = base.rsplit(":", 1)[1]
        flood = subprocess.Popen(
            [sys.executable, "-c", FLOOD, port, str(uploads), key, ",".join(SOURCES), str(again_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert flood.stdout is not None and flood.stdout.readline().strip() == "ready"
        time.sleep(3)  # every upload has sent its head and holds its connection, or was refused
        loud = timed_creates(base, key, creates)
        out, _ = flood.communicate("stop\n", timeout=60)
        report = json.loads(out.strip().splitlines()[-1])
    flooded = f"{uploads} uploads, again {again_s:g} s"
    for name, got in (("not flooded", quiet), (flooded, loud)):
        print(
            f"{label:>10} | {name:<28} | {got['statuses']} | p50 {got['p50_ms']:.1f} ms | "
            f"p95 {got['p95_ms']:.1f} ms | p99 {got['p99_ms']:.1f} ms | max {got['max_ms']:.1f} ms"
        )
    print(f"{label:>10} | flood: {report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument(
        "--again",
        type=float,
        nargs="+",
        default=[1.0, 0.0],
        help="seconds after which an answered upload connection is opened again: 1 is what "
        "the 503's Retry-After asks for, 0 a flood that never lets up (default: both)",
    )
    parser.add_argument("--baseline", help="a commit to measure the same way first")
    args = parser.parse_args()
    print(machine())
    for again_s in args.again:
        if args.baseline:
            with checkout(args.baseline) as src:
                run(args.baseline, args.uploads, args.creates, again_s, src)
        run("this tree", args.uploads, args.creates, again_s, None)


if __name__ == "__main__":
    main()
