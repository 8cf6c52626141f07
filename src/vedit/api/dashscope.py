"""DashScope's native dialect (CONTRACT.md §3) over the same tasks as the seed's dialect.

- ``POST /api/v1/services/aigc/video-generation/video-synthesis`` — asynchronous only
  (``X-DashScope-Async: enable``); ``media`` is one video and 0 to 5 reference images;
- ``GET /api/v1/tasks/{task_id}`` — the task; an unknown one reads ``UNKNOWN`` (as
  DashScope: "the task does not exist or its state is unknown");
- ``POST /api/v1/tasks/{task_id}/cancel``.

Errors are ``{code, message, request_id}``, with DashScope's codes (``api/wire.py``: its
routes are :class:`~vedit.api.wire.DashScopeRoute`). The official ``dashscope`` SDK is a
client of these.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from vedit.api import tasks, views
from vedit.api.deps import Services, authenticate, services
from vedit.api.schemas import CreateRequest, describe, parse_create
from vedit.api.wire import DashScopeRoute
from vedit.errors import AsyncRequired
from vedit.keys import KeyInfo
from vedit.tasks.ids import new_request_id
from vedit.tasks.models import Task

router = APIRouter(tags=["video synthesis (DashScope dialect)"], route_class=DashScopeRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "`InvalidParameter`: a field, or the missing X-DashScope-Async header"},
    401: {"description": "`InvalidApiKey`"},
    413: {"description": "`RequestTooLarge`: body over 1 MiB"},
    429: {"description": "`Throttling.RateQuota`; see Retry-After"},
    503: {"description": "`ServiceUnavailable`: the task store cannot take the task now"},
}


@router.post(
    "/api/v1/services/aigc/video-generation/video-synthesis",
    summary="Create a video-edit task (DashScope)",
    description="The same task as `POST /v1/video/generations`, in DashScope's dialect: "
    "asynchronous only, one video and 0 to 5 reference images.",
    responses=_ERRORS,
    openapi_extra={
        "parameters": [
            {
                "name": "X-DashScope-Async",
                "in": "header",
                "required": True,
                "description": "The model is asynchronous only.",
                "schema": {"type": "string", "enum": ["enable"]},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/DashScopeCreateRequest"}
                }
            },
        },
    },
)
async def create_synthesis(request: Request) -> JSONResponse:
    key = await authenticate(request)
    sent = request.headers.get("x-dashscope-async")
    if (sent or "").strip().lower() != "enable":
        got = "it is missing" if sent is None else f"got {describe(sent)}"
        raise AsyncRequired(
            f"this model is asynchronous only: send the header X-DashScope-Async: enable ({got})"
        )
    row = await tasks.create(request, key, _parse)
    return JSONResponse(
        {
            "output": {"task_id": row["id"], "task_status": "PENDING"},
            "request_id": row["request_id"],
        }
    )


@router.get(
    "/api/v1/tasks/{task_id}",
    summary="Query a task (DashScope)",
    responses={401: _ERRORS[401]},
)
def get_task(
    task_id: str, request: Request, key: KeyInfo = Depends(authenticate)
) -> dict[str, Any]:
    svc = services(request)
    task = tasks.find(svc, key, task_id)
    if task is None:
        return {
            "request_id": new_request_id(),
            "output": {
                "task_id": task_id,
                "task_status": "UNKNOWN",
                "code": "InvalidParameter.TaskNotExist",
                "message": f"task {task_id} does not exist (unknown, expired, or another key's)",
            },
        }
    return task_body(task, svc)


@router.post(
    "/api/v1/tasks/{task_id}/cancel",
    summary="Cancel a task (DashScope)",
    description="A queued task is cancelled at once; a running one stops at its next frame "
    "boundary. A task that has ended is a 400 `UnsupportedOperation`.",
    responses={
        400: {"description": "`UnsupportedOperation`: the task has already ended"},
        401: _ERRORS[401],
        404: {"description": "`InvalidParameter.TaskNotExist`"},
    },
)
def cancel(task_id: str, request: Request, key: KeyInfo = Depends(authenticate)) -> dict[str, Any]:
    tasks.cancel(services(request), key, task_id)
    return {"request_id": new_request_id()}


def _parse(body: bytes) -> CreateRequest:
    return parse_create(body, dialect="dashscope")


def task_body(task: Task, svc: Services) -> dict[str, Any]:
    """A task in DashScope's query answer."""
    body: dict[str, Any] = {
        "request_id": task.request_id,
        "output": views.dashscope_output(task, svc.storage),
    }
    use = views.usage(task)
    if use is not None:
        body["usage"] = use
    return body
