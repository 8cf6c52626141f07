"""The ``dashscope`` relay engine against a fake DashScope upstream, and vedit relaying to vedit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import VeditServer
from fake_upstream import FakeUpstream, Script
from mediagen import make_video


@pytest.fixture(scope="module")
def result_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the upstream 'made' from silent.mp4 (3.5 s) at 720P: 1280x720, 24 fps, 3.5 s."""
    d = tmp_path_factory.mktemp("upstream")
    return make_video(d / "out.mp4", width=1280, height=720, fps=24, seconds=3.5, audio=False)


@pytest.fixture(scope="module")
def upstream(result_video: Path) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(Script(result=result_video))
    yield fake
    fake.close()


def relay_env(media, upstream: FakeUpstream) -> dict[str, str]:
    """A vedit whose engine relays to ``upstream``, polling quickly."""
    return {
        "VEDIT_ENGINE": "dashscope",
        "VEDIT_UPSTREAM_BASE_URL": upstream.base_url,
        "VEDIT_UPSTREAM_API_KEY": upstream.key,
        "VEDIT_UPSTREAM_POLL_S": "0.1",
        "VEDIT_UPSTREAM_POLL_MAX_S": "0.3",
        "VEDIT_MEDIA_ALLOW": f"{media.hostport},{upstream.hostport}",
    }


@pytest.fixture(scope="module")
def relay(tmp_path_factory, media, upstream) -> Iterator[VeditServer]:
    """One vedit whose engine relays to the fake upstream (quick polls, a 6 s deadline)."""
    env = {**relay_env(media, upstream), "VEDIT_UPSTREAM_DEADLINE_S": "6"}
    srv = VeditServer(tmp_path_factory.mktemp("relay"), env, workers=1)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def script(upstream, result_video) -> Script:
    """A fresh script for each test (the default: PENDING, RUNNING, SUCCEEDED)."""
    upstream.script = Script(result=result_video)
    upstream.seen.__init__()  # type: ignore[misc]
    upstream.tasks.clear()
    return upstream.script


def submit(relay: VeditServer, media, prompt: str = "make it look like the reference photo") -> str:
    return relay.submit(
        media.url("silent.mp4"), media.url("coffee.jpg"), prompt, resolution="720P", seed=11
    )


def test_a_relayed_task_succeeds_with_the_upstreams_video(
    relay, media, upstream, script, tmp_path
) -> None:
    task_id = submit(relay, media, "让视频中的角色穿上图片中的条纹毛衣")
    data = relay.wait(task_id)
    assert data["status"] == "SUCCESS", data["fail_reason"]
    # The request went upstream as the client made it, with the drawn seed.
    (sent,) = upstream.seen.creates
    assert sent["model"] == "happyhorse-1.0-video-edit"
    assert sent["input"]["prompt"] == "让视频中的角色穿上图片中的条纹毛衣"
    assert sent["input"]["media"] == [
        {"type": "video", "url": media.url("silent.mp4")},
        {"type": "reference_image", "url": media.url("coffee.jpg")},
    ]
    assert sent["parameters"] == {
        "resolution": "720P",
        "watermark": True,
        "seed": 11,
        "audio_setting": "auto",
    }
    assert upstream.seen.create_headers[0]["Authorization"] == f"Bearer {upstream.key}"
    # The video was copied into vedit's storage: the link is vedit's, the bytes the upstream's.
    out = relay.download(data["result_url"], tmp_path / "out.mp4")
    assert out.read_bytes() == script.result.read_bytes()
    plan = data["data"]["output"]["edit_plan"]
    assert plan["operation"] == "relay" and plan["upstream_task_id"]
    assert data["data"]["usage"]["output_video_duration"] == pytest.approx(3.5, abs=0.05)


def test_the_upstream_key_never_shows(relay, media, upstream, script) -> None:
    task_id = submit(relay, media)
    relay.wait(task_id)
    script.statuses = ["FAILED"]
    failed = submit(relay, media)
    relay.wait(failed)
    for tid in (task_id, failed):
        assert upstream.key not in relay.query(tid).text
    rows = relay.db("select * from tasks")
    assert upstream.key not in json.dumps(rows, default=str)
    assert upstream.key not in relay.log()


def test_all_reference_images_are_relayed(relay, media, upstream, script) -> None:
    images = [media.url("coffee.jpg"), media.url("astronaut.png"), media.url("chelsea.webp")]
    payload = {
        "model": "happyhorse-1.0-video-edit",
        "input": {
            "prompt": "look",
            "media": [{"type": "video", "url": media.url("silent.mp4")}]
            + [{"type": "reference_image", "url": u} for u in images],
        },
        "parameters": {"resolution": "720P"},
    }
    r = relay.client.post(
        "/api/v1/services/aigc/video-generation/video-synthesis",
        json=payload,
        headers={**relay.headers(), "X-DashScope-Async": "enable"},
    )
    assert r.status_code == 200, r.text
    assert relay.wait(r.json()["output"]["task_id"])["status"] == "SUCCESS"
    assert [m["url"] for m in upstream.seen.creates[0]["input"]["media"][1:]] == images


def test_an_upstream_failure_ends_the_task_with_its_code(relay, media, script) -> None:
    script.statuses = ["PENDING", "RUNNING", "FAILED"]
    data = relay.wait(submit(relay, media))
    out = data["data"]["output"]
    assert data["status"] == "FAILURE"
    assert out["code"] == "DataInspectionFailed"
    assert "the input data may contain inappropriate content" in out["message"]


def test_an_upstream_refusal_ends_the_task_with_its_code(relay, media, script) -> None:
    script.refuse_create = (400, "InvalidParameter.DataInspection", "the prompt was refused")
    data = relay.wait(submit(relay, media))
    assert data["status"] == "FAILURE"
    assert data["data"]["output"]["code"] == "InvalidParameter.DataInspection"
    assert "the prompt was refused" in data["fail_reason"]


