"""How a task reads on the wire: the DashScope-style ``output`` and ``usage`` both dialects share."""

from __future__ import annotations

import time
from typing import Any

from vedit.storage import Storage
from vedit.tasks.models import Task, TaskStatus

DASHSCOPE_STATUS = {
    TaskStatus.QUEUED: "PENDING",
    TaskStatus.RUNNING: "RUNNING",
    TaskStatus.SUCCEEDED: "SUCCEEDED",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.CANCELLED: "CANCELED",
}
GATEWAY_STATUS = {
    "PENDING": "QUEUED",
    "RUNNING": "IN_PROGRESS",
    "SUCCEEDED": "SUCCESS",
    "FAILED": "FAILURE",
    "CANCELED": "FAILURE",
    "UNKNOWN": "FAILURE",
}


def dashscope_time(ts: float | None) -> str | None:
    """``2026-04-28 10:37:42.625`` (UTC), DashScope's time format."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def result_url(task: Task, storage: Storage) -> str | None:
    """The result's URL (vedit's signed link, or the bucket's presigned one); it expires
    ``result_url_ttl_s`` after the task finished."""
    if task.status != TaskStatus.SUCCEEDED or task.finished_at is None:
        return None
    expires = int(task.finished_at + storage.options.result_url_ttl_s)
    return storage.result_url(task.id, expires)


def dashscope_output(task: Task, storage: Storage) -> dict[str, Any]:
    status = DASHSCOPE_STATUS[task.status]
    out: dict[str, Any] = {
        "task_id": task.id,
        "task_status": status,
        "submit_time": dashscope_time(task.created_at),
        "scheduled_time": dashscope_time(task.started_at),
        "end_time": dashscope_time(task.finished_at),
        "orig_prompt": task.orig_prompt,
    }
    if task.edit_plan is not None:
        out["edit_plan"] = task.edit_plan
    url = result_url(task, storage)
    if url:
        out["video_url"] = url
    if task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        out["code"] = task.error_code or ("Canceled" if task.status == TaskStatus.CANCELLED else "")
        out["message"] = task.error_message or ""
    return out


def usage(task: Task) -> dict[str, Any] | None:
    """Billing facts, once the video exists: input and output seconds at the tier."""
    r = task.result
    if task.status != TaskStatus.SUCCEEDED or not r:
        return None
    return {
        "SR": r["sr"],
        "duration": r["output_video_duration"],
        "input_video_duration": r["input_video_duration"],
        "output_video_duration": r["output_video_duration"],
        "ratio": r["ratio"],
        "video_count": 1,
    }


def parameters(task: Task) -> dict[str, Any]:
    """The parameters the task ran with, the drawn seed included."""
    return task.parameters()
