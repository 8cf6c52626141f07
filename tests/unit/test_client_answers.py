"""How the client reads answers that vedit itself never sends but other servers of the seed's
dialect may: no uploads route, OpenAI-style and non-JSON errors, throttling while waiting."""

from __future__ import annotations

import json

import httpx
import pytest

from vedit import ApiError, Client, Task


def _query(task_id: str, status: str, progress: str = "0%") -> dict:
    """A query answer with only the gateway's fields (no DashScope task inside)."""
    return {"code": "success", "message": "", "data": {"task_id": task_id, "status": status,
            "progress": progress, "result_url": "", "fail_reason": ""}}  # fmt: skip


def test_a_server_without_uploads_says_to_give_urls(tmp_path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 10)
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(404, json={"code": "not_found", "message": "no route", "data": None})

    transport = httpx.MockTransport(answer)
    with Client("http://seed.example", "k", transport=transport) as c, pytest.raises(ApiError) as e:
        c.create(clip, "https://cdn.example/look.jpg", "p")
    assert e.value.status == 404 and seen == ["/v1/uploads"]  # nothing was created
    assert "does not take uploads" in e.value.message and "http(s) URLs" in e.value.message


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (401, {"error": {"message": "bad token", "type": "auth", "code": ""}}, "auth", "bad token"),
        (422, {"detail": "not this"}, "http_422", "not this"),
        (502, "<html>Bad Gateway</html>", "http_502", "<html>Bad Gateway</html>"),
        (500, "", "http_500", "Internal Server Error"),
        (
            400,
            {"code": "InvalidParameter", "message": "m", "request_id": "r"},
            "InvalidParameter",
            "m",
        ),
    ],
)
def test_every_error_shape_is_one_api_error(status, body, code, message) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, dict):
            return httpx.Response(status, json=body)
        return httpx.Response(status, text=body)

    transport = httpx.MockTransport(answer)
    with Client("http://seed.example", "k", transport=transport) as c, pytest.raises(ApiError) as e:
        c.get("t1")
    assert (e.value.status, e.value.code, e.value.message) == (status, code, f"query: {message}")


def test_wait_sits_out_throttling_and_reads_gateway_only_answers() -> None:
    answers = iter(
        [
            httpx.Response(
                429,
                headers={"Retry-After": "0"},
                json={"code": "rate_limit_exceeded", "message": "slow down", "data": None},
            ),  # fmt: skip
            httpx.Response(200, json=_query("t1", "IN_PROGRESS", "40%")),
            httpx.Response(503, text="busy"),
            httpx.Response(200, json=_query("t1", "SUCCESS", "100%")),
        ]
    )
    seen: list[Task] = []
    transport = httpx.MockTransport(lambda request: next(answers))
    with Client("http://seed.example", "k", transport=transport) as c:
        done = c.wait("t1", poll=0.01, on_progress=seen.append)
    assert [t.progress for t in seen] == [40, 100]
    assert done.succeeded and done.task_status == "SUCCEEDED" and done.result_url is None


def test_the_key_goes_to_the_api_only_never_to_the_result_host(tmp_path) -> None:
    auth: dict[str, str | None] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        auth[request.url.host] = request.headers.get("authorization")
        if request.url.host == "cdn.example":
            return httpx.Response(200, content=b"mp4 bytes")
        body = _query("t1", "SUCCESS", "100%")
        body["data"]["result_url"] = "https://cdn.example/t1.mp4?sig=x"
        return httpx.Response(200, content=json.dumps(body).encode())

    with Client("http://seed.example", "secret", transport=httpx.MockTransport(answer)) as c:
        path = c.download("t1", tmp_path)
    assert path.read_bytes() == b"mp4 bytes" and path.name == "t1.mp4"
    assert auth == {"seed.example": "Bearer secret", "cdn.example": None}


def test_a_client_needs_a_key(monkeypatch) -> None:
    monkeypatch.delenv("VEDIT_API_KEY", raising=False)
    with pytest.raises(ValueError, match="no API key: pass api_key= or set VEDIT_API_KEY"):
        Client("http://seed.example")
