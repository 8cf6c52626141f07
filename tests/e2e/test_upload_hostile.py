"""Uploads against hostile clients (issue 19), on live servers over loopback HTTP.

- memory: files that decode to huge pictures, sent at once to both upload routes, cost the
  API process a bounded amount (its peak RSS, VmHWM from /proc);
- DashScope's form upload is refused on its policy before a byte of its file is stored;
- file names in any script are taken, by raw forms, ``vedit.Client`` and RFC 5987;
- concurrent uploads never pass a key's quota (SQLite and PostgreSQL);
- another key's upload URL, however rewritten, is refused at create in both dialects;
- a revoked key's upload links stop working.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest

from conftest import MODEL, VeditServer, body
from hostile_media import bmp_rle_bomb, pillow_bomb, png_bomb, video_bomb
from vedit.config import Settings
from vedit.media.bounded import budget_bytes
from vedit.media.limits import MediaLimits

DASHSCOPE = "/api/v1/services/aigc/video-generation/video-synthesis"
# What one upload in flight may hold outside the decode budget (docs/deploy.md): network
# chunks, the form's fields, a PNG's inflate window (measured: 2.6 MB an upload, 16 at once).
PER_UPLOAD_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small files that decode to 6000x6000 pictures (8192x8192 for the video)."""
    d = tmp_path_factory.mktemp("bombs")
    return {
        "png": png_bomb(d / "bomb.png"),
        "jpeg": pillow_bomb(d / "bomb.jpg", "JPEG", quality=50),
        "progressive": pillow_bomb(d / "bomb-p.jpg", "JPEG", quality=50, progressive=True),
        "webp": pillow_bomb(d / "bomb.webp", "WEBP", lossless=True),
        "bmp": bmp_rle_bomb(d / "bomb.bmp"),
        "video": video_bomb(d / "bomb.mp4"),
    }


def new_key(srv: VeditServer, name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "vedit.cli", "keys", "create", "--name", name],
        env=srv.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def revoke(srv: VeditServer, name: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "vedit.cli", "keys", "revoke", name],
        env=srv.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip


def upload(
    srv: VeditServer, path: Path, key: str | None = None, name: str | None = None
) -> httpx.Response:
    with path.open("rb") as f:
        return httpx.post(
            f"{srv.base}/v1/uploads",
            files={"file": (name or path.name, f)},
            headers=srv.headers(key),
            timeout=300,
        )


def get_policy(srv: VeditServer, key: str | None = None) -> dict:
    r = srv.client.get(
        "/api/v1/uploads", params={"action": "getPolicy", "model": MODEL}, headers=srv.headers(key)
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]


def policy_fields(cert: dict, name: str, **changes: str) -> dict[str, str]:
    return {
        "OSSAccessKeyId": cert["oss_access_key_id"],
        "Signature": cert["signature"],
        "policy": cert["policy"],
        "key": f"{cert['upload_dir']}/{name}",
        "x-oss-object-acl": cert["x_oss_object_acl"],
        "x-oss-forbid-overwrite": cert["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        **changes,
    }


def oss_post(
    srv: VeditServer, path: Path, key: str | None = None, **changes: str
) -> httpx.Response:
    cert = get_policy(srv, key)
    with path.open("rb") as f:
        return httpx.post(
            cert["upload_host"],
            data=policy_fields(cert, path.name, **changes),
            files={"file": f},
            timeout=300,
        )


def peak_rss(srv: VeditServer) -> int:
    """The server process's peak resident set (VmHWM), in bytes."""
    assert srv.proc is not None
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def all_at_once(srv: VeditServer, files: list[Path], key: str | None = None) -> list[int]:
    """Each file to both routes, all at once; the answers' status codes."""
    jobs = [(upload, f) for f in files] + [(oss_post, f) for f in files]
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda job: job[0](srv, job[1], key), jobs))
    for r in answers:
        assert r.status_code in (200, 400), r.text
    return [r.status_code for r in answers]


