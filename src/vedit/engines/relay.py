"""The ``dashscope`` engine: the real model, relayed to a DashScope-compatible upstream.

Instead of editing on this machine, the worker (after fetching and checking the
media here, so a bad input fails at once and is never billed upstream)
submits the task to the upstream's DashScope dialect, polls it with backoff
and jitter, and copies the finished video into vedit's storage as soon as it
exists (the upstream's link expires); the worker then checks the copy like
any output before the task succeeds.

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

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from vedit import MODEL_NAME
from vedit.config import Settings
from vedit.errors import TaskAborted, TaskFailure

log = logging.getLogger("vedit.relay")

CREATE_PATH = "/services/aigc/video-generation/video-synthesis"
RETRY_FIRST_S = 1.0  # first backoff of a retried call (doubling, full jitter)
RETRY_MAX_S = 30.0


class UpstreamFailed(TaskFailure):
    """The upstream refused the task or its task failed: its code and message, as it said."""

    code = dashscope_code = "InternalError.Upstream"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = self.dashscope_code = code  # type: ignore[misc]


@dataclass(frozen=True)
class RelayJob:
    """What the upstream needs: the request as the client made it (the seed as drawn)."""

    task_id: str
    prompt: str
    media: list[dict[str, str]]
    parameters: dict[str, Any]
    upstream_task_id: str | None = None  # set when resuming a task already submitted


# progress(percent) may raise TaskAborted (the task was cancelled, or the worker stops).
Progress = Callable[[int], None]
Sleep = Callable[[float], None]


class Upstream:
    """An HTTP client for a DashScope-compatible API, with retries on what is temporary."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.upstream_base_url.rstrip("/")
        key = settings.upstream_api_key.get_secret_value()
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=httpx.Timeout(30.0, connect=10.0),
        )
        self.host = urlsplit(self.base).netloc

    def create(self, body: dict[str, Any], deadline: float, sleep: Sleep) -> dict[str, Any]:
        headers = {"X-DashScope-Async": "enable"}
        return self._call("POST", CREATE_PATH, deadline, sleep, json=body, headers=headers)

    def get(self, upstream_id: str, deadline: float, sleep: Sleep) -> dict[str, Any]:
        return self._call("GET", f"/tasks/{upstream_id}", deadline, sleep)

    def cancel(self, upstream_id: str) -> None:
        """Best effort: a task the upstream already runs cannot be cancelled there."""
        try:
            r = self.http.post(f"{self.base}/tasks/{upstream_id}/cancel")
            if r.status_code != 200:
                log.info(
                    "upstream task %s not cancelled: %s %s", upstream_id, r.status_code, _said(r)
                )
        except httpx.HTTPError as exc:
            log.warning("upstream task %s not cancelled: %s", upstream_id, type(exc).__name__)

    def _call(
        self, method: str, path: str, deadline: float, sleep: Sleep, **kw: Any
    ) -> dict[str, Any]:
        """One call, retried on 429, 5xx and broken connections until ``deadline``;
        ``sleep(seconds)`` waits between tries (and may raise TaskAborted)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                r = self.http.request(method, f"{self.base}{path}", **kw)
            except httpx.HTTPError as exc:
                problem, wait = f"{type(exc).__name__} talking to {self.host}", None
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
                problem, wait = f"{r.status_code} {code}: {message}", _retry_after(r)
            backoff = random.uniform(0, min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempt - 1)))
            pause = max(backoff, wait or 0.0)
            if time.monotonic() + pause > deadline:
                raise UpstreamFailed(
                    f"the upstream {self.host} kept failing for {attempt} tries until the "
                    f"deadline: {problem}",
                    "Throttling.RateQuota" if problem.startswith("429") else None,
                )
            log.info(
                "upstream %s %s: %s; retry %d in %.1f s", method, path, problem, attempt, pause
            )
            sleep(pause)


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

    def __init__(self, settings: Settings) -> None:
        if not settings.upstream_api_key.get_secret_value():
            raise ValueError("engine dashscope needs VEDIT_UPSTREAM_API_KEY")
        self.settings = settings
        self.upstream = Upstream(settings)

    def why_not(self, operation: str) -> str:
        return "engine dashscope relays the prompt to the upstream model as it is"

    def run(
        self,
        job: RelayJob,
        progress: Progress,
        fetch: Callable[[str, Path], None],
        dest: Path,
        on_submitted: Callable[[str], None],
        was_cancelled: Callable[[], bool],
    ) -> str:
        """Relay ``job``; the finished video is copied to ``dest`` with ``fetch(url, dest)``.

        ``on_submitted(upstream_id)`` records the upstream task id; ``was_cancelled()``
        says whether the client cancelled (then the upstream task is cancelled too; a
        worker that merely stops leaves it running, to be resumed). Returns the id.
        """
        s = self.settings
        deadline = time.monotonic() + s.upstream_deadline_s
        upstream_id = job.upstream_task_id
        if upstream_id is None:
            body = {
                "model": MODEL_NAME,
                "input": {"prompt": job.prompt, "media": job.media},
                "parameters": job.parameters,
            }
            answer = self.upstream.create(body, deadline, lambda t: _wait(t, progress, 12))
            upstream_id = str((answer.get("output") or {}).get("task_id") or "")
            if not upstream_id:
                raise UpstreamFailed("the upstream answered the create without a task id")
            on_submitted(upstream_id)
        try:
            self._follow(upstream_id, progress, fetch, dest, deadline)
        except TaskAborted:
            if was_cancelled():
                self.upstream.cancel(upstream_id)
            raise
        except UpstreamFailed as exc:
            if exc.code == "Upstream.Timeout":
                self.upstream.cancel(upstream_id)
            raise
        return upstream_id

    def _follow(
        self,
        upstream_id: str,
        progress: Progress,
        fetch: Callable[[str, Path], None],
        dest: Path,
        deadline: float,
    ) -> None:
        s = self.settings
        interval = s.upstream_poll_s
        expired_links = 0
        percent = 15  # the upstream's state as progress: 15 pending there, 50 running

        def pause(seconds: float) -> None:
            _wait(seconds, progress, percent)

        while True:
            answer = self.upstream.get(upstream_id, deadline, pause)
            out = answer.get("output") or {}
            status = out.get("task_status")
            if status == "SUCCEEDED":
                url = out.get("video_url")
                if not url:
                    raise UpstreamFailed(
                        f"upstream task {upstream_id} succeeded without a video_url"
                    )
                progress(90)
                try:
                    fetch(url, dest)
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
            percent = 50 if status == "RUNNING" else 15
            progress(percent)
            if time.monotonic() > deadline:
                raise UpstreamFailed(
                    f"upstream task {upstream_id} was still {status} after "
                    f"{s.upstream_deadline_s:.0f} s (VEDIT_UPSTREAM_DEADLINE_S)",
                    "Upstream.Timeout",
                )
            pause(random.uniform(0.5, 1.0) * interval)
            interval = min(s.upstream_poll_max_s, interval * 2)


def _wait(seconds: float, progress: Progress, percent: int) -> None:
    """Sleep, but call ``progress`` every 0.25 s so a cancel or a stop ends the wait."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.25, left))
        progress(percent)
