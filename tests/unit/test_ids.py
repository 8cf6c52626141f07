"""Task ids: ``asyntask_`` + 32 base62 characters, drawn from ``secrets``."""

from __future__ import annotations

from vedit.tasks.ids import TASK_ID_PREFIX, is_task_id, new_task_id


def test_ids_have_the_documented_shape_and_do_not_repeat() -> None:
    ids = {new_task_id() for _ in range(5000)}
    assert len(ids) == 5000
    for tid in list(ids)[:200]:
        assert tid.startswith(TASK_ID_PREFIX) and len(tid) == len(TASK_ID_PREFIX) + 32
        assert is_task_id(tid) and tid[9:].isascii() and tid[9:].isalnum()


def test_every_base62_digit_appears_in_every_position() -> None:
    ids = [new_task_id()[9:] for _ in range(4000)]
    for pos in (0, 15, 31):
        assert len({i[pos] for i in ids}) == 62