def warmed(srv: VeditServer, media_dir: Path) -> int:
    """Upload one ordinary image and video (PyAV and Pillow loaded); the peak RSS then."""
    assert upload(srv, media_dir / "coffee.jpg").status_code == 200
    assert upload(srv, media_dir / "silent.mp4").status_code == 200
    return peak_rss(srv)


# --- memory -------------------------------------------------------------------------


def test_png_bombs_to_both_routes_cost_a_few_mb_each(make_server, media_dir, bombs) -> None:
    """The issue's case: a 117 KB one-colour 6000x6000 PNG (144 MB once decoded), 8 at once to
    each route. Each is a valid image within the limits (36,000,000 pixels), so each is kept;
    none is decoded: its pixel stream is inflated a step at a time and counted."""
    srv = make_server({"VEDIT_RATE_LIMIT_PER_S": "0"}, workers=0)
    before = warmed(srv, media_dir)
    codes = all_at_once(srv, [bombs["png"]] * 8)
    grew = peak_rss(srv) - before
    assert codes == [200] * 16
    assert grew <= 16 * PER_UPLOAD_BYTES, f"peak RSS grew by {grew / 2**20:.0f} MiB"


def test_bombs_of_every_format_stay_within_the_decode_budget(make_server, media_dir, bombs) -> None:
    """PNG, JPEG (baseline and progressive), WEBP, BMP and an 8192x8192 H.264 video, 16 at
    once: the process holds at most its decode budget (a 6000x6000 WEBP's decode, 586 MB)
    plus a few MB an upload, where decoding them all at once would take over 6 GB."""
    srv = make_server({"VEDIT_RATE_LIMIT_PER_S": "0"}, workers=0)
    before = warmed(srv, media_dir)
    files = [bombs[k] for k in ("png", "jpeg", "progressive", "webp", "bmp", "video")]
    files = (files * 2)[:8]
    codes = all_at_once(srv, files)
    grew = peak_rss(srv) - before
    video_at = [i for i, f in enumerate(files * 2) if f == bombs["video"]]
    assert [c for i, c in enumerate(codes) if i not in video_at] == [200] * (16 - len(video_at))
    assert all(codes[i] == 400 for i in video_at)
    bound = budget_bytes(MediaLimits.of(Settings())) + 16 * PER_UPLOAD_BYTES
    assert grew <= bound, f"peak RSS grew by {grew / 2**20:.0f} MiB; bound {bound / 2**20:.0f}"


def test_a_video_over_the_size_limit_is_refused_on_its_header(make_server, bombs) -> None:
    srv = make_server(workers=0)
    r = upload(srv, bombs["video"])
    assert r.status_code == 400 and r.json()["code"] == "invalid_file"
    assert r.json()["message"] == (
        "the uploaded file (video): size is 8192x8192; the long side must be at most 4096 px"
    )
    r = oss_post(srv, bombs["video"])
    assert r.status_code == 400 and r.json()["code"] == "InvalidFile.Resolution"


def test_an_image_over_the_pixel_limit_is_refused_on_its_header(make_server, tmp_path) -> None:
    srv = make_server({"VEDIT_IMAGE_MAX_PIXELS": "1000000"}, workers=0)
    r = upload(srv, png_bomb(tmp_path / "big.png", 1200, 1000))
    assert r.status_code == 400, r.text
    assert r.json()["message"] == (
        "the uploaded file (image): size is 1200x1000 (1,200,000 pixels); at most 1,000,000 "
        "pixels are accepted"
    )


def test_a_damaged_png_is_refused_without_being_decoded(make_server, tmp_path) -> None:
    srv = make_server(workers=0)
    good = png_bomb(tmp_path / "good.png", 640, 480).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])  # in the middle of its pixels
    r = upload(srv, tmp_path / "cut.png")
    assert r.status_code == 400 and r.json()["code"] == "invalid_file"
    assert "the PNG is damaged or cut short" in r.json()["message"], r.text
    assert upload(srv, tmp_path / "good.png").status_code == 200


