"""A key's rate limit holds across API processes that share a Redis (VEDIT_RATE_LIMIT_STORAGE).

Two real ``vedit serve`` processes on loopback, on one PostgreSQL database (so one key
is one key for both) and one Redis, both from ``tests/servers.py``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import body, free_port
from servers import redis_server_or_skip

# 10 creates per 20 s window: the whole test runs well inside one window.
LIMIT = {"VEDIT_RATE_LIMIT_PER_S": "0.5", "VEDIT_RATE_LIMIT_BURST": "10"}
ALLOWED = 10
VIDEO, IMAGE = "https://example.com/source.mp4", "https://example.com/look.jpg"  # never fetched


def _migrated(pg_url: str, data_dir: Path) -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run(
        [sys.executable, "-m", "vedit.cli", "db", "upgrade"],
        env={**os.environ, "PYTHONPATH": src, "VEDIT_DATABASE_URL": pg_url,
             "VEDIT_DATA_DIR": str(data_dir)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def _two_servers(make_server, pg_url: str, storage: str) -> tuple:
    env = {**LIMIT, "VEDIT_DATABASE_URL": pg_url, "VEDIT_RATE_LIMIT_STORAGE": storage}
    return make_server(env, workers=0), make_server(env, workers=0)


def _send_alternately(servers: tuple, n: int) -> list:
    """``n`` creates, spread over the servers in turn, 8 at a time."""
    create = body(VIDEO, IMAGE)
    targets = list(itertools.islice(itertools.cycle(servers), n))
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda srv: (srv, srv.create(create)), targets))


def test_the_limit_of_a_key_holds_across_two_api_processes(
    make_server, pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    _migrated(pg_url, tmp_path)
    a, b = _two_servers(make_server, pg_url, redis_url)
    answers = _send_alternately((a, b), 40)
    accepted = [srv for srv, r in answers if r.status_code == 200]
    refused = [r for _, r in answers if r.status_code != 200]
    assert len(accepted) == ALLOWED  # the sum over both processes is the key's limit
    assert a in accepted and b in accepted  # and both processes took some
    assert len(refused) == 40 - ALLOWED
    for r in refused:
        assert r.status_code == 429
        assert r.json() == {
            "code": "rate_limit_exceeded",
            "message": r.json()["message"],
            "data": None,
        }
        assert "rate limit exceeded: 0.5 creates per second (burst 10)" in r.json()["message"]
        assert int(r.headers["Retry-After"]) >= 1
    # DashScope's dialect counts against the same limit and answers in its own shape.
    r = b.client.post(
        "/api/v1/services/aigc/video-generation/video-synthesis",
        json=body(VIDEO, IMAGE),
        headers={**b.headers(), "X-DashScope-Async": "enable"},
    )
    assert r.status_code == 429 and r.json()["code"] == "Throttling.RateQuota"
    assert set(r.json()) == {"code", "message", "request_id"}


def test_with_memory_storage_each_process_counts_alone(
    make_server, pg_url: str, tmp_path: Path
) -> None:
    # The control: the same two processes without a shared storage let twice the limit through.
    _migrated(pg_url, tmp_path)
    a, b = _two_servers(make_server, pg_url, "memory://")
    answers = _send_alternately((a, b), 40)
    assert sum(r.status_code == 200 for _, r in answers) == 2 * ALLOWED


def test_serve_refuses_to_start_when_the_shared_storage_does_not_answer(tmp_path: Path) -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    dead = f"redis://:secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    out = subprocess.run(
        [sys.executable, "-m", "vedit.cli", "serve", "--port", str(free_port()),
         "--workers", "0"],
        env={**os.environ, "PYTHONPATH": src, "VEDIT_DATA_DIR": str(tmp_path),
             "VEDIT_RATE_LIMIT_STORAGE": dead},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    assert "VEDIT_RATE_LIMIT_STORAGE is 'redis://:***@127.0.0.1:" in out.stderr
    assert "does not answer" in out.stderr and "secret" not in out.stderr


def test_a_lost_redis_makes_creates_503_until_it_is_back(make_server) -> None:
    redis = redis_server_or_skip().start()
    try:
        srv = make_server({**LIMIT, "VEDIT_RATE_LIMIT_STORAGE": redis.url}, workers=0)
        create = body(VIDEO, IMAGE)
        assert srv.create(create).status_code == 200
        redis.stop(remove=False)
        r = srv.create(create)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["code"] == "service_unavailable" and r.json()["data"] is None
        assert "VEDIT_RATE_LIMIT_STORAGE does not answer" in r.json()["message"]
        redis.start(port=redis.port)  # back, empty: the windows start afresh
        assert srv.create(create).status_code == 200
    finally:
        redis.stop()
