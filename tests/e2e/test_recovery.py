"""Restarts and crashes: nothing is lost and nothing stays IN_PROGRESS forever."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

SLOW = "slow?file=silent.mp4&seconds=3"  # a 3 s drip: time to catch the task running


def wait_running(srv, task_id: str, timeout: float = 30) -> str:
    """The worker id once the task runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = srv.db("select status, worker_id from tasks where id = ?", task_id)
        if rows and rows[0][0] == "running" and rows[0][1]:
            return rows[0][1]
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never ran")


def kill_worker(worker_id: str) -> None:
    os.kill(int(worker_id.rsplit(":", 1)[1]), signal.SIGKILL)


def test_a_killed_worker_s_task_is_retried_and_succeeds(make_server, media) -> None:
    srv = make_server(workers=1)
    tid = srv.submit(media.url(SLOW), media.url("coffee.jpg"), resolution="720P")
    first = wait_running(srv, tid)
    kill_worker(first)
    data = srv.wait(tid)
    assert data["status"] == "SUCCESS", data["fail_reason"]
    worker, attempts = srv.db("select worker_id, attempts from tasks where id = ?", tid)[0]
    assert attempts == 2 and worker != first  # a new worker process took it over


def test_a_task_whose_worker_dies_twice_fails_with_a_reason(make_server, media) -> None:
    srv = make_server(workers=1)
    tid = srv.submit(media.url(SLOW), media.url("coffee.jpg"), resolution="720P")
    kill_worker(wait_running(srv, tid))
    time.sleep(0.5)
    second = wait_running(srv, tid)
    kill_worker(second)
    data = srv.wait(tid)
    assert data["status"] == "FAILURE"
    assert data["data"]["output"]["code"] == "InternalError.WorkerLost"
    assert "stopped 2 times" in data["fail_reason"]
    # The server still works.
    ok = srv.wait(srv.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P"))
    assert ok["status"] == "SUCCESS"


def test_queued_tasks_run_after_a_restart(make_server, media, tmp_path) -> None:
    data_dir = tmp_path / "shared"
    srv = make_server(workers=0, data_dir=data_dir)
    ids = [
        srv.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
        for _ in range(2)
    ]
    srv.stop()
    srv2 = make_server(workers=2, data_dir=data_dir)
    for tid in ids:
        assert srv2.wait(tid)["status"] == "SUCCESS"


def test_a_graceful_stop_hands_running_tasks_back(make_server, media, tmp_path) -> None:
    data_dir = tmp_path / "shared"
    srv = make_server(workers=1, data_dir=data_dir)
    tid = srv.submit(media.url(SLOW), media.url("coffee.jpg"), resolution="720P")
    wait_running(srv, tid)
    time.sleep(3.2)  # past the fetch, into the edit
    srv.stop()
    status, attempts = srv.db("select status, attempts from tasks where id = ?", tid)[0]
    assert (status, attempts) in (("queued", 0), ("succeeded", 1))
    srv2 = make_server(workers=1, data_dir=data_dir)
    assert srv2.wait(tid)["status"] == "SUCCESS"


def test_a_crashed_server_s_running_task_is_recovered_at_start(
    make_server, media, tmp_path
) -> None:
    data_dir = tmp_path / "shared"
    srv = make_server(workers=1, data_dir=data_dir, env={"VEDIT_TASK_LEASE_S": "600"})
    tid = srv.submit(media.url(SLOW), media.url("coffee.jpg"), resolution="720P")
    wait_running(srv, tid)
    os.killpg(srv.proc.pid, signal.SIGKILL)  # server and workers, no goodbye
    srv.proc.wait()
    assert srv.db("select status from tasks where id = ?", tid)[0][0] == "running"
    # The lease is 10 minutes, yet the new server sees the old one is gone and retries now.
    srv2 = make_server(workers=1, data_dir=data_dir, env={"VEDIT_TASK_LEASE_S": "600"})
    data = srv2.wait(tid, timeout=60)
    assert data["status"] == "SUCCESS"


def test_tasks_and_files_expire(make_server, media) -> None:
    srv = make_server(env={"VEDIT_TASK_TTL_S": "6"}, workers=1)
    tid = srv.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    data = srv.wait(tid)
    assert data["status"] == "SUCCESS"
    result = srv.data_dir / "results" / f"{tid}.mp4"
    assert result.exists()
    deadline = time.monotonic() + 15
    while srv.query(tid).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert srv.query(tid).status_code == 404
    time.sleep(0.6)
    assert not result.exists()
    assert srv.client.get(data["result_url"]).status_code == 403
    assert srv.db("select count(*) from tasks where id = ?", tid)[0][0] == 0


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_server_leaves_no_worker_behind(make_server, sig) -> None:
    srv = make_server(workers=2)
    workers = _children(srv.proc.pid)
    assert len(workers) >= 2
    srv.stop(sig)
    assert srv.proc.returncode == 0
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)]


def test_sigterm_to_a_worker_hands_its_task_back_without_spending_an_attempt(
    make_server, media
) -> None:
    srv = make_server(workers=1)
    tid = srv.submit(media.url(SLOW), media.url("coffee.jpg"), resolution="720P")
    first = wait_running(srv, tid)
    os.kill(int(first.rsplit(":", 1)[1]), signal.SIGTERM)
    data = srv.wait(tid)
    assert data["status"] == "SUCCESS", data["fail_reason"]
    worker, attempts = srv.db("select worker_id, attempts from tasks where id = ?", tid)[0]
    assert worker != first and attempts == 1
