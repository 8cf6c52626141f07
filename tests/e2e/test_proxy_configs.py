"""The reverse-proxy configurations of docs/deploy.md: their figures are vedit's (always),
and each runs as written in front of a live ``vedit serve`` where its proxy is installed
(nginx: ``apt-get install nginx-light``; Caddy: Debian's ``caddy``). Without the proxy its
tests skip, saying so; CI does not install either."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import VeditServer, free_port
from mediagen import make_video
from vedit.api.http_server import ConnectionLimits
from vedit.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
UPLOAD_BYTES = 99_900_000  # a video just under VEDIT_VIDEO_MAX_BYTES (100,000,000)
BOUNDARY = "vedit-proxy-test"
UNITS = {"": 1, "k": 1024, "m": 1024**2, "KiB": 1024, "MiB": 1024**2, "KB": 1000, "MB": 1000**2}


def block(lang: str) -> str:
    (found,) = re.findall(rf"```{lang}\n(.*?)```", DEPLOY.read_text(), re.S)
    return found


def size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([a-zA-Z]*)", text).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


def seconds(text: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([smh])", text).groups()  # type: ignore[union-attr]
    return int(number) * {"s": 1, "m": 60, "h": 3600}[unit]


def nginx_upload_location() -> str:
    found = re.search(r"location ~ \^/\(api/\)\?v1/uploads\$ \{(.*?)\n    \}", block("nginx"), re.S)
    assert found, "docs/deploy.md: the nginx configuration has no location for the uploads"
    return found.group(1)


# --- always: the configurations' figures are vedit's -------------------------------------


def test_the_proxies_let_the_largest_upload_through_and_vedit_answer_past_it() -> None:
    s = Settings()
    cap = ConnectionLimits.from_settings(s).upload_max_body_bytes
    assert cap == 100_589_824 and f"{cap:,} bytes" in DEPLOY.read_text()
    location = nginx_upload_location()
    nginx_cap = size(re.search(r"client_max_body_size (\S+);", location).group(1))  # type: ignore[union-attr]
    assert cap < nginx_cap <= cap + 8 * 1024**2  # vedit's own 413 answers past its cap
    assert "proxy_request_buffering off;" in location
    caddy = block("caddyfile")
    upload = re.search(r"request_body @upload \{\s*max_size (\S+)", caddy)
    assert upload and cap < size(upload.group(1)) <= cap + 8 * 1024**2
    # Caddy's read_body covers the whole request: the largest upload at vedit's minimum rate.
    read_body = seconds(re.search(r"read_body (\S+)", caddy).group(1))  # type: ignore[union-attr]
    assert read_body >= s.upload_rate_grace_s + cap / s.upload_min_rate_bps


# --- helpers for the live proxies -----------------------------------------------------------


def big_video(path: Path, total: int) -> Path:
    """A valid MP4 padded to ``total`` bytes by a top-level ``free`` box after its media."""
    make_video(path, width=640, height=360, fps=25, seconds=4)
    pad = total - path.stat().st_size
    with path.open("ab") as f:
        f.write(struct.pack(">I4s", pad, b"free"))
        chunk = bytes(1 << 20)
        left = pad - 8
        while left:
            left -= f.write(chunk[: min(left, len(chunk))])
    return path


def form_head(name: str = "clip.mp4") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: video/mp4\r\n\r\n"
    ).encode()


def tls(port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))


def raw_post(
    port: int,
    path: str,
    length: int,
    headers: dict[str, str],
    first: bytes,
    *,
    then_per_s: int = 0,
    wait_s: float = 15.0,
) -> tuple[int, bytes, int]:
    """POST with ``Content-Length: length``, sending ``first`` and then ``then_per_s`` bytes
    a second (0: nothing more) until an answer comes; returns its status, its body and the
    body bytes sent before it came. Raises TimeoutError when none came in ``wait_s``."""
    sock = tls(port)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
    head += f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode() + first)
    sent = len(first)
    deadline = time.monotonic() + wait_s
    with contextlib.closing(sock):
        while time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable or sock.pending():
                sock.settimeout(0)
                try:
                    first_bytes = sock.recv(65536)
                except ssl.SSLWantReadError:  # a TLS record that is no data (a ticket)
                    first_bytes = None
                sock.settimeout(30)
                if first_bytes is not None:
                    return (*_answer(sock, first_bytes), sent)
            if then_per_s and sent < length:
                piece = b"x" * max(1, then_per_s // 10)
                with contextlib.suppress(OSError):
                    sock.sendall(piece)
                    sent += len(piece)
        raise TimeoutError(f"no answer in {wait_s} s ({sent:,} body bytes sent)")


def _answer(sock: ssl.SSLSocket, data: bytes) -> tuple[int, bytes]:
    if not data:
        return 0, b""  # closed without an answer
    sock.settimeout(5)
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        if not got:
            break
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    with contextlib.suppress(OSError):
        while length and len(body) < int(length.group(1)):
            got = sock.recv(65536)
            if not got:
                break
            body += got
    return status, body


def upload_with_curl(base: str, key: str, path: Path, *extra: str) -> dict:
    out = subprocess.run(
        ["curl", "-sS", "-k", *extra, "-H", f"Authorization: Bearer {key}",
         "-F", f"file=@{path};type=video/mp4", "-w", "\n%{http_code} %{http_version}",
         f"{base}/v1/uploads"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    body, _, tail = out.stdout.rpartition("\n")
    status, version = tail.split()
    return {"status": int(status), "http": version, "json": json.loads(body)}


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the proxy exited: {log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the proxy did not listen: {log.read_text(errors='replace')[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def replaced(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"docs/deploy.md changed: {old!r} is not there once"
    return text.replace(old, new)


@pytest.fixture(scope="module")
def vedit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VeditServer]:
    """vedit as docs/deploy.md runs it behind a proxy; a 1 s grace to keep the test short."""
    env = {"VEDIT_HTTP_MAX_CONNECTIONS_PER_CLIENT": "0", "VEDIT_UPLOAD_RATE_GRACE_S": "1"}
    srv = VeditServer(tmp_path_factory.mktemp("vedit-behind-proxy"), env, workers=0).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def upload_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return big_video(tmp_path_factory.mktemp("big") / "big.mp4", UPLOAD_BYTES)


def check_behind(port: int, vedit: VeditServer, upload_file: Path, *curl_args: str) -> None:
    """What docs/deploy.md says of uploads behind either proxy."""
    base = f"https://127.0.0.1:{port}"
    # The largest upload is stored (the old 2 MB cap refused it).
    got = upload_with_curl(base, vedit.key, upload_file, *curl_args)
    assert got["status"] == 200, got
    assert got["json"]["bytes"] == UPLOAD_BYTES and got["json"]["kind"] == "video"
    # No key: vedit's 401 at the headers, long before the 50 MB body is sent at 2 MB/s.
    # (Caddy passes such an answer on only once the client sends more of its body.)
    status, body, sent = raw_post(
        port, "/v1/uploads", 50_000_000, {}, form_head(), then_per_s=2_000_000
    )
    assert status == 401 and json.loads(body)["code"], body
    assert sent < 5_000_000
    # A trickle (a real MP4's start, then 2 KB/s): vedit's 408 after its 1 s grace.
    with upload_file.open("rb") as f:
        start = form_head() + f.read(4096)
    t = time.monotonic()
    status, body, sent = raw_post(
        port, "/v1/uploads", 10_000_000, vedit.headers(), start, then_per_s=2000
    )
    assert status == 408 and b"VEDIT_UPLOAD_MIN_RATE_BPS" in body, body
    assert time.monotonic() - t < 10


# --- nginx ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, vedit: VeditServer) -> Iterator[int]:
    """nginx running docs/deploy.md's configuration in front of ``vedit``; its HTTPS port."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else ""
    )
    if not binary:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: no certificate for the test")
    d = tmp_path_factory.mktemp("nginx")
    os.chmod(d, 0o777)  # nginx's workers (nobody, when started by root) write temp files here
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=api.example.com", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    http_port, https_port = free_port(), free_port()
    conf = block("nginx")
    conf = replaced(conf, "listen 80;", f"listen 127.0.0.1:{http_port};")
    conf = replaced(conf, "listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    conf = replaced(conf, "server 127.0.0.1:8000;", f"server 127.0.0.1:{vedit.port};")
    conf = replaced(
        conf, "/etc/letsencrypt/live/api.example.com/fullchain.pem", str(d / "cert.pem")
    )
    conf = replaced(conf, "/etc/letsencrypt/live/api.example.com/privkey.pem", str(d / "key.pem"))
    temp = "".join(
        f"    {name}_temp_path {d / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (d / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"pid {d / 'nginx.pid'};\nerror_log {d / 'error.log'} info;\nworker_processes 1;\n"
        + "events { worker_connections 1024; }\n"
        + f"http {{\n    access_log off;\n{temp}{conf}}}\n"
    )
    cmd = [binary, "-p", str(d), "-c", str(d / "nginx.conf")]
    checked = subprocess.run([*cmd, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
    proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(https_port, proc, d / "error.log")
        yield https_port
    finally:
        stop(proc)


def test_uploads_pass_nginx_streamed_with_vedits_own_checks(nginx, vedit, upload_file) -> None:
    check_behind(nginx, vedit, upload_file)
    got = upload_with_curl(f"https://127.0.0.1:{nginx}", vedit.key, upload_file, "--http2")
    assert got["status"] == 200 and got["http"] == "2", got
    # Declared over vedit's cap but within nginx's: vedit's own JSON 413 at the headers.
    status, body, sent = raw_post(
        nginx, "/v1/uploads", 100_589_825, vedit.headers(), form_head(), then_per_s=2_000_000
    )
    assert status == 413 and json.loads(body)["code"], body
    assert sent < 5_000_000


def test_dashscope_uploads_reach_vedit_and_other_bodies_keep_their_cap(nginx, vedit) -> None:
    # 3 MB to DashScope's route: over the 2m of other paths, so only its location lets
    # it reach vedit, which refuses the form without a policy in DashScope's dialect.
    fields = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="key"\r\n\r\nx.mp4\r\n'
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    body = fields.encode() + form_head() + bytes(3_000_000) + tail
    status, answer, _ = raw_post(nginx, "/api/v1/uploads", len(body), {}, body)
    assert status in (400, 403), answer
    assert set(json.loads(answer)) >= {"code", "message", "request_id"}
    # A 1.5 MiB create: through nginx's 2m, vedit's JSON 413.
    r = httpx.post(
        f"https://127.0.0.1:{nginx}/v1/video/generations",
        content=b"{" + b" " * (3 << 19) + b"}",
        headers={**vedit.headers(), "Content-Type": "application/json"},
        verify=False,
    )
    assert r.status_code == 413 and r.json()["code"], r.text


# --- Caddy ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def caddy(tmp_path_factory: pytest.TempPathFactory, vedit: VeditServer) -> Iterator[int]:
    """Caddy running docs/deploy.md's Caddyfile in front of ``vedit`` (``tls internal`` on
    a loopback port); its HTTPS port."""
    binary = shutil.which("caddy")
    if not binary:
        pytest.skip("Caddy is not installed (Debian 12: apt-get install caddy)")
    d = tmp_path_factory.mktemp("caddy")
    https_port = free_port()
    conf = block("caddyfile")
    conf = replaced(
        conf,
        "{\n\tservers {",
        f"{{\n\tadmin off\n\tskip_install_trust\n\tauto_https disable_redirects\n"
        f"\thttp_port {free_port()}\n\thttps_port {https_port}\n\tservers {{",
    )
    conf = replaced(conf, "api.example.com {", f"https://127.0.0.1:{https_port} {{\n\ttls internal")
    conf = replaced(
        conf, "reverse_proxy 127.0.0.1:8000 {", f"reverse_proxy 127.0.0.1:{vedit.port} {{"
    )
    (d / "Caddyfile").write_text(conf)
    env = {**os.environ, "HOME": str(d), "XDG_DATA_HOME": str(d), "XDG_CONFIG_HOME": str(d)}
    cmd = ["--config", str(d / "Caddyfile"), "--adapter", "caddyfile"]
    checked = subprocess.run([binary, "validate", *cmd], capture_output=True, text=True, env=env)
    assert checked.returncode == 0, checked.stderr
    assert "Valid configuration" in checked.stdout + checked.stderr
    log = d / "caddy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "run", *cmd], stdout=out, stderr=out, env=env)
    try:
        wait_for_port(https_port, proc, log)
        yield https_port
    finally:
        stop(proc)


def test_uploads_pass_caddy_streamed_with_vedits_own_checks(caddy, vedit, upload_file) -> None:
    check_behind(caddy, vedit, upload_file)
