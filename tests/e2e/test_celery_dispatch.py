"""VEDIT_DISPATCH=celery on real processes: `vedit serve` API processes and `vedit worker`
Celery workers on loopback, a real Redis broker and a real PostgreSQL database
(``tests/servers.py``), one data folder shared by all, as hosts would share it — or, for the
many-task test, results in an S3 bucket (SeaweedFS, ``tests/s3server.py``).

Pinned here: many tasks across two APIs and two workers with a pool process and then a
whole worker killed by SIGKILL mid-task (every task ends, none is lost or completed twice,
every result downloads through its presigned URL); cancel of a running and of a queued task; a
worker's warm shutdown hands its task back; a task whose broker message was never sent
still runs; a broker that does not answer
stops `vedit serve` and `vedit worker` with one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from conftest import TEST_KEY, free_port
from vedit.db import make_engine
from vedit.runtime.janitor import HOST
from vedit.tasks.models import new_task_row
from vedit.tasks.store import TaskStore

SRC = str(Path(__file__).resolve().parents[2] / "src")
SLOW = "slow?file=silent.mp4&seconds=4"  # a 4 s drip: time to catch the task running
FAST = {  # cheap edits: these tests are about dispatch, not picture quality
    "VEDIT_X264_PRESET": "ultrafast",
    "VEDIT_X264_THREADS": "1",
}
_broker_dbs = count(1)  # a Redis database per test: no message of one test reaches another


def vedit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vedit.cli", *args],
        env={**os.environ, "PYTHONPATH": SRC, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


class CeleryWorker:
    """A real `vedit worker` (VEDIT_DISPATCH=celery) process group."""

    def __init__(self, log: Path, env: dict[str, str], workers: int = 1) -> None:
        self.log_path = log
        self.env = {**os.environ, "PYTHONPATH": SRC, **env}
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CeleryWorker:
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vedit.cli", "worker", "--workers", str(self.workers)],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vedit worker exited: {self.log()[-3000:]}")
            if re.search(rf"vedit-{self.proc.pid}@\S+ ready", self.log()):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"vedit worker did not start: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pool_pids(self) -> list[int]:
        assert self.proc is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    found.append(int(stat.parent.name))
        return found

    def kill_group(self) -> None:
        """The whole host gone: the main process and its pool, no goodbye."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Cluster:
    """Shared env (database, broker, data folder) and the processes started on it."""

    def __init__(
        self,
        tmp: Path,
        pg_url: str,
        redis_url: str,
        media: Any,
        make_server: Any,
        storage: dict[str, str] | None = None,
    ):
        self.tmp, self.make_server = tmp, make_server
        self.shared = tmp / "shared"
        broker = redis_url.rsplit("/", 1)[0] + f"/{next(_broker_dbs)}"
        self.env = {
            "VEDIT_DISPATCH": "celery",
            "VEDIT_BROKER_URL": broker,
            "VEDIT_DATABASE_URL": pg_url,
            "VEDIT_DATA_DIR": str(self.shared),
            "VEDIT_SIGNING_SECRET": "celery-test-secret",
            "VEDIT_MEDIA_ALLOW": media.hostport,
            "VEDIT_TASK_LEASE_S": "3",
            "VEDIT_JANITOR_INTERVAL_S": "0.25",
            "VEDIT_DISPATCH_RESEND_AFTER_S": "2",
            "VEDIT_RATE_LIMIT_PER_S": "0",
            **FAST,
            **(storage or {}),
        }
        self.db = TaskStore(make_engine(pg_url))
        self.workers: list[CeleryWorker] = []
        upgraded = vedit("db", "upgrade", env=self.env)
        assert upgraded.returncode == 0, upgraded.stderr

    def worker(self, workers: int = 1) -> CeleryWorker:
        w = CeleryWorker(self.tmp / f"worker{len(self.workers)}.log", self.env, workers)
        self.workers.append(w)
        return w.start()

    def api(self, name: str) -> Any:
        return self.make_server(self.env, workers=0, data_dir=self.tmp / name)

    def row(self, task_id: str) -> Any:
        with self.db.engine.connect() as conn:
            return conn.execute(
                text("SELECT status, worker_id, attempts, error_code FROM tasks WHERE id = :i"),
                {"i": task_id},
            ).one()

    def wait_running(self, task_id: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.row(task_id)
            if row.status == "running" and row.worker_id:
                return row.worker_id
            time.sleep(0.05)
        raise AssertionError(f"task {task_id} never ran: {self.row(task_id)}")

    def logs(self) -> str:
        return "".join(w.log() for w in self.workers)

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.db.engine.dispose()


@pytest.fixture
def cluster(tmp_path, pg_url, redis_url, media, make_server):
    c = Cluster(tmp_path, pg_url, redis_url, media, make_server)
    yield c
    c.close()


@pytest.fixture
def s3_cluster(tmp_path, pg_url, redis_url, media, make_server, s3_server):
    """A cluster whose results live in the S3 bucket (SeaweedFS), as hosts would share them."""
    prefix = {"VEDIT_S3_PREFIX": f"celery-{tmp_path.name}/"}
    c = Cluster(tmp_path, pg_url, redis_url, media, make_server, s3_server.env(**prefix))
    yield c
    c.close()


def wait_all(apis: list[Any], ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Each task's final ``data``, asked of the APIs in turn."""
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids) and time.monotonic() < deadline:
        for n, task_id in enumerate(ids):
            if task_id in done:
                continue
            data = apis[n % len(apis)].query(task_id).json()["data"]
            if data["status"] in ("SUCCESS", "FAILURE"):
                done[task_id] = data
        time.sleep(0.5)
    assert len(done) == len(ids), f"{len(ids) - len(done)} task(s) never ended"
    return done


def test_fifty_tasks_over_two_apis_and_two_workers_survive_killed_workers(
    s3_cluster, s3_server, media, tmp_path
) -> None:
    """Results in the S3 bucket: every one downloads through its presigned URL."""
    cluster = s3_cluster
    cluster.worker()
    b = cluster.worker()
    apis = [cluster.api("api1"), cluster.api("api2")]
    health = apis[0].client.get("/healthz").json()
    assert health["workers"]["dispatch"] == "celery" and health["workers"]["broker"] == "ok"

    video, image = media.url("silent.mp4"), media.url("coffee.jpg")
    # 1. One pool process killed mid-task (a task with a slow download, so that it is
    #    surely running): its own worker's janitor sees the process die.
    victim = apis[0].submit(media.url(SLOW), image, resolution="720P")
    owner = cluster.wait_running(victim)
    os.kill(int(owner.rsplit(":", 1)[1]), signal.SIGKILL)

    ids = [apis[n % 2].submit(video, image, resolution="720P") for n in range(50)]
    # 2. Then a whole worker (main process and pool) killed mid-task, as a host lost: the
    #    other janitors find its task by its stopped heartbeat (VEDIT_TASK_LEASE_S).
    deadline = time.monotonic() + 120
    group_lost = None
    while group_lost is None and time.monotonic() < deadline:
        for task_id in ids[4:]:
            row = cluster.row(task_id)
            if row.status == "running" and row.worker_id.split(":")[1] == str(b.proc.pid):
                group_lost = task_id
                break
        time.sleep(0.05)
    assert group_lost, "worker b never ran a task"
    b.kill_group()
    cluster.worker()  # a new host takes b's place
    ids.append(victim)

    done = wait_all(apis, ids, timeout=240)

    # Every task ended; each failure has a reason.
    failed = {i: d for i, d in done.items() if d["status"] != "SUCCESS"}
    for d in failed.values():
        assert d["fail_reason"], d
    assert len(failed) <= 2, failed  # only a killed task may have failed (WorkerLost)
    # The two killed tasks were run again.
    for killed in (victim, group_lost):
        row = cluster.row(killed)
        assert row.attempts == 2, (killed, row)
        assert row.status == "succeeded" or row.error_code == "InternalError.WorkerLost", row
    # None completed twice: one SUCCEEDED line per task across the workers' logs, and
    # every other task ran once.
    finished = Counter(re.findall(r"task (asyntask_\w+) finished: SUCCEEDED", cluster.logs()))
    assert all(n == 1 for n in finished.values()), finished
    succeeded = [i for i, d in done.items() if d["status"] == "SUCCESS"]
    assert set(finished) == set(succeeded)
    for task_id in set(ids) - {victim, group_lost}:
        assert cluster.row(task_id).attempts == 1, task_id
    # Every result downloads through its presigned URL (asked of either API): an MP4.
    for n, task_id in enumerate(succeeded):
        url = apis[(n + 1) % 2].query(task_id).json()["data"]["result_url"]
        assert url.startswith(s3_server.endpoint) and "X-Amz-Signature=" in url, url
        r = httpx.get(url, timeout=30)
        assert r.status_code == 200 and r.content[4:8] == b"ftyp", (task_id, r.status_code)
    assert f"worker process {owner.rsplit(':', 1)[1]} died" in cluster.logs()
    assert f"task {group_lost} lost its worker; queued again" in (
        cluster.logs() + apis[0].log() + apis[1].log()
    )


def test_cancel_reaches_a_running_task_and_a_queued_one_is_skipped(cluster, media) -> None:
    worker = cluster.worker(workers=1)
    api = cluster.api("api")
    image = media.url("coffee.jpg")
    running = api.submit(media.url(SLOW), image, resolution="720P")
    queued = api.submit(media.url("silent.mp4"), image, resolution="720P")
    cluster.wait_running(running)
    assert cluster.row(queued).status == "queued"  # one pool process: it waits its turn

    for task_id in (queued, running):
        r = api.client.post(f"/v1/video/generations/{task_id}/cancel", headers=api.headers())
        assert r.status_code == 200, r.text
    for task_id in (queued, running):
        data = api.wait(task_id)
        assert data["status"] == "FAILURE" and data["data"]["output"]["task_status"] == "CANCELED"

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = worker.log()
        if f"task {running} finished: CANCELED" in log and f"task {queued} was cancelled" in log:
            break
        time.sleep(0.2)
    assert f"task {running} finished: CANCELED" in worker.log()
    assert f"task {queued} was cancelled before it ran: skipped" in worker.log()
    health = api.client.get("/healthz").json()["workers"]
    assert health["broker"] == "ok" and health["names"] == [f"vedit-{worker.proc.pid}@{HOST}"]
    metrics = api.client.get("/metrics").text
    assert "vedit_celery_workers 1.0" in metrics and "vedit_broker_up 1.0" in metrics
    assert cluster.row(queued).worker_id is None and cluster.row(queued).attempts == 0
    assert not (cluster.shared / "results" / f"{running}.mp4").exists()
    # The worker is still at work.
    ok = api.wait(api.submit(media.url("silent.mp4"), image, resolution="720P"))
    assert ok["status"] == "SUCCESS", ok["fail_reason"]


def test_sigterm_to_a_worker_hands_its_task_back_without_spending_an_attempt(
    cluster, media
) -> None:
    first = cluster.worker()
    api = cluster.api("api")
    task_id = api.submit(media.url(SLOW), media.url("coffee.jpg"), resolution="720P")
    cluster.wait_running(task_id)
    first.proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown
    assert first.proc.wait(timeout=30) == 0
    row = cluster.row(task_id)
    assert (row.status, row.attempts, row.worker_id) == ("queued", 0, None), row
    assert f"task {task_id} finished: requeued" in first.log()
    second = cluster.worker()
    data = api.wait(task_id)
    assert data["status"] == "SUCCESS", data["fail_reason"]
    row = cluster.row(task_id)
    assert row.attempts == 1 and row.worker_id.split(":")[1] == str(second.proc.pid)


def test_a_queued_task_whose_message_was_never_sent_still_runs(cluster, media) -> None:
    worker = cluster.worker()
    api = cluster.api("api")
    with cluster.db.engine.connect() as conn:
        key_id = conn.execute(text("SELECT id FROM api_keys ORDER BY id LIMIT 1")).scalar_one()
    # As an API that crashed between its commit and the broker: the row, and no message.
    row = new_task_row(
        key_id=key_id,
        prompt="make it look like the reference photo",
        orig_prompt="make it look like the reference photo",
        media=[
            {"type": "video", "url": media.url("silent.mp4")},
            {"type": "reference_image", "url": media.url("coffee.jpg")},
        ],
        resolution="720P",
        watermark=True,
        seed=7,
        audio_setting="auto",
        ttl_s=3600,
        model="happyhorse-1.0-video-edit",
    )
    cluster.db.add_many([row])
    data = api.wait(row["id"], timeout=90)
    assert data["status"] == "SUCCESS", data["fail_reason"]
    # Sent again by a janitor: the worker's or the API's, whichever looked first.
    assert "had no message in the broker" in worker.log() + api.log()
    assert cluster.row(row["id"]).attempts == 1


def test_a_broker_that_does_not_answer_stops_serve_and_worker_with_one_line(
    pg_url, tmp_path
) -> None:
    port = free_port()  # nothing listens there
    env = {
        "VEDIT_DISPATCH": "celery",
        "VEDIT_BROKER_URL": f"redis://:secret@127.0.0.1:{port}/0",
        "VEDIT_DATABASE_URL": pg_url,
        "VEDIT_DATA_DIR": str(tmp_path),
        "VEDIT_API_KEY": TEST_KEY,
    }
    assert vedit("db", "upgrade", env=env).returncode == 0
    for command in (("serve", "--port", str(free_port())), ("worker", "--workers", "1")):
        out = vedit(*command, env=env)
        assert out.returncode == 1, (command, out.stdout, out.stderr)
        assert (
            f"the broker at VEDIT_BROKER_URL='redis://:***@127.0.0.1:{port}/0' does not answer"
            in (out.stderr)
        ), out.stderr
        assert "secret" not in out.stderr and "Traceback" not in out.stderr
    missing = vedit("worker", env={**env, "VEDIT_BROKER_URL": ""})
    assert missing.returncode == 1 and "set VEDIT_BROKER_URL" in missing.stderr
