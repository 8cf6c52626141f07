"""Uploads cannot take the server from everyone else: a live ``vedit serve`` against
hundreds of trickling uploads, keyless uploads, oversized declarations and slow bodies.

Every test speaks raw HTTP/1.1 over loopback sockets. Each upload is a real multipart
head of ``POST /v1/uploads`` (bearer key) or ``POST /api/v1/uploads`` (DashScope's flow,
no key) whose body, a text field's value, then arrives a few bytes at a time, as a client
holding slots would send it. The server's own limits are shortened through ``VEDIT_*`` variables, so each
one is reached within seconds; the only time bound asserted is availability ("answered
within 5 s").
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import MODEL, TEST_KEY, VeditServer

UPLOAD_BUDGET = 40
PER_CLIENT_CAP = 100
PROCESS_CAP = 300
TRICKLERS = 400  # from four addresses, 100 each: more than the process cap
TRICKLER_SOURCES = ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")
ANSWER_WITHIN_S = 5.0
BOUNDARY = "vedit-flood"


@pytest.fixture(scope="module")
def flooded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VeditServer]:
    """A server (API only) whose caps a test can fill from loopback: 300 connections, 100
    per address, 40 in uploads; heads and the upload grace long enough to hold them."""
    srv = VeditServer(
        tmp_path_factory.mktemp("flooded"),
        {
            "VEDIT_HTTP_MAX_CONNECTIONS": str(PROCESS_CAP),
            "VEDIT_HTTP_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT_CAP),
            "VEDIT_HTTP_MAX_UPLOAD_CONNECTIONS": str(UPLOAD_BUDGET),
            "VEDIT_HTTP_HEADER_TIMEOUT_S": "60",
            "VEDIT_UPLOAD_RATE_GRACE_S": "60",
            "VEDIT_RATE_LIMIT_PER_S": "0",
        },
        workers=0,
    )
    srv.start().client.close()  # its start-up check's connection would count against the caps
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VeditServer]:
    """A server (API only) that gives an upload's body 1 s of grace, then 64 KiB/s."""
    srv = VeditServer(
        tmp_path_factory.mktemp("strict"),
        {"VEDIT_UPLOAD_RATE_GRACE_S": "1", "VEDIT_UPLOAD_MIN_RATE_BPS": "65536"},
        workers=0,
    )
    yield srv.start()
    srv.stop()


# --- raw HTTP over loopback -------------------------------------------------------


def upload_head(path: str, length: int, *, key: bool = True) -> bytes:
    """The head of an upload whose body declares ``length`` bytes, and the body's first part."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {length}",
    ]
    if key and path == "/v1/uploads":
        lines.append(f"Authorization: Bearer {TEST_KEY}")
    # A text field first, whose value is what trickles: nothing of the file is ever seen.
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
    return ("\r\n".join(lines) + "\r\n\r\n" + part).encode()


def connect(srv: VeditServer, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", srv.port))
    return sock


def read_answer(sock: socket.socket, method: str = "POST") -> tuple[int, dict[str, str], Any]:
    """Status, headers (lower-case names) and JSON body of the next response on ``sock``."""
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    raw = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return response.status, headers, json.loads(raw) if raw else None


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed ``sock``; what it still had in flight is skipped."""
    try:
        while chunk := sock.recv(65536):
            del chunk
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def create_body() -> bytes:
    return json.dumps(
        {
            "model": MODEL,
            "input": {
                "prompt": "a create while the uploads are flooded",
                "media": [
                    {"type": "video", "url": "https://example.com/source.mp4"},
                    {"type": "reference_image", "url": "https://example.com/look.jpg"},
                ],
            },
        }
    ).encode()


def ask(srv: VeditServer, method: str, path: str, body: bytes = b"") -> int:
    """The status of one request on a fresh connection from 127.0.0.2, answered within
    ``ANSWER_WITHIN_S`` (else the socket's timeout fails the test)."""
    sock = connect(srv, "127.0.0.2", timeout=ANSWER_WITHIN_S)
    try:
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        head += [f"Authorization: Bearer {TEST_KEY}", f"Content-Length: {len(body)}"]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return read_answer(sock, method)[0]
    finally:
        sock.close()


