"""Every error is the API's own: JSON in the dialect of the path, in vedit's words, and
every answer says ``X-Content-Type-Options: nosniff``. Against live ``vedit serve``
processes over loopback: malformed multipart bodies, Range errors of downloads, requests
that are not HTTP, media that Pillow or FFmpeg refuse, and who may read ``/metrics``.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_KEY, VeditServer, body

ANYFAST = ("/v1/uploads", {"Authorization": f"Bearer {TEST_KEY}"})
DASHSCOPE = ("/api/v1/uploads", {})
SHAPES = {
    "/v1/uploads": ("invalid_request", {"code", "message", "data"}),
    "/api/v1/uploads": ("InvalidParameter", {"code", "message", "request_id"}),
}
B = "b0undary"
TEXT_PART = f'--{B}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'


@pytest.fixture(scope="module")
def server(api_server: VeditServer) -> VeditServer:
    return api_server


def raw(srv: VeditServer, request: bytes) -> tuple[int, dict[str, list[str]], Any]:
    """Sends ``request`` as it is; the status, headers (lower-case names, every value)
    and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(request)
        answer = http.client.HTTPResponse(sock, method="GET")
        answer.begin()
        data = answer.read()
    headers: dict[str, list[str]] = {}
    for name, value in answer.getheaders():
        headers.setdefault(name.lower(), []).append(value)
    assert headers["content-type"] == ["application/json"], headers
    return answer.status, headers, json.loads(data)


def uploaded_url(srv: VeditServer, path: Path) -> str:
    with path.open("rb") as f:
        r = srv.client.post("/v1/uploads", files={"file": (path.name, f)}, headers=srv.headers())
    assert r.status_code == 200, r.text
    return r.json()["url"]


# --- multipart ----------------------------------------------------------------------


@pytest.mark.parametrize("route", [ANYFAST, DASHSCOPE], ids=["anyfast", "dashscope"])
@pytest.mark.parametrize(
    ("case", "content_type", "content", "words"),
    [
        (
            "a 300-byte boundary",
            "multipart/form-data; boundary=" + "b" * 300,
            f"--{'b' * 300}\r\n".encode(),
            "the multipart boundary of Content-Type is 300 bytes long; at most 256",
        ),
        ("no boundary", "multipart/form-data", TEXT_PART.encode(), "with a boundary"),
        (
            "not a form",
            "application/octet-stream",
            b"\x89PNG\r\n",
            "Content-Type is 'application/octet-stream'",
        ),
        (
            "a truncated body",
            f"multipart/form-data; boundary={B}",
            TEXT_PART.encode()[:-10],
            "the multipart body ended before its closing boundary",
        ),
        (
            "no file part",
            f"multipart/form-data; boundary={B}",
            f"{TEXT_PART}--{B}--\r\n".encode(),
            "the form has no 'file' part",
        ),
    ],
)
def test_a_malformed_multipart_body_is_400_in_the_dialect_naming_the_problem(
    server: VeditServer,
    route: tuple[str, dict[str, str]],
    case: str,
    content_type: str,
    content: bytes,
    words: str,
) -> None:
    path, headers = route
    r = server.client.post(path, content=content, headers={**headers, "Content-Type": content_type})
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    code, shape = SHAPES[path]
    answer = r.json()
    assert set(answer) == shape and answer["code"] == code, answer
    assert words in answer["message"], (case, answer["message"])
    assert "Traceback" not in server.log()


# --- downloads ------------------------------------------------------------------------


