"""``vedit.Client`` and ``vedit.AsyncClient``: the seed's API from Python.

The clients speak only the seed's dialect — ``POST /v1/video/generations``,
``GET /v1/video/generations/{id}``, ``POST /v1/video/generations/{id}/cancel``
and the task's ``result_url`` — so they work against any server of that
dialect; local files are sent first to vedit's own ``POST /v1/uploads``. What
the server answers becomes a typed :class:`Task` or :class:`Upload`; every
error answer becomes one :class:`ApiError`. The HTTP server and the command
line live elsewhere (``api/``, ``cli_client.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from vedit import MODEL_NAME

DEFAULT_BASE_URL = "http://127.0.0.1:8000"

GATEWAY_DONE = ("SUCCESS", "FAILURE")
"""The gateway statuses a task never leaves."""

# The DashScope status each gateway status stands for, for servers that send only the latter.
_DASHSCOPE_STATUS = {
    "QUEUED": "PENDING",
    "IN_PROGRESS": "RUNNING",
    "SUCCESS": "SUCCEEDED",
    "FAILURE": "FAILED",
}
_RETRIED_WHILE_WAITING = (429, 502, 503, 504)
"""Answers that ``wait`` sits out (honouring ``Retry-After``) instead of raising."""

Source = str | os.PathLike[str]
"""A media argument: an ``http(s)://`` URL, or a local file to upload first."""


# --- errors -------------------------------------------------------------------------------


class ApiError(Exception):
    """The server answered an error, or could not be reached (``status`` 0)."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {code}: {message}" if status else message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after
        """Seconds the server asked to wait (``Retry-After``), if it did."""


class TaskFailed(Exception):
    """Raised by :meth:`Task.raise_for_failure` for a task that ended ``FAILURE``."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.code = task.code or ""
        self.message = task.message or ""
        super().__init__(f"task {task.id} {task.task_status}: {self.code}: {self.message}")


class WaitTimeout(TimeoutError):
    """``wait`` gave up before the task ended; ``task`` is the last state seen."""

    def __init__(self, task: Task, timeout: float) -> None:
        self.task, self.timeout = task, timeout
        super().__init__(
            f"task {task.id} is still {task.status} ({task.progress}%) after {timeout:g} s"
        )


class TaskNotFinished(Exception):
    """``download`` of a task that has no result yet."""

    def __init__(self, task: Task) -> None:
        self.task = task
        super().__init__(f"task {task.id} is {task.status} ({task.progress}%): no result yet")


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A task as the server last showed it; ``raw`` is its answer as sent."""

    id: str
    status: str
    """The gateway's word: ``QUEUED``, ``IN_PROGRESS``, ``SUCCESS`` or ``FAILURE``."""
    task_status: str
    """DashScope's: ``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``CANCELED``, ``UNKNOWN``."""
    progress: int
    result_url: str | None = None
    code: str | None = None
    """On failure, the task's code (``InvalidFile.Duration``, ``Canceled``...)."""
    message: str | None = None
    """On failure, what went wrong, with the limit and the value."""
    edit_plan: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    submit_time: int = 0
    start_time: int = 0
    finish_time: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """The task has ended (succeeded, failed or cancelled)."""
        return self.status in GATEWAY_DONE

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"

    @property
    def failed(self) -> bool:
        """Ended without a video: failed or cancelled."""
        return self.status == "FAILURE"

    def raise_for_failure(self) -> Task:
        """This task, or :class:`TaskFailed` with its code and message if it failed."""
        if self.failed:
            raise TaskFailed(self)
        return self

    @classmethod
    def from_query(cls, body: Any) -> Task:
        """A task from the query (or cancel) answer ``{code, message, data: {...}}``."""
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data.get("task_id"):
            raise ApiError(200, "unexpected_answer", f"the answer holds no task: {body!r:.300}")
        inner = data.get("data") if isinstance(data.get("data"), dict) else {}
        output = inner.get("output") if isinstance(inner.get("output"), dict) else {}
        status = str(data.get("status") or "").upper()
        failed = status == "FAILURE"
        return cls(
            id=str(data["task_id"]),
            status=status,
            task_status=str(output.get("task_status") or _DASHSCOPE_STATUS.get(status, status)),
            progress=_percent(data.get("progress")),
            result_url=data.get("result_url") or output.get("video_url") or None,
            code=(output.get("code") or None) if failed else None,
            message=(output.get("message") or data.get("fail_reason") or None) if failed else None,
            edit_plan=output.get("edit_plan"),
            usage=inner.get("usage"),
            parameters=inner.get("parameters"),
            submit_time=int(data.get("submit_time") or 0),
            start_time=int(data.get("start_time") or 0),
            finish_time=int(data.get("finish_time") or 0),
            raw=body,
        )

    @classmethod
    def from_create(cls, body: Any) -> Task:
        """A task from the create answer ``{id, task_id, status: "queued", ...}``."""
        if not isinstance(body, dict) or not (body.get("task_id") or body.get("id")):
            raise ApiError(200, "unexpected_answer", f"the answer holds no task id: {body!r:.300}")
        status = str(body.get("status") or "queued").upper()
        return cls(
            id=str(body.get("task_id") or body["id"]),
            status=status,
            task_status=_DASHSCOPE_STATUS.get(status, status),
            progress=_percent(body.get("progress")),
            submit_time=int(body.get("created_at") or 0),
            raw=body,
        )


