"""Connection limits of a live ``vedit serve``: caps, head and body limits, timeouts, port in use.

Every test speaks raw HTTP/1.1 over loopback sockets to a real server process whose
limits are shortened through ``VEDIT_HTTP_*`` variables, so that each one is reached
within a second or two. Timeouts are behaviour: they are asserted with slack.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MODEL, TEST_KEY, VeditServer, free_port

HEAD_TIMEOUT_S = 1.5
BODY_TIMEOUT_S = 1.5
KEEPALIVE_S = 1.0
MAX_HEAD_BYTES = 8192
MAX_HEADERS = 30
SLACK_S = 2.0
"""How much later than its timeout a connection may be answered or closed (a busy shared host)."""

FLOOD_SOCKETS = 12_000
"""Idle sockets one client (127.0.0.1) opens in the flood test, from two processes.

Not 20,000: loopback has one ephemeral port range (32768-60999 here) for all of one
client's connections to the server, and connect() takes even ports first. Past its
~14,000 even ports every connect scans them all before taking an odd one: 19,000
sockets took 25 s against 2.4 s for 10,000, while holding most of a shared host's
ports. The property is the same at any count past the cap: the server holds the
per-client cap and answers the rest 503.
"""
FLOOD_PROCESSES = 2
PER_CLIENT_CAP = 100
PROCESS_CAP = 150


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VeditServer]:
    """A server (API only) with its head and body limits and timeouts shortened."""
    srv = VeditServer(
        tmp_path_factory.mktemp("limited"),
        {
            "VEDIT_HTTP_HEADER_TIMEOUT_S": str(HEAD_TIMEOUT_S),
            "VEDIT_HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
            "VEDIT_HTTP_KEEPALIVE_S": str(KEEPALIVE_S),
            "VEDIT_HTTP_MAX_HEADER_BYTES": str(MAX_HEAD_BYTES),
            "VEDIT_HTTP_MAX_HEADERS": str(MAX_HEADERS),
        },
        workers=0,
    )
    yield srv.start()
    srv.stop()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VeditServer]:
    """A server (API only) with small connection caps; idle connections are kept for a minute."""
    srv = VeditServer(
        tmp_path_factory.mktemp("capped"),
        {
            "VEDIT_HTTP_MAX_CONNECTIONS": str(PROCESS_CAP),
            "VEDIT_HTTP_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT_CAP),
            "VEDIT_HTTP_HEADER_TIMEOUT_S": "60",
            "VEDIT_HTTP_KEEPALIVE_S": "60",
        },
        workers=0,
    )
    srv.start().client.close()  # its start-up check's connection would count against the caps
    yield srv
    srv.stop()


# --- raw HTTP over loopback -----------------------------------------------------


def connect(srv: VeditServer, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    if source != "127.0.0.1":
        sock.bind((source, 0))
    sock.settimeout(HEAD_TIMEOUT_S + SLACK_S + 5)
    sock.connect(("127.0.0.1", srv.port))
    return sock


def read_answer(sock: socket.socket, method: str = "GET") -> tuple[int, dict[str, str], Any]:
    """Status, headers (lower-case names) and JSON body of the next response on ``sock``."""
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    raw = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return response.status, headers, json.loads(raw) if raw else None


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed ``sock`` (end of stream or reset), before its timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def request(path: str, *headers: str, body: bytes | None = None, method: str = "GET") -> bytes:
    """A request's bytes; with a ``body``, a POST that declares its length."""
    lines = [f"{'POST' if body is not None else method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += headers
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def eventually_served(srv: VeditServer, source: str, within_s: float = 5.0) -> bool:
    """True once a new connection from ``source`` gets 200 on /healthz (closed ones are
    uncounted as soon as the server notices them)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        sock = connect(srv, source)
        try:
            sock.sendall(request("/healthz", "Connection: close"))
            if read_answer(sock)[0] == 200:
                return True
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            sock.close()
        time.sleep(0.05)
    return False


def create_body(prompt: str) -> bytes:
    return json.dumps(
        {
            "model": MODEL,
            "input": {
                "prompt": prompt,
                "media": [
                    {"type": "video", "url": "https://example.com/source.mp4"},
                    {"type": "reference_image", "url": "https://example.com/look.jpg"},
                ],
            },
        }
    ).encode()


AUTH = f"Authorization: Bearer {TEST_KEY}"


# --- heads ----------------------------------------------------------------------


def test_an_oversized_head_is_431_and_a_new_connection_is_served(limited: VeditServer) -> None:
    sock = connect(limited)
    sock.sendall(request("/healthz", "X-Padding: " + "a" * MAX_HEAD_BYTES))
    status, headers, body = read_answer(sock)
    assert status == 431
    assert headers["connection"] == "close"
    assert body["code"] == "request_header_too_large" and body["data"] is None
    assert f"{MAX_HEAD_BYTES:,} bytes" in body["message"]
    assert closed_by_server(sock)

    fresh = connect(limited)
    fresh.sendall(request("/healthz"))
    assert read_answer(fresh)[0] == 200


def test_a_head_just_under_the_byte_cap_is_served(limited: VeditServer) -> None:
    sock = connect(limited)
    head = request("/healthz", "X-Padding: ")
    sock.sendall(request("/healthz", "X-Padding: " + "a" * (MAX_HEAD_BYTES - len(head) - 1)))
    assert read_answer(sock)[0] == 200


def test_too_many_header_fields_are_431_in_the_dialect_of_the_path(limited: VeditServer) -> None:
    fields = [f"X-Field-{i}: {i}" for i in range(MAX_HEADERS + 1)]
    sock = connect(limited)
    sock.sendall(request("/api/v1/tasks/asyntask_x", *fields))
    status, _, body = read_answer(sock)
    assert status == 431
    assert body["code"] == "RequestHeaderTooLarge" and body["request_id"]
    assert f"at most {MAX_HEADERS}" in body["message"]
    assert closed_by_server(sock)


def test_as_many_header_fields_as_the_cap_are_served(limited: VeditServer) -> None:
    fields = [f"X-Field-{i}: {i}" for i in range(MAX_HEADERS - 1)]  # and Host
    sock = connect(limited)
    sock.sendall(request("/healthz", *fields))
    assert read_answer(sock)[0] == 200


def test_a_head_trickled_a_byte_a_second_gets_408_at_the_header_timeout(
    limited: VeditServer,
) -> None:
    sock = connect(limited)
    start = time.monotonic()
    answered = False
    for byte in request("/healthz"):
        sock.sendall(bytes([byte]))
        if select.select([sock], [], [], 1.0)[0]:
            answered = True
            break
    assert answered, "the server waited for the whole trickled head"
    status, _, body = read_answer(sock)
    elapsed = time.monotonic() - start
    assert status == 408 and body["code"] == "request_timeout"
    assert HEAD_TIMEOUT_S - 0.1 <= elapsed <= HEAD_TIMEOUT_S + SLACK_S
    assert closed_by_server(sock)


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    limited: VeditServer,
) -> None:
    sock = connect(limited)
    start = time.monotonic()
    assert sock.recv(1024) == b"", "nothing was asked, so nothing is answered"
    assert HEAD_TIMEOUT_S - 0.1 <= time.monotonic() - start <= HEAD_TIMEOUT_S + SLACK_S


# --- bodies ---------------------------------------------------------------------


def test_a_body_slower_than_the_body_timeout_gets_408(limited: VeditServer) -> None:
    sock = connect(limited)
    head = request("/v1/video/generations", AUTH, "Content-Length: 100", method="POST")
    sock.sendall(head + b'{"model": ')
    start = time.monotonic()
    status, headers, body = read_answer(sock, "POST")
    elapsed = time.monotonic() - start
    assert status == 408 and headers["connection"] == "close"
    assert body["code"] == "request_timeout" and "body" in body["message"]
    assert BODY_TIMEOUT_S - 0.1 <= elapsed <= BODY_TIMEOUT_S + SLACK_S
    assert closed_by_server(sock)
    assert "Traceback" not in limited.log()


def test_an_upload_is_held_to_a_minimum_rate_not_the_body_timeout(
    limited: VeditServer, media_dir: Path
) -> None:
    """An upload slower than VEDIT_HTTP_BODY_TIMEOUT_S is still received (its body is held
    to VEDIT_UPLOAD_MIN_RATE_BPS after VEDIT_UPLOAD_RATE_GRACE_S, 5 s): here its body
    takes twice the body timeout."""
    image = (media_dir / "coffee.jpg").read_bytes()
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.jpg"\r\n\r\n'
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    sock = connect(limited)
    head = request(
        "/v1/uploads", AUTH, f"Content-Type: multipart/form-data; boundary={boundary}",
        f"Content-Length: {len(body)}", method="POST",
    )  # fmt: skip
    sock.sendall(head + body[: len(body) // 2])
    time.sleep(2 * BODY_TIMEOUT_S)
    sock.sendall(body[len(body) // 2 :])
    status, _, answer = read_answer(sock, "POST")
    assert status == 200 and answer["bytes"] == len(image), answer


def test_a_1_mib_body_arriving_with_its_head_is_parsed(limited: VeditServer) -> None:
    filler = 1024 * 1024 - len(create_body(""))
    sock = connect(limited)
    sock.sendall(request("/v1/video/generations", AUTH, body=create_body("a" * filler)))
    status, _, body = read_answer(sock, "POST")
    assert status == 200 and body["task_id"].startswith("asyntask_")

    # Over 1 MiB the application answers 413 itself: the server took it for a body, not a head.
    sock = connect(limited)
    sock.sendall(request("/v1/video/generations", AUTH, body=create_body("a" * (filler + 1))))
    status, _, body = read_answer(sock, "POST")
    assert status == 413 and body["code"] == "request_too_large"


def test_pipelined_requests_are_each_answered(limited: VeditServer) -> None:
    sock = connect(limited)
    sock.sendall(request("/healthz") + request("/healthz", "Connection: close"))
    # One buffered reader for both answers: a reader per answer may read the second answer
    # into the first one's buffer, where the second reader never sees it.
    stream = sock.makefile("rb")
    for _ in range(2):
        answer = http.client.HTTPResponse(_Reader(stream))  # type: ignore[arg-type]
        answer.begin()
        answer.read()
        assert answer.status == 200
    assert stream.read() == b""  # then closed by the server (Connection: close)


class _Reader:
    """A socket stand-in whose ``makefile`` is one shared buffered reader, which an answer
    that has been read does not close."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def makefile(self, *_args: object, **_kwargs: object) -> _Reader:
        return self

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


# --- keep-alive -------------------------------------------------------------------


def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(
    limited: VeditServer,
) -> None:
    sock = connect(limited)
    sock.sendall(request("/healthz"))
    assert read_answer(sock)[0] == 200
    time.sleep(KEEPALIVE_S / 3)
    sock.sendall(request("/healthz"))
    assert read_answer(sock)[0] == 200, "the connection is reused within the keep-alive time"
    idle_from = time.monotonic()
    assert closed_by_server(sock)
    # Armed when the response went out, a moment before it was read here.
    assert KEEPALIVE_S / 2 <= time.monotonic() - idle_from <= KEEPALIVE_S + SLACK_S


# --- connection caps --------------------------------------------------------------


def test_connections_past_the_process_cap_get_503_whatever_their_address(
    capped: VeditServer,
) -> None:
    held: list[socket.socket] = []
    try:
        for source, count in (
            ("127.0.0.3", PER_CLIENT_CAP),
            ("127.0.0.4", PROCESS_CAP - PER_CLIENT_CAP),
        ):
            for _ in range(count):
                held.append(connect(capped, source))
                held[-1].sendall(request("/healthz"))
                assert read_answer(held[-1])[0] == 200
        newcomer = connect(capped, "127.0.0.5")
        newcomer.sendall(request("/healthz"))
        status, headers, body = read_answer(newcomer)
        assert status == 503 and headers["retry-after"] == "1"
        assert body["code"] == "too_many_connections" and "the server holds" in body["message"]
        assert closed_by_server(newcomer)
    finally:
        for sock in held:
            sock.close()
    assert eventually_served(capped, "127.0.0.5")


SOCKET_HOLDER = r"""
import json, select, socket, sys, time

port, count, may_be_held = (int(arg) for arg in sys.argv[1:4])
sockets, answered = [], set()
poller = select.epoll()
for start in range(0, count, 500):
    for _ in range(min(500, count - start)):
        sock = socket.create_connection(("127.0.0.1", port))
        sockets.append(sock)
        poller.register(sock, select.EPOLLIN)
    # Let the server answer this batch before the next, so its accept queue never fills.
    deadline = time.monotonic() + 10
    while len(sockets) - len(answered) > may_be_held and time.monotonic() < deadline:
        for fd, _ in poller.poll(0.2):
            answered.add(fd)
            poller.unregister(fd)
while poller.poll(0.5):  # the last answers in flight
    for fd, _ in poller.poll(0):
        answered.add(fd)
        poller.unregister(fd)
refused = [s.recv(4096) for s in sockets if s.fileno() in answered]
print(json.dumps({
    "open": len(sockets),
    "refused_with_503": sum(r.startswith(b"HTTP/1.1 503 ") for r in refused),
    "unanswered": len(sockets) - len(refused),
    "sample": refused[0].decode("latin-1") if refused else "",
}), flush=True)
sys.stdin.read()  # hold every socket until the test closes stdin
"""


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Watch:
    """Samples the server's descriptors and memory, and asks /healthz from 127.0.0.2, meanwhile."""

    def __init__(self, srv: VeditServer) -> None:
        assert srv.proc is not None
        self.pid = srv.proc.pid
        self.base = srv.base
        self.max_fds = 0
        self.max_rss = 0
        self.health: list[int | str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f) for f in (self._sample, self._ask_health)]

    def __enter__(self) -> Watch:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.max_fds = max(self.max_fds, open_fds(self.pid))
            self.max_rss = max(self.max_rss, rss_bytes(self.pid))

    def _ask_health(self) -> None:
        # A fresh connection from 127.0.0.2 each time: admission itself is what is tested.
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=self.base, transport=transport, timeout=10) as client:
            while not self._stop.wait(0.1):
                try:
                    r = client.get("/healthz", headers={"Connection": "close"})
                    self.health.append(r.status_code)
                except httpx.HTTPError as exc:
                    self.health.append(repr(exc))


