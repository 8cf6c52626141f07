"""Request dependencies: the bearer key, the per-key rate limit, and the services a route uses.

The rate limit's counters live where ``VEDIT_RATE_LIMIT_STORAGE`` says: in this process
(``memory://``, the default: each API process counts on its own) or in Redis
(``redis://``: every API process on that Redis counts together, so a key's limit holds
across all of them). The Redis client (``redis``, the ``scale`` extra) is imported only then.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import sessionmaker

from vedit.api.metrics import Metrics
from vedit.config import Settings
from vedit.dispatch import Dispatcher
from vedit.errors import RateLimited, RateLimitUnavailable, StartupError, Unauthorized
from vedit.keys import KeyInfo, hash_key, looks_like_key, verify_key
from vedit.storage import Storage
from vedit.tasks.store import TaskStore
from vedit.uploads.store import UploadStore

KEY_CACHE_S = 1.0  # a revoked key stops working within this long


def shown_storage(uri: str) -> str:
    """``uri`` with its password, if any, hidden."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


class RateLimiter:
    """Moving-window counters per key, in this process's memory or in a shared Redis."""

    def __init__(self, storage_uri: str = "memory://") -> None:
        self.storage_uri = storage_uri
        self._memory: MovingWindowRateLimiter | None = None
        self._shared: Any = None  # limits.aio.strategies.MovingWindowRateLimiter
        if storage_uri.startswith("memory://"):
            self._memory = MovingWindowRateLimiter(MemoryStorage())
            return
        try:
            import redis.asyncio  # noqa: F401  (limits' asyncio Redis storage uses it)
        except ImportError:
            raise StartupError(
                f"VEDIT_RATE_LIMIT_STORAGE is {shown_storage(storage_uri)!r}, but the redis "
                "client is not installed: pip install 'vedit[scale]'"
            ) from None
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter as SharedLimiter

        storage = RedisStorage(
            "async+" + storage_uri,
            implementation="redispy",
            wrap_exceptions=True,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        self._shared = SharedLimiter(storage)

    def check(self) -> None:
        """Raise :class:`StartupError` (naming the setting) unless the storage answers."""
        if self._memory is not None:
            return
        import redis

        client = redis.Redis.from_url(self.storage_uri, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise StartupError(
                f"VEDIT_RATE_LIMIT_STORAGE is {shown_storage(self.storage_uri)!r}, but that "
                f"Redis does not answer: {exc}"
            ) from None
        finally:
            client.close()

    async def hit(self, item: RateLimitItem, key: str) -> float | None:
        """Count one hit on ``key``; None when it is within ``item``, else the time (epoch
        seconds) at which the window frees a slot. A Redis that does not answer is a 503."""
        if self._memory is not None:
            if self._memory.hit(item, key):
                return None
            return self._memory.get_window_stats(item, key).reset_time
        from limits.errors import StorageError

        try:
            if await self._shared.hit(item, key):
                return None
            return (await self._shared.get_window_stats(item, key)).reset_time
        except StorageError as exc:
            raise RateLimitUnavailable(
                "the rate limit cannot be counted now: the Redis of VEDIT_RATE_LIMIT_STORAGE "
                f"does not answer ({type(exc.storage_error).__name__}); retry",
                retry_after_s=1,
            ) from None


@dataclass
class Services:
    """What the routes need, built once by ``create_app`` and kept on ``app.state``."""

    settings: Settings
    store: TaskStore
    storage: Storage
    dispatcher: Dispatcher
    writer: Any  # TaskWriter
    keys: sessionmaker
    uploads: UploadStore
    metrics: Metrics
    limiter: RateLimiter = field(default_factory=RateLimiter)
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


async def check_rate_limit(svc: Services, key: KeyInfo) -> None:
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
    reset = await svc.limiter.hit(item, str(key.id))
    if reset is None:
        return
    retry = max(1, math.ceil(reset - time.time()))
    raise RateLimited(
        f"rate limit exceeded: {rate:g} creates per second (burst {burst}) for this key; "
        f"retry in {retry} s",
        retry_after_s=retry,
    )
