"""``vedit worker``: worker processes apart from the API, sharing its database."""

from __future__ import annotations

import signal
import subprocess
import sys


def test_a_separate_worker_process_runs_the_api_s_tasks(make_server, media, media_dir) -> None:
    api = make_server(workers=0)
    tid = api.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    assert api.query(tid).json()["data"]["status"] == "QUEUED"
    # An upload too: the worker, which does not know the API's public address (no
    # VEDIT_PUBLIC_BASE_URL), knows the upload by its signature and copies it from storage.
    with (media_dir / "coffee.jpg").open("rb") as f:
        image = api.client.post("/v1/uploads", files={"file": f}, headers=api.headers())
    uploaded = api.submit(media.url("silent.mp4"), image.json()["url"], resolution="720P")
    seen = len(media.httpd.paths_seen)
    env = {**api.env, "VEDIT_MEDIA_ALLOW": media.hostport}
    env.pop("VEDIT_PUBLIC_BASE_URL", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "vedit.cli", "worker", "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        data = api.wait(tid)
        assert data["status"] == "SUCCESS", data["fail_reason"]
        data = api.wait(uploaded)
        assert data["status"] == "SUCCESS", data["fail_reason"]
        # One clip and one image (the first task's) fetched: the upload never was.
        assert sorted(media.httpd.paths_seen[seen:]) == [
            "/coffee.jpg",
            "/silent.mp4",
            "/silent.mp4",
        ]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
