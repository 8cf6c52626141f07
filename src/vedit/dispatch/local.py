"""The embedded dispatcher: worker processes inside ``vedit serve``.

The queue is the ``tasks`` table itself, so nothing is lost when the server
stops: workers claim the oldest queued task by compare-and-set, and the API
only wakes them (a counting semaphore) so that they need not poll fast. A
supervisor thread in the server restarts a worker that dies, hands its task
back to the queue (or fails it after ``task_max_attempts``), recovers tasks
whose heartbeat stopped (a previous run of the server, another host), and
deletes expired tasks and their files.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

from vedit.config import Settings
from vedit.db import make_engine
from vedit.storage.local import LocalStorage
from vedit.tasks.store import TaskStore

log = logging.getLogger("vedit.dispatch")
HOST = socket.gethostname()


def worker_id_for(server_pid: int, worker_pid: int) -> str:
    """``host:server-pid:worker-pid``: enough to tell, on this host, whether the worker lives."""
    return f"{HOST}:{server_pid}:{worker_pid}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_main(settings: Settings, wake: Any, stop: Any) -> None:
    """A worker process: claim, run, repeat, until ``stop`` is set."""
    from vedit.engines.base import get_engine
    from vedit.worker import WorkerContext, run_task

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    # SIGTERM (systemd, docker stop, kill): stop at the next frame and hand the task back,
    # as the server would have asked; the server restarts this worker if it is still up.
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    stop = _EitherEvent(stop, terminated)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = TaskStore(make_engine(settings.resolved_database_url))
    ctx = WorkerContext(
        settings=settings,
        store=store,
        storage=LocalStorage(settings),
        engine=get_engine(settings),
        worker_id=worker_id_for(os.getppid(), os.getpid()),
        stop=stop,
    )
    while not stop.is_set():
        task = store.claim_next(ctx.worker_id)
        if task is None:
            wake.acquire(timeout=1.0)
            continue
        run_task(task, ctx)


class _EitherEvent:
    """Set when either of two events is set."""

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or self.b.is_set()


class LocalDispatcher:
    """Starts, watches and stops the worker processes; wakes them on new tasks."""

    def __init__(self, settings: Settings, workers: int | None = None) -> None:
        self.settings = settings
        self.count = settings.workers if workers is None else workers
        self._mp = mp.get_context("spawn")
        self.wake = self._mp.Semaphore(0)
        self.stop_event = self._mp.Event()
        self.procs: list[BaseProcess] = []
        self.store = TaskStore(make_engine(settings.resolved_database_url))
        self.storage = LocalStorage(settings)
        self._halt = threading.Event()
        self._thread = threading.Thread(
            target=self._supervise, name="vedit-supervisor", daemon=True
        )

    # --- what the API calls -----------------------------------------------------

    def submit(self, task_id: str) -> None:
        """A task was queued: wake one worker."""
        self.wake.release()

    # --- life ------------------------------------------------------------------

    def start(self) -> None:
        from vedit.engines.base import get_engine

        get_engine(self.settings)  # an unknown engine stops here, not in a restart loop
        self._recover_dead_servers()
        for _ in range(self.count):
            self.procs.append(self._spawn())
        self._thread.start()

    def stop(self, grace_s: float = 10.0) -> None:
        """Ask workers to stop at the next frame (their tasks go back to the queue), then wait."""
        self._halt.set()
        self.stop_event.set()
        for _ in self.procs:
            self.wake.release()
        deadline = time.monotonic() + grace_s
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _spawn(self) -> BaseProcess:
        proc = self._mp.Process(
            target=worker_main,
            args=(self.settings, self.wake, self.stop_event),
            name="vedit-worker",
            daemon=True,
        )
        proc.start()
        return proc

    # --- the supervisor --------------------------------------------------------

    def _supervise(self) -> None:
        while not self._halt.wait(self.settings.janitor_interval_s):
            try:
                self._restart_dead_workers()
                self.sweep()
            except Exception:  # the supervisor must outlive a database hiccup
                log.exception("supervisor sweep failed")

    def _restart_dead_workers(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.is_alive() or self._halt.is_set():
                continue
            dead = worker_id_for(os.getpid(), proc.pid or 0)
            log.warning("worker %s exited with %s; restarting it", dead, proc.exitcode)
            self._recovered(
                self.store.recover_lost(
                    lease_s=self.settings.task_lease_s,
                    max_attempts=self.settings.task_max_attempts,
                    worker_id=dead,
                )
            )
            self.procs[i] = self._spawn()

    def sweep(self) -> None:
        """Recover tasks whose heartbeat stopped and delete expired ones."""
        self._recovered(
            self.store.recover_lost(
                lease_s=self.settings.task_lease_s, max_attempts=self.settings.task_max_attempts
            )
        )
        for task in self.store.purge_expired():
            self.storage.delete(task.id)

    def _recover_dead_servers(self) -> None:
        """At start-up, tasks left running by a server on this host that is gone are lost now."""
        for owner in self.store.running_owners():
            host, _, rest = owner.partition(":")
            server_pid = rest.partition(":")[0]
            if host == HOST and server_pid.isdigit() and not _pid_alive(int(server_pid)):
                self._recovered(
                    self.store.recover_lost(
                        lease_s=self.settings.task_lease_s,
                        max_attempts=self.settings.task_max_attempts,
                        worker_id=owner,
                    )
                )

    def _recovered(self, recoveries: list[Any]) -> None:
        for r in recoveries:
            if r.requeued:
                log.warning("task %s lost its worker; queued again", r.task_id)
                self.wake.release()
            else:
                log.warning("task %s lost its worker too often; failed", r.task_id)
