"""``run_task``: the only code that moves a task forward.

It reads as the pipeline itself: fetch, validate, edit, publish, finish. A
claimed task always ends in one state change — succeeded, failed (with a code
and a message that names the limit and the value), or, when the worker is
asked to stop, back to the queue — and every failure is mapped here, once.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from vedit import MODEL_NAME
from vedit.config import Settings
from vedit.engines.base import EditJob, Engine
from vedit.engines.plan import fall_back, plan_edit, without_reference
from vedit.errors import (
    EngineFailed,
    MediaCorrupt,
    MediaDownloadFailed,
    MediaTooLarge,
    StorageFailed,
    StorageUnavailable,
    TaskAborted,
    TaskFailure,
)
from vedit.media.fetch import FetchLimits, fetch_media
from vedit.media.probe import VideoInfo, aspect_ratio_name, check_result, load_image, probe_video
from vedit.media.video import FrameEditor, OutputSpec, plan_output, render
from vedit.storage import Storage
from vedit.tasks.models import Task, TaskStatus
from vedit.tasks.store import TaskStore
from vedit.uploads.store import UploadStore, upload_ref

if TYPE_CHECKING:  # the relay engine (and httpx) is imported only when it is chosen
    from vedit.engines.relay import RelayEngine

log = logging.getLogger("vedit.worker")

# Share of the progress bar each stage owns.
FETCHED, VALIDATED, RENDERED = 5, 10, 98


@dataclass
class WorkerContext:
    """What a worker process holds for its whole life."""

    settings: Settings
    store: TaskStore
    storage: Storage
    engine: Engine | RelayEngine
    uploads: UploadStore
    worker_id: str
    stop: threading.Event | Any  # a threading or multiprocessing Event


class Lease:
    """Keeps the task's lease alive from a thread and carries progress to the store.

    ``progress()`` raises :class:`TaskAborted` once the task is no longer this
    worker's (recovered by the janitor) or the worker was asked to stop.
    """

    def __init__(self, ctx: WorkerContext, task_id: str) -> None:
        self.ctx, self.task_id = ctx, task_id
        self.lost = threading.Event()
        self._done = threading.Event()
        self._percent = 0
        self._written_at = 0.0
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = max(0.2, min(5.0, self.ctx.settings.task_lease_s / 3))
        while not self._done.wait(interval):
            try:
                mine = self.ctx.store.heartbeat(self.task_id, self.ctx.worker_id)
            except Exception:  # a busy or briefly unreachable database: try again next beat
                log.warning("heartbeat of task %s failed", self.task_id, exc_info=True)
                continue
            if not mine:
                self.lost.set()
                return

    def check(self) -> None:
        """Raise :class:`TaskAborted` once the task is no longer this worker's to run."""
        if self.lost.is_set():
            raise TaskAborted("the task's lease was lost")
        if self.ctx.stop.is_set():
            raise TaskAborted("the worker is stopping")

    def progress(self, percent: int) -> None:
        self.check()
        now = time.monotonic()
        if percent != self._percent and (now - self._written_at >= 0.5 or percent >= RENDERED):
            self._percent, self._written_at = percent, now
            try:
                mine = self.ctx.store.heartbeat(self.task_id, self.ctx.worker_id, percent)
            except Exception:  # progress is best effort; the lease thread keeps the task
                log.warning("progress of task %s not saved", self.task_id, exc_info=True)
                return
            if not mine:
                self.lost.set()
                raise TaskAborted("the task's lease was lost")


def run_task(task: Task, ctx: WorkerContext) -> None:
    """Run one claimed task to its end state."""
    began = time.monotonic()
    work = ctx.settings.work_dir / task.id
    work.mkdir(parents=True, exist_ok=True)
    lease = Lease(ctx, task.id)
    try:
        with lease:
            result = _edit(task, ctx, lease, work)
            # Publish: the finished file goes into storage, then the task is marked done.
            final = _publish(task, ctx, work / "out.mp4")
            ended = "SUCCEEDED"
            if not ctx.store.succeed(task.id, ctx.worker_id, final, result):
                ctx.storage.delete_result(task.id)
                ended = _ended_elsewhere(task.id, ctx)
    except TaskAborted:
        if ctx.stop.is_set() and not lease.lost.is_set():
            ctx.store.requeue(task.id, ctx.worker_id)
        ended = _ended_elsewhere(task.id, ctx)
    except TaskFailure as exc:
        ctx.store.fail(task.id, ctx.worker_id, exc.code, exc.message)
        ended = f"FAILED {exc.code}"
    except Exception as exc:  # a bug or an unforeseen input: the task fails, the worker lives
        log.exception("task %s failed unexpectedly", task.id)
        ctx.store.fail(task.id, ctx.worker_id, "InternalError", f"{type(exc).__name__}: {exc}")
        ended = "FAILED InternalError"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("task %s finished: %s in %.2f s", task.id, ended, time.monotonic() - began)


