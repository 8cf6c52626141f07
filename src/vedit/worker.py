"""``run_task``: the only code that moves a local edit forward.

It reads as the pipeline itself: fetch, validate, edit, publish, finish. A
claimed task always ends in one state change — succeeded, failed (with a code
and a message that names the limit and the value), or, when the worker is
asked to stop, back to the queue — and every failure is mapped here, once
(:func:`end_on_error`).

The relay engine (``dashscope``) follows many tasks per process as coroutines
(``relay_worker.py``); it shares the first steps (:func:`check_inputs`), the
publication (:func:`publish_result`) and the failure mapping from here.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import av
import numpy as np

from vedit import MODEL_NAME
from vedit.config import Settings
from vedit.engines.base import EditJob, Engine, PreparedClip, reference_cover
from vedit.engines.clip import ClipFrames
from vedit.engines.plan import plan_edit, without_reference
from vedit.errors import (
    EditUnavailable,
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
from vedit.media.probe import VideoInfo, aspect_ratio_name, load_image, probe_video
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


class TaskLease(Protocol):
    """A worker's hold on a claimed task, as the pipeline's steps see it."""

    def check(self) -> None:
        """Raise :class:`TaskAborted` once the task is no longer this worker's to run."""

    def progress(self, percent: int) -> None:
        """Record progress; raises :class:`TaskAborted` as :meth:`check` does."""


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
    """Run one claimed task to its end state (a local edit: the relay's is ``relay_worker``)."""
    began = time.monotonic()
    work = ctx.settings.work_dir / task.id
    work.mkdir(parents=True, exist_ok=True)
    lease = Lease(ctx, task.id)
    try:
        with lease:
            result = _edit(task, ctx, lease, work)
            ended = publish_result(task, ctx, work, result)
    except Exception as exc:
        handing_back = ctx.stop.is_set() and not lease.lost.is_set()
        ended = end_on_error(task, ctx, exc, hand_back=handing_back)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("task %s finished: %s in %.2f s", task.id, ended, time.monotonic() - began)


def publish_result(task: Task, ctx: WorkerContext, work: Path, result: dict[str, Any]) -> str:
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


def end_on_error(task: Task, ctx: WorkerContext, exc: Exception, *, hand_back: bool) -> str:
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


def log_started(task: Task, plan: dict[str, Any], info: VideoInfo) -> None:
    chosen = " ".join(filter(None, [plan["operation"], plan.get("style")]))
    if plan.get("fallback_from"):
        chosen += f" (instead of {plan['fallback_from']})"
    log.info(
        "task %s started: plan %s, input %.2f s %dx%d, output %s",
        task.id, chosen, info.duration_s, info.width, info.height, task.resolution,
    )  # fmt: skip


@dataclass
class CheckedInputs:
    """The media of a task, fetched and checked, and the output planned from them."""

    video: Path
    video_label: str  # "media[0] (video)": how errors name it
    info: VideoInfo
    references: list[np.ndarray]  # the reference images, decoded (RGB)
    spec: OutputSpec


def check_inputs(task: Task, ctx: WorkerContext, lease: TaskLease, work: Path) -> CheckedInputs:
    """Steps 1-3 of every engine: fetch the media into ``work``, check them against the
    limits, and plan the output."""
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

    # 2. Validate against the media limits before any editing, and plan the output; the
    #    reference images are decoded no larger than the output needs (engines/base.py).
    info = probe_video(video_path, s, video_label)
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
    cover = reference_cover(spec.width, spec.height)
    references = [load_image(path, s, label, cover) for label, path in image_paths]
    lease.progress(VALIDATED)
    return CheckedInputs(video_path, video_label, info, references, spec)


def _edit(task: Task, ctx: WorkerContext, lease: Lease, work: Path) -> dict[str, Any]:
    s = ctx.settings
    if ctx.engine.kind == "relay":  # followed by relay_worker, many tasks per process
        raise EngineFailed(f"engine {ctx.engine.name} is not run by run_task")

    # 0. An edit this engine cannot make here (a person edit without the person models) is
    #    refused before anything is fetched: never made as another edit.
    plan = plan_edit(task.prompt)
    if task.media_of("reference_image") and plan.operation not in ctx.engine.operations:
        raise EditUnavailable(ctx.engine.why_not(plan.operation))

    # 1-3. Fetch, validate, plan the output.
    checked = check_inputs(task, ctx, lease, work)
    info, spec, references = checked.info, checked.spec, checked.references

    # 4. The plan of the prompt; with no reference image, what needs one is not done.
    if not references:
        plan = without_reference(plan)
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
        source=checked.video,
        task_id=task.id,
    )
    try:
        prepared = ctx.engine.prepare(job)
    except TaskFailure:
        raise
    except Exception as exc:
        raise EngineFailed(f"engine {ctx.engine.name} could not start: {exc}") from exc
    # The plan as the engine carries it out (e.g. the look, where a person edit found no person).
    ctx.store.set_plan(task.id, ctx.worker_id, prepared.plan.to_dict())
    log_started(task, prepared.plan.to_dict(), info)

    # 5. Edit through the output stage: frame by frame, or — a clip engine — window by
    #    window, each output frame taking the edited clip's frame for its time.
    span = RENDERED - VALIDATED
    progress = lambda f: lease.progress(VALIDATED + int(span * f))  # noqa: E731
    if isinstance(prepared, PreparedClip):
        frames: FrameEditor = ClipFrames(prepared.editor, checked.video, spec, progress)
        rendered = lambda _f: lease.check()  # noqa: E731  the clip editor reports progress
    else:
        frames, rendered = prepared.editor, progress
    editor = _Guarded(frames, ctx.engine.name)
    try:
        stats = render(checked.video, work / "out.mp4", spec, editor, s, on_progress=rendered)
    except av.FFmpegError as exc:
        log.info("%s: FFmpeg stopped decoding: %s", checked.video_label, exc)
        raise MediaCorrupt(
            f"{checked.video_label}: the video could not be decoded to the end (the file is "
            "damaged or cut short)"
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
        limits = fetch_limits(s, max_bytes)
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


def fetch_limits(s: Settings, max_bytes: int) -> FetchLimits:
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
        except (TaskAborted, TaskFailure, av.FFmpegError):
            raise  # a cancel or a stop; a failure already named; the source's own damage
        except Exception as exc:
            raise EngineFailed(f"engine {self.engine} failed on frame {index}: {exc}") from exc
