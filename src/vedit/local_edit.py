"""``vedit edit``: one edit of local files, in this process, with no server.

It is the service's own path, not a copy of it: a throw-away data folder holds a
SQLite task store and the files as uploads of a throw-away key; the task is
created from the same request fields, checked by the same parser, and run by
:func:`vedit.runtime.run.run_task` (the same media checks, engine, plan and output
stage). Only the HTTP layer and the queue are left out.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from vedit import MODEL_NAME
from vedit.api.schemas import parse_create, truncate_prompt
from vedit.config import Settings
from vedit.db import make_sessionmaker, migrate
from vedit.errors import InvalidRequest
from vedit.keys import create_key
from vedit.runtime.context import Context, build_context
from vedit.runtime.run import run_task
from vedit.storage.base import Storage
from vedit.storage.local import LocalStorage
from vedit.tasks.models import Task, TaskStatus, new_task_row
from vedit.uploads import intake
from vedit.uploads.store import UploadStore

LOCAL_BASE_URL = "http://vedit-edit.invalid"  # never served: uploads resolve from storage


def edit_files(
    video: Path,
    references: list[Path],
    prompt: str,
    out: Path,
    *,
    settings: Settings,
    resolution: str = "720P",
    watermark: bool = True,
    seed: int | None = None,
    audio_setting: str = "auto",
    on_progress: Callable[[int], None] | None = None,
) -> Task:
    """Edit ``video`` after ``references`` into ``out``; returns the ended task (its status,
    plan, result or failure). Raises :class:`~vedit.errors.InvalidRequest` (or
    :class:`~vedit.errors.UploadRejected`) for a parameter or a file the API would refuse."""
    with tempfile.TemporaryDirectory(prefix="vedit-edit-") as tmp:
        s = settings.model_copy(
            update={
                "data_dir": Path(tmp),
                "database_url": "",
                "public_base_url": LOCAL_BASE_URL,
                "storage": "local",  # a throw-away store, whatever VEDIT_STORAGE says
                "signing_secret": "",
                "media_allow": [],
            }
        )
        s.ensure_dirs()
        migrate(s.resolved_database_url)
        worker_id = "vedit-edit"
        ctx = build_context(s, "edit", worker_id=worker_id)
        try:
            if ctx.editor.kind == "relay":
                raise InvalidRequest(
                    f"vedit edit runs the engine on this machine; engine {s.engine!r} edits "
                    "elsewhere: run `vedit serve` with it and use `vedit submit`"
                )
            key_id = create_key(make_sessionmaker(ctx.db), "vedit edit")[1].id
            storage, uploads, store = ctx.storage, ctx.uploads, ctx.store
            assert isinstance(storage, LocalStorage)  # VEDIT_STORAGE=local above
            media = [{"type": "video", "url": _upload(video, "video", key_id, storage, uploads, s)}]
            media += [
                {
                    "type": "reference_image",
                    "url": _upload(path, "image", key_id, storage, uploads, s),
                }
                for path in references
            ]
            parameters: dict[str, object] = {
                "resolution": resolution,
                "watermark": watermark,
                "audio_setting": audio_setting,
            }
            if seed is not None:
                parameters["seed"] = seed
            request = {
                "model": MODEL_NAME,
                "input": {"prompt": prompt, "media": media},
                "parameters": parameters,
            }
            dialect = "anyfast" if len(references) == 1 else "dashscope"
            req = parse_create(json.dumps(request).encode(), dialect=dialect)
            row = new_task_row(
                key_id=key_id, model=req.model, prompt=truncate_prompt(req.input.prompt),
                orig_prompt=req.input.prompt, media=media,
                resolution=req.parameters.resolution, watermark=req.parameters.watermark,
                seed=req.parameters.seed, audio_setting=req.parameters.audio_setting,
                ttl_s=s.task_ttl_s,
            )  # fmt: skip
            store.add_many([row])
            if not store.claim(row["id"], worker_id):
                raise RuntimeError("the task could not be claimed")
            task = store.get(row["id"])
            assert task is not None
            _run_watching(task, ctx, on_progress)
            ended = store.get(task.id)
            assert ended is not None
            if ended.status == TaskStatus.SUCCEEDED:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(storage.result_path(task.id), out)
            return ended
        finally:
            ctx.close()


def _upload(
    path: Path, kind: str, key_id: int, storage: Storage, uploads: UploadStore, s: Settings
) -> str:
    """A local file as an upload of ``kind`` (checked as the API checks an upload); its URL
    for the task."""
    if not path.is_file():
        raise InvalidRequest(f"{path}: no such file")
    copy = storage.incoming_dir / path.name
    shutil.copyfile(path, copy)
    limit = intake.limit_for(s)
    with copy.open("rb") as f:
        head = f.read(intake.SNIFF_BYTES)
    if copy.stat().st_size > limit(head):
        raise InvalidRequest(f"{path}: the file is over the {limit(head):,}-byte limit")
    sniffed = intake.check_content(copy, s, label=str(path))
    if sniffed.kind != kind:
        raise InvalidRequest(
            f"{path} is {sniffed.content_type}; {'a' if kind == 'video' else 'an'} {kind} is needed"
        )
    kept = intake.keep(
        copy, sniffed=sniffed, name=intake.safe_name(path.name, sniffed), key_id=key_id,
        storage=storage, uploads=uploads, settings=s,
    )  # fmt: skip
    return storage.signed_upload_url(kept.id, kept.name, int(kept.expires_at))


def _run_watching(task: Task, ctx: Context, on_progress: Callable[[int], None] | None) -> None:
    """``run_task`` in a thread, its progress read back from the store as the API reads it."""
    runner = threading.Thread(target=run_task, args=(task, ctx), daemon=True)
    runner.start()
    last = -1
    try:
        while runner.is_alive():
            runner.join(0.25)
            now = ctx.store.get(task.id)
            if on_progress is not None and now is not None and now.progress != last:
                last = now.progress
                on_progress(last)
    except KeyboardInterrupt:  # the worker stops at its next frame; its files go with it
        ctx.stop.set()
        runner.join(30)
        raise
    ended = ctx.store.get(task.id)
    if on_progress is not None and ended is not None and ended.status == TaskStatus.SUCCEEDED:
        on_progress(100)