def _publish(task: Task, ctx: WorkerContext, out: Path) -> str:
    """The finished file into storage; returns where it went."""
    try:
        return ctx.storage.publish_result(task.id, out)
    except StorageUnavailable as exc:
        raise StorageFailed(f"the result could not be stored: {exc.message}") from None


def _ended_elsewhere(task_id: str, ctx: WorkerContext) -> str:
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


def _log_started(task: Task, plan: dict[str, Any], info: VideoInfo) -> None:
    chosen = " ".join(filter(None, [plan["operation"], plan.get("style")]))
    if plan.get("fallback_from"):
        chosen += f" (instead of {plan['fallback_from']})"
    log.info(
        "task %s started: plan %s, input %.2f s %dx%d, output %s",
        task.id, chosen, info.duration_s, info.width, info.height, task.resolution,
    )  # fmt: skip


def _edit(task: Task, ctx: WorkerContext, lease: Lease, work: Path) -> dict[str, Any]:
    s = ctx.settings

    # 1. Fetch every medium, each as hostile input.
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

    # 2. Validate against the media limits before any editing.
    info = probe_video(video_path, s, video_label)
    references = [load_image(path, s, label) for label, path in image_paths]
    lease.progress(VALIDATED)

    # 3. Plan the output.
    spec = plan_output(
        info,
        resolution=task.resolution,
        watermark=task.watermark,
        audio_setting=task.audio_setting,
        settings=s,
        metadata={
            "comment": f"AI-edited by {MODEL_NAME} (vedit, engine {ctx.engine.name}, "
            f"seed {task.seed})",
            "description": "AI-generated content: this video was edited by an AI model",
        },
    )
    if ctx.engine.kind == "relay":
        return _relay(task, ctx, lease, work, info, spec)

    # 4. Plan the edit from the prompt; what the engine cannot do falls back to the look.
    plan = plan_edit(task.prompt)
    if not references:
        plan = without_reference(plan)
    if plan.operation not in ctx.engine.operations:
        plan = fall_back(plan, ctx.engine.why_not(plan.operation))
    started = time.monotonic()
    job = EditJob(
        prompt=task.prompt,
        plan=plan,
        references=references,
        seed=task.seed,
        width=spec.width,
        height=spec.height,
        fps=spec.fps,
        frames=spec.frames,
        models_dir=s.models_dir,
        source=video_path,
    )
    try:
        prepared = ctx.engine.prepare(job)
    except TaskFailure:
        raise
    except Exception as exc:
        raise EngineFailed(f"engine {ctx.engine.name} could not start: {exc}") from exc
    # The plan as the engine carries it out (e.g. the look, where a person edit found no person).
    ctx.store.set_plan(task.id, ctx.worker_id, prepared.plan.to_dict())
    _log_started(task, prepared.plan.to_dict(), info)

    editor = _Guarded(prepared.editor, ctx.engine.name)

    # 5. Edit frame by frame through the output stage.
    span = RENDERED - VALIDATED
    try:
        stats = render(
            video_path,
            work / "out.mp4",
            spec,
            editor,
            s,
            on_progress=lambda f: lease.progress(VALIDATED + int(span * f)),
        )
    except av.FFmpegError as exc:
        raise MediaCorrupt(
            f"{video_label}: the video could not be decoded to the end: {exc}"
        ) from None

    # 6. What the plan, the query answer and usage report.
    ctx.store.set_plan(task.id, ctx.worker_id, prepared.outcome().to_dict())
    return {
        "width": spec.width,
        "height": spec.height,
        "fps": spec.fps,
        "frames": stats.frames,
        "has_audio": stats.has_audio,
        "input_video_duration": round(info.duration_s, 3),
        "output_video_duration": round(spec.duration_s, 3),
        "ratio": aspect_ratio_name(spec.width, spec.height),
        "sr": 720 if task.resolution == "720P" else 1080,
        "engine": ctx.engine.name,
        "engine_seconds": round(time.monotonic() - started, 3),  # prepare + edit + encode
    }


