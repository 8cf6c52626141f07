"""A worker's hold on the tasks it runs: one :class:`Lease` per task, kept by one :class:`Leases`.

The task table says whose a running task is (``worker_id``, ``heartbeat_at``);
:class:`Leases` renews every lease a worker holds together — one
:meth:`~vedit.tasks.store.TaskStore.heartbeat_many` a beat, from a thread of its
own — and carries new progress to the table within :data:`PROGRESS_FLUSH_S`. A
task found no longer the worker's (cancelled, recovered by the janitor) is lost
to it: its steps raise :class:`~vedit.errors.TaskAborted` at their next check.

The same lease serves a local edit (one task, its steps in threads) and the
relay (many tasks, each a coroutine on one asyncio loop: :meth:`Lease.wait`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from vedit.errors import TaskAborted
from vedit.tasks.store import TaskStore

log = logging.getLogger("vedit.lease")

PROGRESS_FLUSH_S = 0.5  # new progress reaches the task table within this long


def beat_interval(lease_s: float) -> float:
    """How often a lease of ``VEDIT_TASK_LEASE_S`` = ``lease_s`` is renewed."""
    return max(0.2, min(5.0, lease_s / 3))


class Lease:
    """A worker's hold on one claimed task, as the task's steps see it.

    ``check`` and ``progress`` may be called from any thread; ``wait`` on an asyncio loop.
    ``stop`` is the worker's stop request (a threading or multiprocessing event)."""

    def __init__(self, task_id: str, stop: Any) -> None:
        self.task_id = task_id
        self.percent = 0  # as the task's steps set it
        self.written = 0  # as the task table has it
        self.lost = threading.Event()
        self._stop = stop
        self._woken: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def check(self) -> None:
        """Raise :class:`TaskAborted` once the task is no longer this worker's to run."""
        if self.lost.is_set():
            raise TaskAborted("the task's lease was lost")
        if self._stop.is_set():
            raise TaskAborted("the worker is stopping")

    def progress(self, percent: int) -> None:
        """Record progress (written by :class:`Leases`); raises as :meth:`check` does."""
        self.check()
        self.percent = percent

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less: a lost lease or a stop ends the wait with TaskAborted."""
        if self._woken is None:
            self._woken = (asyncio.get_running_loop(), asyncio.Event())
        self.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken[1].wait(), seconds)
        self.check()

    def lose(self) -> None:
        """The task is no longer this worker's (cancelled, recovered elsewhere)."""
        self.lost.set()
        self.wake()

    def wake(self) -> None:
        """Cut a current :meth:`wait` short (from any thread): the worker is stopping."""
        if self._woken is not None:
            loop, event = self._woken
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing waits
                loop.call_soon_threadsafe(event.set)


class Leases:
    """Renews the leases a worker holds, from a thread of its own, until :meth:`close`."""

    def __init__(self, store: TaskStore, worker_id: str, lease_s: float, stop: Any) -> None:
        self.store, self.worker_id, self.stop = store, worker_id, stop
        self.interval = beat_interval(lease_s)
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="vedit-leases", daemon=True)
        self._thread.start()

    def hold(self, task_id: str) -> Lease:
        """The lease of a task this worker has just claimed."""
        lease = Lease(task_id, self.stop)
        with self._lock:
            self._held[task_id] = lease
        return lease

    def release(self, lease: Lease) -> None:
        """The task has ended (or was given up): its lease is no longer renewed."""
        with self._lock:
            self._held.pop(lease.task_id, None)

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._held.values())

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def __enter__(self) -> Leases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _beat(self) -> None:
        """Renew every lease each beat, and write new progress sooner."""
        tick = min(PROGRESS_FLUSH_S, self.interval)
        next_beat = time.monotonic() + self.interval
        while not self._closed.wait(tick):
            leases = self.held()
            changed = {x.task_id: x.percent for x in leases if x.percent != x.written}
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.interval
            elif changed:
                leases = [x for x in leases if x.task_id in changed]
            else:
                continue
            if leases:
                self.renew(leases, changed)

    def renew(self, leases: list[Lease], changed: dict[str, int]) -> None:
        """One heartbeat for ``leases``, writing ``changed`` progress; loses the lost ones."""
        try:
            mine = self.store.heartbeat_many([x.task_id for x in leases], self.worker_id, changed)
        except Exception:  # a busy or briefly unreachable database: try again next beat
            log.warning("heartbeat of %d task(s) failed", len(leases), exc_info=True)
            return
        for lease in leases:
            if lease.task_id not in mine:
                lease.lose()
            elif lease.task_id in changed:
                lease.written = changed[lease.task_id]
