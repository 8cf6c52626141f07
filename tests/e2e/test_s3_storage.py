"""VEDIT_STORAGE=s3 against a real S3 server (SeaweedFS on loopback, ``tests/s3server.py``).

One task is run once for the module by a real ``vedit serve`` on the bucket: its
uploads and its result live in the bucket, not in the data dir, and the result URL
is a presigned URL of the bucket. A second, API-only server on the same database
and bucket serves the same files through vedit (``VEDIT_S3_PROXY=true``), as a
second machine would. The janitor's test comes last: it expires what the others read.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import httpx
import pytest

from conftest import VeditServer, free_port
from s3server import S3Server

PREFIX = "e2e/"


def probe_mp4(path: Path) -> tuple[str, str, float, int, int]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return c.format.name, v.codec_context.name, float(v.average_rate), v.width, v.height


def upload(srv: VeditServer, path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        r = srv.client.post("/v1/uploads", headers=srv.headers(), files={"file": (path.name, f)})
    assert r.status_code == 200, r.text
    return r.json()


def presigned_expiry(url: str) -> int:
    """When a SigV4 presigned URL expires (unix s): its X-Amz-Date plus X-Amz-Expires."""
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    signed = time.mktime(time.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ")) - time.timezone
    return int(signed) + int(q["X-Amz-Expires"])


@pytest.fixture(scope="module")
def s3_task(s3_server: S3Server, media_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A vedit serve on the bucket (presigned links), two uploads, and one task run to the end."""
    srv = VeditServer(
        tmp_path_factory.mktemp("s3vedit"),
        s3_server.env(VEDIT_S3_PREFIX=PREFIX, VEDIT_RATE_LIMIT_PER_S="0"),
        workers=1,
    )
    srv.start()
    try:
        video, image = upload(srv, media_dir / "silent.mp4"), upload(srv, media_dir / "coffee.jpg")
        tid = srv.submit(video["url"], image["url"], resolution="720P", watermark=False)
        done = srv.wait(tid, timeout=300)
        assert done["status"] == "SUCCESS", done
        yield {"srv": srv, "video": video, "image": image, "task_id": tid, "done": done}
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def proxy(s3_task, s3_server: S3Server) -> VeditServer:
    """An API-only vedit on the same database, bucket and signing secret, in proxy mode."""
    first: VeditServer = s3_task["srv"]
    srv = VeditServer(
        first.data_dir,
        s3_server.env(VEDIT_S3_PREFIX=PREFIX, VEDIT_S3_PROXY="true"),
        workers=0,
    )
    srv.start()
    yield srv
    srv.stop()


def test_uploads_and_the_result_live_in_the_bucket(
    s3_task, s3_server: S3Server, media_dir: Path
) -> None:
    srv, tid = s3_task["srv"], s3_task["task_id"]
    keys = set(s3_server.keys(PREFIX))
    assert {
        f"{PREFIX}uploads/{s3_task['video']['id']}",
        f"{PREFIX}uploads/{s3_task['image']['id']}",
        f"{PREFIX}results/{tid}.mp4",
    } <= keys
    # Nothing of them on the server's disk (the incoming folder is empty once kept).
    assert not list((srv.data_dir / "results").iterdir())
    assert [p.name for p in (srv.data_dir / "uploads").iterdir()] == [".incoming"]
    assert not list((srv.data_dir / "uploads" / ".incoming").iterdir())
    # The result's row says where it went.
    ((where,),) = srv.db("SELECT result_path FROM tasks WHERE id = ?", tid)
    assert where == f"s3://{s3_server.bucket}/{PREFIX}results/{tid}.mp4"
    # The stored upload is the file, byte for byte, with its sniffed type.
    got = s3_server.client().get_object(
        Bucket=s3_server.bucket, Key=f"{PREFIX}uploads/{s3_task['image']['id']}"
    )
    assert got["ContentType"] == "image/jpeg"
    assert got["Body"].read() == (media_dir / "coffee.jpg").read_bytes()


def test_result_url_is_a_presigned_url_of_the_bucket_in_both_dialects(
    s3_task, s3_server: S3Server, tmp_path: Path
) -> None:
    srv, tid, done = s3_task["srv"], s3_task["task_id"], s3_task["done"]
    url = done["result_url"]
    assert url.startswith(f"{s3_server.endpoint}/{s3_server.bucket}/{PREFIX}results/{tid}.mp4?")
    assert "X-Amz-Signature=" in url and "X-Amz-Credential=" in url
    assert done["data"]["output"]["video_url"].split("?")[0] == url.split("?")[0]
    native = srv.client.get(f"/api/v1/tasks/{tid}", headers=srv.headers()).json()
    assert native["output"]["video_url"].startswith(f"{s3_server.endpoint}/{s3_server.bucket}/")
    # The same 24 h as vedit's own links: the URL ends when finish_time + VEDIT_RESULT_URL_TTL_S.
    for u in (url, native["output"]["video_url"]):
        assert abs(presigned_expiry(u) - (done["finish_time"] + 86400)) <= 2
    # Downloaded from the bucket with no key and no vedit in between: a valid MP4.
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.headers["content-disposition"] == f'attachment; filename="{tid}.mp4"'
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    fmt, codec, fps, width, height = probe_mp4(out)
    assert "mp4" in fmt and codec == "h264" and round(fps) == 24
    assert (width, height) == (1280, 720)
    # Other credentials are refused by the server: the credentials are checked.
    other = s3_server.client(secret_key="not-the-secret-key-000000000000000000")
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        other.get_object(Bucket=s3_server.bucket, Key=f"{PREFIX}results/{tid}.mp4")


