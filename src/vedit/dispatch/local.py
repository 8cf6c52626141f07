"""The embedded dispatcher: worker processes inside ``vedit serve`` (and ``vedit worker``).

The queue is the ``tasks`` table itself, so nothing is lost when the server
stops: workers claim the oldest queued task by compare-and-set, and the API
only wakes them (a counting semaphore) so that they need not poll fast.

Workers that cannot run are loud, not silent. Each worker process reports once,
over a pipe, that it loaded its engine or why it could not; ``start`` waits for
the first report and raises :class:`WorkersCannotStart` with the cause rather
than serve with no worker. A supervisor thread watches every worker slot: it
logs each death once with its cause, hands the dead worker's task back to the
queue (or fails it after ``task_max_attempts``), and starts the slot again
after an exponential backoff. It also recovers tasks whose heartbeat stopped
(a previous run of the server, another host) and deletes expired tasks and
their files. ``health()`` counts the workers that are alive and ready.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, NamedTuple

from vedit.config import Settings
from vedit.dispatch import Gauge
from vedit.errors import EngineUnavailable, WorkersCannotStart
from vedit.runtime.context import build_context
from vedit.runtime.janitor import Janitor, log_recovered, worker_id_for
from vedit.tasks.store import Recovery

log = logging.getLogger("vedit.dispatch")
WATCH_INTERVAL_S = 0.1  # how often the supervisor looks at its workers


class StartReport(NamedTuple):
    """What a new worker process says once: ready, or the error that stopped it."""

    ready: bool
    error: str = ""  # "ModuleNotFoundError: No module named 'httpx'"
    traceback: str = ""


@dataclass(frozen=True)
class WorkerHealth:
    """Workers alive and ready, workers configured, and the cause of the last death."""

    alive: int
    wanted: int
    last_error: str | None

    @property
    def ok(self) -> bool:
        return self.alive >= self.wanted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def gauges(self) -> list[Gauge]:
        return [
            Gauge(
                "vedit_workers_alive",
                "Worker processes of this server that are alive and have loaded their engine",
                self.alive,
            ),
            Gauge(
                "vedit_workers_wanted",
                "Worker processes this server is configured to run",
                self.wanted,
            ),
        ]


def worker_main(settings: Settings, wake: Any, stop: Any, report: Connection) -> None:
    """A worker process: load the engine and say so on ``report`` (or say why not and exit 1),
    then claim, run, repeat, until ``stop`` is set: one task at a time with a local engine,
    up to ``VEDIT_RELAY_CONCURRENCY`` at once with the relay (``runtime/relay.py``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    # SIGTERM (systemd, docker stop, kill): stop at the next frame and hand the task back,
    # as the server would have asked; the server restarts this worker if it is still up.
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    stop = _EitherEvent(stop, terminated)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        from vedit.runtime.run import work

        worker_id = worker_id_for(os.getppid(), os.getpid())
        ctx = build_context(settings, "worker", worker_id=worker_id, stop=stop)
    except Exception as exc:  # a missing module, an unknown engine, a broken install
        # The server logs it, with this traceback, as the cause of this worker's death; an
        # engine that says why it cannot run here needs no traceback.
        if isinstance(exc, EngineUnavailable):
            report.send(StartReport(ready=False, error=str(exc)))
        else:
            error = f"{type(exc).__name__}: {exc}"
            report.send(StartReport(ready=False, error=error, traceback=traceback.format_exc()))
        sys.exit(1)
    report.send(StartReport(ready=True))
    report.close()
    work(ctx, wake)


class _EitherEvent:
    """Set when either of two events is set."""

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or self.b.is_set()


@dataclass
class WorkerSlot:
    """One of the configured worker places: the process in it now, and how it has fared."""

    number: int
    process: BaseProcess | None = None
    report: Connection | None = None  # read end of the process's start-up report, until read
    ready_at: float | None = None  # when the process reported ready (monotonic)
    start_error: str = ""  # what the process reported instead of ready
    start_traceback: str = ""
    last_cause: str = ""  # of the previous death: a traceback is logged only for a new cause
    deaths_in_a_row: int = 0  # reset once a worker stays up as long as the longest backoff
    restart_at: float = 0.0  # while the slot is empty: when its next process may start

    @property
    def ready(self) -> bool:
        return self.process is not None and self.ready_at is not None

    def cause_of_death(self) -> str:
        """Why the process in this slot ended, for the log and ``last_error``."""
        if self.start_error:
            return f"could not start: {self.start_error}"
        assert self.process is not None
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (the out-of-memory killer, or by hand)" if -code == signal.SIGKILL else ""
            return f"was killed by {name}{hint}"
        before = "" if self.ready_at is not None else " before it was ready"
        return f"exited with code {code}{before}"


class LocalDispatcher:
    """Starts, watches and stops the worker processes; wakes them on new tasks."""

    def __init__(self, settings: Settings, workers: int | None = None) -> None:
        self.settings = settings
        self.count = settings.workers if workers is None else workers
        self._mp = mp.get_context("spawn")
        self.wake = self._mp.Semaphore(0)
        self.stop_event = self._mp.Event()
        self.slots = [WorkerSlot(number) for number in range(1, self.count + 1)]
        self.last_error: str | None = None
        self.context = build_context(settings, "janitor")
        self.janitor = Janitor(self.context)
        self._lock = threading.Lock()  # the slots: the supervisor changes them, health() reads
        self._halt = threading.Event()
        self._thread = threading.Thread(
            target=self._supervise, name="vedit-supervisor", daemon=True
        )

    # --- what the API calls -----------------------------------------------------

    def submit(self, task_id: str) -> None:
        """A task was queued: wake one worker."""
        self.wake.release()

    def health(self) -> WorkerHealth:
        """Workers alive and ready now, against those configured."""
        with self._lock:
            alive = sum(slot.ready for slot in self.slots)
        return WorkerHealth(alive=alive, wanted=self.count, last_error=self.last_error)

    # --- life ------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and wait until one has loaded its engine.

        Raises :class:`WorkersCannotStart`, with every worker stopped, when the first
        worker to answer could not start, one died before answering, or none answered
        within ``worker_start_timeout_s``. With no workers there is nothing to check.
        """
        self._recover_dead_servers()
        try:
            for slot in self.slots:
                self._start_worker(slot)
            if self.slots:
                self._wait_for_a_ready_worker()
        except BaseException:  # WorkersCannotStart, or Ctrl-C while waiting
            self.stop(grace_s=5.0)
            raise
        self._thread.start()

    def stop(self, grace_s: float = 10.0) -> None:
        """Ask workers to stop at the next frame (their tasks go back to the queue), then wait."""
        self._halt.set()
        self.stop_event.set()
        with self._lock:  # after this no worker is started any more
            procs = [slot.process for slot in self.slots if slot.process is not None]
        for _ in procs:
            self.wake.release()
        deadline = time.monotonic() + grace_s
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _start_worker(self, slot: WorkerSlot) -> None:
        # Should the start itself fail (no memory, no file descriptors), try again later.
        slot.restart_at = time.monotonic() + self.settings.worker_restart_backoff_s
        reader, writer = self._mp.Pipe(duplex=False)
        proc = self._mp.Process(
            target=worker_main,
            args=(self.settings, self.wake, self.stop_event, writer),
            name=f"vedit-worker-{slot.number}",
            daemon=True,
        )
        try:
            proc.start()
        finally:
            writer.close()  # the worker holds the write end; its death reads as end of file
        slot.process, slot.report, slot.ready_at = proc, reader, None
        slot.start_error = slot.start_traceback = ""

    def _wait_for_a_ready_worker(self) -> None:
        timeout = self.settings.worker_start_timeout_s
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for slot in self.slots:
                self._read_report(slot)
                if slot.ready:
                    return
                assert slot.process is not None
                if slot.start_error:
                    if slot.start_traceback:
                        log.error(
                            "worker %d (pid %s) could not start\n%s",
                            slot.number, slot.process.pid, slot.start_traceback.rstrip(),
                        )  # fmt: skip
                    raise WorkersCannotStart(slot.start_error)
                if not slot.process.is_alive():
                    self._read_report(slot)  # a report written just before the end
                    raise WorkersCannotStart(
                        slot.start_error or f"worker {slot.number} {slot.cause_of_death()}"
                    )
            waiting = [s.report for s in self.slots if s.report is not None]
            wait([*waiting, *(s.process.sentinel for s in self.slots if s.process)], 0.1)
        raise WorkersCannotStart(
            f"no worker loaded engine {self.settings.engine!r} within {timeout:g} s "
            "(VEDIT_WORKER_START_TIMEOUT_S)"
        )

    def _read_report(self, slot: WorkerSlot) -> None:
        """Take the slot's start-up report, if its process has sent it (or ended without one)."""
        if slot.report is None or not slot.report.poll():
            return
        try:
            report: StartReport | None = slot.report.recv()
        except EOFError:  # the process ended without a word; its exit code tells the rest
            report = None
        slot.report.close()
        slot.report = None
        if report is None:
            return
        if report.ready:
            slot.ready_at = time.monotonic()
            log.info("worker %d (pid %s) is ready", slot.number, slot.process and slot.process.pid)
        else:
            slot.start_error, slot.start_traceback = report.error, report.traceback

    # --- the supervisor --------------------------------------------------------

    def _supervise(self) -> None:
        next_sweep = 0.0
        while not self._halt.wait(WATCH_INTERVAL_S):
            try:
                self._tend_workers()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.settings.janitor_interval_s
                    self.sweep()
            except Exception:  # the supervisor must outlive a database hiccup
                log.exception("supervisor sweep failed")

    def _tend_workers(self) -> None:
        """Take start-up reports, bury dead workers (once each), refill slots whose wait is over."""
        lost: list[str] = []
        with self._lock:
            for slot in self.slots:
                if self._halt.is_set():
                    return
                if slot.process is None:
                    if time.monotonic() >= slot.restart_at:
                        self._start_worker(slot)
                    continue
                self._read_report(slot)
                if not slot.process.is_alive():
                    lost.append(self._bury(slot))
        for worker_id in lost:  # a dead worker's task goes back to the queue, as promised
            self._recovered(self.janitor.recover(worker_id))

    def _stayed_up(self, slot: WorkerSlot) -> bool:
        up_since = slot.ready_at
        cap = self.settings.worker_restart_backoff_max_s
        return up_since is not None and time.monotonic() - up_since >= cap

    def _bury(self, slot: WorkerSlot) -> str:
        """Log a worker's death once, with its cause, and set when the slot starts again.

        Returns the dead worker's id, whose task is to be recovered."""
        assert slot.process is not None
        self._read_report(slot)  # a report written just before the end
        cause = slot.cause_of_death()
        if self._stayed_up(slot):
            slot.deaths_in_a_row = 0
        slot.deaths_in_a_row += 1
        s = self.settings
        doublings = min(slot.deaths_in_a_row - 1, 32)
        delay = min(s.worker_restart_backoff_max_s, s.worker_restart_backoff_s * 2**doublings)
        slot.restart_at = time.monotonic() + delay
        self.last_error = f"worker {slot.number} {cause}"
        pid = slot.process.pid
        new_traceback = slot.start_traceback if cause != slot.last_cause else ""
        log.warning(
            "worker %d (pid %s) %s; starting it again in %g s%s",
            slot.number, pid, cause, delay, "\n" + new_traceback.rstrip() if new_traceback else "",
        )  # fmt: skip
        if slot.report is not None:
            slot.report.close()
        slot.last_cause = cause
        slot.process, slot.report, slot.ready_at = None, None, None
        slot.start_error = slot.start_traceback = ""
        return worker_id_for(os.getpid(), pid or 0)

    def sweep(self) -> None:
        """Recover tasks whose heartbeat stopped; delete expired tasks and uploads, and
        uploads left half-received (a server killed mid-upload)."""
        self._recovered(self.janitor.recover())
        self.janitor.purge()

    def _recover_dead_servers(self) -> None:
        """At start-up, tasks left running by a server on this host that is gone are lost now."""
        self._recovered(self.janitor.recover_orphans())

    def _recovered(self, recoveries: list[Recovery]) -> None:
        for _ in log_recovered(recoveries):
            self.wake.release()
