"""The ``dashscope`` engine: the real model, relayed to a DashScope-compatible upstream.

Instead of editing on this machine, the worker (after fetching and checking the
media here, so a bad input fails at once and is never billed upstream)
submits the task to the upstream's DashScope dialect, polls it with backoff
and jitter, and copies the finished video into vedit's storage as soon as it
exists (the upstream's link expires); the worker then checks the copy like
any output before the task succeeds.

The engine is asynchronous: one worker process follows many upstream tasks at
once, each as a coroutine on one ``httpx.AsyncClient`` (``runtime/relay.py``
claims and follows them); what it needs from the task (progress, the pauses
that a cancel or a stop cuts short) comes in as a :class:`Pace`.

- Throttling (429), 5xx and broken connections are retried with backoff and
  jitter (``Retry-After`` is honoured) until ``VEDIT_UPSTREAM_DEADLINE_S``;
- another 4xx, or the upstream task ``FAILED``/``CANCELED``/``UNKNOWN``, ends the task
  with the upstream's code and message;
- cancelling the vedit task cancels the upstream one (DashScope cancels only a
  task that is still ``PENDING``; a running one is billed);
- the upstream task id is kept in the task's plan, so a task retried after a
  worker restart resumes polling it instead of paying twice;
- the key (``VEDIT_UPSTREAM_API_KEY``) travels only in the Authorization header:
  it is never logged, never in an error message, never in task data.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from vedit import MODEL_NAME
from vedit.errors import Kind, TaskAborted, TaskFailure
from vedit.options import Options

log = logging.getLogger("vedit.relay")

CREATE_PATH = "/services/aigc/video-generation/video-synthesis"
RETRY_FIRST_S = 1.0  # first backoff of a retried call (doubling, full jitter)
RETRY_MAX_S = 30.0


class UpstreamFailed(TaskFailure, kind=Kind.UPSTREAM_FAILED, code="InternalError.Upstream"):
    """The upstream refused the task or its task failed: its code and message, as it said."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code  # type: ignore[misc]


@dataclass(frozen=True)
class RelayJob:
    """What the upstream needs: the request as the client made it (the seed as drawn)."""

    task_id: str
    prompt: str
    media: list[dict[str, str]]
    parameters: dict[str, Any]
    upstream_task_id: str | None = None  # set when resuming a task already submitted


class Pace(Protocol):
    """What the engine needs from the task it follows (the worker's lease of it)."""

    def progress(self, percent: int) -> None:
        """Record progress; raises TaskAborted once the task was cancelled or the worker stops."""

    async def wait(self, seconds: float) -> None:
        """Sleep; raises TaskAborted as soon as the task is cancelled or the worker stops."""


Copy = Callable[[str, Path], Awaitable[None]]  # copy(url, dest): the upstream's video, kept here
Wait = Callable[[float], Awaitable[None]]

# Connections to the upstream, shared by every task a worker process follows. Few: httpcore
# looks at each pooled connection at every call (half the loop's time at 32), and 16 carry
# 50-150 calls a second at DashScope's round trips: 500 tasks polled every 2-15 s.
MAX_CONNECTIONS = 16


@dataclass(frozen=True)
class RelayOptions(Options):
    """The upstream and the pace of following it (the ``VEDIT_UPSTREAM_*`` settings)."""

    upstream_base_url: str
    upstream_api_key: SecretStr
    upstream_poll_s: float
    upstream_poll_max_s: float
    upstream_deadline_s: float


