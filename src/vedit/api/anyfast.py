"""The seed's dialect: ``POST /v1/video/generations`` and ``GET /v1/video/generations/{id}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from vedit.api import views
from vedit.api.deps import Services, authenticate, check_rate_limit, own_task, services
from vedit.api.schemas import CreateRequest, CreateResponse, parse_create, truncate_prompt
from vedit.errors import BodyTooLarge, TaskNotCancellable, TaskNotFound
from vedit.keys import KeyInfo
from vedit.tasks.models import Task, TaskStatus, new_task_row
from vedit.uploads.store import OSS_RESOLVE_HEADER

router = APIRouter(tags=["video generations (Anyfast dialect)"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad parameters: `{code, message, data: null}` naming the field"},
    401: {"description": "Missing, malformed, unknown or revoked key"},
    404: {"description": "`task_not_exist`: an unknown or expired task, or another key's"},
    413: {"description": "Body over 1 MiB (`VEDIT_MAX_BODY_BYTES`)"},
    429: {"description": "Rate limited; see Retry-After"},
    503: {"description": "The task store cannot take the task now; retry after Retry-After"},
}
CREATE_ERRORS = {k: _ERRORS[k] for k in (400, 401, 413, 429, 503)}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
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


def oss_resolve(request: Request) -> bool:
    """Whether the create asks for ``oss://`` media to be resolved (DashScope's header)."""
    return request.headers.get(OSS_RESOLVE_HEADER, "").strip().lower() == "enable"


def task_from_request(
    req: CreateRequest, key: KeyInfo, svc: Services, *, oss_resolve: bool = False
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


@router.post(
    "/v1/video/generations",
    summary="Create a video-edit task",
    description="Submit a video-edit task (video + reference image) in the native format "
    "(`input.media[]`); answers at once with the task id.",
    operation_id="createHappyhorse10VideoEdit",
    response_model=CreateResponse,
    responses=CREATE_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CreateRequest"}}
            },
        }
    },
)
async def create_generation(request: Request) -> JSONResponse:
    # The key is checked inline rather than as a dependency: this is the hot path.
    key = await authenticate(request)
    svc = services(request)
    await check_rate_limit(svc, key)
    body = await read_body(request, svc.settings.max_body_bytes)
    row = task_from_request(parse_create(body), key, svc, oss_resolve=oss_resolve(request))
    await svc.writer.add(row)
    svc.dispatcher.submit(row["id"])
    return JSONResponse(
        {
            "id": row["id"],
            "task_id": row["id"],
            "object": "video",
            "model": row["model"],
            "status": "queued",
            "progress": 0,
            "created_at": int(row["created_at"]),
        }
    )


@router.get(
    "/v1/video/generations/{task_id}",
    summary="Query a video-edit task",
    responses={k: _ERRORS[k] for k in (401, 404)},
)
def get_generation(
    task_id: str, request: Request, key: KeyInfo = Depends(authenticate)
) -> dict[str, Any]:
    svc = services(request)
    task = own_task(svc, key, task_id)
    if task is None:
        raise TaskNotFound(f"task {task_id} does not exist")
    return query_body(task, svc)


@router.post(
    "/v1/video/generations/{task_id}/cancel",
    summary="Cancel a video-edit task",
    description="A queued task is cancelled at once; a running one stops at its next frame "
    "boundary and its files are removed. Answers with the task as the query does. A task "
    "that has ended is a 400 `task_not_cancelable` and stays as it was.",
    responses={
        400: {"description": "`task_not_cancelable`: the task has already ended"},
        **{k: _ERRORS[k] for k in (401, 404)},
    },
)
def cancel_generation(
    task_id: str, request: Request, key: KeyInfo = Depends(authenticate)
) -> dict[str, Any]:
    svc = services(request)
    return query_body(cancel_task(task_id, key, svc), svc)


def cancel_task(task_id: str, key: KeyInfo, svc: Services) -> Task:
    """Cancel ``task_id`` for ``key`` (both dialects); the cancelled task."""
    before = own_task(svc, key, task_id)
    task = None if before is None else svc.store.cancel(task_id, key.id)
    if before is None or task is None:
        raise TaskNotFound(f"task {task_id} does not exist")
    if before.status in TaskStatus.FINAL or task.status != TaskStatus.CANCELLED:
        status = views.DASHSCOPE_STATUS[task.status]
        raise TaskNotCancellable(
            f"task {task_id} has already ended ({status}) and cannot be cancelled"
        )
    return task


def query_body(task: Task, svc: Services) -> dict[str, Any]:
    """The gateway wrapper of CONTRACT.md §2 around the DashScope-style task."""
    output = views.dashscope_output(task, svc.storage)
    inner: dict[str, Any] = {
        "output": output,
        "request_id": task.request_id,
        "parameters": views.parameters(task),
    }
    use = views.usage(task)
    if use is not None:
        inner["usage"] = use
    url = output.get("video_url", "")
    return {
        "code": "success",
        "message": "",
        "data": {
            "task_id": task.id,
            "action": "generate",
            "status": views.GATEWAY_STATUS[output["task_status"]],
            "result_url": url,
            "fail_reason": task.error_message or "",
            "submit_time": int(task.created_at),
            "start_time": int(task.started_at) if task.started_at else 0,
            "finish_time": int(task.finished_at) if task.finished_at else 0,
            "progress": f"{task.progress}%",
            "request_id": task.request_id,
            "data": inner,
        },
    }
