"""The ``tasks`` table: one row per edit request, from creation until it expires."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vedit.db import Base
from vedit.tasks.ids import new_request_id, new_task_id


class TaskStatus:
    """The states of a task; changed only by compare-and-set in ``tasks.store``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)

    # what was asked
    prompt: Mapped[str] = mapped_column(Text)
    orig_prompt: Mapped[str] = mapped_column(Text)
    media: Mapped[list[dict[str, str]]] = mapped_column(JSON)  # [{"type", "url"}] as sent
    resolution: Mapped[str] = mapped_column(String(8))
    watermark: Mapped[bool] = mapped_column(Boolean)
    seed: Mapped[int] = mapped_column(Integer)
    audio_setting: Mapped[str] = mapped_column(String(16))

    # life
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    # outcome
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    edit_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    def parameters(self) -> dict[str, Any]:
        """The request's parameters as the task runs them, the drawn seed included."""
        return {
            "resolution": self.resolution,
            "watermark": self.watermark,
            "seed": self.seed,
            "audio_setting": self.audio_setting,
        }

    def media_of(self, kind: str) -> list[tuple[int, str]]:
        """``(index in the request, url)`` of each medium of ``kind``."""
        return [(i, m["url"]) for i, m in enumerate(self.media) if m["type"] == kind]

    __table_args__ = (
        Index("ix_tasks_status_created", "status", "created_at"),
        Index("ix_tasks_expires_at", "expires_at"),
    )


def new_task_row(
    *,
    key_id: int,
    prompt: str,
    orig_prompt: str,
    media: list[dict[str, str]],
    resolution: str,
    watermark: bool,
    seed: int | None,
    audio_setting: str,
    ttl_s: float,
    model: str,
) -> dict[str, Any]:
    """A queued task's row, with a fresh id; a missing seed is drawn now, so it can be reported.

    A plain dict, not an ORM object: the API inserts thousands a second in batches.
    """
    now = time.time()
    return {
        "id": new_task_id(),
        "key_id": key_id,
        "model": model,
        "request_id": new_request_id(),
        "status": TaskStatus.QUEUED,
        "progress": 0,
        "prompt": prompt,
        "orig_prompt": orig_prompt,
        "media": media,
        "resolution": resolution,
        "watermark": watermark,
        "seed": secrets.randbelow(2**31) if seed is None else seed,
        "audio_setting": audio_setting,
        "created_at": now,
        "expires_at": now + ttl_s,
        "attempts": 0,
    }
