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


def test_claim_many_takes_the_oldest_queued_tasks_each_once(store) -> None:
    rows = [task_row(f"p{i}") for i in range(5)]
    for i, row in enumerate(rows):
        row["created_at"] = 1000.0 + i
    store.add_many(rows)
    ids = [r["id"] for r in rows]
    store.claim(ids[0], "w0")  # taken by another worker already
    got = store.claim_many("w1", limit=3)
    assert [t.id for t in got] == ids[1:4]
    assert all(t.status == TaskStatus.RUNNING and t.worker_id == "w1" for t in got)
    assert [t.id for t in store.claim_many("w2", limit=10)] == [ids[4]]
    assert store.claim_many("w2", limit=10) == []


def test_claim_many_skips_the_tasks_a_worker_still_follows(store) -> None:
    """A task the janitor queued again is not claimed twice by the worker that follows it."""
    a, b = new(store), new(store)
    store.claim_many("w1", limit=2)
    store.recover_lost(lease_s=30, max_attempts=5, worker_id="w1")  # both queued again
    got = store.claim_many("w1", limit=5, skip=[a.id])
    assert [t.id for t in got] == [b.id]
    assert store.get(a.id).status == TaskStatus.QUEUED


def test_heartbeat_many_renews_leases_sets_progress_and_names_the_tasks_still_mine(store) -> None:
    a, b, c, d = (new(store) for _ in range(4))
    for t in (a, b, c):
        store.claim(t.id, "w1")
    store.claim(d.id, "w2")
    store.cancel(c.id, key_id=1)
    before = store.get(a.id).heartbeat_at
    mine = store.heartbeat_many([a.id, b.id, c.id, d.id], "w1", {a.id: 50, c.id: 15})
    assert mine == {a.id, b.id}  # c was cancelled, d is another worker's
    assert store.get(a.id).progress == 50 and store.get(a.id).heartbeat_at >= before
    assert store.get(b.id).progress == 0
    assert store.get(c.id).status == TaskStatus.CANCELLED and store.get(c.id).progress == 0
    assert store.get(d.id).progress == 0


def test_heartbeat_many_takes_more_ids_than_one_statement_binds(store) -> None:
    rows = [task_row() for _ in range(1200)]
    store.add_many(rows)
    ids = [t.id for t in store.claim_many("w1", limit=1200)]
    assert len(ids) == 1200
    assert store.heartbeat_many(ids, "w1", dict.fromkeys(ids[:700], 50)) == set(ids)
    assert store.counts_by_status() == {"running": 1200}
