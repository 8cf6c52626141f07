"""Uploads into vedit's storage, both ways, against live servers with no allow-list.

No server here allows any media host: a task that edits an upload succeeds only because the
worker copies the file from storage (a fetch of the server's own loopback URL is refused).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import MODEL, VeditServer, body

OSS_HEADER = {"X-DashScope-OssResourceResolve": "enable"}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VeditServer]:
    """One worker, no media allow-list, no rate limit."""
    srv = VeditServer(tmp_path_factory.mktemp("uploads"), {"VEDIT_RATE_LIMIT_PER_S": "0"}, 1)
    srv.start()
    yield srv
    srv.stop()


def upload(
    srv: VeditServer, path: Path, key: str | None = None, name: str | None = None
) -> httpx.Response:
    with path.open("rb") as f:
        return srv.client.post(
            "/v1/uploads", files={"file": (name or path.name, f)}, headers=srv.headers(key)
        )


def uploaded(srv: VeditServer, path: Path, key: str | None = None) -> str:
    r = upload(srv, path, key)
    assert r.status_code == 200, r.text
    return r.json()["url"]


def new_key(srv: VeditServer, name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "vedit.cli", "keys", "create", "--name", name],
        env=srv.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_an_upload_is_edited_in_both_dialects_without_an_allow_list(plain, media_dir) -> None:
    video, image = (
        uploaded(plain, media_dir / "silent.mp4"),
        uploaded(plain, media_dir / "coffee.jpg"),
    )
    task = plain.submit(video, image, resolution="720P")
    r = plain.client.post(
        "/api/v1/services/aigc/video-generation/video-synthesis",
        headers={**plain.headers(), "X-DashScope-Async": "enable"},
        json={
            "model": MODEL,
            "input": {"prompt": "watercolor", "media": [{"type": "video", "url": video}]},
            "parameters": {"resolution": "720P"},
        },
    )
    assert r.status_code == 200, r.text
    assert plain.wait(task)["status"] == "SUCCESS", plain.log()[-2000:]
    assert plain.wait(r.json()["output"]["task_id"])["status"] == "SUCCESS"
    # The task keeps the URL as sent.
    answer = plain.query(task).json()["data"]
    assert answer["data"]["output"]["task_status"] == "SUCCEEDED"


def test_the_answer_and_the_signed_link(plain, media_dir) -> None:
    source = media_dir / "silent.mp4"
    r = upload(plain, source, name="my clip (1).mp4")
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == {"id", "url", "expires_at", "bytes", "content_type", "kind", "filename"}
    assert got["filename"] == "my clip (1).mp4"  # as sent, kept as metadata
    assert got["id"].startswith("up_") and got["kind"] == "video"
    assert got["content_type"] == "video/mp4" and got["bytes"] == source.stat().st_size
    assert got["url"].startswith(f"{plain.base}/v1/uploads/{got['id']}/my_clip__1_.mp4?")
    assert abs(got["expires_at"] - (time.time() + 86400)) < 60  # the task retention

    # A plain link: no key; Range works (a browser's player needs it); HEAD works.
    link = httpx.get(got["url"])
    assert link.status_code == 200 and link.content == source.read_bytes()
    assert link.headers["content-type"] == "video/mp4"
    part = httpx.get(got["url"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == source.read_bytes()[10:20]
    assert httpx.head(got["url"]).status_code == 200
    forged = got["url"].replace("signature=", "signature=0")
    assert httpx.get(forged).status_code == 403
    other = got["url"].replace("my_clip__1_.mp4", "x.mp4")
    assert httpx.get(other).json()["code"] == "signature_invalid"


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("garbage.mp4", 400, "is not a video (MP4 or MOV) or an image"),
        ("coffee.gif", 400, "is a GIF image, which is not accepted"),
        ("clip.mkv", 400, "is a Matroska or WebM video, which is not accepted"),
        ("short.mp4", 400, "duration"),
        ("lowfps.mp4", 400, "frame rate"),
        ("tiny.png", 400, "at least 300 px"),
        ("strip.png", 400, "aspect ratio"),
        ("truncated.mp4", 400, "uploaded file (video)"),
        ("cut.jpg", 400, "cannot be decoded"),
    ],
)
def test_uploads_are_sniffed_and_checked_like_fetched_media(
    plain, media_dir, name, status, words
) -> None:
    r = upload(plain, media_dir / name)
    assert r.status_code == status, r.text
    assert r.json()["code"] == "invalid_file"
    assert words in r.json()["message"], r.json()["message"]
    if "not accepted" in words:  # a format people send: what to do about it
        assert "vedit convert" in r.json()["message"], r.json()["message"]


def test_a_name_is_not_trusted(plain, media_dir) -> None:
    # A PNG called .mp4 is an image; as the video of a task it is refused at create.
    r = upload(plain, media_dir / "coffee.jpg", name="clip.mp4")
    assert r.status_code == 200 and r.json()["kind"] == "image"
    assert r.json()["content_type"] == "image/jpeg"
    image = r.json()["url"]
    bad = plain.create(body(image, image))
    assert bad.status_code == 400
    assert bad.json()["message"] == (
        "input.media[0].url is an upload of an image (image/jpeg), but input.media[0] is the video"
    )


def test_bad_forms(plain, media_dir) -> None:
    url = "/v1/uploads"
    r = plain.client.post(
        url, content=b"{}", headers={**plain.headers(), "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "multipart/form-data" in r.json()["message"]
    r = plain.client.post(url, files={"other": ("a.png", b"x")}, headers=plain.headers())
    assert r.status_code == 400 and "no 'file' part" in r.json()["message"]
    r = plain.client.post(url, files={"file": ("a.png", b"")}, headers=plain.headers())
    assert r.status_code == 400 and "empty" in r.json()["message"]
    two = [("file", ("a.jpg", b"\xff\xd8\xff" + b"0" * 100)), ("file", ("b.jpg", b"x"))]
    r = plain.client.post(url, files=two, headers=plain.headers())
    assert r.status_code == 400 and "more than one 'file' part" in r.json()["message"]
    # A body cut before its closing boundary.
    cut = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n\xff\xd8\xff'
    )
    r = plain.client.post(
        url,
        content=cut,
        headers={**plain.headers(), "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 400 and "closing boundary" in r.json()["message"]
    # No key, a bad key.
    assert plain.client.post(url, files={"file": ("a", b"x")}).status_code == 401
    assert upload(plain, media_dir / "coffee.jpg", key="vk-nope-nope-nope").status_code == 401
    # Nothing half-received is left behind.
    assert list((plain.data_dir / "uploads" / ".incoming").iterdir()) == []


def test_another_keys_upload_is_refused(plain, media_dir) -> None:
    other = new_key(plain, "uploader-b")
    theirs = uploaded(plain, media_dir / "silent.mp4", key=other)
    mine = uploaded(plain, media_dir / "coffee.jpg")
    r = plain.create(body(theirs, mine))
    assert r.status_code == 400
    assert "input.media[0].url names no upload of this key" in r.json()["message"]
    # A made-up id under this server's upload path is refused the same way, never fetched.
    fake = theirs.replace(theirs.split("/")[5], "up_" + "0" * 32)
    assert "names no upload of this key" in plain.create(body(fake, mine)).json()["message"]
    assert plain.create(body(theirs, mine), key=other).status_code == 400  # mine is not theirs


def test_size_limits_refuse_at_the_first_byte_over(make_server, media_dir) -> None:
    srv = make_server({"VEDIT_VIDEO_MAX_BYTES": "100000", "VEDIT_IMAGE_MAX_BYTES": "50000"})
    r = upload(srv, media_dir / "wide.mp4")
    assert r.status_code == 413, r.text
    assert r.json()["message"].startswith("the file is over the 100,000-byte limit")
    r = upload(srv, media_dir / "astronaut.png")
    assert r.status_code == 413 and "50,000-byte limit" in r.json()["message"]
    assert list((srv.data_dir / "uploads" / ".incoming").iterdir()) == []
    assert srv.client.get("/healthz").status_code == 200


def test_uploads_expire_with_the_task_retention(make_server, media_dir) -> None:
    srv = make_server({"VEDIT_TASK_TTL_S": "2"}, workers=1)
    got = upload(srv, media_dir / "coffee.jpg").json()
    stored = srv.data_dir / "uploads" / got["id"]
    assert stored.is_file()
    deadline = time.monotonic() + 15
    while stored.exists() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not stored.exists()
    assert srv.db("select count(*) from uploads") == [(0,)]
    assert httpx.get(got["url"]).status_code == 403
    video = uploaded(srv, media_dir / "silent.mp4")
    r = srv.create(body(video, got["url"]))
    assert r.status_code == 400 and "input.media[1].url names no upload" in r.json()["message"]


# --- DashScope's flow ---------------------------------------------------------------


def policy(srv: VeditServer, key: str | None = None) -> dict:
    r = srv.client.get(
        "/api/v1/uploads", params={"action": "getPolicy", "model": MODEL}, headers=srv.headers(key)
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]


def oss_post(
    srv: VeditServer, cert: dict, path: Path, *, key: str | None = None, **changes: str
) -> httpx.Response:
    form = {
        "OSSAccessKeyId": cert["oss_access_key_id"],
        "Signature": cert["signature"],
        "policy": cert["policy"],
        "key": key or f"{cert['upload_dir']}/{path.name}",
        "x-oss-object-acl": cert["x_oss_object_acl"],
        "x-oss-forbid-overwrite": cert["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        "x-oss-content-type": "application/octet-stream",
        **changes,
    }
    with path.open("rb") as f:
        return httpx.post(cert["upload_host"], data=form, files={"file": f})


def test_the_policy_answer(plain) -> None:
    cert = policy(plain)
    assert cert["upload_host"] == f"{plain.base}/api/v1/uploads"
    assert cert["upload_dir"].startswith("vedit/1/")  # the key's own prefix
    assert cert["oss_access_key_id"] == "vedit-key-1"
    assert cert["x_oss_forbid_overwrite"] == "true" and cert["expire_in_seconds"] == 600
    document = json.loads(base64.b64decode(cert["policy"]))
    assert ["starts-with", "$key", cert["upload_dir"] + "/"] in document["conditions"]
    assert policy(plain)["upload_dir"] != cert["upload_dir"]
    bad = plain.client.get(
        "/api/v1/uploads",
        params={"action": "getPolicy", "model": "wan2.1"},
        headers=plain.headers(),
    )
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameter"
    assert "model 'wan2.1' is not supported" in bad.json()["message"]
    r = plain.client.get("/api/v1/uploads", params={"action": "getPolicy", "model": MODEL})
    assert r.status_code == 401 and r.json()["code"] == "InvalidApiKey"


def test_a_policy_upload_then_oss_url(plain, media_dir) -> None:
    cert = policy(plain)
    for name in ("silent.mp4", "coffee.jpg"):
        r = oss_post(plain, cert, media_dir / name)
        assert r.status_code == 200, r.text
    media = [
        {"type": "video", "url": f"oss://{cert['upload_dir']}/silent.mp4"},
        {"type": "reference_image", "url": f"oss://{cert['upload_dir']}/coffee.jpg"},
    ]
    create = {
        "model": MODEL,
        "input": {"prompt": "watercolor", "media": media},
        "parameters": {"resolution": "720P"},
    }
    url = "/api/v1/services/aigc/video-generation/video-synthesis"
    async_h = {**plain.headers(), "X-DashScope-Async": "enable"}
    r = plain.client.post(url, headers=async_h, json=create)
    assert r.status_code == 400 and "X-DashScope-OssResourceResolve: enable" in r.json()["message"]
    other = new_key(plain, "oss-b")
    r = plain.client.post(
        url, headers={**async_h, **OSS_HEADER, "Authorization": f"Bearer {other}"}, json=create
    )
    assert (
        r.status_code == 400
        and "input.media[0].url names no upload of this key" in r.json()["message"]
    )
    r = plain.client.post(url, headers={**async_h, **OSS_HEADER}, json=create)
    assert r.status_code == 200, r.text
    assert plain.wait(r.json()["output"]["task_id"])["status"] == "SUCCESS"
    # The seed's dialect takes oss:// too, with the same header.
    r = plain.client.post(
        "/v1/video/generations", json=create, headers={**plain.headers(), **OSS_HEADER}
    )
    assert r.status_code == 200, r.text


def test_the_policy_is_checked(plain, media_dir) -> None:
    cert = policy(plain)
    image = media_dir / "coffee.jpg"

    def denied(r: httpx.Response, words: str) -> None:
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "AccessDenied" and words in r.json()["message"], r.json()

    denied(oss_post(plain, cert, image, Signature="0" * 64), "Signature does not match")
    forged = json.loads(base64.b64decode(cert["policy"]))
    forged["conditions"][2][2] = "vedit/2/"
    denied(
        oss_post(plain, cert, image, policy=base64.b64encode(json.dumps(forged).encode()).decode()),
        "Signature does not match",
    )
    denied(
        oss_post(plain, cert, image, key="vedit/2/x/coffee.jpg"), "under the policy's upload_dir"
    )
    denied(
        oss_post(plain, cert, image, key=f"{cert['upload_dir']}/../coffee.jpg"), "not a file name"
    )
    denied(oss_post(plain, cert, image, key=f"{cert['upload_dir']}/a/b.jpg"), "not a file name")
    denied(oss_post(plain, cert, image, OSSAccessKeyId="vedit-key-2"), "OSSAccessKeyId")
    r = oss_post(plain, cert, image, policy="")
    assert r.status_code == 400 and "lacks policy" in r.json()["message"]
    # Forbidden overwrite, then allowed overwrite.
    assert oss_post(plain, cert, image).status_code == 200
    r = oss_post(plain, cert, image)
    assert r.status_code == 409 and r.json()["code"] == "FileAlreadyExists"
    assert oss_post(plain, cert, image, **{"x-oss-forbid-overwrite": "false"}).status_code == 200
    assert plain.db(
        "select count(*) from uploads where object_key like ?", cert["upload_dir"] + "/%"
    ) == [(1,)]
    # The file is checked like any upload.
    r = oss_post(plain, cert, media_dir / "short.mp4")
    assert r.status_code == 400 and r.json()["code"] == "InvalidFile.Duration"


def test_an_expired_or_revoked_policy_is_refused(make_server, media_dir) -> None:
    srv = make_server({"VEDIT_UPLOAD_POLICY_TTL_S": "1"}, workers=0)
    cert = policy(srv)
    time.sleep(1.5)
    r = oss_post(srv, cert, media_dir / "coffee.jpg")
    assert r.status_code == 403 and "the upload policy expired at" in r.json()["message"]

    srv2 = make_server(workers=0)
    other = new_key(srv2, "to-revoke")
    cert = policy(srv2, key=other)
    subprocess.run(
        [sys.executable, "-m", "vedit.cli", "keys", "revoke", "to-revoke"],
        env=srv2.env,
        check=True,
        capture_output=True,
    )
    r = oss_post(srv2, cert, media_dir / "coffee.jpg")
    assert r.status_code == 403 and "revoked" in r.json()["message"]


def test_a_keys_uploads_have_a_quota(make_server, media_dir) -> None:
    image = media_dir / "coffee.jpg"
    # Room for two files and their forms: an upload reserves its Content-Length (the file
    # and a few hundred bytes of form) until it is kept at its real size.
    srv = make_server({"VEDIT_UPLOAD_QUOTA_BYTES": str(2 * image.stat().st_size + 2000)}, workers=0)
    assert upload(srv, image).status_code == 200
    assert upload(srv, image).status_code == 200
    r = upload(srv, image)
    assert r.status_code == 413 and r.json()["code"] == "upload_quota_exceeded"
    assert "at most" in r.json()["message"] and "VEDIT_UPLOAD_QUOTA_BYTES" in r.json()["message"]
    assert srv.db("select count(*) from uploads") == [(2,)]
    assert list((srv.data_dir / "uploads" / ".incoming").iterdir()) == []
    # Another key has its own quota.
    other = new_key(srv, "quota-b")
    assert upload(srv, image, key=other).status_code == 200
