"""Task transitions are compare-and-set: one winner, no late overwrites, bounded retries."""

from __future__ import annotations

from pathlib import Path

from conftest import task_row
from vedit.db import make_engine, migrate
from vedit.tasks.models import Task, TaskStatus
from vedit.tasks.store import TaskStore


def new(store: TaskStore) -> Task:
    row = task_row()
    store.add_many([row])
    return store.get(row["id"])


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


def test_a_database_of_the_first_schema_is_upgraded(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    import vedit.db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(vedit.db.__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0001")
    engine = make_engine(url)
    assert "edit_plan" not in {c["name"] for c in inspect(engine).get_columns("tasks")}
    migrate(url)
    assert "edit_plan" in {c["name"] for c in inspect(engine).get_columns("tasks")}
