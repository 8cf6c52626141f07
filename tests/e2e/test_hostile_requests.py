"""No client input gets a 500: a corpus of hostile requests against a live server.

Both dialects, with and without a key; bodies, URLs, signed-file queries, headers,
paths and methods. After every hostile request a valid create must still get its
200, and at the end the server is healthy and logged no traceback.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import Request

from conftest import MODEL, body

VIDEO, IMAGE = "https://example.com/source.mp4", "https://example.com/cloth.webp"
ANYFAST = "/v1/video/generations"
DASHSCOPE = "/api/v1/services/aigc/video-generation/video-synthesis"
ASYNC = {"X-DashScope-Async": "enable"}


@dataclass
class Hostile:
    name: str
    method: str
    path: str
    content: bytes | None = None
    headers: dict[str, str | bytes] = field(default_factory=dict)
    key: bool = True


def _body_with(replace: str, by: str) -> bytes:
    text = json.dumps(body(VIDEO, IMAGE, "p"))
    assert replace in text, replace
    return text.replace(replace, by, 1).encode()


def _params(inner: str) -> bytes:
    """The valid body with ``"parameters": {<inner>}`` spelled as raw JSON text."""
    return _body_with('"input"', '"parameters": {' + inner + '}, "input"')


def _deep(levels: int) -> bytes:
    return b'{"model": "%s", "input": ' % MODEL.encode() + b"[" * levels + b"]" * levels + b"}"


def corpus() -> list[Hostile]:
    bodies: list[tuple[str, bytes]] = [
        ("empty body", b""),
        ("null", b"null"),
        ("a list", b"[]"),
        ("a string", b'"x"'),
        ("a number", b"42"),
        ("truncated JSON", b'{"model": '),
        ("trailing garbage", json.dumps(body(VIDEO, IMAGE)).encode() + b"}}"),
        ("not UTF-8", b'{"model": "\xff\xfe"}'),
        ("UTF-16", json.dumps(body(VIDEO, IMAGE)).encode("utf-16")),
        ("BOM first", b"\xef\xbb\xbf" + json.dumps(body(VIDEO, IMAGE)).encode()),
        ("form data", b"model=happyhorse&prompt=x"),
        ("a lone surrogate as the body", b'"\\ud800"'),
        ("17 levels", _deep(15)),
        ("100 levels", _deep(98)),
        ("5,000 levels", _deep(5000)),
        ("100,000 levels", _deep(100_000)),
        ("duplicate model", b'{"model": "%s", "model": "x"}' % MODEL.encode()),
        ("duplicate prompt", _body_with('"prompt": "p"', '"prompt": "p", "prompt": "q"')),
        ("duplicate url", _body_with(f'"url": "{VIDEO}"', f'"url": "{VIDEO}", "url": "x"')),
        ("NaN seed", _params('"seed": NaN')),
        ("Infinity seed", _params('"seed": Infinity')),
        ("-Infinity seed", _params('"seed": -Infinity')),
        ("1e999 seed", _params('"seed": 1e999')),
        ("NaN prompt", _body_with('"p"', "NaN")),
        ("NaN unknown field", _body_with('"input"', '"extra": NaN, "input"')),
        ("-0.0 watermark", _params('"watermark": -0.0')),
    ]
    for digits in (65, 1000, 4300, 4301, 100_000):
        big = b"9" * digits
        bodies.append(
            (
                f"{digits}-digit seed",
                _params('"seed": ' + big.decode()),
            )
        )
        bodies.append((f"{digits}-digit prompt", _body_with('"p"', big.decode())))
    bodies.append(
        ("10^5-digit unknown field", _body_with('"input"', '"x": %s, "input"' % ("9" * 100_000)))
    )
    bodies.append(
        (
            "float with 5,000 digits",
            _body_with('"input"', '"parameters": {"seed": 0.%s}, "input"' % ("1" * 5000)),
        )
    )
    for field_name, old in (
        ("model", f'"{MODEL}"'),
        ("prompt", '"p"'),
        ("type", '"video"'),
        ("url", f'"{VIDEO}"'),
    ):
        for escape in ("\\ud800", "\\udfff", "\\u0000", "\\u001b", "\\u007f", "\\u0085", "\\ud83d"):
            bodies.append((f"{escape} in {field_name}", _body_with(old, old[:-1] + escape + '"')))
    for escape in ("\\ud800", "\\u0000"):
        bodies.append(
            (f"{escape} in a key", _body_with('"input"', '"k' + escape + '": 1, "input"'))
        )
        bodies.append(
            (
                f"{escape} in resolution",
                _params('"resolution": "720P' + escape + '"'),
            )
        )
        bodies.append(
            (
                f"{escape} in audio_setting",
                _params('"audio_setting": "' + escape + '"'),
            )
        )
    urls = [
        "http://[::1/v.mp4",
        "http://::1]/v.mp4",
        "http://[::1]]/v.mp4",
        "http://[zz::1]/v",
        "http://a.com:0/v",
        "http://a.com:65536/v",
        "http://a.com:99999999999999999999/v",
        "http://a.com:-1/v",
        "http://a.com:abc/v",
        "http://a.com:\u0668\u0660/v",
        "http://a b.com/v",
        "http://a\tb.com/v",
        "http://a\u3000b.com/v",
        "http://a..com/v",
        "http://.a.com/v",
        "http://a.com../v",
        "http://user:pw@a.com/v",
        "http://a.com\\@evil/v",
        "http://%31%32%37.0.0.1/v",
        "http://a.com\u0000/v",
        "http://" + "a" * 64 + ".com/v",
        "http:///v",
        "http:/a.com/v",
        "//a.com/v",
        "javascript:alert(1)",
        "data:text/plain,x",
        "file:///etc/passwd",
        "ftp://a.com/v",
        " http://a.com/v",
        "http://a.com/v ",
        "http://" + "a." * 200 + "com/v",
        "https://a.com/" + "x" * 3000,
        "http://\udcff.com/v",
        "http://xn--/v",
        "http://-.com/v\u0085",
    ]
    for url in urls:
        text = json.dumps(body(url, IMAGE)).encode("utf-8", "surrogatepass")
        bodies.append((f"url {url[:40]!r}", text))
    requests = [Hostile(f"{name} (anyfast)", "POST", ANYFAST, data) for name, data in bodies]
    requests += [
        Hostile(f"{name} (dashscope)", "POST", DASHSCOPE, data, dict(ASYNC))
        for name, data in bodies
    ]
    requests += [
        Hostile("body over 1 MiB", "POST", ANYFAST, b"{" + b" " * (1 << 20) + b"}"),
        Hostile("no async header", "POST", DASHSCOPE, json.dumps(body(VIDEO, IMAGE)).encode()),
        Hostile(
            "async header \\x7f", "POST", DASHSCOPE, b"{}", {"X-DashScope-Async": "en\x7fable"}
        ),
        Hostile("no key, bad body", "POST", ANYFAST, b"\xff", key=False),
        Hostile("no key, dashscope", "POST", DASHSCOPE, _deep(5000), dict(ASYNC), key=False),
        Hostile(
            "Basic auth",
            "GET",
            "/v1/video/generations/x",
            headers={"Authorization": "Basic Zm9vOmJhcg=="},
            key=False,
        ),
        Hostile(
            "4 KB key",
            "GET",
            "/v1/video/generations/x",
            headers={"Authorization": "Bearer " + "k" * 4096},
            key=False,
        ),
        Hostile(
            "key with latin-1",
            "GET",
            "/api/v1/tasks/x",
            headers={
                "Authorization": "Bearer vk-\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9".encode("latin-1")
            },
            key=False,
        ),
        Hostile("content-type xml", "POST", ANYFAST, b"<a/>", {"Content-Type": "application/xml"}),
        Hostile(
            "expect 100",
            "POST",
            ANYFAST,
            json.dumps(body(VIDEO, "ftp://x")).encode(),
            {"Expect": "100-continue"},
        ),
    ]
    for query in (
        "",
        "?expires=",
        "?expires=abc&signature=x",
        "?expires=%C2%B2&signature=x",
        "?expires=%D9%A1%D9%A2&signature=x",
        "?expires=" + "9" * 5000 + "&signature=x",
        "?expires=-1&signature=x",
        "?expires=1e9&signature=x",
        "?expires=99999999999&signature=%FF",
        "?expires=99999999999&signature=" + "\u00e9" * 64,
        "?expires=99999999999&signature=" + "0" * 5000,
        "?expires=1&expires=2&signature=x",
        "?signature=%00",
    ):
        requests.append(
            Hostile(f"files {query[:30]!r}", "GET", f"/v1/files/asyntask_x.mp4{query}", key=False)
        )
    for name in (
        "..%2Fvedit.db",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "signing.key",
        "%00.mp4",
        "%ff.mp4",
        "x" * 3000 + ".mp4",
    ):
        requests.append(
            Hostile(
                f"files name {name[:20]}",
                "GET",
                f"/v1/files/{name}?expires=99999999999&signature=0",
                key=False,
            )
        )
    for path in (
        "/api/v1/nope",
        "/api/v1/",
        "/api/v1/tasks",
        "/api/v1/tasks/%ED%A0%80",
        "/api/v1/tasks/%00",
        "/v1/video/generations/%FF%FE",
        "/v1/video/generations/" + "a" * 5000,
        "/nope",
        "/%00",
        "/v1/video/generations/asyntask_x/cancel/extra",
        "/api/v1/tasks/%ED%A0%80/cancel",
    ):
        for key in (True, False):
            requests.append(Hostile(f"GET {path[:30]} key={key}", "GET", path, key=key))
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        requests.append(Hostile(f"{method} create", method, ANYFAST))
        requests.append(Hostile(f"{method} dashscope create", method, DASHSCOPE))
    for path in (
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/v1/video/generations/x",
        "/api/v1/tasks/x",
    ):
        requests.append(Hostile(f"HEAD {path}", "HEAD", path))
    return requests


@pytest.fixture(scope="module")
def server(api_server):
    return api_server


def test_the_corpus_is_large() -> None:
    assert len(corpus()) >= 100


def test_no_hostile_request_gets_a_500_and_valid_ones_still_get_200(server) -> None:
    problems = []
    for n, h in enumerate(corpus()):
        headers = {**h.headers, **(server.headers() if h.key else {})}
        try:
            r = server.client.request(h.method, h.path, content=h.content, headers=headers)
        except httpx.HTTPError as exc:
            problems.append(f"{h.name}: {type(exc).__name__}: {exc}")
            continue
        if r.status_code >= 500:
            problems.append(f"{h.name}: {r.status_code} {r.text[:200]}")
        elif (
            r.headers.get("content-type", "").startswith("application/json") and h.method != "HEAD"
        ):
            r.json()  # every error body is JSON that parses
        if h.method == "HEAD":
            assert r.content == b"", h.name
        # A valid create in between, alternating dialects.
        path, extra = (ANYFAST, {}) if n % 2 else (DASHSCOPE, ASYNC)
        ok = server.client.post(
            path, json=body(VIDEO, IMAGE), headers={**server.headers(), **extra}
        )
        if ok.status_code != 200:
            problems.append(f"valid create after {h.name}: {ok.status_code} {ok.text[:200]}")
    assert not problems, "\n".join(problems)
    assert server.client.get("/healthz").status_code == 200
    log = server.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]


@pytest.mark.parametrize(
    ("path", "headers", "code", "shape"),
    [
        (ANYFAST, {}, "invalid_request", {"code", "message", "data"}),
        (DASHSCOPE, ASYNC, "InvalidParameter", {"code", "message", "request_id"}),
    ],
)
def test_messages_name_the_field_and_show_the_value_escaped(
    server, path, headers, code, shape
) -> None:
    cases = {
        _body_with(
            '"p"', '"a\\u0001b"'
        ): 'input.prompt holds a control character ("\\u0001" at position 1)',
        _body_with('"p"', '"\\ud800"'): 'input.prompt holds a lone surrogate ("\\ud800"',
        _body_with(
            '"input"', '"parameters": {"seed": -1}, "input"'
        ): "parameters.seed must be an integer 0..2147483647, got -1",
        _params('"seed": NaN'): "parameters.seed is NaN",
        _body_with(
            f'"url": "{VIDEO}"', '"url": "http://[::1/v"'
        ): "input.media[0].url has unbalanced [ ] around its host",
        _body_with(
            f'"url": "{VIDEO}"', '"url": "http://a.com:99999/v"'
        ): 'input.media[0].url has the port "99999"; a port is a number 1-65535',
        _body_with(
            f'"url": "{VIDEO}"', '"url": "http://u:p@a.com/v"'
        ): "input.media[0].url must not carry a user name or password",
        _body_with(
            f'"url": "{VIDEO}"', '"url": "http://a..com/v"'
        ): 'input.media[0].url has an empty label in its host "a..com"',
        _body_with(
            '"prompt": "p"', '"prompt": "p", "prompt": "q"'
        ): 'input has the key "prompt" twice',
        _deep(40): "the body is nested deeper than 16 levels",
    }
    for raw, needle in cases.items():
        r = server.client.post(path, content=raw, headers={**server.headers(), **headers})
        assert r.status_code == 400, r.text
        d = r.json()
        assert set(d) == shape and d["code"] in (code, "invalid_json", "InvalidParameter")
        assert needle in d["message"], (needle, d["message"])
    r = server.client.post(path, content=b"", headers={**server.headers(), **headers})
    assert r.status_code == 400 and r.json()["message"] == (
        "the body is empty; send the request as a JSON object"
    )
    only_video = body(VIDEO, IMAGE)
    only_video["input"]["media"] = only_video["input"]["media"][:1]
    r = server.client.post(ANYFAST, json=only_video, headers=server.headers())
    assert r.json()["message"] == (
        "input.media must hold one video and one reference_image; got only a video"
    )


def test_an_iri_is_accepted_at_create(server) -> None:
    iri = body("https://bücher.example/clip ü.mp4", "https://例え.jp/画像.png")
    r = server.create(iri)
    assert r.status_code == 200, r.text


def test_http_semantics(server) -> None:
    r = server.client.delete(ANYFAST, headers=server.headers())
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert r.json()["code"] == "method_not_allowed"
    r = server.client.put(DASHSCOPE, headers=server.headers())
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    assert r.json()["code"] == "MethodNotAllowed" and "request_id" in r.json()
    r = server.client.get("/api/v1/no/such/route", headers=server.headers())
    assert r.status_code == 404 and r.json()["code"] == "NotFound" and "request_id" in r.json()
    r = server.client.get("/no/such/route")
    assert r.status_code == 404 and r.json()["code"] == "not_found" and r.json()["data"] is None
    tid = server.create(body(VIDEO, IMAGE)).json()["task_id"]
    for path in (
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/docs",
        f"{ANYFAST}/{tid}",
        f"/api/v1/tasks/{tid}",
    ):
        get = server.client.get(path, headers=server.headers())
        head = server.client.head(path, headers=server.headers())
        assert get.status_code == head.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_a_client_that_disconnects_mid_body_is_one_log_line(server) -> None:
    for path, extra in ((ANYFAST, b""), (DASHSCOPE, b"X-DashScope-Async: enable\r\n")):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(
                b"POST "
                + path.encode()
                + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer "
                + server.key.encode()
                + b"\r\n"
                + extra
                + b"Content-Length: 5000\r\n\r\n"
                + b'{"model": '
            )
            time.sleep(0.3)
    deadline = time.monotonic() + 10
    while (
        server.log().count("disconnected before its body was read") < 2
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    log = server.log()
    assert log.count("disconnected before its body was read") == 2, log[-2000:]
    assert "Traceback" not in log


def test_500_concurrent_creates_with_10_hostile_ones_all_valid_ones_land(server) -> None:
    hostile = {
        i: raw
        for i, raw in zip(
            range(0, 500, 50),
            [
                _deep(5000),
                b'"\\ud800"',
                _body_with('"p"', '"\\ud800"'),
                b"\xff",
                _params('"seed": NaN'),
                _body_with('"p"', "9" * 5000),
                b'{"model": "%s", "model": 1}' % MODEL.encode(),
                _body_with(f'"url": "{VIDEO}"', '"url": "http://[::1/v"'),
                b"",
                _body_with('"p"', '"\\u0000"'),
            ],
            strict=True,
        )
    }

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)  # under the per-client cap (100)
        async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=60) as client:

            async def one(i: int) -> httpx.Response:
                raw = hostile.get(i, json.dumps(body(VIDEO, IMAGE, f"valid {i}")).encode())
                return await client.post(ANYFAST, content=raw, headers=server.headers())

            return await asyncio.gather(*(one(i) for i in range(500)))

    answers = asyncio.run(send_all())
    for i, r in enumerate(answers):
        assert r.status_code == (400 if i in hostile else 200), (i, r.text)
    ids = {r.json()["task_id"] for i, r in enumerate(answers) if i not in hostile}
    stored = {tid for (tid,) in server.db("select id from tasks where prompt like 'valid %'")}
    assert len(ids) == 490 and ids <= stored


def test_what_escapes_a_route_is_a_500_in_the_dialect_logged_once_on_a_live_connection(
    tmp_path, caplog
) -> None:
    """A route with a bug (added here to the real app) behind the real middleware and uvicorn."""
    import threading

    import uvicorn

    from conftest import free_port
    from vedit.api.app import create_app
    from vedit.config import Settings

    app = create_app(Settings(data_dir=tmp_path, api_key=""))

    def boom() -> None:
        raise RuntimeError("a bug that no test foresaw")

    def client_port(request: Request) -> int:
        return request.client.port

    app.add_api_route("/v1/boom", boom)
    app.add_api_route("/api/v1/boom", boom)
    app.add_api_route("/v1/client-port", client_port)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while not server.started:
                time.sleep(0.05)
            with caplog.at_level("INFO"):
                before = client.get("/v1/client-port").json()
                seed = client.get("/v1/boom")
                dash = client.get("/api/v1/boom")
                after = client.get("/v1/client-port").json()
            # One connection throughout: the 500s did not close it.
            assert before == after
        assert seed.status_code == 500 and seed.json()["code"] == "internal_error"
        assert seed.json()["data"] is None and "has been logged" in seed.json()["message"]
        assert dash.status_code == 500 and dash.json()["code"] == "InternalError"
        assert "request_id" in dash.json()
        logged = [r for r in caplog.records if r.exc_info and "boom" in r.getMessage()]
        assert len(logged) == 2 and all(r.name == "vedit.api" for r in logged)
        assert not [r for r in caplog.records if "Exception in ASGI" in r.getMessage()]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
