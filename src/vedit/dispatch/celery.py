"""The Celery dispatcher (``VEDIT_DISPATCH=celery``): task ids over a broker to ``vedit worker``
processes on any host.

The task table stays the source of truth; a broker message only says "run this id". A
message is a token: the worker that takes it claims that task by compare-and-set, or, when
the task is no longer queued (cancelled, already running, done), the oldest queued task
instead, or nothing. So a second delivery of one message (a Redis visibility timeout, a
redelivery after a lost worker) never runs a task twice, and a lost message costs a task
nothing as long as some token comes for it: the janitors count the queued tasks against the
messages waiting in the broker and send the missing ones again.

Long edits are safe: messages are acknowledged after the task (``task_acks_late``), each
pool process holds one message at a time (``worker_prefetch_multiplier=1``), and a message
whose worker process died is handed out again (``task_reject_on_worker_lost``). Whether a
task's worker is dead or only slow is told by the task row, as with the local dispatcher:
its heartbeat (``VEDIT_TASK_LEASE_S``), or, on the worker's own host, its process id. A lost
task goes back to the queue once and then fails with ``InternalError.WorkerLost``
(``TaskStore.recover_lost``, the same path as the local dispatcher's), and its id is sent
again. Cancel needs nothing from the broker: a running task's worker learns of it at its
next lease beat, and a queued one's message finds the task not queued and skips it.

What lives here: the Celery app (``make_celery``), ``CeleryDispatcher`` (used by ``vedit
serve`` and ``vedit worker``: it sends ids from a thread, runs the janitor, and watches the
workers for ``/healthz``), and ``run_worker`` (``vedit worker``: the start check, the Celery
worker with its prefork pool, and ``run_message`` in each pool process). Running a task is
``runtime.run.run_task``'s; state changes are ``tasks.store``'s. Celery is imported only here,
and only when this dispatcher is configured.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vedit.config import Settings
from vedit.dispatch import Gauge
from vedit.errors import DispatchNotReady, EngineUnavailable, WorkersCannotStart
from vedit.runtime.context import Context, build_context
from vedit.runtime.janitor import HOST, Janitor, log_recovered, worker_id_for
from vedit.tasks.store import Recovery

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("vedit.dispatch")

QUEUE = "vedit"  # the broker's queue (a Redis list of this name; a RabbitMQ queue)
TASK_NAME = "vedit.run"  # the Celery task: one argument, the task id
HEALTH_INTERVAL_S = 5.0  # how often `vedit serve` pings the workers for /healthz
PING_TIMEOUT_S = 1.0
PUBLISH_BATCH = 500


def make_celery(settings: Settings) -> Celery:
    """The Celery app over ``VEDIT_BROKER_URL``, configured for long tasks."""
    if settings.engine == "dashscope":
        raise DispatchNotReady(
            "VEDIT_DISPATCH=celery runs edits one per pool process, and VEDIT_ENGINE=dashscope "
            "follows up to VEDIT_RELAY_CONCURRENCY upstream tasks in one process's own loop, "
            "which Celery's pool does not run: use VEDIT_DISPATCH=local for the relay (on "
            "PostgreSQL, `vedit worker` processes on many hosts share its queue)"
        )
    try:
        from celery import Celery
    except ImportError:
        raise DispatchNotReady(
            "VEDIT_DISPATCH=celery needs Celery, which is not installed: pip install 'vedit[scale]'"
        ) from None
    if not settings.broker_url:
        raise DispatchNotReady(
            "VEDIT_DISPATCH=celery needs a broker: set VEDIT_BROKER_URL "
            "(e.g. redis://127.0.0.1:6379/1, a database apart from the rate limits')"
        )
    app = Celery("vedit", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the task row holds the outcome: no result backend
        # Long edits: acknowledged after the run, one message per pool process at a time,
        # handed out again when the process running it dies, and not before the longest
        # task could end (Redis; RabbitMQ waits for the consumer's connection instead).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        # A lost broker connection would redeliver the running tasks' messages; their
        # claims keep them running here, so the edits are not cancelled.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        worker_hijack_root_logger=True,
    )
    app.task(name=TASK_NAME, ignore_result=True)(run_message)
    return app


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _shown_broker(url: str) -> str:
    """The broker URL with its password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: show only what follows the credentials
        return url.rsplit("@", 1)[-1]


