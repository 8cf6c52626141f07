"""The relay's worker: one asyncio loop per worker process follows many upstream tasks.

A task relayed to the upstream (engine ``dashscope``) mostly waits while the
upstream works, so a worker process with that engine does not run one task at
a time (``run_task``, which local edits keep): :func:`follow_relay_tasks` claims
up to ``VEDIT_RELAY_CONCURRENCY`` tasks and follows each as a coroutine
(:meth:`RelayWorker.follow`), all on one ``httpx.AsyncClient``. The claim loop
keeps claiming while earlier tasks are followed.

- The task table stays the source of truth: every state change is the store's
  compare-and-set, as in ``run_task``; a task ends through the same
  :func:`~vedit.worker.publish_result` and :func:`~vedit.worker.end_on_error`.
- The leases of all followed tasks are renewed together, one
  :meth:`~vedit.tasks.store.TaskStore.heartbeat_many` a beat, which also carries
  new progress (flushed every :data:`PROGRESS_FLUSH_S`); a task that is no longer
  this worker's (cancelled, recovered) is aborted at its next pause, and a
  cancelled one is cancelled upstream.
- What blocks runs in threads: the media steps (fetching and checking the
  inputs, copying and checking the result) in :data:`MEDIA_THREADS`, the
  database in :data:`DB_THREADS` and one more for the heartbeats, so the loop
  only waits, and memory stays bounded however many tasks are followed.
- When the worker is asked to stop, every followed task goes back to the queue
  with its upstream task id in its plan: the next worker resumes polling it.

What is not here: the steps shared with local edits (``worker.py``) and the
upstream's HTTP (``engines/relay.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from vedit.engines.relay import RelayEngine, RelayJob
from vedit.errors import TaskAborted
from vedit.media.fetch import fetch_media
from vedit.media.probe import aspect_ratio_name, check_result
from vedit.tasks.models import Task, TaskStatus
from vedit.uploads.store import upload_ref
from vedit.worker import (
    RENDERED,
    WorkerContext,
    check_inputs,
    end_on_error,
    fetch_limits,
    log_started,
    publish_result,
)

log = logging.getLogger("vedit.relay")

MEDIA_THREADS = 8  # fetch and check inputs, copy and check results: IO and short decodes
DB_THREADS = 4  # claims, plans, ends; heartbeats have a thread of their own
PROGRESS_FLUSH_S = 0.5  # new progress reaches the task table within this long
STOP_POLL_S = 0.1  # how soon a stop request is seen
CLAIM_BATCH = 20  # tasks claimed in one transaction

T = TypeVar("T")


class FollowedTask:
    """A worker's lease of one followed task, shared by its coroutine, the media threads
    and the heartbeat. ``check``, ``progress`` may be called from any thread; ``wait``,
    ``lose`` and ``abort`` only on the loop."""

    def __init__(self, task_id: str, stop: Any) -> None:
        self.task_id = task_id
        self.percent = 0  # as the task's steps set it
        self.written = 0  # as the task table has it
        self.lost = threading.Event()
        self._stop = stop
        self._aborted = asyncio.Event()

    def check(self) -> None:
        if self.lost.is_set():
            raise TaskAborted("the task's lease was lost")
        if self._stop.is_set():
            raise TaskAborted("the worker is stopping")

    def progress(self, percent: int) -> None:
        self.check()
        self.percent = percent

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less: a lost lease or a stop ends the wait with TaskAborted."""
        self.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._aborted.wait(), seconds)
        self.check()

    def lose(self) -> None:
        """The task is no longer this worker's (cancelled, recovered elsewhere)."""
        self.lost.set()
        self._aborted.set()

    def abort(self) -> None:
        """Cut the current wait short (the worker is stopping)."""
        self._aborted.set()