def test_one_client_holding_12000_sockets_does_not_shut_out_another(
    capped: VeditServer,
) -> None:
    assert capped.proc is not None
    assert eventually_served(capped, "127.0.0.2")
    pid = capped.proc.pid
    fds_before, rss_before = open_fds(pid), rss_bytes(pid)
    holders = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SOCKET_HOLDER,
                str(capped.port),
                str(FLOOD_SOCKETS // FLOOD_PROCESSES),
                str(PER_CLIENT_CAP),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(FLOOD_PROCESSES)
    ]
    try:
        with Watch(capped) as watch:
            reports = []
            for holder in holders:
                assert holder.stdout is not None
                ready, _, _ = select.select([holder.stdout], [], [], 60)
                assert ready, "a socket holder did not finish opening its sockets"
                reports.append(json.loads(holder.stdout.readline()))
            time.sleep(0.5)  # /healthz from 127.0.0.2 while all of them are held
    finally:
        for holder in holders:
            holder.communicate(timeout=30)  # closes stdin: the holder exits

    assert sum(r["open"] for r in reports) == FLOOD_SOCKETS
    assert sum(r["unanswered"] for r in reports) <= PER_CLIENT_CAP
    assert sum(r["refused_with_503"] for r in reports) >= FLOOD_SOCKETS - PER_CLIENT_CAP
    refusal = next(r["sample"] for r in reports if r["sample"])
    assert "connection: close" in refusal and "retry-after: 1" in refusal
    assert '"code":"too_many_connections"' in refusal

    assert watch.health and set(watch.health) == {200}, watch.health
    assert watch.max_fds <= fds_before + PER_CLIENT_CAP + 16, (fds_before, watch.max_fds)
    assert watch.max_rss - rss_before < 64 * 2**20, (rss_before, watch.max_rss)


# --- the port -----------------------------------------------------------------------


def test_a_port_in_use_is_one_line_naming_port_and_exit_1(tmp_path: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        data_dir = tmp_path / "data"
        done = subprocess.run(
            [sys.executable, "-m", "vedit.cli", "serve", "--port", str(port), "--workers", "2"],
            env={**os.environ, "VEDIT_DATA_DIR": str(data_dir)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"vedit: port {port} on 127.0.0.1 is already in use; choose another with --port"
    )
    assert not data_dir.exists(), "nothing was started before the port was checked"
