"""Request dependencies: the bearer key, the per-key rate limit, and the services a route uses."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import sessionmaker

from vedit.config import Settings
from vedit.errors import RateLimited, Unauthorized
from vedit.keys import KeyInfo, hash_key, looks_like_key, verify_key
from vedit.storage import Storage
from vedit.tasks.ids import is_task_id
from vedit.tasks.models import Task
from vedit.tasks.store import TaskStore
from vedit.uploads.store import UploadStore

KEY_CACHE_S = 1.0  # a revoked key stops working within this long


@dataclass
class Services:
    """What the routes need, built once by ``create_app`` and kept on ``app.state``."""

    settings: Settings
    store: TaskStore
    storage: Storage
    dispatcher: Any  # has submit(task_id)
    writer: Any  # TaskWriter
    keys: sessionmaker
    uploads: UploadStore
    limiter: MovingWindowRateLimiter = field(
        default_factory=lambda: MovingWindowRateLimiter(MemoryStorage())
    )
    _key_cache: dict[str, tuple[float, KeyInfo | None]] = field(default_factory=dict)

    def lookup_key(self, key: str) -> KeyInfo | None:
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._key_cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        info = verify_key(self.keys, key)
        if len(self._key_cache) > 10_000:
            self._key_cache.clear()
        self._key_cache[digest] = (now + KEY_CACHE_S, info)
        return info


def services(request: Request) -> Services:
    return request.app.state.services


async def authenticate(request: Request) -> KeyInfo:
    """The key behind ``Authorization: Bearer <key>``; 401 when missing, malformed or unknown."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(
            "the Authorization header is missing; send 'Authorization: Bearer <key>'"
        )
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    if not looks_like_key(key):
        raise Unauthorized("the API key is malformed")
    info = services(request).lookup_key(key)
    if info is None:
        raise Unauthorized("the API key is unknown or revoked")
    return info


def own_task(svc: Services, key: KeyInfo, task_id: str) -> Task | None:
    """The task ``task_id`` of ``key``; None when the id is malformed, unknown, expired or
    another key's (the answer is the same, so nobody learns of other keys' tasks)."""
    return svc.store.get(task_id, key.id) if is_task_id(task_id) else None


def check_rate_limit(svc: Services, key: KeyInfo) -> None:
    """Count one create against the key's limit; 429 with Retry-After when over it.

    The limit is a moving window of ``burst / rate`` seconds holding ``burst``
    creates: a key may send ``burst`` at once, then ``rate`` per second.
    A key's own ``rate_limit_per_s`` overrides the setting (0: no limit), with a
    burst of twice its rate.
    """
    rate = svc.settings.rate_limit_per_s if key.rate_limit_per_s is None else key.rate_limit_per_s
    if rate <= 0:
        return
    burst = (
        svc.settings.rate_limit_burst if key.rate_limit_per_s is None else max(1, round(2 * rate))
    )
    window = max(1, round(burst / rate))
    item = RateLimitItemPerSecond(max(1, round(rate * window)), window)
    if svc.limiter.hit(item, str(key.id)):
        return
    reset, _ = svc.limiter.get_window_stats(item, str(key.id))
    retry = max(1, math.ceil(reset - time.time()))
    raise RateLimited(
        f"rate limit exceeded: {rate:g} creates per second (burst {burst}) for this key; "
        f"retry in {retry} s",
        headers={"Retry-After": str(retry)},
    )
