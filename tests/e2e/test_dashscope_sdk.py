"""The official ``dashscope`` SDK from PyPI, unmodified, as a client of vedit (loopback only)."""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus

import dashscope
import pytest
from dashscope import VideoSynthesis

from conftest import MODEL, VeditServer


@pytest.fixture
def sdk(server) -> Iterator[None]:
    """Point the SDK at the test server through its base-URL setting."""
    before = dashscope.base_http_api_url
    dashscope.base_http_api_url = f"{server.base}/api/v1"
    yield
    dashscope.base_http_api_url = before


def media_list(media, images: int = 1) -> list[dict[str, str]]:
    return [{"type": "video", "url": media.url("silent.mp4")}] + [
        {"type": "reference_image", "url": media.url("coffee.jpg")} for _ in range(images)
    ]


def test_async_call_wait_and_fetch(server, media, sdk) -> None:
    rsp = VideoSynthesis.async_call(
        model=MODEL,
        prompt="make it look like the reference photo",
        media=media_list(media),
        api_key=server.key,
        resolution="720P",
        seed=7,
    )
    assert rsp.status_code == HTTPStatus.OK, rsp
    task_id = rsp.output.task_id
    assert rsp.output.task_status == "PENDING"

    done = VideoSynthesis.wait(rsp, api_key=server.key)
    assert done.status_code == HTTPStatus.OK, done
    assert done.output.task_status == "SUCCEEDED"
    assert done.output.video_url.startswith(server.base)
    assert server.client.get(done.output.video_url).status_code == 200

    fetched = VideoSynthesis.fetch(task_id, api_key=server.key)
    assert fetched.status_code == HTTPStatus.OK
    assert fetched.output.task_status == "SUCCEEDED"
    assert fetched.output.video_url == done.output.video_url
    # The seed went through as a parameter.
    assert server.query(task_id).json()["data"]["data"]["parameters"]["seed"] == 7


def test_several_reference_images(server, media, sdk) -> None:
    rsp = VideoSynthesis.async_call(
        model=MODEL, prompt="把整个画面转换为水彩风格", media=media_list(media, images=3),
        api_key=server.key, resolution="720P",
    )  # fmt: skip
    assert rsp.status_code == HTTPStatus.OK, rsp
    assert VideoSynthesis.wait(rsp, api_key=server.key).output.task_status == "SUCCEEDED"


def test_a_bad_key_is_the_sdks_normal_error(server, media, sdk) -> None:
    rsp = VideoSynthesis.async_call(
        model=MODEL, prompt="look", media=media_list(media), api_key="sk-not-a-key"
    )
    assert rsp.status_code == HTTPStatus.UNAUTHORIZED
    assert rsp.code == "InvalidApiKey" and rsp.message


def test_a_bad_parameter_is_the_sdks_normal_error(server, media, sdk) -> None:
    rsp = VideoSynthesis.async_call(
        model=MODEL, prompt="look", media=media_list(media), api_key=server.key, resolution="4K"
    )
    assert rsp.status_code == HTTPStatus.BAD_REQUEST
    assert rsp.code == "InvalidParameter" and "parameters.resolution" in rsp.message


def test_cancel_through_the_sdk(make_server, media) -> None:
    srv = make_server(workers=0)  # nothing runs: the task stays PENDING
    before = dashscope.base_http_api_url
    dashscope.base_http_api_url = f"{srv.base}/api/v1"
    try:
        rsp = VideoSynthesis.async_call(
            model=MODEL, prompt="look", media=media_list(media), api_key=srv.key
        )
        assert rsp.status_code == HTTPStatus.OK, rsp
        cancelled = VideoSynthesis.cancel(rsp, api_key=srv.key)
        assert cancelled.status_code == HTTPStatus.OK, cancelled
        assert VideoSynthesis.fetch(rsp, api_key=srv.key).output.task_status == "CANCELED"
        again = VideoSynthesis.cancel(rsp, api_key=srv.key)
        assert again.status_code == HTTPStatus.BAD_REQUEST and again.code == "UnsupportedOperation"
    finally:
        dashscope.base_http_api_url = before


def test_local_files_through_the_sdks_own_upload_flow(tmp_path, media_dir) -> None:
    """``file://`` media: the SDK asks for a policy, posts each file to the upload_host it was
    given (vedit), and sends ``oss://`` keys with X-DashScope-OssResourceResolve. The server
    allows no media host at all: the edit reads the uploads from storage."""
    srv = VeditServer(tmp_path / "data", {}, workers=1).start()
    before = dashscope.base_http_api_url
    dashscope.base_http_api_url = f"{srv.base}/api/v1"
    try:
        rsp = VideoSynthesis.async_call(
            model=MODEL,
            prompt="make it look like the reference photo",
            media=[
                {"type": "video", "url": f"file://{media_dir / 'silent.mp4'}"},
                {"type": "reference_image", "url": f"file://{media_dir / 'astronaut.png'}"},
            ],
            api_key=srv.key,
            resolution="720P",
        )
        assert rsp.status_code == HTTPStatus.OK, rsp
        done = VideoSynthesis.wait(rsp, api_key=srv.key)
        assert done.output.task_status == "SUCCEEDED", done
        assert srv.client.get(done.output.video_url).status_code == 200
        kept = srv.db("select object_key, kind, bytes from uploads order by kind")
        assert [(k.rsplit("/", 1)[1], kind) for k, kind, _ in kept] == [
            ("astronaut.png", "image"),
            ("silent.mp4", "video"),
        ]
        assert kept[1][2] == (media_dir / "silent.mp4").stat().st_size
        assert not srv.env.get("VEDIT_MEDIA_ALLOW")
    finally:
        dashscope.base_http_api_url = before
        srv.stop()


def test_local_files_with_chinese_names_through_the_sdk(tmp_path, media_dir) -> None:
    """``file://`` media named in Chinese: the SDK posts them under object keys in Chinese
    (``<upload_dir>/视频 片段.mp4``), with the raw UTF-8 file name in the form; both are taken,
    and the task reads them back by their ``oss://`` keys."""
    import shutil

    clip, look = tmp_path / "视频 片段.mp4", tmp_path / "参考图.png"
    shutil.copy(media_dir / "silent.mp4", clip)
    shutil.copy(media_dir / "astronaut.png", look)
    srv = VeditServer(tmp_path / "data", {}, workers=1).start()
    before = dashscope.base_http_api_url
    dashscope.base_http_api_url = f"{srv.base}/api/v1"
    try:
        rsp = VideoSynthesis.async_call(
            model=MODEL,
            prompt="把整个画面转换为水彩风格",
            media=[
                {"type": "video", "url": f"file://{clip}"},
                {"type": "reference_image", "url": f"file://{look}"},
            ],
            api_key=srv.key,
            resolution="720P",
        )
        assert rsp.status_code == HTTPStatus.OK, rsp
        done = VideoSynthesis.wait(rsp, api_key=srv.key)
        assert done.output.task_status == "SUCCEEDED", done
        kept = srv.db("select object_key, filename, kind from uploads order by kind")
        assert [(k.rsplit("/", 1)[1], f, kind) for k, f, kind in kept] == [
            ("参考图.png", "参考图.png", "image"),
            ("视频 片段.mp4", "视频 片段.mp4", "video"),
        ]
    finally:
        dashscope.base_http_api_url = before
        srv.stop()
