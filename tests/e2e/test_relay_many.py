"""One relay worker process follows many upstream tasks at once (issue 11).

Real ``vedit serve`` processes with ONE worker, real HTTP on loopback to the
fake DashScope upstream, which holds every task until enough were created: a
worker that followed fewer at once would never see them end.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import MediaServer, VeditServer
from fake_upstream import FakeUpstream, Script
from mediagen import make_image, make_video

MANY = 500
RSS_BOUND_MB = 400


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    """A 1 s input and a reference photo on a loopback media server, and what the upstream
    'made' of the input at 720P (``made.mp4``): short, so checking 500 copies is cheap."""
    d = tmp_path_factory.mktemp("clips")
    make_video(d / "one.mp4", width=640, height=360, fps=24, seconds=1.0, audio=False)
    make_video(d / "made.mp4", width=1280, height=720, fps=24, seconds=1.0, audio=False)
    make_image(d / "photo.jpg", kind="coffee")
    srv = MediaServer(d)
    yield srv
    srv.close()


@pytest.fixture
def upstream(clips) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(Script(result=Path(clips.httpd.root) / "made.mp4"))
    yield fake
    fake.close()


def relay_env(
    clips: MediaServer, upstream: FakeUpstream, poll_s: float, poll_max_s: float
) -> dict[str, str]:
    return {
        "VEDIT_ENGINE": "dashscope",
        "VEDIT_UPSTREAM_BASE_URL": upstream.base_url,
        "VEDIT_UPSTREAM_API_KEY": upstream.key,
        "VEDIT_UPSTREAM_POLL_S": str(poll_s),
        "VEDIT_UPSTREAM_POLL_MAX_S": str(poll_max_s),
        "VEDIT_MEDIA_ALLOW": f"{clips.hostport},{upstream.hostport}",
        "VEDIT_VIDEO_MIN_DURATION_S": "0.5",
        "VEDIT_RATE_LIMIT_PER_S": "0",
    }


def submit_many(srv: VeditServer, clips: MediaServer, n: int) -> list[str]:
    video, image = clips.url("one.mp4"), clips.url("photo.jpg")

    def one(i: int) -> str:
        return srv.submit(video, image, f"edit {i}", resolution="720P", seed=i)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def statuses(srv: VeditServer, ids: list[str]) -> dict[str, str]:
    marks = ",".join("?" * len(ids))
    return dict(srv.db(f"select id, status from tasks where id in ({marks})", *ids))


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def upstream_ids_recorded(srv: VeditServer) -> int:
    """Tasks whose plan holds their upstream task id."""
    sql = (
        "select count(*) from tasks where json_extract(edit_plan, '$.upstream_task_id') is not null"
    )
    return srv.db(sql)[0][0]


def worker_pids(srv: VeditServer) -> set[int]:
    owners = srv.db("select distinct worker_id from tasks where worker_id is not null")
    return {int(owner.rsplit(":", 1)[1]) for (owner,) in owners}


def test_one_worker_follows_500_upstream_tasks_at_once_in_bounded_memory(
    tmp_path, clips, upstream
) -> None:
    upstream.script.hold_until_created = MANY  # none ends before all 500 are upstream
    env = {**relay_env(clips, upstream, poll_s=2.0, poll_max_s=4.0), "VEDIT_TASK_LEASE_S": "10"}
    srv = VeditServer(tmp_path / "data", env, workers=1).start()
    try:
        started = time.monotonic()
        ids = submit_many(srv, clips, MANY)
        wait_for(
            lambda: set(statuses(srv, ids).values()) <= {"succeeded", "failed", "cancelled"},
            timeout=90,
            what=f"{MANY} relayed tasks to end",
        )
        took = time.monotonic() - started
        ended = statuses(srv, ids)
        failed = srv.db(
            "select id, error_code, error_message from tasks where status != ?", "succeeded"
        )
        assert failed == [], failed[:3]
        assert set(ended.values()) == {"succeeded"}
        # All 500 were upstream at once before any ended: one process followed them all.
        seen = upstream.seen
        assert len(seen.creates) == MANY
        assert seen.created_when_first_ended == MANY
        assert seen.max_in_flight == MANY
        (pid,) = worker_pids(srv)  # one worker process did it all
        rss = peak_rss_mb(pid)
        print(f"\n{MANY} relayed tasks in {took:.1f} s; worker peak RSS {rss:.0f} MB")
        assert rss < RSS_BOUND_MB
        # Each result was copied into vedit's storage.
        results = srv.db("select result_path from tasks where status = 'succeeded'")
        made = upstream.script.result.read_bytes()
        assert len(results) == MANY
        for (path,) in results[:: MANY // 10]:
            assert Path(path).read_bytes() == made
        assert all(Path(path).is_file() for (path,) in results)
        assert upstream.key not in srv.log()
    finally:
        srv.stop()


def test_cancelling_one_of_many_followed_tasks_cancels_it_alone(tmp_path, clips, upstream) -> None:
    n = 20
    upstream.script.statuses = ["PENDING", "SUCCEEDED"]
    upstream.script.hold_until_created = 10**9  # held PENDING until the test lets them go
    env = relay_env(clips, upstream, poll_s=0.2, poll_max_s=0.5)
    srv = VeditServer(tmp_path / "data", env, workers=1).start()
    try:
        ids = submit_many(srv, clips, n)
        wait_for(lambda: len(upstream.seen.creates) == n, 60, f"{n} creates upstream")
        wait_for(lambda: upstream_ids_recorded(srv) == n, 10, "every upstream id in the plans")
        victim = ids[7]
        r = srv.client.post(f"/v1/video/generations/{victim}/cancel", headers=srv.headers())
        assert r.status_code == 200, r.text
        wait_for(lambda: upstream.seen.cancels, 10, "the upstream cancel")
        plan = srv.query(victim).json()["data"]["data"]["output"]["edit_plan"]
        assert upstream.seen.cancels == [plan["upstream_task_id"]]
        assert upstream.tasks[plan["upstream_task_id"]]["status"] == "CANCELED"
        upstream.script.hold_until_created = 0  # the others may finish now
        for task_id in ids:
            data = srv.wait(task_id, timeout=60)
            if task_id == victim:
                assert data["status"] == "FAILURE"
            else:
                assert data["status"] == "SUCCESS", data["fail_reason"]
        assert statuses(srv, [victim]) == {victim: "cancelled"}
        assert len(upstream.seen.cancels) == 1 and len(upstream.seen.creates) == n
    finally:
        srv.stop()


@pytest.mark.parametrize("how", ["server-restart", "worker-killed"])
def test_followed_tasks_resume_their_upstream_tasks_after_a_restart(
    tmp_path, clips, upstream, how
) -> None:
    """Stopping the server hands every followed task back; a killed worker's tasks are
    recovered. Either way the next worker polls the upstream tasks already submitted:
    no second create (and bill), no cancel."""
    n = 30
    upstream.script.statuses = ["PENDING", "RUNNING", "SUCCEEDED"]
    upstream.script.hold_until_created = 10**9
    env = relay_env(clips, upstream, poll_s=0.2, poll_max_s=0.5)
    first = VeditServer(tmp_path / "data", env, workers=1).start()
    second = None
    try:
        ids = submit_many(first, clips, n)
        wait_for(lambda: len(upstream.seen.creates) == n, 60, f"{n} creates upstream")
        wait_for(lambda: upstream_ids_recorded(first) == n, 10, "every upstream id in the plans")
        before = {i: first.query(i).json()["data"]["data"]["output"]["edit_plan"] for i in ids}
        if how == "server-restart":
            first.stop()  # SIGINT: the worker hands every followed task back
            assert set(statuses(first, ids).values()) == {"queued"}
            upstream.script.hold_until_created = 0
            second = VeditServer(tmp_path / "data", env, workers=1).start()
            srv = second
        else:
            (pid,) = worker_pids(first)
            os.kill(pid, signal.SIGKILL)  # the supervisor recovers its tasks, restarts it
            upstream.script.hold_until_created = 0
            srv = first
        for task_id in ids:
            data = srv.wait(task_id, timeout=60)
            assert data["status"] == "SUCCESS", data["fail_reason"]
            plan = data["data"]["output"]["edit_plan"]
            assert plan["upstream_task_id"] == before[task_id]["upstream_task_id"]
        assert len(upstream.seen.creates) == n
        assert upstream.seen.cancels == []
        if how == "worker-killed":
            assert len(worker_pids(first)) == 1 and pid not in worker_pids(first)
    finally:
        first.stop()
        if second is not None:
            second.stop()