# --- DashScope's form: the policy before the file -----------------------------------


def start_form(
    s: socket.socket, srv: VeditServer, fields: dict[str, str], declared: int, sent: bytes
) -> None:
    """Send a form's fields, its file part's headers and ``sent`` bytes of a file declared
    ``declared`` bytes long (in the Content-Length), and stop there."""
    boundary = "vedit-partial"
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    total = len(head) + declared + len(f"\r\n--{boundary}--\r\n")
    request = (
        f"POST /api/v1/uploads HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {total}\r\n\r\n"
    ).encode()
    s.sendall(request + head + sent)


def partial_form(srv: VeditServer, fields: dict[str, str], declared: int, sent: bytes) -> dict:
    """:func:`start_form`, then read the answer, which must come before the body ends: its
    status and JSON body."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
        start_form(s, srv, fields, declared, sent)
        answer = b""
        while b"\r\n\r\n" not in answer:
            got = s.recv(65536)
            assert got, f"the connection closed without an answer: {answer!r}"
            answer += got
        head_text, _, rest = answer.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head_text.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        while len(rest) < length:
            rest += s.recv(65536)
    status = int(head_text.split(b" ", 2)[1])
    return {"status": status, **json.loads(rest[:length])}


def test_the_policy_is_checked_before_the_file_is_stored(make_server, media_dir) -> None:
    """Every refusal of DashScope's form upload comes while the file is still arriving: the
    client has sent its fields and 1 KB of a 50 MB file, and gets its answer."""
    srv = make_server({"VEDIT_UPLOAD_QUOTA_BYTES": "60000000"}, workers=0)
    png = (media_dir / "astronaut.png").read_bytes()[:1024]
    cert = get_policy(srv)
    big = 50_000_000

    def refused(fields: dict[str, str], declared: int = big) -> dict:
        return partial_form(srv, fields, declared, png)

    r = refused(policy_fields(cert, "a.png", Signature="0" * 64))
    assert r["status"] == 403 and r["code"] == "AccessDenied"
    assert "Signature does not match" in r["message"]
    r = refused(policy_fields(cert, "a.png", key="vedit/99/x/a.png"))
    assert r["status"] == 403 and "under the policy's upload_dir" in r["message"]
    r = refused({k: v for k, v in policy_fields(cert, "a.png").items() if k != "policy"})
    assert r["status"] == 400 and "lacks policy before its file part" in r["message"]
    # The key's quota (60 MB) cannot take a second 50 MB file while a first is arriving.
    held = get_policy(srv)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as first:
        start_form(first, srv, policy_fields(held, "held.png"), big, png)
        for _ in range(600):  # until the first upload's reservation is in the database
            if srv.db("select count(*) from upload_reservations") == [(1,)]:
                break
            time.sleep(0.05)
        r = refused(policy_fields(cert, "b.png"))
        assert r["status"] == 413 and r["code"] == "Throttling.AllocationQuota", r
        assert "VEDIT_UPLOAD_QUOTA_BYTES" in r["message"]
    # Over the policy's size, by the declared length.
    r = refused(policy_fields(cert, "c.png"), declared=100_000_001)
    assert r["status"] == 413 and r["code"] == "RequestTooLarge"
    assert "over the policy's 100,000,000-byte limit" in r["message"]
    # A key that holds a file already, with overwrite forbidden.
    assert oss_post(srv, media_dir / "coffee.jpg").status_code == 200
    taken = get_policy(srv)
    assert (
        httpx.post(
            taken["upload_host"],
            data=policy_fields(taken, "coffee.jpg"),
            files={"file": (media_dir / "coffee.jpg").read_bytes()},
        ).status_code
        == 200
    )
    r = refused(policy_fields(taken, "coffee.jpg"))
    assert r["status"] == 409 and r["code"] == "FileAlreadyExists"
    # Revoked: the policy's key.
    doomed = new_key(srv, "doomed")
    late = get_policy(srv, doomed)
    revoke(srv, "doomed")
    r = refused(policy_fields(late, "d.png"))
    assert r["status"] == 403 and "revoked" in r["message"]
    assert list((srv.data_dir / "uploads" / ".incoming").iterdir()) == []
    assert srv.db("select count(*) from upload_reservations") == [(0,)]


def test_a_field_after_the_file_part_is_refused(make_server, media_dir) -> None:
    srv = make_server(workers=0)
    cert = get_policy(srv)
    fields = policy_fields(cert, "coffee.jpg")
    boundary = "b"
    form = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    form += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.jpg"\r\n\r\n'
    ).encode() + (media_dir / "coffee.jpg").read_bytes()
    form += (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\nvedit/1/x/y.jpg'
        f"\r\n--{boundary}--\r\n"
    ).encode()
    r = httpx.post(
        cert["upload_host"],
        content=form,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameter"
    assert r.json()["message"] == (
        "the form has a field 'key' after its 'file' part; the file must be the last part of "
        "the form"
    )
    assert srv.db("select count(*) from uploads") == [(0,)]


# --- file names in any script --------------------------------------------------------


def raw_form(disposition: bytes, content: bytes, boundary: bytes = b"vb") -> tuple[bytes, str]:
    return (
        b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"file\"; " + disposition
        + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + content
        + b"\r\n--" + boundary + b"--\r\n",
        f"multipart/form-data; boundary={boundary.decode()}",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("disposition", "filename", "url_name"),
    [
        ('filename="视频.mp4"'.encode(), "视频.mp4", "视频.mp4"),
        ('filename="видео клип.mp4"'.encode(), "видео клип.mp4", "видео_клип.mp4"),
        ('filename="🎬.mp4"'.encode(), "🎬.mp4", "video.mp4"),
        ('filename="café ☕ 1.mp4"'.encode(), "café ☕ 1.mp4", "café___1.mp4"),
        (b"filename*=UTF-8''%E8%A7%86%E9%A2%91.mp4", "视频.mp4", "视频.mp4"),
        (
            b"filename=\"x.mp4\"; filename*=utf-8''%F0%9F%8E%AC%20clip.mp4",
            "🎬 clip.mp4",
            "__clip.mp4",
        ),
        (b'filename="C:\\\\Users\\\\me\\\\clip.mp4"', "clip.mp4", "clip.mp4"),
        ('filename="../../etc/视频.mp4"'.encode(), "视频.mp4", "视频.mp4"),
    ],
)
def test_file_names_in_any_script(make_server, media_dir, disposition, filename, url_name) -> None:
    srv = make_server(workers=0)
    content, ctype = raw_form(disposition, (media_dir / "silent.mp4").read_bytes())
    r = srv.client.post(
        "/v1/uploads", content=content, headers={**srv.headers(), "Content-Type": ctype}
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["filename"] == filename
    path = urlsplit(got["url"]).path
    assert path == f"/v1/uploads/{got['id']}/{quote(url_name, safe='')}"
    link = httpx.get(got["url"])
    assert link.status_code == 200 and link.content == (media_dir / "silent.mp4").read_bytes()
    # The URL works in a create, as it is.
    image = upload(srv, media_dir / "coffee.jpg").json()["url"]
    assert srv.create(body(got["url"], image)).status_code == 200
    kept = list((srv.data_dir / "uploads").iterdir())
    assert all(p.name.startswith("up_") or p.name == ".incoming" for p in kept)


def test_the_client_uploads_a_file_with_a_chinese_name(make_server, media_dir, tmp_path) -> None:
    import vedit

    srv = make_server(workers=1)
    clip = tmp_path / "视频 片段.mp4"
    shutil.copy(media_dir / "silent.mp4", clip)
    look = tmp_path / "Образец.jpg"
    shutil.copy(media_dir / "coffee.jpg", look)
    with vedit.Client(srv.base, api_key=srv.key) as client:
        up = client.upload(clip)
        assert up.kind == "video" and up.bytes == clip.stat().st_size
        assert "/" + quote("视频_片段.mp4", safe="") + "?" in up.url
        task = client.create(clip, look, "watercolor", resolution="720P")
        done = client.wait(task.id, timeout=180)
    assert done.status == "SUCCESS", done
    names = sorted(n for (n,) in srv.db("select filename from uploads"))
    assert names == sorted(["Образец.jpg", "视频 片段.mp4", "视频 片段.mp4"])


def test_a_chinese_object_key_through_dashscopes_form(make_server, media_dir) -> None:
    srv = make_server(workers=1)
    cert = get_policy(srv)
    for name, src in (("视频.mp4", "silent.mp4"), ("参考图 1.jpg", "coffee.jpg")):
        with (media_dir / src).open("rb") as f:
            r = httpx.post(
                cert["upload_host"],
                data=policy_fields(cert, name),
                files={"file": (name, f)},
            )
        assert r.status_code == 200, r.text
        assert r.json()["key"] == f"{cert['upload_dir']}/{name}"
    media = [
        {"type": "video", "url": f"oss://{cert['upload_dir']}/视频.mp4"},
        {"type": "reference_image", "url": f"oss://{cert['upload_dir']}/参考图 1.jpg"},
    ]
    r = srv.client.post(
        DASHSCOPE,
        headers={
            **srv.headers(),
            "X-DashScope-Async": "enable",
            "X-DashScope-OssResourceResolve": "enable",
        },
        json={"model": MODEL, "input": {"prompt": "watercolor", "media": media},
              "parameters": {"resolution": "720P"}},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert srv.wait(r.json()["output"]["task_id"], timeout=180)["status"] == "SUCCESS"


# --- the quota under concurrency ------------------------------------------------------


def pg_rows(url: str, sql: str) -> list[tuple]:
    from sqlalchemy import text

    from vedit.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(row) for row in c.execute(text(sql))]
    finally:
        engine.dispose()


def read_answer(s: socket.socket) -> tuple[int, dict]:
    """An HTTP answer's status and JSON body, read from ``s``."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        got = s.recv(65536)
        assert got, f"the connection closed without an answer: {answer!r}"
        answer += got
    head, _, rest = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += s.recv(65536)
    return int(head.split(b" ", 2)[1]), json.loads(rest[:length])


