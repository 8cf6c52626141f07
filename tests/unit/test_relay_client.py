"""The relay's reading of upstream answers: Retry-After and DashScope's error body."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest

from vedit.config import Settings
from vedit.engines.relay import RelayEngine, _retry_after, _said


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert _retry_after(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
    later = _retry_after(httpx.Response(429, headers={"Retry-After": formatdate(time.time() + 60)}))
    assert later is not None and 55 < later <= 60
    assert _retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert _retry_after(httpx.Response(429)) is None


def test_the_upstreams_code_and_message() -> None:
    body = {"code": "InvalidParameter", "message": "bad media", "request_id": "r"}
    assert _said(httpx.Response(400, json=body)) == ("InvalidParameter", "bad media")
    assert _said(httpx.Response(502, text="<html>bad gateway</html>")) == (
        "",
        "<html>bad gateway</html>",
    )
    assert _said(httpx.Response(500, json=["odd"])) == ("", "['odd']")


def test_the_relay_needs_an_upstream_key() -> None:
    with pytest.raises(ValueError, match="VEDIT_UPSTREAM_API_KEY"):
        RelayEngine(RelayEngine.Options.of(Settings(engine="dashscope")))


def test_the_key_is_a_secret_in_settings() -> None:
    s = Settings(upstream_api_key="sk-hidden-123")
    assert "sk-hidden-123" not in repr(s) and "sk-hidden-123" not in str(s.model_dump())