# --- health -------------------------------------------------------------------------


@dataclass(frozen=True)
class CeleryHealth:
    """What ``vedit serve`` last heard from the broker and the Celery workers."""

    nodes: list[str] = field(default_factory=list)  # workers that answered the last ping
    broker_error: str | None = None  # why the last ping failed
    checked_at: float | None = None  # when the broker last answered (time.time())

    @property
    def ok(self) -> bool:
        """The broker answered lately (workers may be none: tasks wait for them)."""
        fresh = (
            self.checked_at is not None and time.time() - self.checked_at < 3 * HEALTH_INTERVAL_S
        )
        return self.broker_error is None and fresh

    def gauges(self) -> list[Gauge]:
        return [
            Gauge(
                "vedit_celery_workers",
                "Celery workers (`vedit worker` processes, any host) that answered the last ping",
                len(self.nodes),
            ),
            Gauge("vedit_broker_up", "1 while the broker answers this server's pings", self.ok),
        ]

    def to_dict(self) -> dict[str, Any]:
        ago = None if self.checked_at is None else round(time.time() - self.checked_at, 1)
        return {
            "dispatch": "celery",
            "broker": self.broker_error or ("ok" if self.ok else "not answering"),
            "nodes": len(self.nodes),
            "names": self.nodes,
            "checked_s_ago": ago,
        }


# --- the dispatcher: sending, janitor, health ----------------------------------------


