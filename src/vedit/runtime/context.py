"""``build_context``: the one place that wires a process's store, storage, uploads and engine.

Every kind of process — the server, a worker (local or Celery pool), a janitor,
``vedit edit`` — calls :func:`build_context` with its role and gets a
:class:`Context`: the task table, the uploads, the storage, and (for a role that
edits) the engine of ``VEDIT_ENGINE``, loaded once for the process's life.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.engine import Engine as Database

from vedit.config import Settings
from vedit.db import make_engine
from vedit.media.limits import MediaLimits, OutputPolicy
from vedit.storage import Storage, StorageOptions, open_storage
from vedit.tasks.store import TaskStore
from vedit.uploads.store import UploadStore

if TYPE_CHECKING:  # the engines (PyAV, NumPy, models) load only in a process that edits
    from vedit.engines.base import Engine
    from vedit.engines.relay import RelayEngine

Role = Literal["server", "worker", "janitor", "edit"]
"""What a process does: ``server`` (the API), ``worker`` (runs tasks), ``janitor`` (recovers
and cleans), ``edit`` (``vedit edit``: one task, here)."""

EDITING_ROLES: frozenset[str] = frozenset({"worker", "edit"})


@dataclass
class Context:
    """What a process holds for its whole life."""

    settings: Settings
    role: Role
    db: Database
    store: TaskStore
    uploads: UploadStore
    storage: Storage
    limits: MediaLimits
    output: OutputPolicy
    engine: Engine | RelayEngine | None = None  # a role that edits
    worker_id: str = ""  # a worker: the owner id its claims carry (runtime/janitor.py)
    stop: Any = field(default_factory=threading.Event)  # a threading or multiprocessing Event

    @property
    def editor(self) -> Engine | RelayEngine:
        """The engine (only a role that edits has one)."""
        if self.engine is None:
            raise RuntimeError(f"a {self.role} process has no engine")
        return self.engine

    def close(self) -> None:
        """Let go of the database connections."""
        self.db.dispose()


def build_context(
    settings: Settings, role: Role, *, worker_id: str = "", stop: Any = None
) -> Context:
    """The context of a ``role`` process: its own database connections, the storage of
    ``VEDIT_STORAGE``, and, for a role that edits, the engine (which may raise
    :class:`~vedit.errors.EngineUnavailable` or an import error: the process says why)."""
    engine = None
    if role in EDITING_ROLES:
        from vedit.engines import load_engine

        engine = load_engine(settings.engine, settings)
    db = make_engine(settings.resolved_database_url)
    return Context(
        settings=settings,
        role=role,
        db=db,
        store=TaskStore(db),
        uploads=UploadStore(db),
        storage=open_storage(StorageOptions.of(settings)),
        limits=MediaLimits.of(settings),
        output=OutputPolicy.of(settings),
        engine=engine,
        worker_id=worker_id,
        stop=stop if stop is not None else threading.Event(),
    )
