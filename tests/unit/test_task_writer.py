"""The group commit isolates rows: a row that cannot be written fails its own request only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vedit.api.writer import TaskWriter
from vedit.db import make_engine, migrate
from vedit.errors import InvalidRequest
from vedit.keys import create_key
from vedit.tasks.models import new_task_row
from vedit.tasks.store import TaskStore


@pytest.fixture
def store(tmp_path: Path) -> TaskStore:
    url = f"sqlite:///{tmp_path / 't.db'}"
    migrate(url)
    s = TaskStore(make_engine(url))
    create_key(s.sessions, "k")
    return s


def row(prompt: str = "make it look like the photo", seed: int | None = None) -> dict:
    return new_task_row(
        key_id=1,
        prompt=prompt,
        orig_prompt=prompt,
        media=[
            {"type": "video", "url": "http://a/v.mp4"},
            {"type": "reference_image", "url": "http://a/i.png"},
        ],
        resolution="720P",
        watermark=True,
        seed=seed,
        audio_setting="auto",
        ttl_s=100,
        model="happyhorse-1.0-video-edit",
    )


def test_rows_the_database_refuses_fail_alone_and_the_rest_of_the_batch_commits(store) -> None:
    # Rows that got past validation but that SQLite cannot store: a lone surrogate in a text
    # column (UnicodeEncodeError) and an integer past 64 bits (OverflowError).
    bad = {i: row(prompt="bad \ud800") if i % 2 else row(seed=2**70) for i in range(0, 500, 50)}
    rows = [bad.get(i) or row() for i in range(500)]

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