@dataclass(frozen=True)
class Upload:
    """A file stored by ``POST /v1/uploads``; ``url`` goes into ``input.media[].url``."""

    id: str
    url: str
    expires_at: int
    bytes: int
    content_type: str
    kind: str
    """``video`` or ``image``."""

    @classmethod
    def from_answer(cls, body: Any) -> Upload:
        try:
            return cls(
                id=str(body["id"]),
                url=str(body["url"]),
                expires_at=int(body["expires_at"]),
                bytes=int(body["bytes"]),
                content_type=str(body["content_type"]),
                kind=str(body["kind"]),
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise ApiError(
                200, "unexpected_answer", f"the upload answer lacks {exc}: {body!r:.300}"
            ) from None


# --- what both clients share --------------------------------------------------------------


def _percent(value: Any) -> int:
    """``"45%"``, ``45`` or ``None`` as an int."""
    if isinstance(value, int | float):
        return int(value)
    text = str(value or "").strip().rstrip("%")
    try:
        return int(float(text))
    except ValueError:
        return 0


def is_url(source: Source) -> bool:
    """``source`` is an http(s) URL (anything else is a local path)."""
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def local_file(source: Source, what: str) -> Path:
    """The local file ``source`` names, or :class:`FileNotFoundError` naming the argument."""
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {str(source)!r} (and it is not an http(s) URL)")
    return path


def error_from_response(response: httpx.Response, action: str = "") -> ApiError:
    """One :class:`ApiError` from any error answer: the seed's ``{code, message, data}``,
    DashScope's ``{code, message, request_id}``, OpenAI's ``{error: {...}}``,
    FastAPI's ``{detail}``, or a body that is not JSON at all."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    code, message = "", ""
    if isinstance(body, dict):
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        code = str(err.get("code") or err.get("type") or "")
        message = str(err.get("message") or body.get("detail") or "")
    if not message:
        text = response.text.strip()
        message = text[:300] if text else response.reason_phrase or "no body"
    if action:
        message = f"{action}: {message}"
    retry_after = response.headers.get("retry-after", "")
    return ApiError(
        status,
        code or f"http_{status}",
        message,
        retry_after=float(retry_after) if retry_after.isdigit() else None,
    )


def _unreachable(base_url: str, exc: httpx.TransportError) -> ApiError:
    return ApiError(0, "unreachable", f"cannot reach {base_url} ({exc or type(exc).__name__})")


def _uploads_missing(base_url: str, error: ApiError) -> ApiError:
    return ApiError(
        error.status,
        error.code,
        f"the server at {base_url} does not take uploads (POST /v1/uploads answered "
        f"{error.status}): give the video and the reference image as http(s) URLs instead",
    )


def create_body(
    video: str,
    reference: str,
    prompt: str,
    *,
    resolution: str | None = None,
    watermark: bool = True,
    seed: int | None = None,
    audio_setting: str | None = None,
) -> dict[str, Any]:
    """The seed's create body, with only the parameters that were given (and ``watermark``)."""
    media = [{"type": "video", "url": video}]
    media.append({"type": "reference_image", "url": reference})
    parameters: dict[str, Any] = {"watermark": watermark}
    if resolution is not None:
        parameters["resolution"] = resolution
    if seed is not None:
        parameters["seed"] = seed
    if audio_setting is not None:
        parameters["audio_setting"] = audio_setting
    return {
        "model": MODEL_NAME,
        "input": {"prompt": prompt, "media": media},
        "parameters": parameters,
    }


def _download_target(dest: str | os.PathLike[str], task_id: str) -> Path:
    """``dest``, or ``dest/<task_id>.mp4`` when it is a folder."""
    path = Path(dest)
    return path / f"{task_id}.mp4" if path.is_dir() else path


class _Poll:
    """When to ask again: ``poll`` seconds, growing by half up to ``poll_max`` while nothing
    changes and back to ``poll`` when the task moves; never past the deadline."""

    def __init__(self, timeout: float | None, poll: float, poll_max: float) -> None:
        self.timeout, self.poll, self.poll_max = timeout, poll, max(poll, poll_max)
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.interval = poll
        self.seen: tuple[str, int] | None = None

    def next_delay(self, task: Task, retry_after: float | None = None) -> float:
        """Seconds to sleep before the next query; :class:`WaitTimeout` past the deadline."""
        moved = self.seen != (task.status, task.progress)
        self.seen = (task.status, task.progress)
        self.interval = self.poll if moved else min(self.interval * 1.5, self.poll_max)
        delay = max(self.interval, retry_after or 0.0)
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(task, self.timeout or 0.0)
            delay = min(delay, left)
        return delay


def _settings(base_url: str | None, api_key: str | None) -> tuple[str, str]:
    base = (base_url or os.environ.get("VEDIT_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    key = api_key or os.environ.get("VEDIT_API_KEY") or ""
    if not key:
        raise ValueError("no API key: pass api_key= or set VEDIT_API_KEY")
    return base, key


def _timeout(timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=min(timeout, 10.0))


# --- the synchronous client ---------------------------------------------------------------


class Client:
    """A synchronous client of the seed's API (and vedit's uploads).

    ``base_url`` defaults to ``VEDIT_BASE_URL`` (else ``http://127.0.0.1:8000``),
    ``api_key`` to ``VEDIT_API_KEY``; ``timeout`` bounds each request (seconds).
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url, self._key = _settings(base_url, api_key)
        # No default Authorization: the key goes to the API only, never to a result URL's host.
        self._http = httpx.Client(
            base_url=self.base_url, timeout=_timeout(timeout), transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, action: str, **kw: Any) -> httpx.Response:
        try:
            r = self._http.request(
                method, path, headers={"Authorization": f"Bearer {self._key}"}, **kw
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if r.status_code >= 400:
            raise error_from_response(r, action)
        return r

    def upload(self, path: str | os.PathLike[str]) -> Upload:
        """Store a local video or image on the server; its signed URL goes into a create."""
        file = local_file(path, "upload")
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        with file.open("rb") as f:
            try:
                r = self._send(
                    "POST",
                    "/v1/uploads",
                    f"upload of {file.name}",
                    files={"file": (file.name, f, kind)},
                )
            except ApiError as exc:
                if exc.status in (404, 405):
                    raise _uploads_missing(self.base_url, exc) from None
                raise
        return Upload.from_answer(r.json())

    def _media_url(self, source: Source, what: str) -> str:
        return source if is_url(source) else self.upload(local_file(source, what)).url  # type: ignore[return-value]

    def create(
        self,
        video: Source,
        reference: Source,
        prompt: str,
        *,
        resolution: Literal["720P", "1080P"] | None = None,
        watermark: bool = True,
        seed: int | None = None,
        audio_setting: Literal["auto", "origin"] | None = None,
    ) -> Task:
        """Create a task. ``video`` and ``reference`` are http(s) URLs or local files (uploaded
        first). Parameters left ``None`` take the server's defaults (``1080P``, a drawn
        seed, ``auto``)."""
        body = create_body(
            self._media_url(video, "video"),
            self._media_url(reference, "reference"),
            prompt,
            resolution=resolution,
            watermark=watermark,
            seed=seed,
            audio_setting=audio_setting,
        )
        return Task.from_create(
            self._send("POST", "/v1/video/generations", "create", json=body).json()
        )

    def get(self, task_id: str) -> Task:
        """The task as the server shows it now."""
        return Task.from_query(
            self._send("GET", f"/v1/video/generations/{task_id}", "query").json()
        )

    def cancel(self, task_id: str) -> Task:
        """Cancel a queued or running task; the cancelled task."""
        path = f"/v1/video/generations/{task_id}/cancel"
        return Task.from_query(self._send("POST", path, "cancel").json())

    def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        poll: float = 1.0,
        poll_max: float = 10.0,
        on_progress: Callable[[Task], object] | None = None,
    ) -> Task:
        """Poll until the task ends and return it, whatever its status (chain
        :meth:`Task.raise_for_failure` to raise on failure). ``on_progress`` is called with
        every task polled. Polls every ``poll`` s, backing off to ``poll_max`` while nothing
        moves; 429 and 5xx gateway answers are sat out. :class:`WaitTimeout` after
        ``timeout`` seconds (``None``: no limit)."""
        clock = _Poll(timeout, poll, poll_max)
        task = Task(id=task_id, status="QUEUED", task_status="PENDING", progress=0)
        while True:
            retry_after = None
            try:
                task = self.get(task_id)
            except ApiError as exc:
                if exc.status not in _RETRIED_WHILE_WAITING:
                    raise
                retry_after = exc.retry_after
            else:
                if on_progress is not None:
                    on_progress(task)
                if task.done:
                    return task
            time.sleep(clock.next_delay(task, retry_after))

    def download(self, task: str | Task, dest: str | os.PathLike[str]) -> Path:
        """Stream the task's video to ``dest`` (a file, or a folder for ``<task_id>.mp4``).
        :class:`TaskFailed` if the task failed, :class:`TaskNotFinished` if it runs still."""
        if not isinstance(task, Task) or not task.result_url:
            task = self.get(task if isinstance(task, str) else task.id)
        if not task.result_url:
            task.raise_for_failure()
            raise TaskNotFinished(task)
        target = _download_target(dest, task.id)
        part = target.with_name(target.name + ".part")
        try:
            with self._http.stream("GET", task.result_url) as r:
                if r.status_code >= 400:
                    r.read()
                    raise error_from_response(r, f"download of {task.id}'s video")
                with part.open("wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        f.write(chunk)
            os.replace(part, target)
        except httpx.TransportError as exc:
            raise _unreachable(str(httpx.URL(task.result_url).copy_with(query=None)), exc) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        return target


# --- the asynchronous client --------------------------------------------------------------


class AsyncClient:
    """The same calls as :class:`Client`, awaitable (``async with vedit.AsyncClient() as c``)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, self._key = _settings(base_url, api_key)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=_timeout(timeout), transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, action: str, **kw: Any) -> httpx.Response:
        try:
            r = await self._http.request(
                method, path, headers={"Authorization": f"Bearer {self._key}"}, **kw
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if r.status_code >= 400:
            raise error_from_response(r, action)
        return r

    async def upload(self, path: str | os.PathLike[str]) -> Upload:
        """Store a local video or image on the server; its signed URL goes into a create."""
        file = local_file(path, "upload")
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        with file.open("rb") as f:
            try:
                r = await self._send(
                    "POST",
                    "/v1/uploads",
                    f"upload of {file.name}",
                    files={"file": (file.name, f, kind)},
                )
            except ApiError as exc:
                if exc.status in (404, 405):
                    raise _uploads_missing(self.base_url, exc) from None
                raise
        return Upload.from_answer(r.json())

    async def _media_url(self, source: Source, what: str) -> str:
        if is_url(source):
            return source  # type: ignore[return-value]
        return (await self.upload(local_file(source, what))).url

    async def create(
        self,
        video: Source,
        reference: Source,
        prompt: str,
        *,
        resolution: Literal["720P", "1080P"] | None = None,
        watermark: bool = True,
        seed: int | None = None,
        audio_setting: Literal["auto", "origin"] | None = None,
    ) -> Task:
        """See :meth:`Client.create`."""
        body = create_body(
            await self._media_url(video, "video"),
            await self._media_url(reference, "reference"),
            prompt,
            resolution=resolution,
            watermark=watermark,
            seed=seed,
            audio_setting=audio_setting,
        )
        r = await self._send("POST", "/v1/video/generations", "create", json=body)
        return Task.from_create(r.json())

    async def get(self, task_id: str) -> Task:
        """The task as the server shows it now."""
        r = await self._send("GET", f"/v1/video/generations/{task_id}", "query")
        return Task.from_query(r.json())

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued or running task; the cancelled task."""
        r = await self._send("POST", f"/v1/video/generations/{task_id}/cancel", "cancel")
        return Task.from_query(r.json())

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        poll: float = 1.0,
        poll_max: float = 10.0,
        on_progress: Callable[[Task], object] | None = None,
    ) -> Task:
        """See :meth:`Client.wait`."""
        clock = _Poll(timeout, poll, poll_max)
        task = Task(id=task_id, status="QUEUED", task_status="PENDING", progress=0)
        while True:
            retry_after = None
            try:
                task = await self.get(task_id)
            except ApiError as exc:
                if exc.status not in _RETRIED_WHILE_WAITING:
                    raise
                retry_after = exc.retry_after
            else:
                if on_progress is not None:
                    on_progress(task)
                if task.done:
                    return task
            await asyncio.sleep(clock.next_delay(task, retry_after))

    async def download(self, task: str | Task, dest: str | os.PathLike[str]) -> Path:
        """See :meth:`Client.download`."""
        if not isinstance(task, Task) or not task.result_url:
            task = await self.get(task if isinstance(task, str) else task.id)
        if not task.result_url:
            task.raise_for_failure()
            raise TaskNotFinished(task)
        target = _download_target(dest, task.id)
        part = target.with_name(target.name + ".part")
        try:
            async with self._http.stream("GET", task.result_url) as r:
                if r.status_code >= 400:
                    await r.aread()
                    raise error_from_response(r, f"download of {task.id}'s video")
                with part.open("wb") as f:
                    async for chunk in r.aiter_bytes(1 << 20):
                        f.write(chunk)
            os.replace(part, target)
        except httpx.TransportError as exc:
            raise _unreachable(str(httpx.URL(task.result_url).copy_with(query=None)), exc) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        return target