def together(srv: VeditServer, requests: list[httpx.Request]) -> list[tuple[int, dict]]:
    """Send the requests at once, each on its own connection: all but the last 64 bytes of
    each, then (once every one got that far) the rest of all of them at the same moment, so
    that their bodies end together. A request answered before its body ended (refused on
    its headers) is not sent its rest."""
    barrier = threading.Barrier(len(requests), timeout=120)

    def one(request: httpx.Request) -> tuple[int, dict]:
        payload = request.read()
        head = f"POST {request.url.raw_path.decode()} HTTP/1.1\r\n".encode() + b"".join(
            k + b": " + v + b"\r\n" for k, v in request.headers.raw
        )
        with socket.create_connection(("127.0.0.1", srv.port), timeout=120) as s:
            s.sendall(head + b"\r\n" + payload[:-64])
            barrier.wait()
            answered, _, _ = select.select([s], [], [], 0.5)
            if not answered:
                s.sendall(payload[-64:])
            return read_answer(s)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, requests))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_uploads_never_pass_the_quota(make_server, media_dir, request, backend) -> None:
    """30 uploads whose bodies end at once (15 to each route) where 4 fit the key's quota:
    exactly 4 are kept, the others are 413, and nothing is left reserved."""
    image = media_dir / "coffee.jpg"
    data, size = image.read_bytes(), image.stat().st_size
    env = {"VEDIT_UPLOAD_QUOTA_BYTES": str(4 * size + 4 * 1500), "VEDIT_RATE_LIMIT_PER_S": "0"}
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        env |= {"VEDIT_DATABASE_URL": url, "VEDIT_AUTO_MIGRATE": "true"}
    srv = make_server(env, workers=0)
    rows = srv.db if backend == "sqlite" else (lambda sql: pg_rows(url, sql))
    requests = []
    for i in range(30):
        if i % 2:
            requests.append(
                httpx.Request(
                    "POST",
                    f"{srv.base}/v1/uploads",
                    files={"file": (f"{i}.jpg", data)},
                    headers=srv.headers(),
                )  # fmt: skip
            )
        else:
            cert = get_policy(srv)
            requests.append(
                httpx.Request(
                    "POST",
                    cert["upload_host"],
                    data=policy_fields(cert, f"{i}.jpg"),
                    files={"file": (f"{i}.jpg", data)},
                )  # fmt: skip
            )
    answers = together(srv, requests)
    codes = sorted(status for status, _ in answers)
    assert codes == [200] * 4 + [413] * 26, [a for a in answers if a[0] != 413]
    refusals = {answer["code"] for status, answer in answers if status == 413}
    assert refusals <= {"upload_quota_exceeded", "Throttling.AllocationQuota"}, refusals
    assert rows("select count(*), sum(bytes) from uploads") == [(4, 4 * size)]
    assert rows("select count(*) from upload_reservations") == [(0,)]
    assert list((srv.data_dir / "uploads" / ".incoming").iterdir()) == []


