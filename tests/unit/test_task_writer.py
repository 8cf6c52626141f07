"""The group commit isolates rows: a row that cannot be written fails its own request only."""

from __future__ import annotations

import asyncio

from conftest import task_row
from vedit.api.writer import TaskWriter
from vedit.errors import InvalidRequest


def test_rows_the_database_refuses_fail_alone_and_the_rest_of_the_batch_commits(store) -> None:
    # Rows that got past validation but that SQLite cannot store: a lone surrogate in a text
    # column (UnicodeEncodeError) and an integer past 64 bits (OverflowError).
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
        results[i].anyfast_body()  # the message itself can be sent (no raw surrogate)
        assert "\ud800" not in results[i].message
    stored = {t for (t,) in store.engine.connect().exec_driver_sql("SELECT id FROM tasks")}
    assert stored == {r["id"] for i, r in enumerate(rows) if i not in bad}
