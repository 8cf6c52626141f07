"""The task store: every read and every state change of a task.

Each transition is a compare-and-set ``UPDATE ... WHERE status = <expected>``
(and, for a running task, ``AND worker_id = <me>``), so two workers never run
one task and a late worker cannot overwrite a finished one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import sessionmaker

from vedit.db import make_sessionmaker
from vedit.keys import ApiKey
from vedit.tasks.models import Task, TaskStatus


@dataclass(frozen=True)
class Recovery:
    """What the janitor did with one lost task."""

    task_id: str
    requeued: bool


class TaskStore:
    """CAS transitions over the ``tasks`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions: sessionmaker = make_sessionmaker(engine)

    # --- create and read ------------------------------------------------------

    def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Insert new task rows (``new_task_row``) in one transaction: the API's group commit.

        On SQLite the rows go straight to the driver's ``executemany`` (a few
        microseconds a row instead of SQLAlchemy's per-row processing).
        """
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "sqlite":
                columns = list(rows[0])
                sql = (
                    f"INSERT INTO tasks ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})"
                )
                json_cols = {"media", "result"}
                values = [
                    tuple(json.dumps(r[c]) if c in json_cols else r[c] for c in columns)
                    for r in rows
                ]
                conn.exec_driver_sql(sql, values)
            else:
                conn.execute(insert(Task), rows)

    def get(self, task_id: str, key_id: int | None = None, now: float | None = None) -> Task | None:
        """The task, if it exists, has not expired, and (when given) belongs to ``key_id``."""
        now = time.time() if now is None else now
        with self.sessions() as s:
            task = s.get(Task, task_id)
        if task is None or task.expires_at <= now:
            return None
        if key_id is not None and task.key_id != key_id:
            return None
        return task

    def result_servable(self, task_id: str) -> str | None:
        """Why the task's result link must not be served any more (the key that made the
        task was revoked, or the task is gone), or None when it may be."""
        with self.sessions() as s:
            row = s.execute(
                select(Task.id, ApiKey.revoked_at)
                .join(ApiKey, ApiKey.id == Task.key_id)
                .where(Task.id == task_id)
            ).first()
        if row is None:
            return "the file is no longer available"
        if row.revoked_at is not None:
            return "the file is no longer available: the API key that made it was revoked"
        return None

    def counts_by_status(self) -> dict[str, int]:
        with self.sessions() as s:
            rows = s.execute(select(Task.status, func.count()).group_by(Task.status)).all()
        return {status: n for status, n in rows}

    def engine_totals(self, since: float) -> tuple[float, float]:
        """Engine seconds and output video seconds of the tasks that succeeded after ``since``."""
        with self.sessions() as s:
            rows = s.scalars(
                select(Task.result).where(
                    Task.status == TaskStatus.SUCCEEDED, Task.finished_at >= since
                )
            ).all()
        engine_s = sum(float(r.get("engine_seconds", 0.0)) for r in rows if r)
        video_s = sum(float(r.get("output_video_duration", 0.0)) for r in rows if r)
        return engine_s, video_s

    def running_owners(self) -> set[str]:
        """Worker ids that hold running tasks."""
        with self.sessions() as s:
            owners = s.scalars(select(Task.worker_id).where(Task.status == TaskStatus.RUNNING))
            return {o for o in owners if o}

    def queued_counts(self, before: float) -> tuple[int, int]:
        """Queued tasks: all of them, and those created before ``before``."""
        with self.sessions() as s:
            total, old = s.execute(
                select(
                    func.count(),
                    func.count().filter(Task.created_at < before),
                ).where(Task.status == TaskStatus.QUEUED)
            ).one()
        return int(total), int(old or 0)

    def oldest_queued(self, before: float, limit: int) -> list[str]:
        """Ids of the oldest ``limit`` queued tasks created before ``before``."""
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(Task.id)
                    .where(Task.status == TaskStatus.QUEUED, Task.created_at < before)
                    .order_by(Task.created_at)
                    .limit(limit)
                )
            )

    # --- the worker's transitions ---------------------------------------------

    def claim_next(self, worker_id: str) -> Task | None:
        """Move the oldest queued task to running for ``worker_id``; None when none is queued.

        On PostgreSQL one statement picks and claims the task, skipping rows that another
        worker has locked (``FOR UPDATE SKIP LOCKED``), so workers on many machines never
        wait on each other nor claim one task twice. Elsewhere (SQLite, one writer at a
        time) the oldest queued id is read, then claimed by compare-and-set, and on a lost
        race the next one is tried.
        """
        if self.engine.dialect.name == "postgresql":
            return self._claim_next_skip_locked(worker_id)
        for _ in range(8):
            with self.sessions() as s:
                task_id = s.scalar(
                    select(Task.id)
                    .where(Task.status == TaskStatus.QUEUED)
                    .order_by(Task.created_at)
                    .limit(1)
                )
            if task_id is None:
                return None
            if self.claim(task_id, worker_id):
                return self.get(task_id)
        return None

    def _claim_next_skip_locked(self, worker_id: str) -> Task | None:
        oldest = (
            select(Task.id)
            .where(Task.status == TaskStatus.QUEUED)
            .order_by(Task.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self.sessions.begin() as s:
            return s.scalars(
                update(Task)
                .where(Task.id == oldest, Task.status == TaskStatus.QUEUED)
                .values(**self._claim_values(worker_id))
                .returning(Task),
                execution_options={"synchronize_session": False},
            ).one_or_none()

    def claim_many(self, worker_id: str, limit: int, skip: Collection[str] = ()) -> list[Task]:
        """Move up to ``limit`` of the oldest queued tasks to running for ``worker_id``, in
        one transaction, each by its own compare-and-set (a task another worker took
        meanwhile is left out); returns those claimed, oldest first.

        ``skip``: ids not to take (a relay worker's tasks that it still follows: one the
        janitor queued again must not be claimed twice by the same worker)."""
        with self.sessions() as s:
            q = select(Task.id).where(Task.status == TaskStatus.QUEUED)
            if skip:
                q = q.where(Task.id.not_in(list(skip)))
            ids = list(s.scalars(q.order_by(Task.created_at).limit(limit)))
        if not ids:
            return []
        with self.sessions.begin() as s:
            claimed = [task_id for task_id in ids if self._claim_in(s, task_id, worker_id)]
        if not claimed:
            return []
        with self.sessions() as s:
            tasks = {t.id: t for t in s.scalars(select(Task).where(Task.id.in_(claimed)))}
        return [tasks[task_id] for task_id in claimed if task_id in tasks]

    def claim(self, task_id: str, worker_id: str) -> bool:
        """Move the queued task ``task_id`` to running for ``worker_id`` (compare-and-set)."""
        with self.sessions.begin() as s:
            return self._claim_in(s, task_id, worker_id)

    def _claim_in(self, s: Any, task_id: str, worker_id: str) -> bool:
        res = s.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == TaskStatus.QUEUED)
            .values(**self._claim_values(worker_id))
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1

    @staticmethod
    def _claim_values(worker_id: str) -> dict[str, Any]:
        now = time.time()
        return {
            "status": TaskStatus.RUNNING,
            "worker_id": worker_id,
            "attempts": Task.attempts + 1,
            "started_at": func.coalesce(Task.started_at, now),
            "heartbeat_at": now,
            "progress": 0,
        }

    def heartbeat(self, task_id: str, worker_id: str, progress: int | None = None) -> bool:
        """Renew the lease (and set progress); False when the task is no longer this worker's."""
        values: dict[str, Any] = {"heartbeat_at": time.time()}
        if progress is not None:
            values["progress"] = progress
        return self._cas_running(task_id, worker_id, values)

    def heartbeat_many(
        self, task_ids: list[str], worker_id: str, progress: dict[str, int] | None = None
    ) -> set[str]:
        """Renew the leases of many tasks at once (and set the progress of those in
        ``progress``): one ``UPDATE`` for those whose progress stands, one per new percent,
        in one transaction. Returns the ids that are still this worker's to run."""
        progress = progress or {}
        now = time.time()
        groups: dict[int | None, list[str]] = {}
        for task_id in task_ids:
            groups.setdefault(progress.get(task_id), []).append(task_id)
        mine: set[str] = set()
        with self.sessions.begin() as s:
            for percent, ids in groups.items():
                values: dict[str, Any] = {"heartbeat_at": now}
                if percent is not None:
                    values["progress"] = percent
                for chunk in _chunks(ids):
                    s.execute(
                        update(Task)
                        .where(
                            Task.id.in_(chunk),
                            Task.status == TaskStatus.RUNNING,
                            Task.worker_id == worker_id,
                        )
                        .values(**values)
                        .execution_options(synchronize_session=False)
                    )
            for chunk in _chunks(task_ids):
                mine.update(
                    s.scalars(
                        select(Task.id).where(
                            Task.id.in_(chunk),
                            Task.status == TaskStatus.RUNNING,
                            Task.worker_id == worker_id,
                        )
                    )
                )
        return mine

    def set_plan(self, task_id: str, worker_id: str, plan: dict[str, Any]) -> bool:
        """Record the edit plan the worker is carrying out."""
        return self._cas_running(task_id, worker_id, {"edit_plan": plan})

    def succeed(
        self, task_id: str, worker_id: str, result_path: str, result: dict[str, Any]
    ) -> bool:
        return self._cas_running(
            task_id,
            worker_id,
            {
                "status": TaskStatus.SUCCEEDED,
                "progress": 100,
                "finished_at": time.time(),
                "result_path": result_path,
                "result": result,
            },
        )

    def fail(self, task_id: str, worker_id: str, code: str, message: str) -> bool:
        return self._cas_running(task_id, worker_id, self._failure_values(code, message))

    def requeue(self, task_id: str, worker_id: str) -> bool:
        """Give a running task back to the queue without spending an attempt (worker stopping)."""
        return self._cas_running(
            task_id,
            worker_id,
            {
                "status": TaskStatus.QUEUED,
                "worker_id": None,
                "heartbeat_at": None,
                "progress": 0,
                "attempts": Task.attempts - 1,
            },
        )

    def cancel(self, task_id: str, key_id: int) -> Task | None:
        """Cancel a queued or running task of ``key_id``; the task as it is afterwards (its
        status says whether it was cancelled now or had ended before), None if unknown.

        A running task's worker finds out at its next progress or lease beat (its compare-
        and-set fails), stops, and removes its files; a result it was about to publish is
        deleted, since ``succeed`` no longer matches.
        """
        with self.sessions.begin() as s:
            s.execute(
                update(Task)
                .where(
                    Task.id == task_id,
                    Task.key_id == key_id,
                    Task.status.in_([TaskStatus.QUEUED, TaskStatus.RUNNING]),
                )
                .values(
                    status=TaskStatus.CANCELLED,
                    finished_at=time.time(),
                    error_code="Canceled",
                    error_message="the task was cancelled by the client",
                )
            )
        return self.get(task_id, key_id)

    def _cas_running(self, task_id: str, worker_id: str, values: dict[str, Any]) -> bool:
        with self.sessions.begin() as s:
            res = s.execute(
                update(Task)
                .where(
                    Task.id == task_id,
                    Task.status == TaskStatus.RUNNING,
                    Task.worker_id == worker_id,
                )
                .values(**values)
            )
            return res.rowcount == 1

    @staticmethod
    def _failure_values(code: str, message: str) -> dict[str, Any]:
        return {
            "status": TaskStatus.FAILED,
            "finished_at": time.time(),
            "error_code": code,
            "error_message": message,
        }

    # --- the janitor's transitions --------------------------------------------

    def recover_lost(
        self,
        *,
        lease_s: float,
        max_attempts: int,
        worker_id: str | None = None,
        now: float | None = None,
    ) -> list[Recovery]:
        """Requeue (or, past ``max_attempts``, fail) running tasks whose worker is gone.

        A task is lost when its heartbeat is older than ``lease_s`` or, when
        ``worker_id`` is given, when it was running on that (dead) worker.
        """
        now = time.time() if now is None else now
        with self.sessions() as s:
            q = select(Task.id, Task.worker_id, Task.attempts).where(
                Task.status == TaskStatus.RUNNING
            )
            if worker_id is not None:
                q = q.where(Task.worker_id == worker_id)
            else:
                q = q.where(Task.heartbeat_at < now - lease_s)
            lost = s.execute(q).all()
        done: list[Recovery] = []
        for task_id, owner, attempts in lost:
            requeue = attempts < max_attempts
            if requeue:
                values: dict[str, Any] = {
                    "status": TaskStatus.QUEUED,
                    "worker_id": None,
                    "heartbeat_at": None,
                    "progress": 0,
                }
            else:
                values = self._failure_values(
                    "InternalError.WorkerLost",
                    f"the worker running this task stopped {attempts} times; "
                    f"task_max_attempts is {max_attempts}",
                )
            with self.sessions.begin() as s:
                res = s.execute(
                    update(Task)
                    .where(
                        Task.id == task_id,
                        Task.status == TaskStatus.RUNNING,
                        Task.worker_id == owner,
                    )
                    .values(**values)
                )
            if res.rowcount == 1:
                done.append(Recovery(task_id, requeue))
        return done

    def purge_expired(self, now: float | None = None) -> list[Task]:
        """Delete tasks past ``expires_at``; returns them so their files can go too."""
        now = time.time() if now is None else now
        with self.sessions.begin() as s:
            rows = list(s.scalars(select(Task).where(Task.expires_at <= now)))
            if rows:
                s.execute(delete(Task).where(Task.id.in_([t.id for t in rows])))
        return rows


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    """``ids`` in lists short enough for one statement's bound parameters."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]
