"""``vedit.Client`` and ``vedit.AsyncClient`` against a live server: uploads of local files,
URL media, real edits probed, failures, cancel, timeouts and every error shape."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from mediagen import probe_output
from vedit import ApiError, AsyncClient, Client, Task, TaskFailed, TaskNotFinished, WaitTimeout
from vedit.client import error_from_response

PROMPT = "make it look like the reference photo"


@pytest.fixture(scope="module")
def client(server) -> Client:
    with Client(server.base, server.key) as c:
        yield c


def test_local_files_are_uploaded_edited_and_downloaded(client, media_dir, tmp_path) -> None:
    up = client.upload(media_dir / "coffee.jpg")
    assert up.id.startswith("up_") and up.kind == "image" and up.content_type == "image/jpeg"
    assert up.bytes == (media_dir / "coffee.jpg").stat().st_size
    assert httpx.get(up.url).content == (media_dir / "coffee.jpg").read_bytes()  # no key needed

    task = client.create(
        media_dir / "silent.mp4", str(media_dir / "coffee.jpg"), PROMPT,
        resolution="720P", watermark=False, seed=7,
    )  # fmt: skip
    assert (
        task.status == "QUEUED"
        and task.task_status == "PENDING"
        and task.id.startswith("asyntask_")
    )
    seen: list[Task] = []
    done = client.wait(task.id, poll=0.2, on_progress=seen.append)
    assert done.raise_for_failure() is done and done.succeeded and done.task_status == "SUCCEEDED"
    assert done.progress == 100 and done.result_url and done.finish_time >= done.start_time > 0
    assert done.parameters["seed"] == 7 and done.usage["SR"] == 720
    assert done.edit_plan["operation"] == "color_grade" and done.raw["data"]["status"] == "SUCCESS"
    assert seen[-1] == done and {t.status for t in seen} <= {"QUEUED", "IN_PROGRESS", "SUCCESS"}

    out = client.download(done.id, tmp_path / "out.mp4")
    info = probe_output(out)
    assert info["codec"] == "h264" and (info["width"], info["height"]) == (1280, 720)
    assert info["frames"] == 84
    # A folder as the destination gets <task_id>.mp4; a Task is as good as its id.
    again = client.download(done, tmp_path)
    assert again == tmp_path / f"{done.id}.mp4" and again.read_bytes() == out.read_bytes()
    assert not list(tmp_path.glob("*.part"))


def test_async_client_edits_url_media(server, media, tmp_path) -> None:
    async def run() -> tuple[Task, Path, list[str]]:
        statuses: list[str] = []
        async with AsyncClient(server.base, server.key) as c:
            task = await c.create(
                media.url("silent.mp4"), media.url("chelsea.webp"), "make it look like a watercolor",
                resolution="720P", audio_setting="origin",
            )  # fmt: skip
            done = await c.wait(task.id, poll=0.2, on_progress=lambda t: statuses.append(t.status))
            path = await c.download(done, tmp_path / "async.mp4")
            return done, path, statuses

    done, path, statuses = asyncio.run(run())
    assert done.succeeded, done.message
    assert statuses[-1] == "SUCCESS" and done.parameters["audio_setting"] == "origin"
    assert isinstance(done.parameters["seed"], int)  # drawn by the server, and reported
    info = probe_output(path)
    assert info["codec"] == "h264" and info["frames"] > 0


def test_a_failed_task_carries_its_code_and_message(client, media_dir, media) -> None:
    task = client.create(media.url("short.mp4"), media_dir / "coffee.jpg", PROMPT)
    done = client.wait(task.id, poll=0.2)
    assert done.failed and done.task_status == "FAILED" and done.result_url is None
    assert done.code == "InvalidFile.Duration"
    assert "media[0] (video): duration is 2.0" in done.message
    with pytest.raises(TaskFailed) as failed:
        done.raise_for_failure()
    assert failed.value.code == "InvalidFile.Duration" and failed.value.task is done
    with pytest.raises(TaskFailed):
        client.download(done.id, "never.mp4")
    assert not Path("never.mp4").exists()


def test_api_errors_are_one_type_with_status_code_and_message(server, client, media) -> None:
    with Client(server.base, "vk-not-a-key") as bad, pytest.raises(ApiError) as e:
        bad.get("asyntask_x")
    assert (e.value.status, e.value.code) == (401, "invalid_api_key")

    with pytest.raises(ApiError) as e:
        client.create(media.url("wide.mp4"), media.url("coffee.jpg"), PROMPT, resolution="4K")  # type: ignore[arg-type]
    assert (e.value.status, e.value.code) == (400, "invalid_request")
    assert "parameters.resolution" in e.value.message and "4K" in e.value.message

    with pytest.raises(ApiError) as e:
        client.get("asyntask_nosuchtask")
    assert (e.value.status, e.value.code) == (404, "task_not_exist")

    with Client(f"http://127.0.0.1:{free_port()}", "k") as down, pytest.raises(ApiError) as e:
        down.get("asyntask_x")
    assert e.value.status == 0 and e.value.message.startswith("cannot reach http://127.0.0.1:")

    # DashScope's shape and a body that is not JSON read the same way.
    ds = server.client.get("/api/v1/tasks/x/cancel", headers=server.headers())
    error = error_from_response(ds)
    assert (error.status, error.code) == (405, "MethodNotAllowed") and error.message
    plain = httpx.Response(502, text="<html>Bad Gateway</html>")
    error = error_from_response(plain)
    assert (error.status, error.code, error.message) == (
        502,
        "http_502",
        "<html>Bad Gateway</html>",
    )


def test_a_local_file_that_does_not_exist_is_named(client) -> None:
    with pytest.raises(FileNotFoundError, match="video: no file 'nope.mp4'"):
        client.create("nope.mp4", "https://example.com/look.jpg", PROMPT)


def test_cancel_timeout_and_download_of_a_queued_task(api_server, media_dir) -> None:
    """On a server with no workers a task stays queued: wait times out, cancel ends it."""
    with Client(api_server.base, api_server.key) as c:
        task = c.create(media_dir / "silent.mp4", media_dir / "coffee.jpg", PROMPT)
        with pytest.raises(WaitTimeout) as timeout:
            c.wait(task.id, timeout=0.5, poll=0.1)
        assert timeout.value.task.status == "QUEUED" and timeout.value.timeout == 0.5
        with pytest.raises(TaskNotFinished):
            c.download(task.id, "never.mp4")
        cancelled = c.cancel(task.id)
        assert cancelled.status == "FAILURE" and cancelled.task_status == "CANCELED"
        assert cancelled.code == "Canceled"
        with pytest.raises(ApiError) as e:
            c.cancel(task.id)
        assert (e.value.status, e.value.code) == (400, "task_not_cancelable")


def test_uploads_the_server_refuses_are_api_errors_naming_the_limit(api_server, tmp_path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with Client(api_server.base, api_server.key) as c:
        with pytest.raises(ApiError) as e:
            c.upload(notes)
        assert (e.value.status, e.value.code) == (400, "invalid_file")
        assert e.value.message.startswith("upload of notes.txt: ") and "'hello'" in e.value.message
        with pytest.raises(ApiError) as e:
            c.create(notes, "https://example.com/look.jpg", PROMPT)
        assert e.value.status == 400