def test_upload_link_redirects_to_the_bucket(s3_task, media_dir: Path) -> None:
    srv = s3_task["srv"]
    link = s3_task["video"]["url"]
    assert link.startswith(f"{srv.base}/v1/uploads/{s3_task['video']['id']}/")
    r = httpx.get(link, timeout=30)
    assert r.status_code == 307
    assert "X-Amz-Signature=" in r.headers["location"]
    got = httpx.get(r.headers["location"], headers={"Range": "bytes=0-99"}, timeout=30)
    assert got.status_code == 206
    assert got.content == (media_dir / "silent.mp4").read_bytes()[:100]
    # A changed signature is refused by vedit before any redirect.
    assert httpx.get(link[:-1] + ("0" if link[-1] != "0" else "1")).status_code == 403


def test_proxy_mode_streams_the_result_through_vedit_with_range(
    s3_task, proxy: VeditServer, tmp_path: Path
) -> None:
    tid = s3_task["task_id"]
    url = proxy.query(tid).json()["data"]["result_url"]
    assert url.startswith(f"{proxy.base}/v1/files/{tid}.mp4?expires=")
    assert "X-Amz" not in url
    full = httpx.get(url, timeout=30)
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "video/mp4"
    size = int(full.headers["content-length"])
    assert size == len(full.content) > 1000
    out = tmp_path / "proxied.mp4"
    out.write_bytes(full.content)
    assert probe_mp4(out)[1] == "h264"
    part = httpx.get(url, headers={"Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    tail = httpx.get(url, headers={"Range": "bytes=-10"}, timeout=30)
    assert tail.status_code == 206 and tail.content == full.content[-10:]
    beyond = httpx.get(url, headers={"Range": f"bytes={size + 10}-"}, timeout=30)
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    head = httpx.head(url, timeout=30)
    assert head.status_code == 200 and int(head.headers["content-length"]) == size
    assert httpx.get(url.replace("expires=", "expires=1")).status_code == 403


def test_proxy_mode_streams_uploads_too(s3_task, proxy: VeditServer, media_dir: Path) -> None:
    answered = urlsplit(
        s3_task["video"]["url"]
    )  # the first server's link, signed by the same secret
    link = f"{proxy.base}{answered.path}?{answered.query}"
    r = httpx.get(link, headers={"Range": "bytes=0-63"}, timeout=30)
    assert r.status_code == 206 and r.headers["content-type"] == "video/mp4"
    assert r.content == (media_dir / "silent.mp4").read_bytes()[:64]


def test_dashscope_form_uploads_land_in_the_bucket(
    s3_task, s3_server: S3Server, media_dir: Path
) -> None:
    srv = s3_task["srv"]
    r = srv.client.get(
        "/api/v1/uploads",
        params={"action": "getPolicy", "model": "happyhorse-1.0-video-edit"},
        headers=srv.headers(),
    )
    cert = r.json()["data"]
    object_key = f"{cert['upload_dir']}/look.png"

    def post(path: Path) -> httpx.Response:
        form = {
            "OSSAccessKeyId": cert["oss_access_key_id"],
            "Signature": cert["signature"],
            "policy": cert["policy"],
            "key": object_key,
            "x-oss-forbid-overwrite": "false",
            "success_action_status": "200",
        }
        with path.open("rb") as f:
            return httpx.post(cert["upload_host"], data=form, files={"file": f}, timeout=30)

    def stored() -> str:
        ((upload_id,),) = srv.db("SELECT id FROM uploads WHERE object_key = ?", object_key)
        return f"{PREFIX}uploads/{upload_id}"

    assert post(media_dir / "coffee.jpg").status_code == 200
    first = stored()
    assert first in s3_server.keys(PREFIX)
    # Overwritten (x-oss-forbid-overwrite: false): the new file is kept, the old one deleted.
    assert post(media_dir / "astronaut.png").status_code == 200
    second = stored()
    keys = s3_server.keys(PREFIX)
    assert second in keys and first not in keys
    got = s3_server.client().get_object(Bucket=s3_server.bucket, Key=second)
    assert got["ContentType"] == "image/png"
    assert got["Body"].read() == (media_dir / "astronaut.png").read_bytes()


def test_janitor_deletes_expired_objects_from_the_bucket(
    s3_task, s3_server: S3Server, media_dir: Path
) -> None:
    srv, tid = s3_task["srv"], s3_task["task_id"]
    kept = upload(srv, media_dir / "astronaut.png")
    gone = {
        f"{PREFIX}uploads/{s3_task['video']['id']}",
        f"{PREFIX}uploads/{s3_task['image']['id']}",
        f"{PREFIX}results/{tid}.mp4",
    }
    assert gone <= set(s3_server.keys(PREFIX))
    expired = [tid, s3_task["video"]["id"], s3_task["image"]["id"]]
    with contextlib.closing(sqlite3.connect(srv.data_dir / "vedit.db", timeout=30)) as db, db:
        db.execute("UPDATE tasks SET expires_at = 0 WHERE id = ?", expired[:1])
        db.execute("UPDATE uploads SET expires_at = 0 WHERE id IN (?, ?)", expired[1:])
    deadline = time.monotonic() + 30
    while gone & set(s3_server.keys(PREFIX)) and time.monotonic() < deadline:
        time.sleep(0.25)
    left = set(s3_server.keys(PREFIX))
    assert not gone & left, srv.log()[-2000:]
    assert f"{PREFIX}uploads/{kept['id']}" in left  # a live upload stays


# --- the backend on its own, and start-up checks ---------------------------------------


@pytest.fixture
def s3_storage(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An S3Storage in this process on the test bucket (credentials from the AWS variables)."""
    from vedit.config import Settings
    from vedit.storage import StorageOptions, open_storage

    for name, value in s3_server.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)

    def make(**settings: Any):
        return open_storage(
            StorageOptions.of(
                Settings(
                    data_dir=tmp_path,
                    public_base_url="http://vedit.invalid",
                    storage="s3",
                    s3_bucket=s3_server.bucket,
                    s3_endpoint_url=s3_server.endpoint,
                    **settings,
                )
            )
        )

    return make


def test_an_expired_presigned_url_is_refused(s3_storage, tmp_path: Path) -> None:
    storage = s3_storage(s3_prefix="expiry/")
    (tmp_path / "r.mp4").write_bytes(b"a result")
    storage.publish_result("asyntask_expiry", tmp_path / "r.mp4")
    url = storage.result_url("asyntask_expiry", int(time.time()) + 2)
    assert httpx.get(url).content == b"a result"
    time.sleep(max(0.0, presigned_expiry(url) - time.time()) + 1.5)
    late = httpx.get(url)
    assert late.status_code == 403 and "expired" in late.text.lower()


def test_large_files_are_written_by_multipart_upload(
    s3_storage, s3_server: S3Server, tmp_path: Path
) -> None:
    mib = 1024 * 1024
    storage = s3_storage(
        s3_prefix="multipart/",
        s3_multipart_threshold_bytes=5 * mib,
        s3_multipart_chunk_bytes=5 * mib,
    )
    data = os.urandom(11 * mib)
    (tmp_path / "big").write_bytes(data)
    where = storage.publish_result("asyntask_big", tmp_path / "big")
    assert where == f"s3://{s3_server.bucket}/multipart/results/asyntask_big.mp4"
    head = s3_server.client().head_object(
        Bucket=s3_server.bucket, Key="multipart/results/asyntask_big.mp4"
    )
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 1 MiB
    assert storage.get("results", "asyntask_big.mp4", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    assert not storage.copy_upload("up_" + "0" * 32, tmp_path / "none")  # no such object
    storage.delete_result("asyntask_big")
    storage.delete_result("asyntask_big")  # deleting what is gone is no error
    assert s3_server.keys("multipart/") == []


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ({"VEDIT_S3_BUCKET": "no-such-bucket"}, "VEDIT_S3_BUCKET='no-such-bucket'"),
        ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-0000000000000000000000"}, "AWS_SECRET_ACCESS_KEY"),
        ({"VEDIT_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}, "no server answered"),
    ],
    ids=["bucket", "credentials", "endpoint"],
)
def test_a_store_that_cannot_be_used_refuses_start(
    s3_server: S3Server, tmp_path: Path, setting: dict[str, str], needle: str
) -> None:
    srv = VeditServer(tmp_path / "data", s3_server.env(**setting), workers=1)
    with pytest.raises(RuntimeError, match="vedit serve exited"):
        srv.start(attempts=1)
    assert srv.proc is not None and srv.proc.returncode == 1
    said = srv.log()
    assert "vedit: the storage cannot be used: " in said and needle in said, said
    if setting.get("VEDIT_S3_BUCKET"):
        assert "404 NoSuchBucket: The specified bucket does not exist" in said
