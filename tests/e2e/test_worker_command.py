"""``vedit worker``: worker processes apart from the API, sharing its database."""

from __future__ import annotations

import signal
import subprocess
import sys


def test_a_separate_worker_process_runs_the_api_s_tasks(make_server, media) -> None:
    api = make_server(workers=0)
    tid = api.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    assert api.query(tid).json()["data"]["status"] == "QUEUED"
    worker = subprocess.Popen(
        [sys.executable, "-m", "vedit.cli", "worker", "--workers", "1"],
        env=api.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        data = api.wait(tid)
        assert data["status"] == "SUCCESS", data["fail_reason"]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