class RelayWorker:
    """Claims relayed tasks and follows them, many at once, until the worker stops."""

    def __init__(self, ctx: WorkerContext, wake: Any) -> None:
        assert isinstance(ctx.engine, RelayEngine)
        self.ctx, self.wake, self.engine = ctx, wake, ctx.engine
        self.followed: dict[str, FollowedTask] = {}
        self._running: dict[str, asyncio.Task[None]] = {}  # a coroutine per followed task
        self._room = asyncio.Event()  # set when a followed task ends
        self._media = ThreadPoolExecutor(MEDIA_THREADS, thread_name_prefix="vedit-relay-media")
        self._db = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="vedit-relay-db")
        self._beat_thread = ThreadPoolExecutor(1, thread_name_prefix="vedit-relay-beat")

    async def run(self) -> None:
        """Claim and follow until the worker is asked to stop; then hand every followed
        task back to the queue and return."""
        claiming = asyncio.create_task(self._claim())
        beating = asyncio.create_task(self._beat())
        try:
            while not self.ctx.stop.is_set():
                await asyncio.sleep(STOP_POLL_S)
            for lease in list(self.followed.values()):
                lease.abort()
            await claiming
            while self._running:  # each followed task hands itself back
                await asyncio.gather(*self._running.values(), return_exceptions=True)
        finally:
            beating.cancel()
            claiming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            await self.engine.upstream.aclose()
            for pool in (self._media, self._db, self._beat_thread):
                pool.shutdown(wait=True)

    # --- claiming -------------------------------------------------------------------

    async def _claim(self) -> None:
        limit = self.ctx.settings.relay_concurrency
        while not self.ctx.stop.is_set():
            if len(self.followed) >= limit:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), STOP_POLL_S * 5)
                continue
            try:
                # Not one it still follows: the janitor may have queued it again (a late
                # heartbeat), and its coroutine has yet to find out and let go.
                room = min(CLAIM_BATCH, limit - len(self.followed))
                claim = self.ctx.store.claim_many
                tasks = await self._in(
                    self._db, claim, self.ctx.worker_id, room, list(self._running)
                )
            except Exception:  # a busy or briefly unreachable database: try again soon
                log.warning("claiming tasks failed", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            if not tasks:  # woken by the API, or once a second
                await asyncio.to_thread(self.wake.acquire, True, 1.0)
                continue
            for task in tasks:
                lease = FollowedTask(task.id, self.ctx.stop)
                self.followed[task.id] = lease
                run = asyncio.create_task(self._follow_then_make_room(task, lease), name=task.id)
                self._running[task.id] = run

    async def _follow_then_make_room(self, task: Task, lease: FollowedTask) -> None:
        try:
            await self.follow(task, lease)
        finally:
            del self.followed[task.id], self._running[task.id]
            self._room.set()

    # --- the leases -----------------------------------------------------------------

    async def _beat(self) -> None:
        """Renew every followed task's lease each beat, and write new progress sooner; a
        task found no longer this worker's is lost to it."""
        interval = max(0.2, min(5.0, self.ctx.settings.task_lease_s / 3))
        next_beat = time.monotonic() + interval
        while True:
            await asyncio.sleep(PROGRESS_FLUSH_S if interval > PROGRESS_FLUSH_S else interval)
            leases = list(self.followed.values())
            changed = {f.task_id: f.percent for f in leases if f.percent != f.written}
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + interval
            elif changed:
                leases = [f for f in leases if f.task_id in changed]
            else:
                continue
            if not leases:
                continue
            ids = [f.task_id for f in leases]
            try:
                mine = await self._in(
                    self._beat_thread,
                    self.ctx.store.heartbeat_many,
                    ids,
                    self.ctx.worker_id,
                    changed,
                )
            except Exception:  # a busy or briefly unreachable database: try again next beat
                log.warning("heartbeat of %d followed tasks failed", len(ids), exc_info=True)
                continue
            for lease in leases:
                if lease.task_id not in mine:
                    lease.lose()
                elif lease.task_id in changed:
                    lease.written = changed[lease.task_id]

    # --- one task -------------------------------------------------------------------

    async def follow(self, task: Task, lease: FollowedTask) -> None:
        """Follow one claimed task to its end state: the relay's ``run_task``."""
        ctx, s = self.ctx, self.ctx.settings
        began = time.monotonic()
        work = s.work_dir / task.id
        try:
            # 1-3. Fetch and check the media here, plan the output: as for every engine.
            work.mkdir(parents=True, exist_ok=True)
            checked = await self._in(self._media, check_inputs, task, ctx, lease, work)
            info, spec = checked.info, checked.spec
            del checked  # the decoded references: the upstream fetches its own media
            await self._in(self._media, _empty, work)

            # 4. The plan: the request goes upstream as the client made it.
            resumed = (task.edit_plan or {}).get("upstream_task_id")
            plan: dict[str, Any] = {
                "operation": "relay", "region": "frame", "style": None,
                "reference_role": "upstream", "matched": True,
                "because": f"engine dashscope relays the request to {self.engine.upstream.host}",
                "fallback_from": None, "upstream_task_id": resumed,
            }  # fmt: skip
            await self._in(self._db, ctx.store.set_plan, task.id, ctx.worker_id, plan)
            log_started(task, plan, info)
            job = RelayJob(
                task_id=task.id,
                prompt=task.orig_prompt,
                media=await self._in(self._db, upstream_media, task, ctx),
                parameters=task.parameters(),
                upstream_task_id=resumed,
            )

            # 5. Submit (or resume), follow, and copy the result here.
            async def submitted(upstream_id: str) -> None:
                plan["upstream_task_id"] = upstream_id
                await self._in(self._db, ctx.store.set_plan, task.id, ctx.worker_id, plan)

            async def copy(url: str, dest: Path) -> None:
                limits = fetch_limits(s, s.video_max_bytes)
                fetch = functools.partial(
                    fetch_media, label="the upstream's result", limits=limits,
                    allow=s.media_allow, abort=lease.check,
                )  # fmt: skip
                await self._in(self._media, fetch, url, dest)

            async def cancelled() -> bool:
                now = await self._in(self._db, ctx.store.get, task.id)
                return now is not None and now.status == TaskStatus.CANCELLED

            started = time.monotonic()
            out = work / "out.mp4"
            await self.engine.run(job, lease, copy, out, submitted, cancelled)
            lease.progress(RENDERED)

            # 6. Check the copy against the output contract.
            check = functools.partial(
                check_result, width=spec.width, height=spec.height,
                duration_s=spec.duration_s, label="the upstream's result",
            )  # fmt: skip
            got = await self._in(self._media, check, out)
            result = {
                "width": got.width,
                "height": got.height,
                "fps": round(got.fps, 3),
                "frames": got.frames,
                "has_audio": got.has_audio,
                "input_video_duration": round(info.duration_s, 3),
                "output_video_duration": round(got.duration_s, 3),
                "ratio": aspect_ratio_name(got.width, got.height),
                "sr": 720 if task.resolution == "720P" else 1080,
                "engine": self.engine.name,
                "engine_seconds": round(time.monotonic() - started, 3),  # upstream, copy, check
            }

            # 7. Publish.
            ended = await self._in(self._db, publish_result, task, ctx, work, result)
        except Exception as exc:
            handing_back = ctx.stop.is_set() and not lease.lost.is_set()
            end = functools.partial(end_on_error, hand_back=handing_back)
            try:
                ended = await self._in(self._db, end, task, ctx, exc)
            except Exception:  # the database is gone: the janitor recovers the task
                log.exception("task %s could not be ended", task.id)
                ended = "left to the janitor"
        finally:
            await self._in(self._media, shutil.rmtree, work, True)
        log.info("task %s finished: %s in %.2f s", task.id, ended, time.monotonic() - began)

    async def _in(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in one of ``pool``'s threads."""
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


def upstream_media(task: Task, ctx: WorkerContext) -> list[dict[str, str]]:
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


def _empty(folder: Path) -> None:
    """Delete what ``folder`` holds (the checked inputs), keeping the folder."""
    for path in folder.iterdir():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def follow_relay_tasks(ctx: WorkerContext, wake: Any) -> None:
    """A relay worker process's life: claim and follow tasks until ``ctx.stop`` is set."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll of every task
    asyncio.run(RelayWorker(ctx, wake).run())