# --- another key's upload, rewritten ----------------------------------------------------


def rewritten(url: str) -> dict[str, str]:
    """``url`` (``http://127.0.0.1:<port>/v1/uploads/<id>/<name>?expires=..&signature=..``)
    in forms a client, a proxy or the server reads the same."""
    parts = urlsplit(url)
    port = parts.port
    upload_id, name = parts.path.split("/")[3:5]
    enc = "".join(f"%{b:02X}" for b in name.encode())
    query = parts.query
    expires = query.split("expires=")[1].split("&")[0]
    variants = {
        "scheme upper": url.replace("http://", "HTTP://", 1),
        "localhost": url.replace("127.0.0.1", "localhost", 1),
        "127.1": url.replace("127.0.0.1", "127.1", 1),
        "decimal host": url.replace("127.0.0.1", "2130706433", 1),
        "trailing dot": url.replace("127.0.0.1", "127.0.0.1.", 1),
        "path upper": url.replace("/v1/uploads/", "/V1/UPLOADS/", 1),
        "name encoded": url.replace(f"/{name}?", f"/{enc}?", 1),
        "prefix encoded": url.replace("/v1/uploads/", "/v1/%75ploads/", 1),
        "slash encoded": url.replace(f"{upload_id}/", f"{upload_id}%2F", 1),
        "double encoded": url.replace("/v1/uploads/", "/v1/%2575ploads/", 1),
        "dot segments": url.replace("/v1/uploads/", "/v1/x/../uploads/./", 1),
        "double slashes": url.replace("/v1/uploads/", "//v1//uploads//", 1),
        "trailing slash": url.replace(f"/{name}?", f"/{name}/?", 1),
        "backslashes": url.replace("/v1/uploads/", "/v1\\uploads\\", 1),
        "repeated query": urlunsplit(
            (
                parts.scheme,
                f"localhost:{port}",
                parts.path,
                f"expires={expires}&signature={'0' * 64}&{query}",
                "",
            )
        ),  # fmt: skip
    }
    for label, v in variants.items():
        assert v != url, label
    return variants