def test_throttling_and_server_errors_are_retried(relay, media, upstream, script) -> None:
    script.create_failures = [429, 500]
    script.retry_after = "0"
    script.get_failures = [503, 500]
    data = relay.wait(submit(relay, media))
    assert data["status"] == "SUCCESS", data["fail_reason"]
    assert len(upstream.seen.creates) == 3  # two refused, the third taken


def test_errors_past_the_deadline_end_the_task(relay, media, upstream, script) -> None:
    script.create_failures = [500] * 1000
    started = time.monotonic()
    data = relay.wait(submit(relay, media))
    assert data["status"] == "FAILURE"
    assert "kept failing" in data["fail_reason"] and "500" in data["fail_reason"]
    assert time.monotonic() - started < 20
    assert len(upstream.seen.creates) >= 3  # retried with backoff, not once


def test_slow_answers_are_waited_for(relay, media, script) -> None:
    script.delay_s = 0.4
    assert relay.wait(submit(relay, media))["status"] == "SUCCESS"


def test_the_result_is_copied_before_its_link_expires(relay, media, upstream, script) -> None:
    script.link_ttl_s = 1.0  # short, but vedit copies the moment it sees SUCCEEDED
    assert relay.wait(submit(relay, media))["status"] == "SUCCESS"
    assert upstream.seen.downloads == [200]


def test_a_link_that_has_always_expired_fails_clearly(relay, media, upstream, script) -> None:
    script.link_ttl_s = -1.0
    data = relay.wait(submit(relay, media))
    assert data["status"] == "FAILURE"
    assert "could not be copied" in data["fail_reason"] and "403" in data["fail_reason"]
    assert upstream.seen.downloads == [403, 403]  # asked again once for a fresh link


def test_a_result_off_the_contract_is_refused(relay, media, upstream, script, tmp_path) -> None:
    script.result = make_video(
        tmp_path / "small.mp4", width=640, height=360, fps=24, seconds=3.5, audio=False
    )
    data = relay.wait(submit(relay, media))
    assert data["status"] == "FAILURE"
    assert data["data"]["output"]["code"] == "InternalError.Engine"
    assert "640x360" in data["fail_reason"] and "1280x720" in data["fail_reason"]


def test_cancelling_a_relayed_task_cancels_it_upstream(relay, media, upstream, script) -> None:
    script.statuses = ["PENDING"]  # the upstream never starts it
    task_id = submit(relay, media)
    deadline = time.monotonic() + 10
    while not upstream.seen.creates and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    r = relay.client.post(f"/v1/video/generations/{task_id}/cancel", headers=relay.headers())
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while not upstream.seen.cancels and time.monotonic() < deadline:
        time.sleep(0.05)
    upstream_id = relay.query(task_id).json()["data"]["data"]["output"]["edit_plan"][
        "upstream_task_id"
    ]
    assert upstream.seen.cancels == [upstream_id]
    assert upstream.tasks[upstream_id]["status"] == "CANCELED"


def test_vedit_relays_to_vedit(make_server, media, tmp_path) -> None:
    """A second vedit (engine classic) is the upstream: the whole DashScope path for real."""
    first = make_server(workers=1)  # the upstream, editing with classic
    second = make_server(
        env={
            "VEDIT_ENGINE": "dashscope",
            "VEDIT_UPSTREAM_BASE_URL": f"{first.base}/api/v1",
            "VEDIT_UPSTREAM_API_KEY": first.key,
            "VEDIT_UPSTREAM_POLL_S": "0.2",
            "VEDIT_MEDIA_ALLOW": f"{media.hostport},127.0.0.1:{first.port}",
        },
        workers=1,
    )
    task_id = second.submit(
        media.url("silent.mp4"),
        media.url("coffee.jpg"),
        "把整个画面转换为水彩风格",
        resolution="720P",
    )
    data = second.wait(task_id)
    assert data["status"] == "SUCCESS", data["fail_reason"] + second.log()[-2000:]
    upstream_id = data["data"]["output"]["edit_plan"]["upstream_task_id"]
    there = first.query(upstream_id).json()["data"]
    assert there["status"] == "SUCCESS"
    assert there["data"]["output"]["edit_plan"]["style"] == "watercolor"
    mine = second.download(data["result_url"], tmp_path / "mine.mp4").read_bytes()
    theirs = first.download(there["result_url"], tmp_path / "theirs.mp4").read_bytes()
    assert mine == theirs


def test_a_task_handed_back_by_a_stopping_worker_resumes_its_upstream_task(
    tmp_path, media, upstream, script
) -> None:
    """No second create (and bill) upstream: the retried task polls the task it submitted."""
    script.statuses = ["PENDING"]  # upstream keeps it waiting while vedit stops
    env = relay_env(media, upstream)
    first = VeditServer(tmp_path / "data", env, workers=1).start()
    task_id = submit(first, media)
    deadline = time.monotonic() + 10
    while not upstream.seen.creates and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    first.stop()  # SIGINT: the worker hands the task back to the queue
    (upstream_id,) = list(upstream.tasks)
    upstream.tasks[upstream_id]["step"] = 0
    script.statuses = ["RUNNING", "SUCCEEDED"]
    second = VeditServer(tmp_path / "data", env, workers=1).start()
    try:
        data = second.wait(task_id)
        assert data["status"] == "SUCCESS", data["fail_reason"]
        assert len(upstream.seen.creates) == 1
        assert data["data"]["output"]["edit_plan"]["upstream_task_id"] == upstream_id
        assert upstream.seen.cancels == []
    finally:
        second.stop()
