"""The seed's dialect: ``POST /v1/video/generations`` and ``GET /v1/video/generations/{id}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from vedit.api import tasks, views
from vedit.api.deps import Services, authenticate, services
from vedit.api.schemas import CreateResponse, parse_create
from vedit.api.wire import AnyfastRoute
from vedit.keys import KeyInfo
from vedit.tasks.models import Task

router = APIRouter(tags=["video generations (Anyfast dialect)"], route_class=AnyfastRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad parameters: `{code, message, data: null}` naming the field"},
    401: {"description": "Missing, malformed, unknown or revoked key"},
    404: {"description": "`task_not_exist`: an unknown or expired task, or another key's"},
    413: {"description": "Body over 1 MiB (`VEDIT_MAX_BODY_BYTES`)"},
    429: {"description": "Rate limited; see Retry-After"},
    503: {"description": "The task store cannot take the task now; retry after Retry-After"},
}
CREATE_ERRORS = {k: _ERRORS[k] for k in (400, 401, 413, 429, 503)}


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
    row = await tasks.create(request, key, parse_create)
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
    return query_body(tasks.get(svc, key, task_id), svc)


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
    return query_body(tasks.cancel(svc, key, task_id), svc)


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
