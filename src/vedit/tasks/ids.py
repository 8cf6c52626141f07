"""Task and request ids: ``asyntask_`` + 32 base62 characters from ``secrets``."""

from __future__ import annotations

import secrets
import string
import uuid

_BASE62 = string.ascii_letters + string.digits
TASK_ID_PREFIX = "asyntask_"
_SPACE = 62**32


def new_task_id() -> str:
    """32 base62 digits of one uniform draw below 62**32 (about 190 bits)."""
    value = secrets.randbelow(_SPACE)
    digits = []
    for _ in range(32):
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
    return TASK_ID_PREFIX + "".join(digits)


def is_task_id(value: str) -> bool:
    body = value.removeprefix(TASK_ID_PREFIX)
    return value.startswith(TASK_ID_PREFIX) and len(body) == 32 and all(c in _BASE62 for c in body)


def new_request_id() -> str:
    """A random UUID (version 4) in its usual text form."""
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