def _relay(
    task: Task, ctx: WorkerContext, lease: Lease, work: Path, info: VideoInfo, spec: OutputSpec
) -> dict[str, Any]:
    """Steps 4-6 for the relay engine: the upstream edits, the copy is checked here."""
    from vedit.engines.relay import RelayEngine, RelayJob

    s, engine = ctx.settings, ctx.engine
    assert isinstance(engine, RelayEngine)
    resumed = (task.edit_plan or {}).get("upstream_task_id")
    plan: dict[str, Any] = {
        "operation": "relay", "region": "frame", "style": None, "reference_role": "upstream",
        "matched": True, "because": f"engine dashscope relays the request to {engine.upstream.host}",
        "fallback_from": None, "upstream_task_id": resumed,
    }  # fmt: skip
    ctx.store.set_plan(task.id, ctx.worker_id, plan)
    _log_started(task, plan, info)

    def submitted(upstream_id: str) -> None:
        plan["upstream_task_id"] = upstream_id
        ctx.store.set_plan(task.id, ctx.worker_id, plan)

    def copy(url: str, dest: Path) -> None:
        limits = _limits(s, s.video_max_bytes)
        fetch_media(url, dest, label="the upstream's result", limits=limits, allow=s.media_allow)

    def cancelled() -> bool:
        now = ctx.store.get(task.id)
        return now is not None and now.status == TaskStatus.CANCELLED

    started = time.monotonic()
    job = RelayJob(
        task_id=task.id,
        prompt=task.orig_prompt,
        media=_upstream_media(task, ctx),
        parameters=task.parameters(),
        upstream_task_id=resumed,
    )
    engine.run(job, lease.progress, copy, work / "out.mp4", submitted, cancelled)
    lease.progress(RENDERED)
    got = check_result(
        work / "out.mp4",
        width=spec.width,
        height=spec.height,
        duration_s=spec.duration_s,
        label="the upstream's result",
    )
    return {
        "width": got.width,
        "height": got.height,
        "fps": round(got.fps, 3),
        "frames": got.frames,
        "has_audio": got.has_audio,
        "input_video_duration": round(info.duration_s, 3),
        "output_video_duration": round(got.duration_s, 3),
        "ratio": aspect_ratio_name(got.width, got.height),
        "sr": 720 if task.resolution == "720P" else 1080,
        "engine": engine.name,
        "engine_seconds": round(time.monotonic() - started, 3),  # upstream + copy + check
    }


def _obtain(
    url: str,
    dest: Path,
    label: str,
    max_bytes: int,
    task: Task,
    ctx: WorkerContext,
    lease: Lease,
) -> None:
    """One medium into ``dest``: an upload is copied from storage (never over HTTP, and only
    the task's own key's), any other URL is fetched as hostile input, and dropped as soon as
    the task is cancelled or the worker stops."""
    s = ctx.settings
    ref = upload_ref(url, s.public_base_url, ctx.storage)
    if ref is None:
        limits = _limits(s, max_bytes)
        fetch_media(url, dest, label=label, limits=limits, allow=s.media_allow, abort=lease.check)
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


def _upstream_media(task: Task, ctx: WorkerContext) -> list[dict[str, str]]:
    """The task's media for the upstream: an upload goes as its signed URL, which the
    upstream can fetch only when VEDIT_PUBLIC_BASE_URL is reachable from it (or, with S3
    storage, as a presigned URL of the bucket, which it must reach)."""
    s = ctx.settings
    media = []
    for m in task.media:
        url = m["url"]
        ref = upload_ref(url, s.public_base_url, ctx.storage)
        upload = None if ref is None else ctx.uploads.find(ref, task.key_id)
        if upload is not None:
            expires = int(max(upload.expires_at, time.time() + s.upstream_deadline_s))
            url = ctx.storage.upload_fetch_url(upload.id, upload.name, expires)
        media.append({"type": m["type"], "url": url})
    return media


def _limits(s: Settings, max_bytes: int) -> FetchLimits:
    return FetchLimits(
        max_bytes=max_bytes,
        connect_timeout_s=s.media_connect_timeout_s,
        read_timeout_s=s.media_read_timeout_s,
        total_timeout_s=s.media_total_timeout_s,
        max_redirects=s.media_max_redirects,
    )


class _Guarded:
    """An engine's frame editor whose failures end the task as ``InternalError.Engine``."""

    def __init__(self, editor: FrameEditor, engine: str) -> None:
        self.editor, self.engine = editor, engine
        self.pixel_format = editor.pixel_format

    def __call__(self, frame: Any, index: int) -> np.ndarray | None:
        try:
            return self.editor(frame, index)
        except Exception as exc:
            raise EngineFailed(f"engine {self.engine} failed on frame {index}: {exc}") from exc
