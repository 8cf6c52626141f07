"""Task transitions are compare-and-set: one winner, no late overwrites, bounded retries.

Every test here runs twice: on SQLite (the embedded default) and on a real PostgreSQL
server (``tests/servers.py``), each time on a fresh, migrated database.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from conftest import task_row
from vedit.db import make_engine, migrate
from vedit.keys import create_key
from vedit.tasks.models import Task, TaskStatus
from vedit.tasks.store import TaskStore


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: SQLite in a file, then a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 't.db'}"
    return request.getfixturevalue("pg_url")


def store_on(url: str, request: pytest.FixtureRequest) -> TaskStore:
    """A migrated task store at ``url`` with one key (id 1)."""
    migrate(url)
    s = TaskStore(make_engine(url))
    create_key(s.sessions, "k")
    request.addfinalizer(s.engine.dispose)
    return s


@pytest.fixture
def store(db_url: str, request: pytest.FixtureRequest) -> TaskStore:
    return store_on(db_url, request)


def new(store: TaskStore) -> Task:
    row = task_row()
    store.add_many([row])
    return store.get(row["id"])


def _claim_all(url: str, worker_id: str, start: object, out: object) -> None:
    """A worker process: claim until the queue is empty; put the ids it got on ``out``."""
    store = TaskStore(make_engine(url))
    start.wait()
    got = []
    while (task := store.claim_next(worker_id)) is not None:
        got.append(task.id)
    out.put((worker_id, got))
    store.engine.dispose()


def test_only_one_worker_claims_a_task(store) -> None:
    t = new(store)
    assert store.claim(t.id, "w1") is True
    assert store.claim(t.id, "w2") is False
    assert store.claim_next("w2") is None
    got = store.get(t.id)
    assert got.status == TaskStatus.RUNNING and got.worker_id == "w1" and got.attempts == 1


def test_a_late_worker_cannot_overwrite_a_finished_task(store) -> None:
    t = new(store)
    store.claim(t.id, "w1")
    assert store.fail(t.id, "w1", "InvalidFile.Duration", "too short")
    assert not store.succeed(t.id, "w1", "/x.mp4", {})
    assert not store.heartbeat(t.id, "w1", 50)
    assert store.get(t.id).status == TaskStatus.FAILED


def test_a_lost_task_is_retried_once_then_failed(store) -> None:
    t = new(store)
    store.claim(t.id, "w1")
    (r,) = store.recover_lost(lease_s=30, max_attempts=2, worker_id="w1")
    assert r.requeued and store.get(t.id).status == TaskStatus.QUEUED
    assert not store.heartbeat(t.id, "w1")  # the old worker has lost it
    assert store.claim_next("w2").id == t.id
    # Stale heartbeat: lost again, and now out of attempts.
    (r,) = store.recover_lost(lease_s=0, max_attempts=2, now=10**12)
    got = store.get(t.id)
    assert not r.requeued and got.status == TaskStatus.FAILED
    assert got.error_code == "InternalError.WorkerLost" and "2 times" in got.error_message


def test_a_stopping_worker_gives_the_task_back_without_spending_an_attempt(store) -> None:
    t = new(store)
    store.claim(t.id, "w1")
    assert store.requeue(t.id, "w1")
    got = store.get(t.id)
    assert got.status == TaskStatus.QUEUED and got.attempts == 0


def test_expired_tasks_are_hidden_then_purged(store) -> None:
    t = new(store)
    assert store.get(t.id, now=t.expires_at + 1) is None
    assert [x.id for x in store.purge_expired(now=t.expires_at + 1)] == [t.id]
    assert store.get(t.id) is None


def test_a_task_is_invisible_to_another_key(store) -> None:
    t = new(store)
    assert store.get(t.id, key_id=1) is not None
    assert store.get(t.id, key_id=2) is None


def test_a_database_of_the_first_schema_is_upgraded(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    import vedit.db

    url = db_url
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(vedit.db.__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0001")
    engine = make_engine(url)
    assert "edit_plan" not in {c["name"] for c in inspect(engine).get_columns("tasks")}
    migrate(url)
    assert "edit_plan" in {c["name"] for c in inspect(engine).get_columns("tasks")}
    engine.dispose()


def test_threads_racing_for_one_task_have_exactly_one_winner(store) -> None:
    t = new(store)
    start = threading.Barrier(8)
    won: list[str] = []

    def worker(name: str) -> None:
        start.wait()
        task = store.claim_next(name)
        if task is not None:
            won.append(name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(won) == 1
    got = store.get(t.id)
    assert got.status == TaskStatus.RUNNING and got.worker_id == won[0] and got.attempts == 1


def test_worker_processes_draining_the_queue_claim_each_task_once(store) -> None:
    rows = [task_row() for _ in range(200)]
    store.add_many(rows)
    url = store.engine.url.render_as_string(hide_password=False)
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, f"p{i}", start, out)) for i in range(3)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    claimed = [task_id for ids in results.values() for task_id in ids]
    assert sorted(claimed) == sorted(r["id"] for r in rows)  # all of them, none twice
    for worker_id, ids in results.items():
        for task_id in ids:
            got = store.get(task_id)
            assert got.worker_id == worker_id and got.attempts == 1


def test_claims_take_the_oldest_task_first(store) -> None:
    rows = [task_row() for _ in range(3)]
    for i, r in enumerate(rows):
        r["created_at"] = 1000.0 + i
    store.add_many(rows[::-1])
    assert [store.claim_next("w").id for _ in rows] == [r["id"] for r in rows]


def test_on_postgresql_a_claim_skips_a_task_another_transaction_holds(pg_url, request) -> None:
    store = store_on(pg_url, request)
    first, second = task_row(), task_row()
    first["created_at"], second["created_at"] = 1.0, 2.0
    store.add_many([first, second])
    with store.engine.connect() as other:
        other.execute(text("SET lock_timeout = '10s'"))
        other.execute(text("SELECT id FROM tasks WHERE id = :id FOR UPDATE"), {"id": first["id"]})
        claimed = store.claim_next("w1")  # would wait 10 s on the lock without SKIP LOCKED
        assert claimed is not None and claimed.id == second["id"]
        other.rollback()
    assert store.claim_next("w2").id == first["id"]


def test_a_stale_heartbeat_requeues_the_task_and_the_old_worker_cannot_finish_it(store) -> None:
    t = new(store)
    store.claim(t.id, "w1")
    assert store.recover_lost(lease_s=30, max_attempts=2) == []  # its heartbeat is fresh
    (r,) = store.recover_lost(lease_s=30, max_attempts=2, now=store.get(t.id).heartbeat_at + 31)
    assert r.requeued and store.get(t.id).status == TaskStatus.QUEUED
    assert not store.succeed(t.id, "w1", "/x.mp4", {})
    assert store.claim_next("w2").id == t.id
    assert store.succeed(t.id, "w2", "/x.mp4", {"engine_seconds": 1.5})
    got = store.get(t.id)
    assert got.status == TaskStatus.SUCCEEDED and got.result == {"engine_seconds": 1.5}


def test_a_cancelled_running_task_cannot_be_finished_by_its_worker(store) -> None:
    t = new(store)
    store.claim(t.id, "w1")
    assert store.cancel(t.id, key_id=1).status == TaskStatus.CANCELLED
    assert not store.succeed(t.id, "w1", "/x.mp4", {})
    assert not store.heartbeat(t.id, "w1", 10)
    assert store.get(t.id).status == TaskStatus.CANCELLED


def test_purge_deletes_only_expired_tasks(store) -> None:
    old, fresh = task_row(), task_row()
    old["expires_at"] = 1000.0
    store.add_many([old, fresh])
    assert [t.id for t in store.purge_expired(now=2000.0)] == [old["id"]]
    assert store.get(fresh["id"]) is not None
    assert store.counts_by_status() == {TaskStatus.QUEUED: 1}