class Trickle:
    """Sends one byte of a field's value every half second on each of ``sockets`` until stopped: uploads
    that stay alive for as long as the server lets them."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sockets = sockets
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # the server has closed it
                    sock.send(b"a")


# --- the flood ----------------------------------------------------------------------


def test_hundreds_of_trickling_uploads_leave_creates_and_health_answered(
    flooded: VeditServer,
) -> None:
    """400 uploads trickle from four addresses (more than the 300 connections the process
    takes); creates, queries and /healthz from a fifth address are still answered, since
    uploads may hold 40 connections at most: the rest get 503 at their heads, closed."""
    sockets: list[socket.socket] = []
    try:
        for n in range(TRICKLERS):
            path = "/v1/uploads" if n % 2 else "/api/v1/uploads"
            sock = connect(flooded, TRICKLER_SOURCES[n % len(TRICKLER_SOURCES)])
            sockets.append(sock)
            with contextlib.suppress(OSError):  # refused at once and closed: read below
                sock.sendall(upload_head(path, 50_000_000) + b"a" * 100)
        # Let every head be read: each either holds an upload or is answered. A refused
        # client reads its answer and closes its socket, as any client does.
        answered = _answered(sockets, quiet_s=1.0, within_s=20.0)
        refusals = [_refusal(sock) for sock in answered]
        for sock in answered:
            sock.close()
        with Trickle([s for s in sockets if s not in answered]):
            statuses = [ask(flooded, "GET", "/healthz")]
            for _ in range(5):
                statuses.append(ask(flooded, "POST", "/v1/video/generations", create_body()))
            statuses.append(ask(flooded, "GET", "/healthz"))
    finally:
        for sock in sockets:
            sock.close()

    assert statuses == [200] * len(statuses), statuses
    # At most the budget is held; everything else was refused at its head, in its dialect.
    assert len(sockets) - len(answered) <= UPLOAD_BUDGET
    assert len(refusals) >= TRICKLERS - UPLOAD_BUDGET
    upload_refusals = [r for r in refusals if "VEDIT_HTTP_MAX_UPLOAD_CONNECTIONS" in r[2]]
    assert len(upload_refusals) >= TRICKLERS - PROCESS_CAP, refusals[:3]
    for status, headers, message, code in upload_refusals:
        assert status == 503 and headers["retry-after"] == "1", message
        assert headers["connection"] == "close" and code in (
            "too_many_connections",
            "ServiceUnavailable",
        )
    assert "Traceback" not in flooded.log()


def _answered(sockets: list[socket.socket], quiet_s: float, within_s: float) -> set[socket.socket]:
    """The sockets the server answered, once none has been answered for ``quiet_s``."""
    answered: set[socket.socket] = set()
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        waiting = [s for s in sockets if s not in answered]
        ready = select.select(waiting, [], [], quiet_s)[0] if waiting else []
        if not ready:
            break
        answered.update(ready)
    return answered


def _refusal(sock: socket.socket) -> tuple[int, dict[str, str], str, str]:
    status, headers, body = read_answer(sock)
    return status, headers, body["message"], body["code"]


# --- answers from the headers -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/uploads", 401, "invalid_api_key"),
        ("/api/v1/uploads", 413, "RequestTooLarge"),
        ("/v1/uploads", 413, "request_too_large"),
    ],
)
def test_an_upload_refused_from_its_headers_is_answered_and_closed_without_its_body(
    strict: VeditServer, path: str, status: int, code: str
) -> None:
    """No key (401), or a body declared larger than any upload can be (413): answered at
    once with Connection: close, and the connection is closed with the body unread."""
    length = 50_000_000 if status == 401 else 10**12
    sock = connect(strict, timeout=ANSWER_WITHIN_S)
    try:
        sock.sendall(upload_head(path, length, key=status != 401) + b"a" * 1000)
        got, headers, body = read_answer(sock)
        assert got == status and body["code"] == code, body
        assert headers["connection"] == "close"
        if status == 413:
            assert f"{length:,} bytes (Content-Length)" in body["message"], body
        assert closed_by_server(sock), "the server waited for the body of a refused upload"
    finally:
        sock.close()


def test_an_upload_slower_than_the_minimum_rate_gets_408_naming_the_rate(
    strict: VeditServer,
) -> None:
    """1,000 bytes, then a few a second: after the 1 s grace the body is behind 64 KiB/s;
    both dialects answer 408 saying the rate seen and the setting."""
    for path, code in (("/v1/uploads", "request_timeout"), ("/api/v1/uploads", "RequestTimeOut")):
        sock = connect(strict, timeout=ANSWER_WITHIN_S)
        try:
            sock.sendall(upload_head(path, 50_000_000) + b"a" * 1000)
            with Trickle([sock]):
                got, headers, body = read_answer(sock)
            assert got == 408 and body["code"] == code, body
            assert headers["connection"] == "close"
            message = body["message"]
            assert "bytes/s on average" in message and "65,536 bytes/s" in message, message
            assert "VEDIT_UPLOAD_MIN_RATE_BPS" in message and "first 1 s" in message, message
            assert closed_by_server(sock)
        finally:
            sock.close()
    assert "Traceback" not in strict.log()