class CeleryDispatcher:
    """Sends task ids to the broker, recovers lost tasks and lost messages, cleans up.

    ``vedit serve`` runs one (and watches the workers for ``/healthz``); each ``vedit
    worker`` runs one in its main process (``workers_pid``: that process, whose pool
    processes' tasks it recovers the moment they die). Several janitors on one database
    are safe: every recovery is a compare-and-set.
    """

    def __init__(
        self,
        settings: Settings,
        app: Celery | None = None,
        *,
        workers_pid: int | None = None,
        watch_workers: bool = True,
    ) -> None:
        self.settings = settings
        self.app = app or make_celery(settings)
        self.workers_pid = workers_pid
        self.context = build_context(settings, "janitor")
        self.store = self.context.store
        self.janitor = Janitor(self.context)
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._halt = threading.Event()
        self._health = CeleryHealth()
        self._suspects: set[str] = set()  # queued tasks without a message at the last check
        self._threads = [
            threading.Thread(target=self._publish, name="vedit-publisher", daemon=True),
            threading.Thread(target=self._janitor, name="vedit-janitor", daemon=True),
        ]
        if watch_workers:
            self._threads.append(
                threading.Thread(target=self._watch, name="vedit-health", daemon=True)
            )

    # --- what the API calls -----------------------------------------------------

    def submit(self, task_id: str) -> None:
        """A task was committed: send its id from the publisher thread (never blocks)."""
        self._outbox.put(task_id)

    def health(self) -> CeleryHealth:
        return self._health

    # --- life ------------------------------------------------------------------

    def start(self) -> None:
        """Check that the broker answers (else :class:`DispatchNotReady`), take back the
        tasks of this host's dead worker groups, start the threads."""
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=2, interval_start=0.2, timeout=5)
        except Exception as exc:
            raise DispatchNotReady(
                f"the broker at VEDIT_BROKER_URL={_shown_broker(self.settings.broker_url)!r} "
                f"does not answer: {_one_line(exc)}"
            ) from None
        if self.workers_pid is not None:
            self._recover_dead_groups()
        if self._threads and self._threads[-1].name == "vedit-health":
            self._ping()  # /healthz knows the workers from the start
        for thread in self._threads:
            thread.start()

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the threads; ids not yet sent are sent first (within ``grace_s``)."""
        self._halt.set()
        self._outbox.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(grace_s)

    # --- sending -----------------------------------------------------------------

    def send(self, task_ids: list[str]) -> None:
        """Publish one message per id now (raises when the broker cannot take them)."""
        with self.app.producer_or_acquire() as producer:
            for task_id in task_ids:
                self.app.send_task(
                    TASK_NAME,
                    args=[task_id],
                    queue=QUEUE,
                    producer=producer,
                    retry=True,
                    retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
                )

    def _publish(self) -> None:
        while True:
            first = self._outbox.get()
            batch = [] if first is None else [first]
            while len(batch) < PUBLISH_BATCH:
                try:
                    more = self._outbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    first = None
                    break
                batch.append(more)
            if batch:
                try:
                    self.send(batch)
                except Exception as exc:  # the tasks are in the database: the janitors resend
                    log.warning(
                        "%d task id(s) not sent to the broker (%s); they will be sent again "
                        "once queued %g s (VEDIT_DISPATCH_RESEND_AFTER_S)",
                        len(batch), _one_line(exc), self.settings.dispatch_resend_after_s,
                    )  # fmt: skip
            if first is None:
                return

    # --- the janitor -------------------------------------------------------------

    def _janitor(self) -> None:
        s = self.settings
        resend_every = max(s.janitor_interval_s, s.dispatch_resend_after_s / 3)
        next_resend = time.monotonic() + resend_every
        last_error = ""
        while not self._halt.wait(s.janitor_interval_s):
            try:
                self.sweep(resend=time.monotonic() >= next_resend)
                last_error = ""
            except Exception as exc:  # the janitor must outlive a database or broker outage
                error = _one_line(exc)
                # The traceback once; while the same error lasts, one line each time.
                log.warning("janitor sweep failed: %s", error, exc_info=error != last_error)
                last_error = error
            if time.monotonic() >= next_resend:
                next_resend = time.monotonic() + resend_every

    def sweep(self, resend: bool = True) -> None:
        """Recover lost tasks (and send their ids again), delete expired ones, and send the
        messages the broker is missing."""
        lost = self.janitor.recover()
        if self.workers_pid is not None:
            lost += self.janitor.recover_dead_workers(self.workers_pid)
        self._recovered(lost)
        self.janitor.purge()
        if resend:
            self.resend_lost_messages()

    def resend_lost_messages(self) -> int:
        """Send a message again for each queued task that has none: as many of the oldest
        queued tasks as there are queued tasks more than messages waiting in the broker,
        counting only tasks queued ``dispatch_resend_after_s`` or longer (a newer one's
        message may be on its way), and only those found so at the previous check too (a
        message a worker is taking right now is in neither count for a moment). Returns
        how many were sent."""
        cutoff = time.time() - self.settings.dispatch_resend_after_s
        total, old = self.store.queued_counts(before=cutoff)
        missing = min(old, total - self.messages_waiting()) if old else 0
        suspects = (
            set(self.store.oldest_queued(before=cutoff, limit=missing)) if missing > 0 else set()
        )
        ids, self._suspects = sorted(suspects & self._suspects), suspects
        if not ids:
            return 0
        self._suspects -= set(ids)
        log.warning(
            "%d queued task(s) had no message in the broker (%d queued, fewer messages); "
            "sent again: %s", len(ids), total, ", ".join(ids[:5]) + (" …" if len(ids) > 5 else ""),
        )  # fmt: skip
        self.send(ids)
        return len(ids)

    def messages_waiting(self) -> int:
        """Messages in the broker's queue not yet taken by a worker."""
        with self.app.connection_for_read() as conn:
            try:
                return int(conn.default_channel.queue_declare(QUEUE, passive=True).message_count)
            except conn.channel_errors:  # no such queue (Redis: an empty list does not exist)
                return 0

    def _recovered(self, recoveries: list[Recovery]) -> None:
        again = log_recovered(recoveries)
        if again:
            self.send(again)

    def _recover_dead_groups(self) -> None:
        """At start-up, tasks left running by a `vedit worker` on this host that is gone."""
        self._recovered(self.janitor.recover_orphans())

    # --- health ------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._halt.wait(HEALTH_INTERVAL_S):
            self._ping()

    def _ping(self) -> None:
        try:
            replies = self.app.control.ping(timeout=PING_TIMEOUT_S)
        except Exception as exc:  # the broker is down: /healthz says so
            self._health = CeleryHealth(
                nodes=[], broker_error=_one_line(exc), checked_at=self._health.checked_at
            )
            return
        nodes = sorted(name for reply in replies for name in reply)
        self._health = CeleryHealth(nodes=nodes, checked_at=time.time())