class Upstream:
    """An asynchronous HTTP client for a DashScope-compatible API, with retries on what is
    temporary. One serves every task a worker process follows."""

    def __init__(self, options: RelayOptions) -> None:
        self.base = options.upstream_base_url.rstrip("/")
        self.host = urlsplit(self.base).netloc
        key = options.upstream_api_key.get_secret_value()
        self.http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            # A call waits for a free connection as long as it takes (pool=None): many
            # followed tasks share MAX_CONNECTIONS, and each call has its own timeouts.
            timeout=httpx.Timeout(30.0, connect=10.0, pool=None),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            ),
        )
        # Calls wait here for a connection, not in httpcore's pool, whose bookkeeping looks
        # at every waiting request each time a connection frees up.
        self._calls = asyncio.Semaphore(MAX_CONNECTIONS)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def create(self, body: dict[str, Any], deadline: float, wait: Wait) -> dict[str, Any]:
        headers = {"X-DashScope-Async": "enable"}
        return await self._call("POST", CREATE_PATH, deadline, wait, json=body, headers=headers)

    async def get(self, upstream_id: str, deadline: float, wait: Wait) -> dict[str, Any]:
        return await self._call("GET", f"/tasks/{upstream_id}", deadline, wait)

    async def cancel(self, upstream_id: str) -> None:
        """Best effort: a task the upstream already runs cannot be cancelled there."""
        try:
            async with self._calls:
                r = await self.http.post(f"{self.base}/tasks/{upstream_id}/cancel")
            if r.status_code != 200:
                log.info(
                    "upstream task %s not cancelled: %s %s", upstream_id, r.status_code, _said(r)
                )
        except httpx.HTTPError as exc:
            log.warning("upstream task %s not cancelled: %s", upstream_id, type(exc).__name__)

    async def _call(
        self, method: str, path: str, deadline: float, wait: Wait, **kw: Any
    ) -> dict[str, Any]:
        """One call, retried on 429, 5xx and broken connections until ``deadline``;
        ``wait(seconds)`` pauses between tries (and may raise TaskAborted)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._calls:
                    r = await self.http.request(method, f"{self.base}{path}", **kw)
            except httpx.HTTPError as exc:
                problem, pause_at_least = f"{type(exc).__name__} talking to {self.host}", None
            else:
                if r.status_code == 200:
                    try:
                        return dict(r.json())
                    except (ValueError, TypeError):
                        raise UpstreamFailed(
                            f"the upstream {self.host} answered {method} {path} with a body that "
                            f"is not a JSON object: {r.text[:200]!r}"
                        ) from None
                code, message = _said(r)
                if r.status_code != 429 and r.status_code < 500:
                    raise UpstreamFailed(
                        f"the upstream refused the task ({r.status_code} {code}): {message}",
                        code or None,
                    )
                problem, pause_at_least = f"{r.status_code} {code}: {message}", _retry_after(r)
            backoff = random.uniform(0, min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempt - 1)))
            pause = max(backoff, pause_at_least or 0.0)
            if time.monotonic() + pause > deadline:
                raise UpstreamFailed(
                    f"the upstream {self.host} kept failing for {attempt} tries until the "
                    f"deadline: {problem}",
                    "Throttling.RateQuota" if problem.startswith("429") else None,
                )
            log.info(
                "upstream %s %s: %s; retry %d in %.1f s", method, path, problem, attempt, pause
            )
            await wait(pause)


def _said(r: httpx.Response) -> tuple[str, str]:
    """The upstream's error code and message (DashScope's body), or what there is."""
    try:
        body = r.json()
    except ValueError:
        return "", r.text[:200]
    if not isinstance(body, dict):
        return "", str(body)[:200]
    return str(body.get("code") or ""), str(body.get("message") or "")[:500]


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class RelayEngine:
    """Engine ``dashscope``: the upstream model edits; vedit validates, relays and keeps."""

    name = "dashscope"
    kind = "relay"
    operations: frozenset[str] = frozenset()

    Options = RelayOptions

    def __init__(self, options: RelayOptions) -> None:
        if not options.upstream_api_key.get_secret_value():
            raise ValueError("engine dashscope needs VEDIT_UPSTREAM_API_KEY")
        self.options = options
        self.upstream = Upstream(options)

    def why_not(self, operation: str) -> str:
        return "engine dashscope relays the prompt to the upstream model as it is"

    async def run(
        self,
        job: RelayJob,
        pace: Pace,
        copy: Copy,
        dest: Path,
        on_submitted: Callable[[str], Awaitable[None]],
        was_cancelled: Callable[[], Awaitable[bool]],
    ) -> str:
        """Relay ``job``; the finished video is copied to ``dest`` with ``copy(url, dest)``.

        ``on_submitted(upstream_id)`` records the upstream task id; ``was_cancelled()``
        says whether the client cancelled (then the upstream task is cancelled too; a
        worker that merely stops leaves it running, to be resumed). Returns the id.
        """
        s = self.options
        deadline = time.monotonic() + s.upstream_deadline_s
        upstream_id = job.upstream_task_id
        if upstream_id is None:
            body = {
                "model": MODEL_NAME,
                "input": {"prompt": job.prompt, "media": job.media},
                "parameters": job.parameters,
            }
            pace.progress(12)
            answer = await self.upstream.create(body, deadline, pace.wait)
            upstream_id = str((answer.get("output") or {}).get("task_id") or "")
            if not upstream_id:
                raise UpstreamFailed("the upstream answered the create without a task id")
            await on_submitted(upstream_id)
        try:
            await self._follow(upstream_id, pace, copy, dest, deadline)
        except TaskAborted:
            if await was_cancelled():
                await self.upstream.cancel(upstream_id)
            raise
        except UpstreamFailed as exc:
            if exc.code == "Upstream.Timeout":
                await self.upstream.cancel(upstream_id)
            raise
        return upstream_id

    async def _follow(
        self, upstream_id: str, pace: Pace, copy: Copy, dest: Path, deadline: float
    ) -> None:
        s = self.options
        interval = s.upstream_poll_s
        expired_links = 0
        pace.progress(15)  # the upstream's state as progress: 15 pending there, 50 running
        while True:
            answer = await self.upstream.get(upstream_id, deadline, pace.wait)
            out = answer.get("output") or {}
            status = out.get("task_status")
            if status == "SUCCEEDED":
                url = out.get("video_url")
                if not url:
                    raise UpstreamFailed(
                        f"upstream task {upstream_id} succeeded without a video_url"
                    )
                pace.progress(90)
                try:
                    await copy(url, dest)
                    return
                except TaskFailure as exc:
                    # The link may have expired between the poll and the copy: ask again once.
                    expired_links += 1
                    if expired_links > 1:
                        raise UpstreamFailed(
                            f"the result of upstream task {upstream_id} could not be copied: "
                            f"{exc.message}"
                        ) from None
                    continue
            if status in ("FAILED", "CANCELED", "UNKNOWN"):
                raise UpstreamFailed(
                    f"upstream task {upstream_id} ended {status}: "
                    f"{out.get('message') or 'no message'}",
                    out.get("code") or f"Upstream.{status.title()}",
                )
            pace.progress(50 if status == "RUNNING" else 15)
            if time.monotonic() > deadline:
                raise UpstreamFailed(
                    f"upstream task {upstream_id} was still {status} after "
                    f"{s.upstream_deadline_s:.0f} s (VEDIT_UPSTREAM_DEADLINE_S)",
                    "Upstream.Timeout",
                )
            await pace.wait(random.uniform(0.5, 1.0) * interval)
            interval = min(s.upstream_poll_max_s, interval * 2)