def test_another_keys_upload_url_is_refused_however_it_is_written(tmp_path, media_dir) -> None:
    """Key B creates tasks with key A's upload URL rewritten; its worker could reach the API
    (its host:port is allowed), yet every create is a 400 naming the field, in both dialects."""
    srv = VeditServer(tmp_path / "data", {"VEDIT_RATE_LIMIT_PER_S": "0"}, workers=1)
    srv.env["VEDIT_MEDIA_ALLOW"] = f"localhost:{srv.port},127.0.0.1:{srv.port}"
    srv.start(attempts=1)
    try:
        refused_however_written(srv, media_dir)
    finally:
        srv.stop()


def refused_however_written(srv: VeditServer, media_dir: Path) -> None:
    theirs = upload(srv, media_dir / "silent.mp4").json()["url"]
    b = new_key(srv, "b")
    mine = upload(srv, media_dir / "coffee.jpg", key=b).json()["url"]
    for label, url in rewritten(theirs).items():
        r = srv.create(body(url, mine), key=b)
        assert r.status_code == 400, (label, url, r.text)
        assert r.json()["message"].startswith("input.media[0].url names no upload of this key"), (
            label,
            r.json(),
        )
        r = srv.client.post(
            DASHSCOPE,
            headers={**srv.headers(b), "X-DashScope-Async": "enable"},
            json={"model": MODEL, "input": {"prompt": "p", "media": [
                {"type": "video", "url": url}]}},
        )  # fmt: skip
        assert r.status_code == 400 and r.json()["code"] == "InvalidParameter", (label, r.text)
        assert "input.media[0].url names no upload of this key" in r.json()["message"]
    assert srv.db("select count(*) from tasks") == [(0,)]
    # Unsigned, at a host that is not the public base URL's spelling: an ordinary URL, fetched
    # by the worker from the API, which serves no upload without its signature.
    parts = urlsplit(theirs)
    unsigned = f"http://LOCALHOST:{srv.port}{parts.path.replace('silent', '%73ilent')}"
    task = srv.create(body(unsigned, mine), key=b)
    assert task.status_code == 200, task.text
    done = srv.client.get(
        f"/v1/video/generations/{task.json()['task_id']}", headers=srv.headers(b)
    ).json()["data"]
    for _ in range(600):
        if done["status"] in ("SUCCESS", "FAILURE"):
            break
        time.sleep(0.2)
        done = srv.client.get(
            f"/v1/video/generations/{task.json()['task_id']}", headers=srv.headers(b)
        ).json()["data"]
    assert done["status"] == "FAILURE" and "403" in done["fail_reason"], done