# --- the worker: `vedit worker` with VEDIT_DISPATCH=celery ---------------------------

_SETUP: dict[str, Any] = {}  # what the pool processes inherit from `vedit worker` (fork)
_CONTEXT: Context | None = None  # the pool process's own, made after the fork


def run_worker(settings: Settings) -> int:
    """Run a Celery worker: ``settings.workers`` pool processes (prefork) on the broker's
    queue, with the configured engine, and a janitor in this process. Returns its exit code.

    Raises :class:`WorkersCannotStart` when the engine cannot load here (every pool process
    would fail alike) and :class:`DispatchNotReady` when the broker does not answer.
    """
    app = make_celery(settings)  # DispatchNotReady without Celery or a broker URL
    from celery import signals

    # 1. The engine loads here first, or the command says why (as the local workers do).
    try:
        from vedit.engines import load_engine
        from vedit.runtime.run import run_task  # noqa: F401  (PyAV and NumPy, shared by the forks)

        load_engine(settings.engine, settings)
    except EngineUnavailable as exc:  # says why, in one line
        raise WorkersCannotStart(str(exc)) from None
    except Exception as exc:
        log.error("the engine %r cannot load", settings.engine, exc_info=True)
        raise WorkersCannotStart(f"{type(exc).__name__}: {exc}") from None

    # 2. The janitor: this host's dead pool processes, heartbeats, lost messages.
    janitor = CeleryDispatcher(settings, app, workers_pid=os.getpid(), watch_workers=False)
    janitor.start()

    # 3. The pool processes build their context after the fork; a shutdown (SIGTERM,
    #    Ctrl-C) stops their tasks at the next frame, and run_task hands them back.
    stop = mp.get_context("fork").Event()
    _SETUP.update(settings=settings, app=app, stop=stop, janitor=janitor)
    signals.worker_process_init.connect(_init_pool_process, weak=False)
    signals.worker_shutting_down.connect(lambda **_: stop.set(), weak=False)

    # 4. The Celery worker itself, until it is stopped.
    worker = app.Worker(
        hostname=f"vedit-{os.getpid()}@{HOST}",
        concurrency=settings.workers,
        pool="prefork",
        queues=[QUEUE],
        loglevel="INFO",
        optimization="fair",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    try:
        worker.start()
    finally:
        janitor.stop()
    return int(worker.exitcode or 0)


def _init_pool_process(**_: Any) -> None:
    """In each new pool process: its own database connections, engine and worker id."""
    global _CONTEXT
    settings: Settings = _SETUP["settings"]
    _SETUP["janitor"].context.db.dispose(close=False)  # the parent's connections stay its own
    worker_id = worker_id_for(os.getppid(), os.getpid())
    _CONTEXT = build_context(settings, "worker", worker_id=worker_id, stop=_SETUP["stop"])


def run_message(task_id: str) -> None:
    """The Celery task: claim ``task_id`` and run it; when it is not queued any more, run the
    oldest queued task instead, or nothing (the message was a duplicate, or the task was
    cancelled before it ran)."""
    from vedit.runtime.run import run_task
    from vedit.tasks.models import TaskStatus

    ctx = _CONTEXT
    if ctx is None:
        raise RuntimeError("vedit.run runs only in a `vedit worker` pool process")
    task = ctx.store.get(task_id) if ctx.store.claim(task_id, ctx.worker_id) else None
    if task is None:
        now = ctx.store.get(task_id)
        if now is not None and now.status == TaskStatus.CANCELLED and now.attempts == 0:
            log.info("task %s was cancelled before it ran: skipped", task_id)
        task = ctx.store.claim_next(ctx.worker_id)
        if task is None:
            return
    run_task(task, ctx)
    if ctx.stop.is_set():  # handed back by a worker that is stopping: its id goes out again
        now = ctx.store.get(task.id)
        if now is not None and now.status == TaskStatus.QUEUED:
            _SETUP["janitor"].send([task.id])
