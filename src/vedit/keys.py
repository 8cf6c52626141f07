"""API keys: the ``api_keys`` table and the operations on it.

A key is shown once, when it is made; the store keeps only its SHA-256 (keys
are 238 random bits, so a fast hash is enough) and an 11-character prefix to
tell keys apart in listings.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from dataclasses import dataclass

from sqlalchemy import Float, String, func, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from vedit.db import Base

_ALPHABET = string.ascii_letters + string.digits
KEY_PREFIX = "vk-"
KEY_BODY_LEN = 40


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    rate_limit_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)


@dataclass(frozen=True)
class KeyInfo:
    """What a request knows about the key it came with."""

    id: int
    name: str
    rate_limit_per_s: float | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(key: str) -> bool:
    """True when ``key`` has the shape of a key (any printable token is accepted)."""
    return 8 <= len(key) <= 256 and all(33 <= ord(c) < 127 for c in key)


def new_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_BODY_LEN))


def create_key(
    sessions: sessionmaker,
    name: str,
    *,
    key: str | None = None,
    rate_limit_per_s: float | None = None,
) -> tuple[str, ApiKey]:
    """Store a key (a new random one unless ``key`` is given); returns the key and its row."""
    key = key or new_key()
    if not looks_like_key(key):
        raise ValueError("an API key is 8 to 256 printable ASCII characters without spaces")
    row = ApiKey(
        name=name,
        prefix=key[:11],
        key_hash=hash_key(key),
        created_at=time.time(),
        rate_limit_per_s=rate_limit_per_s,
    )
    with sessions.begin() as s:
        s.add(row)
    return key, row


def list_keys(sessions: sessionmaker) -> list[ApiKey]:
    with sessions() as s:
        return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))


def count_active_keys(sessions: sessionmaker) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).where(ApiKey.revoked_at.is_(None))) or 0


def revoke_key(sessions: sessionmaker, ref: str) -> int:
    """Revoke keys whose id, name or prefix is ``ref``; returns how many were revoked."""
    with sessions.begin() as s:
        cond = (ApiKey.name == ref) | (ApiKey.prefix == ref)
        if ref.isdigit():
            cond = cond | (ApiKey.id == int(ref))
        rows = list(s.scalars(select(ApiKey).where(cond, ApiKey.revoked_at.is_(None))))
        for row in rows:
            row.revoked_at = time.time()
        return len(rows)


def verify_key(sessions: sessionmaker, key: str) -> KeyInfo | None:
    """The live key matching ``key``, or None."""
    with sessions() as s:
        row = s.scalar(
            select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        )
        if row is None:
            return None
        return KeyInfo(id=row.id, name=row.name, rate_limit_per_s=row.rate_limit_per_s)


def key_is_live(sessions: sessionmaker, key_id: int) -> bool:
    """Whether the key with id ``key_id`` exists and is not revoked."""
    with sessions() as s:
        found = s.scalar(select(ApiKey.id).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)))
        return found is not None
