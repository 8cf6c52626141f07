"""API keys: the ``api_keys`` table and the operations on it.

A key is shown once, when it is made; the store keeps only its SHA-256 (keys
are 238 random bits, so a fast hash is enough) and an 11-character prefix to
tell keys apart in listings. A name belongs to one active key at a time (a
partial unique index, migration 0004), so a key is revoked by its name or its id.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from dataclasses import dataclass

from sqlalchemy import Float, Index, String, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from vedit.db import Base

_ALPHABET = string.ascii_letters + string.digits
KEY_PREFIX = "vk-"
KEY_BODY_LEN = 40
NAME_MAX = 128


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        # One active key per name; revoked keys keep theirs (and a name may be reused).
        Index(
            "ux_api_keys_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

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


class KeyRefused(ValueError):
    """A key operation that cannot be done; the message says why, naming the value."""


class KeyNameTaken(KeyRefused):
    """Another active key has this name."""


class KeyNotFound(KeyRefused):
    """No active key answers to this id, name or prefix."""


def shown(row: ApiKey) -> str:
    """A key in words: ``key 3 'app' (vk-AbCdEfGh…)``."""
    return f"key {row.id} {row.name!r} ({row.prefix}…)"


def check_name(name: str) -> str:
    """``name`` if it can name a key, else :class:`KeyRefused` saying why."""
    if not name.strip():
        raise KeyRefused("a key's name must not be empty")
    if len(name) > NAME_MAX:
        raise KeyRefused(f"a key's name is at most {NAME_MAX} characters; got {len(name)}")
    if not name.isprintable():
        raise KeyRefused(f"a key's name must be printable characters; got {name!r}")
    if name.isdigit():
        raise KeyRefused(
            f"a key's name must not be a number ({name!r}): a number names the key of that id"
        )
    return name


def _active_named(s: Session, name: str) -> ApiKey | None:
    return s.scalar(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)))


def _taken(row: ApiKey) -> KeyNameTaken:
    return KeyNameTaken(
        f"an active key is already named {row.name!r} ({shown(row)}); choose another name, "
        f"or revoke that one first (vedit keys revoke {row.id})"
    )


def create_key(
    sessions: sessionmaker,
    name: str,
    *,
    key: str | None = None,
    rate_limit_per_s: float | None = None,
) -> tuple[str, ApiKey]:
    """Store a key (a new random one unless ``key`` is given); returns the key and its row.
    A name another active key has is :class:`KeyNameTaken`; a ``rate_limit_per_s`` below 0
    is a :class:`KeyRefused` (0 is no limit)."""
    key = key or new_key()
    if not looks_like_key(key):
        raise ValueError("an API key is 8 to 256 printable ASCII characters without spaces")
    check_name(name)
    if rate_limit_per_s is not None and not rate_limit_per_s >= 0:
        got = f"{rate_limit_per_s:g}"
        raise KeyRefused(f"a key's rate limit is 0 (no limit) or more per second; got {got}")
    row = ApiKey(
        name=name,
        prefix=key[:11],
        key_hash=hash_key(key),
        created_at=time.time(),
        rate_limit_per_s=rate_limit_per_s,
    )
    try:
        with sessions.begin() as s:
            if (other := _active_named(s, name)) is not None:
                raise _taken(other)
            s.add(row)
    except IntegrityError:
        with sessions() as s:  # the index caught a create of the same name at the same time
            other = _active_named(s, name)
        if other is None or other.key_hash == row.key_hash:
            raise
        raise _taken(other) from None
    return key, row


def free_name(sessions: sessionmaker, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``… : the first no active key has."""
    with sessions() as s:
        taken = set(s.scalars(select(ApiKey.name).where(ApiKey.revoked_at.is_(None))))
    n, candidate = 1, name
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def list_keys(sessions: sessionmaker) -> list[ApiKey]:
    with sessions() as s:
        return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))


def count_active_keys(sessions: sessionmaker) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).where(ApiKey.revoked_at.is_(None))) or 0


def revoke_key(sessions: sessionmaker, ref: str) -> ApiKey:
    """Revoke the one active key that ``ref`` names — its id (a number), else its name, else
    its prefix — and return it; :class:`KeyNotFound` when none does, or when a prefix is
    shared by several (their ids are named)."""
    with sessions.begin() as s:
        row = None
        if ref.isdigit():
            row = s.get(ApiKey, int(ref))
            if row is not None and row.revoked_at is not None:
                when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(row.revoked_at))
                raise KeyNotFound(f"{shown(row)} was revoked already, on {when}")
        row = row or _active_named(s, ref)
        if row is None:
            active = ApiKey.revoked_at.is_(None)
            found = list(s.scalars(select(ApiKey).where(ApiKey.prefix == ref, active).limit(5)))
            if len(found) > 1:
                raise KeyNotFound(
                    f"the prefix {ref!r} is shared by {', '.join(shown(r) for r in found)}: "
                    "revoke one by its id"
                )
            row = found[0] if found else None
        if row is None:
            raise KeyNotFound(
                f"no active key matches {ref!r} by id, name or prefix (vedit keys list)"
            )
        row.revoked_at = time.time()
        return row


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
