"""A worker's life, and one task on an engine that edits here (frame by frame, or clips).

:func:`work` is what every worker process runs once its context is built: claim,
run, repeat until asked to stop — one task at a time with a frame or clip engine
(:func:`run_task`), many at once with the relay (``relay.py``). A claimed task
always ends in one state change (``steps.publish`` / ``steps.end_on_error``).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from vedit.engines.base import EditJob, PreparedClip
from vedit.engines.clip import ClipFrames
from vedit.engines.plan import without_reference
from vedit.errors import EngineFailed, MediaCorrupt, TaskAborted, TaskFailure
from vedit.media.video import FrameEditor, render
from vedit.runtime import steps
from vedit.runtime.context import Context
from vedit.runtime.lease import Lease, Leases
from vedit.runtime.steps import RENDERED, VALIDATED
from vedit.tasks.models import Task

log = logging.getLogger("vedit.worker")


def work(ctx: Context, wake: Any) -> None:
    """Claim and run tasks until ``ctx.stop`` is set; ``wake`` (a semaphore) is released by
    the API for each new task, so an idle worker need not poll fast."""
    if ctx.editor.kind == "relay":  # many upstream tasks at once, each a coroutine
        from vedit.runtime.relay import follow_relay_tasks

        follow_relay_tasks(ctx, wake)
        return
    while not ctx.stop.is_set():
        task = ctx.store.claim_next(ctx.worker_id)
        if task is None:
            wake.acquire(timeout=1.0)
            continue
        run_task(task, ctx)


def run_task(task: Task, ctx: Context) -> None:
    """Run one claimed task to its end state on a frame or clip engine."""
    began = time.monotonic()
    work_dir = ctx.settings.work_dir / task.id
    work_dir.mkdir(parents=True, exist_ok=True)
    with Leases(ctx.store, ctx.worker_id, ctx.settings.task_lease_s, ctx.stop) as leases:
        lease = leases.hold(task.id)
        try:
            result = edit(task, ctx, lease, work_dir)
            ended = steps.publish(task, ctx, work_dir, result)
        except Exception as exc:
            handing_back = ctx.stop.is_set() and not lease.lost.is_set()
            ended = steps.end_on_error(task, ctx, exc, hand_back=handing_back)
        finally:
            leases.release(lease)
            shutil.rmtree(work_dir, ignore_errors=True)
    log.info("task %s finished: %s in %.2f s", task.id, ended, time.monotonic() - began)


def edit(task: Task, ctx: Context, lease: Lease, work_dir: Path) -> dict[str, Any]:
    """The edit step of an engine that edits here: plan, inputs, the engine's edit through
    the output stage; returns the result's record."""
    engine = ctx.editor
    if engine.kind == "relay":  # followed by relay.py, many tasks per process
        raise EngineFailed(f"engine {engine.name} is not run by run_task")
    plan = steps.plan(task, ctx)
    checked = steps.obtain_inputs(task, ctx, lease, work_dir)
    info, spec, references = checked.info, checked.spec, checked.references

    # With no reference image, what needs one is not done.
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
        models_dir=ctx.settings.models_dir,
        source=checked.video,
        task_id=task.id,
    )
    try:
        prepared = engine.prepare(job)
    except TaskFailure:
        raise
    except Exception as exc:
        raise EngineFailed(f"engine {engine.name} could not start: {exc}") from exc
    # The plan as the engine carries it out (e.g. the look, where a person edit found no person).
    ctx.store.set_plan(task.id, ctx.worker_id, prepared.plan.to_dict())
    steps.log_started(task, prepared.plan.to_dict(), info)

    # Through the output stage: frame by frame, or — a clip engine — window by window,
    # each output frame taking the edited clip's frame for its time.
    span = RENDERED - VALIDATED
    progress = lambda f: lease.progress(VALIDATED + int(span * f))  # noqa: E731
    if isinstance(prepared, PreparedClip):
        frames: FrameEditor = ClipFrames(prepared.editor, checked.video, spec, progress)
        rendered = lambda _f: lease.check()  # noqa: E731  the clip editor reports progress
    else:
        frames, rendered = prepared.editor, progress
    guarded = _Guarded(frames, engine.name)
    out = work_dir / "out.mp4"
    try:
        stats = render(checked.video, out, spec, guarded, ctx.output, on_progress=rendered)
    except av.FFmpegError as exc:
        log.info("%s: FFmpeg stopped decoding: %s", checked.video_label, exc)
        raise MediaCorrupt(
            f"{checked.video_label}: the video could not be decoded to the end (the file is "
            "damaged or cut short)"
        ) from None

    # What the plan, the query answer and usage report.
    ctx.store.set_plan(task.id, ctx.worker_id, prepared.outcome().to_dict())
    return steps.result_of(
        task,
        ctx,
        info,
        width=spec.width,
        height=spec.height,
        fps=spec.fps,
        frames=stats.frames,
        has_audio=stats.has_audio,
        duration_s=spec.duration_s,
        started=started,
    )  # fmt: skip  prepare + edit + encode


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
