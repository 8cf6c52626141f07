"""Create throughput and latency: wrk, 64 connections on loopback for 10 s, rate limit lifted.

Usage: python bench/create_throughput.py [--seconds 10] [--connections 64]
                                         [--baseline REF --rounds 3]
                                         [--database sqlite|postgres|both] [--database-url URL]
Runs a bare ASGI hello-world under the same uvicorn settings first, as the ceiling.
The server runs with no workers, so the figure is the API's alone; afterwards the
task table must hold a row for every 200 answer. With ``--baseline REF`` the commit
REF is checked out beside this tree and both are measured in turn, ``--rounds``
times (the order swapped each round), so that the two compare on one busy machine.

``--database postgres`` starts a PostgreSQL server on loopback as the tests do
(``tests/servers.py``, but with PostgreSQL's durable defaults: fsync and synchronous
commit on), a fresh database per run, migrated first; ``--database-url`` uses an
existing PostgreSQL database instead. ``--database both`` measures SQLite and
PostgreSQL in turn, ``--rounds`` times, the order swapped each round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from _harness import ROOT, checkout, free_port, machine, vedit_server

BODY = {
    "model": "happyhorse-1.0-video-edit",
    "input": {
        "prompt": "make it look like the reference photo",
        "media": [
            {"type": "video", "url": "https://example.com/source.mp4"},
            {"type": "reference_image", "url": "https://example.com/look.jpg"},
        ],
    },
    "parameters": {"resolution": "720P", "watermark": False},
}


def wrk(url: str, seconds: int, connections: int, script: Path | None) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def pct(p: str) -> float:
        m = re.search(rf"{p}%\s+([\d.]+)(us|ms|s)", out)
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    return {
        "rps": rps,
        "requests": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "none",
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
    }


class Database:
    """Where a run's tasks go: SQLite in the server's data dir, or a PostgreSQL database."""

    def __init__(self, kind: str, server: object = None, url: str = "") -> None:
        self.kind, self.server, self.url = kind, server, url

    @contextlib.contextmanager
    def for_run(self) -> Iterator[dict[str, str]]:
        """The server's environment for one run, on a fresh (migrated) database."""
        if self.kind == "sqlite":
            yield {}
            return
        from vedit.db import migrate

        url, name = self.url, ""
        if not url:
            name = f"bench_{uuid.uuid4().hex[:8]}"
            self.server.execute(f"CREATE DATABASE {name}")
            url = self.server.url(name)
        migrate(url)
        try:
            yield {"VEDIT_DATABASE_URL": url}
        finally:
            if name:
                self.server.execute(f"DROP DATABASE {name} WITH (FORCE)")

    def count_tasks(self, env: dict[str, str], data: Path) -> int:
        if self.kind == "sqlite":
            with sqlite3.connect(data / "vedit.db") as db:
                return db.execute("select count(*) from tasks").fetchone()[0]
        from sqlalchemy import text

        from vedit.db import make_engine

        engine = make_engine(env["VEDIT_DATABASE_URL"])
        try:
            with engine.connect() as conn:
                return conn.execute(text("select count(*) from tasks")).scalar_one()
        finally:
            engine.dispose()


@contextlib.contextmanager
def databases(args: argparse.Namespace) -> Iterator[list[Database]]:
    """The databases to measure, with a PostgreSQL server started for them if needed."""
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    if "postgres" not in kinds:
        yield [Database("sqlite")]
        return
    if args.database_url:
        yield [Database(k, url=args.database_url if k == "postgres" else "") for k in kinds]
        return
    from servers import PostgresServer

    server = PostgresServer(durable=True).start()
    print(f"PostgreSQL on 127.0.0.1:{server.port} ({server.data}), durable defaults", flush=True)
    try:
        yield [Database(k, server=server) for k in kinds]
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--baseline", help="a git ref to measure in turn with this tree")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--database", choices=["sqlite", "postgres", "both"], default="sqlite")
    ap.add_argument("--database-url", help="an existing PostgreSQL database (--database postgres)")
    args = ap.parse_args()
    if args.database_url:
        from vedit.config import Settings

        args.database_url = Settings(database_url=args.database_url).resolved_database_url
        if args.database == "sqlite":
            args.database = "postgres"
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    # 1. The ceiling: a bare ASGI app under the same uvicorn.
    port = free_port()
    hello = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "hello_asgi:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).parent,
    )
    time.sleep(2)
    try:
        ceiling = wrk(f"http://127.0.0.1:{port}/", args.seconds, args.connections, None)
    finally:
        hello.terminate()
        hello.wait()

    print(f"machine: {machine()}")
    print(f"command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(
        f"ASGI hello-world ceiling: {ceiling['rps']:.0f} req/s, p50 {ceiling['p50_ms']:.2f} ms, "
        f"p99 {ceiling['p99_ms']:.2f} ms"
    )

    # 2. vedit's create call (and the baseline's, or on each database, in turn).
    with databases(args) as dbs:
        if len(dbs) > 1:
            for r in range(args.rounds):
                for db in dbs if r % 2 == 0 else dbs[::-1]:
                    measure_creates(f"round {r + 1}, {db.kind}", None, args, db)
            return
        (db,) = dbs
        if not args.baseline:
            measure_creates(f"this tree, {db.kind}", None, args, db)
            return
        with checkout(args.baseline) as baseline_src:
            for r in range(args.rounds):
                trees = [("this tree", None), (f"baseline {args.baseline}", baseline_src)]
                for name, src in trees if r % 2 == 0 else trees[::-1]:
                    measure_creates(f"round {r + 1}, {name}, {db.kind}", src, args, db)


def measure_creates(name: str, src: Path | None, args: argparse.Namespace, db: Database) -> None:
    with db.for_run() as db_env:
        measure_on(name, src, args, db, db_env)


def measure_on(
    name: str, src: Path | None, args: argparse.Namespace, db: Database, db_env: dict[str, str]
) -> None:
    env = {"VEDIT_RATE_LIMIT_PER_S": "0", **db_env}
    with vedit_server(workers=0, env=env, src=src) as (base, key, data):
        script = Path(tempfile.mkdtemp()) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        )
        created = wrk(f"{base}/v1/video/generations", args.seconds, args.connections, script)
        time.sleep(1)
        rows = db.count_tasks(env, data)
    ok = created["requests"] - created["non2xx"]
    print(
        f"{name}: {created['rps']:.0f} creates/s, p50 {created['p50_ms']:.2f} ms, "
        f"p99 {created['p99_ms']:.2f} ms, non-2xx {created['non2xx']}, "
        f"socket errors {created['socket_errors']}; task rows {rows} >= 2xx answers {ok}: "
        f"{rows >= ok}",
        flush=True,
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
