"""Bad media and hostile URLs end the task FAILURE with a code and a message; nothing crashes."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("video", "image", "code", "message"),
    [
        ("short.mp4", "coffee.jpg", "InvalidFile.Duration", "media[0] (video): duration is 2.0"),
        ("lowfps.mp4", "coffee.jpg", "InvalidFile.FPS", "frame rate is 6.00 fps"),
        ("small.mp4", "coffee.jpg", "InvalidFile.Resolution", "size is 480x270"),
        ("garbage.mp4", "coffee.jpg", "InvalidFile.Format", "not a video file"),
        ("truncated.mp4", "coffee.jpg", None, "media[0] (video)"),
        ("missing.mp4", "coffee.jpg", "InvalidURL.DownloadFailed", "HTTP 404"),
        (
            "wide.mp4",
            "tiny.png",
            "InvalidFile.Resolution",
            "media[1] (reference_image): size is 280x280",
        ),
        ("wide.mp4", "cut.jpg", "InvalidFile.Content", "damaged or cut short); received"),
    ],
)
def test_bad_media_fail_the_task_with_the_limit_and_the_value(
    server, media, video, image, code, message
) -> None:
    data = server.wait(server.submit(media.url(video), media.url(image), resolution="720P"))
    assert data["status"] == "FAILURE"
    out = data["data"]["output"]
    assert out["task_status"] == "FAILED"
    assert message in data["fail_reason"] and out["message"] == data["fail_reason"]
    if code:
        assert out["code"] == code
    assert data["result_url"] == "" and data["finish_time"] >= data["start_time"] > 0


def test_undecodable_media_say_what_was_received_and_never_a_server_path(server, media) -> None:
    from pathlib import Path

    root = Path(media.httpd.root)
    (root / "page.png").write_text("<!DOCTYPE html><html><body>Sign in to see this</body></html>")
    (root / "page.mp4").write_text("<!DOCTYPE html><html><body>Not found</body></html>")
    cases = [
        ("wide.mp4", "page.png", "InvalidFile.Format", "received 60 bytes of HTML"),
        ("page.mp4", "coffee.jpg", "InvalidFile.Format", "received 50 bytes of HTML"),
        ("wide.mp4", "cut.jpg", "InvalidFile.Content", "bytes of a JPEG image"),
        ("garbage.mp4", "coffee.jpg", "InvalidFile.Format", "bytes of data starting with"),
    ]
    for video, image, code, needle in cases:
        data = server.wait(server.submit(media.url(video), media.url(image), resolution="720P"))
        reason = data["fail_reason"]
        assert data["data"]["output"]["code"] == code and needle in reason, reason
        assert str(server.data_dir) not in reason and "/work/" not in reason, reason
        assert "'/" not in reason, reason


def test_urls_to_loopback_not_allowed_are_refused(server, media) -> None:
    cases = [
        (
            f"http://127.0.0.1:{media.port + 1}/v.mp4",
            "media[0] (video): refused: 127.0.0.1 is a loopback address",
        ),
        (
            f"http://localhost:{media.port}/wide.mp4",
            "media[0] (video): refused: localhost resolves to",
        ),
        (
            media.url(f"redirect?to=http://127.0.0.9:{media.port}/wide.mp4"),
            "media[0] (video): refused: 127.0.0.9 is a loopback address",
        ),
        (
            f"http://[::ffff:127.0.0.1]:{media.port}/wide.mp4",
            "media[0] (video): refused: ::ffff:127.0.0.1 is a loopback address (IPv4 127.0.0.1",
        ),
    ]
    for url, message in cases:
        data = server.wait(server.submit(url, media.url("coffee.jpg")))
        assert data["status"] == "FAILURE", url
        assert data["data"]["output"]["code"] == "InvalidURL.Refused"
        assert data["fail_reason"].startswith(message), data["fail_reason"]


def test_the_reference_image_is_labelled_by_its_place_in_the_request(server, media) -> None:
    body = {
        "model": "happyhorse-1.0-video-edit",
        "input": {
            "prompt": "p",
            "media": [
                {"type": "reference_image", "url": f"http://127.0.0.1:{media.port + 1}/i.png"},
                {"type": "video", "url": media.url("wide.mp4")},
            ],
        },
    }
    tid = server.create(body).json()["task_id"]
    data = server.wait(tid)
    assert data["fail_reason"].startswith("media[0] (reference_image): refused: 127.0.0.1")


def test_workers_survive_failures(server, media) -> None:
    # After every failure above, the same workers still edit.
    data = server.wait(
        server.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    )
    assert data["status"] == "SUCCESS"


def test_result_urls_are_signed(server, media) -> None:
    data = server.wait(
        server.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    )
    url = data["result_url"]
    assert url == data["data"]["output"]["video_url"]
    assert url.startswith(server.base + "/v1/files/")
    full = server.client.get(url)
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    part = server.client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(full.content)}"
    head = server.client.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(full.content)
    sig_pos = url.index("signature=") + len("signature=")
    flipped = url[:sig_pos] + ("0" if url[sig_pos] != "0" else "1") + url[sig_pos + 1 :]
    exp_pos = url.index("expires=") + len("expires=")
    later = url[:exp_pos] + str(int(url[exp_pos : exp_pos + 10]) + 1) + url[exp_pos + 10 :]
    for bad in (flipped, later, url.split("?")[0]):
        r = server.client.get(bad)
        assert r.status_code == 403 and r.json()["code"] == "signature_invalid"


def test_metrics_count_tasks_and_engine_speed(server, media) -> None:
    import re

    data = server.wait(
        server.submit(media.url("silent.mp4"), media.url("coffee.jpg"), resolution="720P")
    )
    assert data["status"] == "SUCCESS"
    text = server.client.get("/metrics").text
    succeeded = float(re.search(r'vedit_tasks\{status="succeeded"\} ([\d.e+]+)', text).group(1))
    failed = float(re.search(r'vedit_tasks\{status="failed"\} ([\d.e+]+)', text).group(1))
    speed = float(re.search(r"vedit_engine_seconds_per_video_second ([\d.e+-]+)", text).group(1))
    assert succeeded >= 1 and failed >= 1 and 0 < speed < 60
