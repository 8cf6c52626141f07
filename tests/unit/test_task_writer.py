"""The group commit isolates rows: a row that cannot be written fails its own request only.

Run on SQLite (the embedded default) and on a real PostgreSQL server (``tests/servers.py``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import task_row
from vedit.api.wire import ANYFAST
from vedit.api.writer import TaskWriter
from vedit.db import make_engine, migrate
from vedit.errors import InvalidRequest
from vedit.keys import create_key
from vedit.tasks.store import TaskStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TaskStore:
    """A migrated task store with one key (id 1), on each database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 't.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    migrate(url)
    s = TaskStore(make_engine(url))
    create_key(s.sessions, "k")
    request.addfinalizer(s.engine.dispose)
    return s


def test_rows_the_database_refuses_fail_alone_and_the_rest_of_the_batch_commits(store) -> None:
    # Rows that got past validation but that the database cannot store: a lone surrogate in a
    # text column (UnicodeEncodeError) and an integer past 64 bits (SQLite: OverflowError;
    # PostgreSQL: integer out of range).
    bad = {
        i: task_row(prompt="bad \ud800") if i % 2 else task_row(seed=2**70)
        for i in range(0, 500, 50)
    }
    rows = [bad.get(i) or task_row() for i in range(500)]

    async def create_all() -> list[BaseException | None]:
        writer = TaskWriter(store)
        try:
            return await asyncio.gather(*(writer.add(r) for r in rows), return_exceptions=True)
        finally:
            await writer.close()

    results = asyncio.run(create_all())
    failed = {i for i, r in enumerate(results) if r is not None}
    assert failed == set(bad)
    for i in failed:
        assert isinstance(results[i], InvalidRequest), results[i]
        assert "the task could not be stored" in results[i].message
        ANYFAST.answer(results[i])  # the message itself can be sent (no raw surrogate)
        assert "\ud800" not in results[i].message
    with store.engine.connect() as conn:
        stored = {t for (t,) in conn.exec_driver_sql("SELECT id FROM tasks")}
    assert stored == {r["id"] for i, r in enumerate(rows) if i not in bad}
