"""Attacks on the upload routes after issue 19's work, each against a live ``vedit serve``
over loopback HTTP (raw sockets where the attack is below what an HTTP client sends):

- uploads pipelined on one connection give their upload slot back (they leaked one each);
- the bytes of a form before its file part, read before anything is checked in DashScope's
  keyless flow, are bounded (an endless run of one field, or of a preamble, held a slot
  for as long as the client liked), and so is a chunked body after its file;
- non-ASCII text in the policy's fields is a 403, not a 500;
- the multipart parser's complaints are said in vedit's words;
- Range errors of the page's and the docs' own files are JSON like the others;
- a revoked key's result links stop working, as its upload links do;
- one key's costly decodes delay another key's upload by a turn, not by the whole queue.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import MODEL, TEST_KEY, VeditServer, body
from hostile_media import pillow_bomb

KEYED = f"Authorization: Bearer {TEST_KEY}\r\n"


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


def read_answers(s: socket.socket, count: int) -> list[tuple[int, dict[str, str], dict]]:
    """``count`` HTTP answers read from ``s``: status, headers (lower-case names), JSON body."""
    buffer = b""
    answers = []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            got = s.recv(65536)
            assert got, f"the connection closed after {len(answers)} answer(s): {buffer!r}"
            buffer += got
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(buffer) < length:
            got = s.recv(65536)
            assert got, "the connection closed in the middle of an answer"
            buffer += got
        data, buffer = buffer[:length], buffer[length:]
        answers.append((int(lines[0].split(" ", 2)[1]), headers, json.loads(data or b"{}")))
    return answers


def upload_head(path: str, length: int | None, extra: str = "") -> bytes:
    """The head of a multipart upload to ``path``; chunked when ``length`` is None."""
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}"
        f"Content-Type: multipart/form-data; boundary=b\r\n{framing}\r\n\r\n"
    ).encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def send_until_answered(
    srv: VeditServer, head: bytes, pieces: Iterator[bytes], *, chunked: bool, most: int
) -> tuple[int, dict]:
    """Send ``head``, then ``pieces`` of the body as fast as the server reads them until it
    answers or ``most`` bytes went out; the answer's status and JSON body. No answer after
    that (the server still reading) fails."""
    sent = 0
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(head)
        for piece in pieces:
            if select.select([s], [], [], 0)[0] or sent >= most:
                break
            try:
                s.sendall(chunk(piece) if chunked else piece)
            except OSError:  # answered and closed meanwhile
                break
            sent += len(piece)
        ready = select.select([s], [], [], 10)[0]
        assert ready, f"no answer after {sent:,} bytes of body: the server is still reading"
        (status, _, answer), *_ = read_answers(s, 1)
    return status, answer


# --- the upload budget -------------------------------------------------------------------


def test_pipelined_uploads_give_their_upload_slot_back(make_server, media_dir) -> None:
    """Two uploads pipelined on one connection counted two slots and gave back one: each
    such connection, without a key, left a slot taken for good, until every upload of the
    server was a 503. Now a connection holds one slot, given back after its last answer."""
    srv = make_server(
        {"VEDIT_HTTP_MAX_UPLOAD_CONNECTIONS": "2", "VEDIT_UPLOAD_RATE_GRACE_S": "60"}, workers=0
    )
    keyless = upload_head("/v1/uploads", 0)
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(keyless * 2)
            assert [a[0] for a in read_answers(s, 2)] == [401, 401]
    # Both slots are free: two uploads are taken at once, a third is refused at its head.
    held = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(3)]
    try:
        for s in held[:2]:
            s.sendall(upload_head("/v1/uploads", 10_000, KEYED) + b"--b\r\n")
        time.sleep(0.5)
        assert select.select(held[:2], [], [], 0.5)[0] == [], "an upload was answered"
        held[2].sendall(upload_head("/v1/uploads", 10_000, KEYED))
        (status, _, answer), *_ = read_answers(held[2], 1)
        assert status == 503 and "VEDIT_HTTP_MAX_UPLOAD_CONNECTIONS" in answer["message"]
    finally:
        for s in held:
            s.close()
    # Once the server has seen them closed, their slots are free again.
    deadline = time.monotonic() + 5
    while True:
        r = srv.client.post(
            "/v1/uploads",
            files={"file": (media_dir / "coffee.jpg").read_bytes()},
            headers=srv.headers(),
        )
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 200, r.text


# --- the form before its file, and after it ----------------------------------------------


def _same_field() -> Iterator[bytes]:
    while True:
        yield b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n' * 1000


def _new_fields() -> Iterator[bytes]:
    n = 0
    while True:
        yield b"".join(
            b'--b\r\nContent-Disposition: form-data; name="x%d"\r\n\r\n1\r\n' % (n + i)
            for i in range(1000)
        )
        n += 1000


def _preamble() -> Iterator[bytes]:
    while True:
        yield b"\r\n" * 32768


def _big_headers() -> Iterator[bytes]:
    n = 0
    while True:  # distinct fields, each with 8 header lines of 4 KB and 16,000 bytes of value
        yield (
            b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n' % n
            + b"X-Pad: %s\r\n" % (b"p" * 4000) * 7
            + b"\r\n"
            + b"v" * 16_000
            + b"\r\n"
        )
        n += 1


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize(
    ("pieces", "status", "words"),
    [
        (_same_field, 400, "the form has more than one field 'x'"),
        (_new_fields, 400, "the form has more than 32 fields"),
        (_preamble, 413, "bytes before its 'file' part"),
        (_big_headers, 413, "bytes before its 'file' part"),
    ],
    ids=["one-field-again-and-again", "ever-new-fields", "endless-preamble", "big-part-headers"],
)
def test_the_form_before_its_file_is_bounded_without_a_key(
    api_server: VeditServer, pieces, status: int, words: str, chunked: bool
) -> None:
    """DashScope's upload route reads a form before anything is checked (its policy is in
    the form). Fields of one name over and over, or a preamble of empty lines, went on as
    long as the client sent them — with no key, holding an upload slot for good (chunked)
    or for 26 minutes (100 MB at the minimum rate), and costing the event loop 0.15 s of
    CPU a MB of tiny parts. Now every field counts, a name comes once, and what comes
    before the file is at most 576 KiB (32 fields of 16 KiB and their part headers, up to
    8 lines of 4 KiB each, were 1.4 MB)."""
    head = upload_head("/api/v1/uploads", None if chunked else 50_000_000)
    got, answer = send_until_answered(api_server, head, pieces(), chunked=chunked, most=8_000_000)
    assert got == status and words in answer["message"], answer
    assert set(answer) == {"code", "message", "request_id"}


def test_a_chunked_upload_ends_at_its_file_and_form(make_server, media_dir) -> None:
    """A chunked body has no Content-Length to be refused by at its head: what follows the
    closing boundary went on being read as long as the client sent it."""
    srv = make_server({"VEDIT_IMAGE_MAX_BYTES": "300000"}, workers=0)
    image = (media_dir / "coffee.jpg").read_bytes()
    form = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="c.jpg"\r\n\r\n'
        + image
        + b"\r\n--b--\r\n"
    )

    def pieces() -> Iterator[bytes]:
        yield form
        while True:
            yield b"\r\n" * 32768

    head = upload_head("/v1/uploads", None, KEYED)
    got, answer = send_until_answered(srv, head, pieces(), chunked=True, most=20_000_000)
    assert got == 413, answer
    assert answer["message"].startswith("the body is over 889,824 bytes"), answer
    assert srv.db("select count(*) from upload_reservations") == [(0,)]


# --- DashScope's policy form --------------------------------------------------------------


def test_non_ascii_in_the_policys_fields_is_refused_not_a_failure(api_server, media_dir) -> None:
    """hmac.compare_digest refuses str with non-ASCII characters (TypeError): a keyless
    form with ``Signature`` or ``OSSAccessKeyId`` in another script was a 500."""
    srv = api_server
    cert = srv.client.get(
        "/api/v1/uploads", params={"action": "getPolicy", "model": MODEL}, headers=srv.headers()
    ).json()["data"]
    fields = {
        "OSSAccessKeyId": cert["oss_access_key_id"],
        "Signature": cert["signature"],
        "policy": cert["policy"],
        "key": f"{cert['upload_dir']}/c.jpg",
    }
    image = (media_dir / "coffee.jpg").read_bytes()
    for name, value, words in (
        ("Signature", "签名" * 32, "the policy's Signature does not match"),
        ("OSSAccessKeyId", "vedit-key-é", "OSSAccessKeyId 'vedit-key-é' is not the one"),
    ):
        r = httpx.post(
            cert["upload_host"], data={**fields, name: value}, files={"file": ("c.jpg", image)}
        )
        assert r.status_code == 403, (name, r.text)
        assert r.json()["code"] == "AccessDenied" and words in r.json()["message"], r.text
    assert "Traceback" not in srv.log()


@pytest.mark.parametrize(
    ("part_head", "words"),
    [
        (
            b'Content-Disposition: form-data; name="x"\r\n' + b"X-A: 1\r\n" * 8,
            "a part has more than 8 header lines",
        ),
        (
            b'Content-Disposition: form-data; name="x"; filename="' + b"a" * 5000 + b'"\r\n',
            "a part's header line is over 4,224 bytes",
        ),
        (b"Content Disposition: x\r\n", "is not a form of the boundary that Content-Type names"),
    ],
    ids=["many-header-lines", "a-long-header-line", "a-bad-header-name"],
)
def test_the_parsers_complaints_are_in_vedits_words(api_server, part_head, words) -> None:
    content = b"--b\r\n" + part_head + b"\r\nvalue\r\n--b--\r\n"
    for path, headers in (("/api/v1/uploads", {}), ("/v1/uploads", api_server.headers())):
        r = api_server.client.post(
            path,
            content=content,
            headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert r.status_code == 400, r.text
        message = r.json()["message"]
        assert message.startswith("the multipart body is malformed at byte "), message
        assert words in message, message
        for theirs in ("Maximum header", "Found invalid character", "Expected boundary"):
            assert theirs not in message


# --- Range errors of the server's own files -------------------------------------------------


@pytest.mark.parametrize("path", ["/docs/assets/swagger-ui.css", "/page/page.js"])
def test_range_errors_of_the_servers_own_files_are_json(api_server, path) -> None:
    r = api_server.client.get(path, headers={"Range": "bytes=x"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
    assert "the Range header 'bytes=x' is malformed" in r.json()["message"]
    r = api_server.client.get(path, headers={"Range": "bytes=999999999-"})
    assert r.status_code == 416 and r.headers["content-type"] == "application/json", r.text
    assert r.headers["content-range"].startswith("bytes */")
    assert r.headers["x-content-type-options"] == "nosniff"
    r = api_server.client.get(path, headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and len(r.content) == 10


# --- revocation of result links ----------------------------------------------------------


def test_a_revoked_keys_result_links_stop_working(make_server, media_dir) -> None:
    """The README says every link of a revoked key is a 403; a result's link went on
    serving the file (a pass-through edit makes any video a result) until it expired."""
    srv = make_server(workers=1)
    leaving = new_key(srv, "leaving")
    r = srv.create(
        body(
            srv_upload(srv, media_dir / "silent.mp4", leaving),
            srv_upload(srv, media_dir / "coffee.jpg", leaving),
        ),
        key=leaving,
    )
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        data = srv.query(task_id, key=leaving).json()["data"]
        if data["status"] in ("SUCCESS", "FAILURE"):
            break
        time.sleep(0.3)
    assert data["status"] == "SUCCESS", data
    url = data["result_url"]
    assert httpx.get(url, headers={"Range": "bytes=0-99"}).status_code == 206
    revoke(srv, "leaving")
    for method in ("GET", "HEAD"):
        assert httpx.request(method, url).status_code == 403, method
    assert httpx.get(url).json() == {
        "code": "signature_invalid",
        "message": "the file is no longer available: the API key that made it was revoked",
        "data": None,
    }


def srv_upload(srv: VeditServer, path: Path, key: str) -> str:
    with path.open("rb") as f:
        r = srv.client.post("/v1/uploads", files={"file": f}, headers=srv.headers(key))
    assert r.status_code == 200, r.text
    return r.json()["url"]


# --- the decode budget ----------------------------------------------------------------------


def test_one_keys_decodes_delay_another_key_by_a_turn(make_server, media_dir, tmp_path) -> None:
    """Twelve 1.4 KB WEBPs that each decode to 6000x6000 (each takes the whole decode
    budget) from one key, then an ordinary JPEG from another: the decodes took turns in
    arrival order, so the JPEG waited for all those still waiting (and a key can keep a hundred in the
    queue). Turns now go round the keys: it waits at most for the decode running and the
    one whose turn had come."""
    srv = make_server({"VEDIT_RATE_LIMIT_PER_S": "0"}, workers=0)
    other = new_key(srv, "other")
    bomb = pillow_bomb(tmp_path / "bomb.webp", "WEBP", lossless=True).read_bytes()
    jpeg = (media_dir / "coffee.jpg").read_bytes()
    done: list[tuple[str, float]] = []
    lock = threading.Lock()

    def send(who: str, data: bytes, key: str | None) -> int:
        r = httpx.post(
            f"{srv.base}/v1/uploads",
            files={"file": ("f", data)},
            headers=srv.headers(key),
            timeout=300,
        )
        with lock:
            done.append((who, time.monotonic()))
        return r.status_code

    with ThreadPoolExecutor(13) as pool:
        bombs = [pool.submit(send, "bomb", bomb, None) for _ in range(12)]
        time.sleep(1.5)  # all twelve are in (1.4 KB each) and wait for the budget
        sent_at = time.monotonic()
        ordinary = pool.submit(send, "jpeg", jpeg, other)
        assert ordinary.result() == 200
        assert [b.result() for b in bombs] == [200] * 12
    answered_at = next(at for who, at in done if who == "jpeg")
    waited = sum(1 for who, at in done if who == "bomb" and sent_at < at < answered_at)
    left = sum(1 for who, at in done if who == "bomb" and at > sent_at)
    assert waited <= 2, f"the JPEG waited for {waited} of the other key's {left} decodes left"
