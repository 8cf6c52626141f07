"""The steps that move a task, as named functions: every engine's task goes through them.

    obtain_inputs  fetch the media (hostile input) and check them against the limits;
                   plan the output                                    (progress 5, 10)
    plan           the prompt's edit plan, refused at once where the engine cannot make it
    edit           the engine's own step: frames and clips here (``run.py``), following
                   the upstream task for the relay (``relay.py``)      (progress 10..98)
    publish        the output into storage, then the task SUCCEEDED
    end_on_error   whatever stopped the task ends it: FAILED with a code, handed back, or
                   left as it now stands (cancelled, recovered)

A step added here (a notification, a usage record) runs for every engine: ``run.py``
and ``relay.py`` differ only in the edit step and in how they wait.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vedit import MODEL_NAME
from vedit.config import Settings
from vedit.engines.base import reference_cover
from vedit.engines.plan import EditPlan, plan_edit
from vedit.errors import (
    EditUnavailable,
    MediaDownloadFailed,
    MediaTooLarge,
    StorageFailed,
    StorageUnavailable,
    TaskAborted,
    TaskFailure,
)
from vedit.media.fetch import FetchLimits, fetch_media
from vedit.media.probe import VideoInfo, aspect_ratio_name, load_image, probe_video
from vedit.media.video import OutputSpec, plan_output
from vedit.runtime.context import Context
from vedit.runtime.lease import Lease
from vedit.tasks.models import Task, TaskStatus
from vedit.uploads.store import upload_ref

log = logging.getLogger("vedit.worker")

# Share of the progress bar each step owns.
FETCHED, VALIDATED, RENDERED = 5, 10, 98


@dataclass
class CheckedInputs:
    """The media of a task, fetched and checked, and the output planned from them."""

    video: Path
    video_label: str  # "media[0] (video)": how errors name it
    info: VideoInfo
    references: list[np.ndarray]  # the reference images, decoded (RGB)
    spec: OutputSpec


def plan(task: Task, ctx: Context) -> EditPlan:
    """The prompt's edit plan. An edit this engine cannot make here (a person edit without
    the person models) is refused before anything is fetched: never made as another edit."""
    edit_plan = plan_edit(task.prompt)
    engine = ctx.editor
    if task.media_of("reference_image") and edit_plan.operation not in engine.operations:
        raise EditUnavailable(engine.why_not(edit_plan.operation))
    return edit_plan


def obtain_inputs(task: Task, ctx: Context, lease: Lease, work: Path) -> CheckedInputs:
    """Fetch the media into ``work``, check them against the limits, and plan the output."""
    s = ctx.settings

    # Fetch every medium, each as hostile input.
    ((video_index, video_url),) = task.media_of("video")
    video_label = f"media[{video_index}] (video)"
    video_path = work / "video"
    _obtain(video_url, video_path, video_label, s.video_max_bytes, task, ctx, lease)
    image_paths: list[tuple[str, Path]] = []
    for index, url in task.media_of("reference_image"):
        label = f"media[{index}] (reference_image)"
        path = work / f"image{index}"
        _obtain(url, path, label, s.image_max_bytes, task, ctx, lease)
        image_paths.append((label, path))
    lease.progress(FETCHED)

    # Validate against the media limits before any editing, and plan the output; the
    # reference images are decoded no larger than the output needs (engines/base.py).
    info = probe_video(video_path, ctx.limits, video_label)
    spec = plan_output(
        info,
        resolution=task.resolution,
        watermark=task.watermark,
        audio_setting=task.audio_setting,
        policy=ctx.output,
        metadata={
            "comment": f"AI-edited by {MODEL_NAME} (vedit, engine {ctx.editor.name}, "
            f"seed {task.seed})",
            "description": "AI-generated content: this video was edited by an AI model",
        },
    )
    cover = reference_cover(spec.width, spec.height)
    references = [load_image(path, ctx.limits, label, cover) for label, path in image_paths]
    lease.progress(VALIDATED)
    return CheckedInputs(video_path, video_label, info, references, spec)


def _obtain(
    url: str, dest: Path, label: str, max_bytes: int, task: Task, ctx: Context, lease: Lease
) -> None:
    """One medium into ``dest``: an upload is copied from storage (never over HTTP, and only
    the task's own key's), any other URL is fetched as hostile input, and dropped as soon as
    the task is cancelled or the worker stops."""
    s = ctx.settings
    ref = upload_ref(url, s.public_base_url, ctx.storage)
    if ref is None:
        fetch(url, dest, label, max_bytes, ctx, lease)
        return
    upload = ctx.uploads.find(ref, task.key_id)
    if upload is not None and upload.bytes > max_bytes:
        raise MediaTooLarge(f"{label}: file is {upload.bytes:,} bytes; the limit is {max_bytes:,}")
    try:
        copied = upload is not None and ctx.storage.copy_upload(upload.id, dest)
    except StorageUnavailable as exc:
        raise StorageFailed(f"{label}: the upload {ref} could not be read: {exc.message}") from None
    if not copied:
        raise MediaDownloadFailed(
            f"{label}: the upload {ref} is no longer available (uploads are kept "
            f"VEDIT_TASK_TTL_S = {s.task_ttl_s:g} s)"
        )


def fetch(url: str, dest: Path, label: str, max_bytes: int, ctx: Context, lease: Lease) -> None:
    """``url`` into ``dest`` as hostile input, within the media limits, dropped on a cancel."""
    s = ctx.settings
    limits = fetch_limits(s, max_bytes)
    fetch_media(url, dest, label=label, limits=limits, allow=s.media_allow, abort=lease.check)


def fetch_limits(s: Settings, max_bytes: int) -> FetchLimits:
    return FetchLimits(
        max_bytes=max_bytes,
        connect_timeout_s=s.media_connect_timeout_s,
        read_timeout_s=s.media_read_timeout_s,
        total_timeout_s=s.media_total_timeout_s,
        max_redirects=s.media_max_redirects,
    )


def log_started(task: Task, plan: dict[str, Any], info: VideoInfo) -> None:
    chosen = " ".join(filter(None, [plan["operation"], plan.get("style")]))
    if plan.get("fallback_from"):
        chosen += f" (instead of {plan['fallback_from']})"
    log.info(
        "task %s started: plan %s, input %.2f s %dx%d, output %s",
        task.id, chosen, info.duration_s, info.width, info.height, task.resolution,
    )  # fmt: skip


def result_of(
    task: Task,
    ctx: Context,
    info: VideoInfo,
    *,
    width: int,
    height: int,
    fps: float,
    frames: int,
    has_audio: bool,
    duration_s: float,
    started: float,
) -> dict[str, Any]:
    """What the query answer and usage report of a made output (``started``: when the
    engine's work began, ``time.monotonic()``)."""
    return {
        "width": width,
        "height": height,
        "fps": fps,
        "frames": frames,
        "has_audio": has_audio,
        "input_video_duration": round(info.duration_s, 3),
        "output_video_duration": round(duration_s, 3),
        "ratio": aspect_ratio_name(width, height),
        "sr": 720 if task.resolution == "720P" else 1080,
        "engine": ctx.editor.name,
        "engine_seconds": round(time.monotonic() - started, 3),
    }


def publish(task: Task, ctx: Context, work: Path, result: dict[str, Any]) -> str:
    """The finished file (``work/out.mp4``) goes into storage, then the task is marked done;
    returns how the task ended, for the log."""
    try:
        final = ctx.storage.publish_result(task.id, work / "out.mp4")
    except StorageUnavailable as exc:
        raise StorageFailed(f"the result could not be stored: {exc.message}") from None
    if ctx.store.succeed(task.id, ctx.worker_id, final, result):
        return "SUCCEEDED"
    ctx.storage.delete_result(task.id)  # cancelled (or taken away) meanwhile: the result goes
    return _ended_elsewhere(task.id, ctx)


def end_on_error(task: Task, ctx: Context, exc: Exception, *, hand_back: bool) -> str:
    """End a task on what stopped it, for every engine: a :class:`TaskFailure` fails it with
    its code; :class:`TaskAborted` leaves it as it is now (cancelled, recovered) or, with
    ``hand_back`` (the worker is stopping), queues it again; anything else is a bug or an
    unforeseen input, and the task fails as ``InternalError`` while the worker lives on.
    Returns how the task ended, for the log."""
    if isinstance(exc, TaskAborted):
        if hand_back:
            ctx.store.requeue(task.id, ctx.worker_id)
        return _ended_elsewhere(task.id, ctx)
    if isinstance(exc, TaskFailure):
        ctx.store.fail(task.id, ctx.worker_id, exc.code, exc.message)
        return f"FAILED {exc.code}"
    log.error("task %s failed unexpectedly", task.id, exc_info=exc)
    ctx.store.fail(task.id, ctx.worker_id, "InternalError", f"{type(exc).__name__}: {exc}")
    return "FAILED InternalError"


def _ended_elsewhere(task_id: str, ctx: Context) -> str:
    """How a task this worker gave up stands now (cancelled, handed back, recovered), for the log."""
    try:
        task = ctx.store.get(task_id)
    except Exception:  # only a log line depends on it
        return "given up"
    if task is None:
        return "gone"
    return {
        TaskStatus.QUEUED: "requeued",
        TaskStatus.RUNNING: "taken over by another worker",
        TaskStatus.SUCCEEDED: "SUCCEEDED",
        TaskStatus.FAILED: f"FAILED {task.error_code}",
        TaskStatus.CANCELLED: "CANCELED",
    }.get(task.status, task.status)