def test_a_public_base_urls_spellings_name_its_uploads(make_server, media_dir) -> None:
    """With VEDIT_PUBLIC_BASE_URL=http://vedit.example (port 80), a made-up or mangled upload
    URL under it is an upload (refused), whatever the host's case, a trailing dot, the port."""
    srv = make_server({"VEDIT_PUBLIC_BASE_URL": "http://vedit.example"}, workers=0)
    theirs = upload(srv, media_dir / "silent.mp4").json()["url"]
    assert theirs.startswith("http://vedit.example/v1/uploads/up_")
    b = new_key(srv, "b")
    mine = upload(srv, media_dir / "coffee.jpg", key=b).json()["url"]
    path = urlsplit(theirs).path
    for host in ("VEDIT.EXAMPLE", "vedit.example.", "vedit.example:80", "Vedit.Example.:80"):
        for url in (f"http://{host}{path}", f"http://{host}{path.upper()}?signature=x"):
            r = srv.create(body(url, mine), key=b)
            assert r.status_code == 400, (url, r.text)
            assert "input.media[0].url names no upload of this key" in r.json()["message"], url
    # Another host with the same path is an ordinary URL (another vedit's upload, say).
    assert srv.create(body(f"https://other.example{path}", mine), key=b).status_code == 200


# --- revocation ----------------------------------------------------------------------------


def test_a_revoked_keys_upload_links_stop_working(make_server, media_dir) -> None:
    srv = make_server(workers=0)
    b = new_key(srv, "leaving")
    got = upload(srv, media_dir / "coffee.jpg", key=b).json()
    kept = upload(srv, media_dir / "coffee.jpg").json()
    assert httpx.get(got["url"]).status_code == 200
    revoke(srv, "leaving")
    for method in ("GET", "HEAD"):
        r = httpx.request(method, got["url"])
        assert r.status_code == 403, (method, r.text)
    r = httpx.get(got["url"])
    assert r.json() == {
        "code": "signature_invalid",
        "message": "the file is no longer available: the API key that uploaded it was revoked",
        "data": None,
    }
    assert httpx.get(kept["url"]).status_code == 200  # another key's links still work
