"""DashScope's native dialect over the same tasks, and cancelling in both dialects (real server)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conftest import MODEL

CREATE = "/api/v1/services/aigc/video-generation/video-synthesis"
ASYNC = {"X-DashScope-Async": "enable"}


def ds_body(
    video: str, *images: str, prompt: str = "make it look like the reference photo", **params: Any
) -> dict:
    media = [{"type": "video", "url": video}] + [
        {"type": "reference_image", "url": u} for u in images
    ]
    b: dict[str, Any] = {"model": MODEL, "input": {"prompt": prompt, "media": media}}
    if params:
        b["parameters"] = params
    return b


def ds_create(server, payload: dict, *, key: str | None = None, headers: dict | None = None):
    return server.client.post(
        CREATE,
        json=payload,
        headers={**server.headers(key), **(ASYNC if headers is None else headers)},
    )


def ds_query(server, task_id: str, key: str | None = None) -> dict:
    r = server.client.get(f"/api/v1/tasks/{task_id}", headers=server.headers(key))
    assert r.status_code == 200, r.text
    return r.json()


def ds_wait(server, task_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = ds_query(server, task_id)
        if answer["output"]["task_status"] in ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"):
            return answer
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish: {answer}")


def test_create_and_query_in_dashscope_dialect(server, media) -> None:
    r = ds_create(
        server, ds_body(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    )
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["output"]["task_status"] == "PENDING" and created["request_id"]
    task_id = created["output"]["task_id"]
    done = ds_wait(server, task_id)
    out = done["output"]
    assert out["task_status"] == "SUCCEEDED", out
    assert out["video_url"].startswith(server.base)
    assert set(out) >= {"task_id", "submit_time", "scheduled_time", "end_time", "orig_prompt"}
    assert done["usage"]["SR"] == 720 and done["usage"]["video_count"] == 1
    assert done["request_id"] == created["request_id"]
    # The same task reads the same in the seed's dialect.
    same = server.query(task_id).json()["data"]
    assert same["status"] == "SUCCESS" and same["result_url"] == out["video_url"]
    assert same["data"]["output"]["task_status"] == "SUCCEEDED"


def test_a_seed_dialect_task_reads_in_dashscope_dialect(server, media) -> None:
    task_id = server.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    server.wait(task_id)
    out = ds_query(server, task_id)["output"]
    assert out["task_id"] == task_id and out["task_status"] == "SUCCEEDED" and out["video_url"]


def test_the_async_header_is_required(server, media) -> None:
    payload = ds_body(media.url("silent.mp4"), media.url("coffee.jpg"))
    for headers in ({}, {"X-DashScope-Async": "disable"}):
        r = ds_create(server, payload, headers=headers)
        assert r.status_code == 400
        err = r.json()
        assert err["code"] == "InvalidParameter" and err["request_id"]
        assert "X-DashScope-Async: enable" in err["message"]


@pytest.mark.parametrize(
    ("kinds", "ok"),
    [
        (["video"], True),
        (["video", "reference_image", "reference_image", "reference_image"], True),
        (["video"] + ["reference_image"] * 5, True),
        (["video"] + ["reference_image"] * 6, False),
        (["video", "video", "reference_image"], False),
        (["reference_image"], False),
    ],
)
def test_media_is_one_video_and_up_to_five_images(server, media, kinds, ok) -> None:
    urls = {"video": media.url("silent.mp4"), "reference_image": media.url("coffee.jpg")}
    payload = {
        "model": MODEL,
        "input": {"prompt": "look", "media": [{"type": k, "url": urls[k]} for k in kinds]},
    }
    r = ds_create(server, payload)
    if ok:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 400 and r.json()["code"] == "InvalidParameter", r.text
        assert "media" in r.json()["message"]


def test_no_reference_image_passes_the_video_through_and_says_so(server, media) -> None:
    r = ds_create(
        server, ds_body(media.url("silent.mp4"), prompt="replace the background", resolution="720P")
    )
    out = ds_wait(server, r.json()["output"]["task_id"])["output"]
    assert out["task_status"] == "SUCCEEDED", out
    plan = out["edit_plan"]
    assert plan["operation"] == "none" and plan["fallback_from"] == "replace_background"
    assert "no reference image" in plan["because"]
    # A style needs no reference: it is drawn, untinted.
    r = ds_create(
        server,
        ds_body(media.url("silent.mp4"), prompt="把整个画面转换为水彩风格", resolution="720P"),
    )
    out = ds_wait(server, r.json()["output"]["task_id"])["output"]
    assert out["task_status"] == "SUCCEEDED" and out["edit_plan"]["operation"] == "stylize"


def test_errors_in_dashscope_shape(server, media) -> None:
    r = ds_create(server, ds_body(media.url("silent.mp4"), media.url("coffee.jpg")), key="sk-wrong")
    assert r.status_code == 401
    assert r.json()["code"] == "InvalidApiKey" and r.json()["request_id"]
    r = ds_create(
        server, ds_body(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="4K")
    )
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidParameter" and "parameters.resolution" in r.json()["message"]
    r = server.client.get("/api/v1/tasks/asyntask_nope", headers=server.headers("sk-wrong"))
    assert r.status_code == 401 and r.json()["code"] == "InvalidApiKey"


def test_an_unknown_task_reads_unknown(server) -> None:
    for task_id in ("asyntask_" + "0" * 32, "not-a-task"):
        answer = ds_query(server, task_id)
        assert answer["output"]["task_id"] == task_id
        assert answer["output"]["task_status"] == "UNKNOWN" and answer["request_id"]


def test_throttling_in_dashscope_shape(make_server, media) -> None:
    srv = make_server(env={"VEDIT_RATE_LIMIT_PER_S": "1", "VEDIT_RATE_LIMIT_BURST": "2"}, workers=0)
    payload = ds_body(media.url("silent.mp4"), media.url("coffee.jpg"))
    codes = [ds_create(srv, payload) for _ in range(4)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert (
        limited[0].json()["code"] == "Throttling.RateQuota" and "Retry-After" in limited[0].headers
    )


# --- cancel ----------------------------------------------------------------------------


def test_cancel_a_queued_task_in_both_dialects(make_server, media) -> None:
    srv = make_server(workers=0)  # nothing runs: tasks stay queued
    first = srv.submit(media.url("silent.mp4"), media.url("coffee.jpg"))
    r = srv.client.post(f"/v1/video/generations/{first}/cancel", headers=srv.headers())
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["status"] == "FAILURE" and data["data"]["output"]["task_status"] == "CANCELED"
    assert data["finish_time"] > 0

    second = ds_create(srv, ds_body(media.url("silent.mp4"), media.url("coffee.jpg"))).json()
    task_id = second["output"]["task_id"]
    r = srv.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=srv.headers())
    assert r.status_code == 200 and r.json()["request_id"], r.text
    out = ds_query(srv, task_id)["output"]
    assert out["task_status"] == "CANCELED" and out["code"] == "Canceled"
    # Cancelling again is a clear 400 that changes nothing.
    r = srv.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=srv.headers())
    assert r.status_code == 400 and r.json()["code"] == "UnsupportedOperation"
    assert "already ended (CANCELED)" in r.json()["message"]
    r = srv.client.post(f"/v1/video/generations/{first}/cancel", headers=srv.headers())
    assert r.status_code == 400 and r.json()["code"] == "task_not_cancelable"


def test_cancel_of_a_finished_task_is_refused_and_changes_nothing(server, media) -> None:
    task_id = server.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    before = server.wait(task_id)
    r = server.client.post(f"/v1/video/generations/{task_id}/cancel", headers=server.headers())
    assert r.status_code == 400
    assert r.json() == {
        "code": "task_not_cancelable",
        "message": f"task {task_id} has already ended (SUCCEEDED) and cannot be cancelled",
        "data": None,
    }
    after = server.query(task_id).json()["data"]
    assert after["status"] == "SUCCESS" and after["result_url"] == before["result_url"]
    assert server.client.get(after["result_url"]).status_code == 200


def test_cancel_of_an_unknown_or_foreign_task_is_404(server) -> None:
    r = server.client.post("/v1/video/generations/asyntask_nope/cancel", headers=server.headers())
    assert r.status_code == 404 and r.json()["code"] == "task_not_exist"
    r = server.client.post("/api/v1/tasks/asyntask_nope/cancel", headers=server.headers())
    assert r.status_code == 404 and r.json()["code"] == "InvalidParameter.TaskNotExist"


def test_cancel_a_running_task_stops_it_and_removes_its_files(make_server, media) -> None:
    srv = make_server(workers=1)
    task_id = srv.submit(media.url("long.mp4"), media.url("coffee.jpg"), resolution="1080P")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        data = srv.query(task_id).json()["data"]
        if data["status"] == "IN_PROGRESS" and int(data["progress"].rstrip("%")) >= 15:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the task did not get going: {data}")
    r = srv.client.post(f"/v1/video/generations/{task_id}/cancel", headers=srv.headers())
    assert r.status_code == 200 and r.json()["data"]["data"]["output"]["task_status"] == "CANCELED"
    # The worker stops at its next progress beat and removes its work; nothing is published.
    work = srv.data_dir / "work" / task_id
    deadline = time.monotonic() + 10
    while work.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not work.exists()
    time.sleep(1.0)
    assert not list((srv.data_dir / "results").glob(f"{task_id}*"))
    final = srv.query(task_id).json()["data"]
    assert final["data"]["output"]["task_status"] == "CANCELED" and final["result_url"] == ""
    # The worker is free again and edits the next task.
    nxt = srv.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    assert srv.wait(nxt)["status"] == "SUCCESS"
    assert f"task {task_id} finished: CANCELED" in srv.log()


def test_cancel_during_a_download_that_sends_nothing_stops_it(make_server, media) -> None:
    """A media server that sends 10 bytes and then nothing for a minute: the cancelled task
    lets go of it at the worker's next lease beat, not when the read times out."""
    srv = make_server({"VEDIT_MEDIA_READ_TIMEOUT_S": "60"}, workers=1)
    task_id = srv.submit(media.url("stall?seconds=60"), media.url("coffee.jpg"))
    deadline = time.monotonic() + 30
    while srv.query(task_id).json()["data"]["status"] != "IN_PROGRESS":
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.05)
    time.sleep(0.5)  # the download has begun
    r = srv.client.post(f"/v1/video/generations/{task_id}/cancel", headers=srv.headers())
    assert r.status_code == 200
    # The lease beat is VEDIT_TASK_LEASE_S / 3 = 1 s here; allow a busy machine ten times that.
    deadline = time.monotonic() + 10
    while f"task {task_id} finished: CANCELED" not in srv.log():
        assert time.monotonic() < deadline, srv.log()[-2000:]
        time.sleep(0.1)
    assert not (srv.data_dir / "work" / task_id).exists()
