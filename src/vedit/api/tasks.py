"""The one tasks service both dialects call: create, find, cancel.

A dialect's module (``anyfast.py``, ``dashscope.py``) parses its request and shapes its
answer; what happens to the task in between is here, once. A key sees only its own
tasks: another key's task reads exactly as an unknown one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from vedit.api.deps import Services, check_rate_limit, services
from vedit.api.schemas import CreateRequest, truncate_prompt
from vedit.api.views import DASHSCOPE_STATUS
from vedit.errors import BodyTooLarge, TaskNotCancellable, TaskNotFound
from vedit.keys import KeyInfo
from vedit.tasks.ids import is_task_id
from vedit.tasks.models import Task, TaskStatus, new_task_row
from vedit.uploads.store import OSS_RESOLVE_HEADER


async def create(
    request: Request, key: KeyInfo, parse: Callable[[bytes], CreateRequest]
) -> dict[str, Any]:
    """The new task of the create ``request``, whose body the dialect's ``parse`` reads:
    counted against ``key``'s rate limit, committed, then handed to the dispatcher."""
    svc = services(request)
    await check_rate_limit(svc, key)
    body = await _read_body(request, svc.settings.max_body_bytes)
    row = _new_row(parse(body), key, svc, oss_resolve=_oss_resolve(request))
    await svc.writer.add(row)
    svc.dispatcher.submit(row["id"])
    return row


def find(svc: Services, key: KeyInfo, task_id: str) -> Task | None:
    """The task ``task_id`` of ``key``; None when the id is malformed, unknown, expired or
    another key's (the answer is the same, so nobody learns of other keys' tasks)."""
    return svc.store.get(task_id, key.id) if is_task_id(task_id) else None


def get(svc: Services, key: KeyInfo, task_id: str) -> Task:
    """The task ``task_id`` of ``key``, or :class:`TaskNotFound`."""
    task = find(svc, key, task_id)
    if task is None:
        raise TaskNotFound(f"task {task_id} does not exist")
    return task


def cancel(svc: Services, key: KeyInfo, task_id: str) -> Task:
    """Cancel ``task_id`` for ``key``; the cancelled task, or :class:`TaskNotFound`, or
    :class:`TaskNotCancellable` for a task that has ended (it stays as it was)."""
    before = find(svc, key, task_id)
    task = None if before is None else svc.store.cancel(task_id, key.id)
    if before is None or task is None:
        raise TaskNotFound(f"task {task_id} does not exist")
    if before.status in TaskStatus.FINAL or task.status != TaskStatus.CANCELLED:
        status = DASHSCOPE_STATUS[task.status]
        raise TaskNotCancellable(
            f"task {task_id} has already ended ({status}) and cannot be cancelled"
        )
    return task


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with :class:`BodyTooLarge` as soon as it passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {int(declared):,} bytes; at most {limit:,} are accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is over {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _oss_resolve(request: Request) -> bool:
    """Whether the create asks for ``oss://`` media to be resolved (DashScope's header)."""
    return request.headers.get(OSS_RESOLVE_HEADER, "").strip().lower() == "enable"


def _new_row(
    req: CreateRequest, key: KeyInfo, svc: Services, *, oss_resolve: bool
) -> dict[str, Any]:
    """The new task's row; uploads its media name are checked to be this key's and kept
    as long as the task (``oss_resolve``: the create sent X-DashScope-OssResourceResolve)."""
    media = [{"type": m.type, "url": m.url} for m in req.input.media]
    used = svc.uploads.check_media(
        media,
        key.id,
        public_base_url=svc.settings.public_base_url,
        storage=svc.storage,
        oss_resolve=oss_resolve,
    )
    row = new_task_row(
        key_id=key.id,
        model=req.model,
        prompt=truncate_prompt(req.input.prompt),
        orig_prompt=req.input.prompt,
        media=media,
        resolution=req.parameters.resolution,
        watermark=req.parameters.watermark,
        seed=req.parameters.seed,
        audio_setting=req.parameters.audio_setting,
        ttl_s=svc.settings.task_ttl_s,
    )
    svc.uploads.keep_until(used, row["expires_at"])
    return row