def test_range_errors_of_a_download_are_json(server: VeditServer, media_dir: Path) -> None:
    url = uploaded_url(server, media_dir / "coffee.jpg")
    size = (media_dir / "coffee.jpg").stat().st_size

    r = server.client.get(url, headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == (media_dir / "coffee.jpg").read_bytes()[:10]

    r = server.client.get(url, headers={"Range": f"bytes={size + 10}-"})
    assert r.status_code == 416 and r.headers["content-type"] == "application/json"
    assert r.headers["content-range"] == f"bytes */{size}"
    answer = r.json()
    assert answer["code"] == "range_not_satisfiable" and answer["data"] is None
    assert answer["message"] == (
        f"the Range header 'bytes={size + 10}-' starts past the end of the file, which is "
        f"{size:,} bytes"
    )
    for bad in ("items=0-9", "bytes=9-2", "bytes=x"):
        r = server.client.get(url, headers={"Range": bad})
        assert r.status_code == 400 and r.headers["content-type"] == "application/json", bad
        assert r.json()["code"] == "invalid_request"
        assert r.json()["message"].startswith(f"the Range header {bad!r} is malformed; send")
    head = server.client.head(url, headers={"Range": f"bytes={size}-"})
    assert head.status_code == 416 and head.content == b""


# --- what the HTTP server answers itself ----------------------------------------------


def test_a_request_that_is_not_http_is_400_json_in_the_dialect(server: VeditServer) -> None:
    status, headers, answer = raw(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400 and answer["code"] == "invalid_request" and answer["data"] is None
    assert answer["message"].startswith("the request is not valid HTTP/1.1: "), answer
    assert headers["x-content-type-options"] == ["nosniff"]

    bad_header = b"GET /api/v1/tasks/x HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"
    status, headers, answer = raw(server, bad_header)
    assert status == 400 and answer["code"] == "InvalidParameter" and answer["request_id"]
    assert headers["connection"] == ["close"]
    assert "Traceback" not in server.log()


def test_every_answer_says_nosniff_once(server: VeditServer, media_dir: Path) -> None:
    url = uploaded_url(server, media_dir / "coffee.jpg")
    task = server.create(body("https://example.com/v.mp4", "https://example.com/i.jpg"))
    assert task.status_code == 200
    key = server.headers()
    asks: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/", {}),
        ("GET", "/page/page.js", {}),
        ("GET", "/healthz", {}),
        ("GET", "/metrics", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/docs", {}),
        ("GET", "/docs/assets/swagger-ui.css", {}),
        ("GET", url, {}),
        ("GET", url, {"Range": "bytes=0-1"}),
        ("GET", url.replace("signature=", "signature=0"), {}),
        ("GET", f"/v1/video/generations/{task.json()['task_id']}", key),
        ("GET", "/api/v1/tasks/asyntask_x", key),
        ("GET", "/v1/video/generations/x", {}),
        ("DELETE", "/v1/video/generations", key),
        ("GET", "/no/such/route", {}),
        ("HEAD", "/healthz", {}),
    ]
    for method, path, headers in asks:
        r = server.client.request(method, path, headers=headers)
        assert r.headers.get_list("x-content-type-options") == ["nosniff"], (method, path)
    # Answers the HTTP server writes itself: a head over the cap, and a request that is not HTTP.
    status, headers, _ = raw(
        server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
    )
    assert status == 431 and headers["x-content-type-options"] == ["nosniff"]


# --- media errors in the API's words ---------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


LIBRARY_WORDS = (
    "image file is truncated",
    "decompression bomb",
    "DOS attack",
    "exceeds limit",
    "cannot identify image file",
    "Invalid data found",
    "moov atom",
)


def test_media_refused_at_upload_are_described_in_the_apis_words(
    server: VeditServer, media_dir: Path, tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(20_000, 20_000))  # 400 Mpx declared, nothing behind it
    cases = {
        "cut.jpg": "the image cannot be decoded (the file is damaged or cut short); received",
        "truncated.mp4": "the uploaded file (video)",
        "bomb.png": "at most 36,000,000 pixels are accepted",
    }
    for name, words in cases.items():
        path = bomb if name == "bomb.png" else media_dir / name
        with path.open("rb") as f:
            r = server.client.post(
                "/v1/uploads", files={"file": (name, f)}, headers=server.headers()
            )
        assert r.status_code == 400, (name, r.text)
        message = r.json()["message"]
        assert words in message, (name, message)
        assert not [w for w in LIBRARY_WORDS if w.lower() in message.lower()], (name, message)


# --- /metrics -------------------------------------------------------------------------

FROM_ELSEWHERE = {"X-Forwarded-For": "203.0.113.9"}
"""A request that came through a proxy on this host from 203.0.113.9 (uvicorn takes the
client from X-Forwarded-For when the connection is from 127.0.0.1)."""


@pytest.fixture(scope="module")
def metrics_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VeditServer]]:
    servers = {
        "token": VeditServer(
            tmp_path_factory.mktemp("m-token"), {"VEDIT_METRICS_TOKEN": "s3cret"}, workers=0
        ),
        "public": VeditServer(
            tmp_path_factory.mktemp("m-public"), {"VEDIT_METRICS_PUBLIC": "true"}, workers=0
        ),
    }
    for srv in servers.values():
        srv.start()
    yield servers
    for srv in servers.values():
        srv.stop()


def test_metrics_answer_loopback_clients_only_by_default(server: VeditServer) -> None:
    r = server.client.get("/metrics")
    assert r.status_code == 200 and "vedit_tasks" in r.text
    r = server.client.get("/metrics", headers=FROM_ELSEWHERE)
    assert r.status_code == 403 and r.headers["content-type"] == "application/json"
    answer = r.json()
    assert answer["code"] == "access_denied" and answer["data"] is None
    assert "loopback clients only" in answer["message"] and "203.0.113.9" in answer["message"]
    assert "VEDIT_METRICS_TOKEN" in answer["message"]
    assert "VEDIT_METRICS_PUBLIC=true" in answer["message"]


def test_metrics_with_a_token_ask_every_client_for_it(
    metrics_servers: dict[str, VeditServer],
) -> None:
    srv = metrics_servers["token"]
    assert srv.client.get("/metrics").status_code == 401  # loopback too
    assert srv.client.get("/metrics", headers=FROM_ELSEWHERE).status_code == 401
    wrong = {"Authorization": "Bearer nope", **FROM_ELSEWHERE}
    assert srv.client.get("/metrics", headers=wrong).json()["code"] == "invalid_api_key"
    right = {"Authorization": "Bearer s3cret", **FROM_ELSEWHERE}
    assert srv.client.get("/metrics", headers=right).status_code == 200


def test_metrics_made_public_answer_any_client(metrics_servers: dict[str, VeditServer]) -> None:
    srv = metrics_servers["public"]
    r = srv.client.get("/metrics", headers=FROM_ELSEWHERE)
    assert r.status_code == 200 and "vedit_http_request_seconds" in r.text
