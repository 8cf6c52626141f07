"""Group commit for new tasks: creates arriving together are inserted in one transaction.

Each create waits until its row is committed before it answers, so nothing is
lost; under load, one commit carries many rows, which is what lets the API
take thousands of creates a second on SQLite.

One request never sinks another: when a batch cannot be written, it is split
in halves and each half written again, down to the rows that fail on their
own. Such a row fails its own request only — a 400 when the row's own data
could not be stored, a 503 when the database could not take it — and every
other request of the batch succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from vedit.errors import InvalidRequest, StoreUnavailable, VeditError
from vedit.media.urls import escape_invisible
from vedit.tasks.store import TaskStore

MAX_BATCH = 512
log = logging.getLogger("vedit.api")

Pending = tuple[dict[str, Any], "asyncio.Future[None]"]


class TaskWriter:
    """Queues tasks from request handlers and commits them in batches from one coroutine."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self._queue: asyncio.Queue[Pending] | None = None
        self._runner: asyncio.Task[None] | None = None

    async def add(self, row: dict[str, Any]) -> None:
        """Return once the task ``row`` is committed; raise the :class:`VeditError` that
        says why it was not (its own data: 400; the database: 503)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._runner = asyncio.get_running_loop().create_task(self._run())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((row, done))
        await done

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[Pending]) -> None:
        """Commit ``batch``; on failure, its halves, down to the rows that fail alone."""
        try:
            await asyncio.to_thread(self.store.add_many, [row for row, _ in batch])
        except Exception as exc:
            if len(batch) > 1 and not _database_unavailable(exc):
                middle = len(batch) // 2
                await self._write(batch[:middle])
                await self._write(batch[middle:])
                return
            for row, done in batch:  # one row, or a database that takes none now
                if not done.done():
                    done.set_exception(_why_not_stored(exc, row))
        else:
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner


def _database_unavailable(exc: Exception) -> bool:
    return isinstance(exc, OperationalError | PoolTimeout)


def _why_not_stored(exc: Exception, row: dict[str, Any]) -> VeditError:
    """The client's answer for a row that could not be written."""
    if _database_unavailable(exc):
        log.warning("task %s not stored: the database is unavailable: %s", row.get("id"), exc)
        return StoreUnavailable(
            "the task could not be stored now: the database is busy or unavailable; retry",
            retry_after_s=1,
        )
    # The row alone fails: its data is what the database refuses (validation missed it).
    log.warning("task %s not stored: %s: %s", row.get("id"), type(exc).__name__, exc)
    reason = escape_invisible(str(getattr(exc, "orig", None) or exc))[:200]
    return InvalidRequest(f"the task could not be stored: {reason}")
