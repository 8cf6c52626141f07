"""The relay's steps: one asyncio loop per worker process follows many upstream tasks.

A task relayed to the upstream (engine ``dashscope``) mostly waits while the
upstream works, so a worker process with that engine does not run one task at
a time (``run.py``): :func:`follow_relay_tasks` claims up to
``VEDIT_RELAY_CONCURRENCY`` tasks and follows each as a coroutine
(:meth:`RelayFollower.follow`), all on one ``httpx.AsyncClient``. The claim loop
keeps claiming while earlier tasks are followed.

- Each task goes through ``steps`` as every engine's does: ``obtain_inputs``,
  then the edit step, which here is "follow the upstream task and copy its
  result", then ``publish`` or ``end_on_error``.
- The leases of all followed tasks are one :class:`~vedit.runtime.lease.Leases`:
  renewed together each beat, new progress written within a flush; a task that
  is no longer this worker's is aborted at its next pause, and a cancelled one
  is cancelled upstream.
- What blocks runs in threads: the media steps in :data:`MEDIA_THREADS`, the
  database in :data:`DB_THREADS`, so the loop only waits, and memory stays
  bounded however many tasks are followed.
- When the worker is asked to stop, every followed task goes back to the queue
  with its upstream task id in its plan: the next worker resumes polling it.

The upstream's HTTP is ``engines/relay.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from vedit.engines.relay import RelayEngine, RelayJob
from vedit.media.probe import check_result
from vedit.runtime import steps
from vedit.runtime.context import Context
from vedit.runtime.lease import Lease, Leases
from vedit.runtime.steps import RENDERED
from vedit.tasks.models import Task, TaskStatus
from vedit.uploads.store import upload_ref

log = logging.getLogger("vedit.relay")

MEDIA_THREADS = 8  # fetch and check inputs, copy and check results: IO and short decodes
DB_THREADS = 4  # claims, plans, ends; heartbeats have the leases' thread
STOP_POLL_S = 0.1  # how soon a stop request is seen
CLAIM_BATCH = 20  # tasks claimed in one transaction

T = TypeVar("T")


class RelayFollower:
    """Claims relayed tasks and follows them, many at once, until the worker stops."""

    def __init__(self, ctx: Context, wake: Any) -> None:
        assert isinstance(ctx.engine, RelayEngine)
        self.ctx, self.wake, self.engine = ctx, wake, ctx.engine
        self.leases = Leases(ctx.store, ctx.worker_id, ctx.settings.task_lease_s, ctx.stop)
        self._running: dict[str, asyncio.Task[None]] = {}  # a coroutine per followed task
        self._room = asyncio.Event()  # set when a followed task ends
        self._media = ThreadPoolExecutor(MEDIA_THREADS, thread_name_prefix="vedit-relay-media")
        self._db = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="vedit-relay-db")

    async def run(self) -> None:
        """Claim and follow until the worker is asked to stop; then hand every followed
        task back to the queue and return."""
        claiming = asyncio.create_task(self._claim())
        try:
            while not self.ctx.stop.is_set():
                await asyncio.sleep(STOP_POLL_S)
            for lease in self.leases.held():
                lease.wake()
            await claiming
            while self._running:  # each followed task hands itself back
                await asyncio.gather(*self._running.values(), return_exceptions=True)
        finally:
            claiming.cancel()
            self.leases.close()
            await self.engine.upstream.aclose()
            for pool in (self._media, self._db):
                pool.shutdown(wait=True)

    async def _claim(self) -> None:
        limit = self.ctx.settings.relay_concurrency
        while not self.ctx.stop.is_set():
            if len(self._running) >= limit:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), STOP_POLL_S * 5)
                continue
            try:
                # Not one it still follows: the janitor may have queued it again (a late
                # heartbeat), and its coroutine has yet to find out and let go.
                room = min(CLAIM_BATCH, limit - len(self._running))
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
                lease = self.leases.hold(task.id)
                run = asyncio.create_task(self._follow_then_make_room(task, lease), name=task.id)
                self._running[task.id] = run

    async def _follow_then_make_room(self, task: Task, lease: Lease) -> None:
        try:
            await self.follow(task, lease)
        finally:
            self.leases.release(lease)
            del self._running[task.id]
            self._room.set()

    async def follow(self, task: Task, lease: Lease) -> None:
        """Follow one claimed task to its end state: the relay's ``run_task``."""
        ctx = self.ctx
        began = time.monotonic()
        work_dir = ctx.settings.work_dir / task.id
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            result = await self.edit(task, lease, work_dir)
            ended = await self._in(self._db, steps.publish, task, ctx, work_dir, result)
        except Exception as exc:
            handing_back = ctx.stop.is_set() and not lease.lost.is_set()
            end = functools.partial(steps.end_on_error, hand_back=handing_back)
            try:
                ended = await self._in(self._db, end, task, ctx, exc)
            except Exception:  # the database is gone: the janitor recovers the task
                log.exception("task %s could not be ended", task.id)
                ended = "left to the janitor"
        finally:
            await self._in(self._media, shutil.rmtree, work_dir, True)
        log.info("task %s finished: %s in %.2f s", task.id, ended, time.monotonic() - began)

    async def edit(self, task: Task, lease: Lease, work_dir: Path) -> dict[str, Any]:
        """The relay's edit step: the inputs checked here, the request sent upstream as the
        client made it (or the upstream task resumed), followed, and its result copied and
        checked against the output contract."""
        ctx = self.ctx
        checked = await self._in(self._media, steps.obtain_inputs, task, ctx, lease, work_dir)
        info, spec = checked.info, checked.spec
        del checked  # the decoded references: the upstream fetches its own media
        await self._in(self._media, _empty, work_dir)

        resumed = (task.edit_plan or {}).get("upstream_task_id")
        plan: dict[str, Any] = {
            "operation": "relay", "region": "frame", "style": None,
            "reference_role": "upstream", "matched": True,
            "because": f"engine dashscope relays the request to {self.engine.upstream.host}",
            "fallback_from": None, "upstream_task_id": resumed,
        }  # fmt: skip
        await self._in(self._db, ctx.store.set_plan, task.id, ctx.worker_id, plan)
        steps.log_started(task, plan, info)
        job = RelayJob(
            task_id=task.id,
            prompt=task.orig_prompt,
            media=await self._in(self._db, upstream_media, task, ctx),
            parameters=task.parameters(),
            upstream_task_id=resumed,
        )

        async def submitted(upstream_id: str) -> None:
            plan["upstream_task_id"] = upstream_id
            await self._in(self._db, ctx.store.set_plan, task.id, ctx.worker_id, plan)

        async def copy(url: str, dest: Path) -> None:
            fetch = functools.partial(
                steps.fetch, label="the upstream's result",
                max_bytes=ctx.settings.video_max_bytes, ctx=ctx, lease=lease,
            )  # fmt: skip
            await self._in(self._media, fetch, url, dest)

        async def cancelled() -> bool:
            now = await self._in(self._db, ctx.store.get, task.id)
            return now is not None and now.status == TaskStatus.CANCELLED

        started = time.monotonic()
        out = work_dir / "out.mp4"
        await self.engine.run(job, lease, copy, out, submitted, cancelled)
        lease.progress(RENDERED)

        check = functools.partial(
            check_result, width=spec.width, height=spec.height,
            duration_s=spec.duration_s, label="the upstream's result",
        )  # fmt: skip
        got = await self._in(self._media, check, out)
        return steps.result_of(
            task,
            ctx,
            info,
            width=got.width,
            height=got.height,
            fps=round(got.fps, 3),
            frames=got.frames,
            has_audio=got.has_audio,
            duration_s=got.duration_s,
            started=started,
        )  # fmt: skip  upstream, copy, check

    async def _in(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in one of ``pool``'s threads."""
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


def upstream_media(task: Task, ctx: Context) -> list[dict[str, str]]:
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


def follow_relay_tasks(ctx: Context, wake: Any) -> None:
    """A relay worker process's life: claim and follow tasks until ``ctx.stop`` is set."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll of every task
    asyncio.run(RelayFollower(ctx, wake).run())
